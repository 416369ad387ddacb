/** Piscina worker entry: dispatches tasks to the stage handlers that run beside their models. */
import { move, workerData, transferableSymbol, valueSymbol } from 'piscina';
import { getSession } from './sessions.js';
import type { CropResult, LoadResult, RecognizeImageResult, WorkerTask } from './protocol.js';
import { annotate } from './ops/annotate.js';
import { decodeImage } from './image/decode.js';
import { depthOfImage, estimateDepth } from './ops/depth.js';
import { detect } from './ops/detect.js';
import { embedFaces } from './ops/embed-faces.js';
import { detectFaces, encodeCrops } from './ops/faces.js';
import { estimatePoses } from './ops/pose.js';
import { reconstruct } from './ops/reconstruct.js';
import { personEmbed } from './ops/person-embed.js';
import { reidEmbed } from './ops/reid.js';

const data = workerData as { ortThreads?: number; busyMicros?: BigInt64Array } | undefined;
const threads = data?.ortThreads ?? 1;

export default async function run(task: WorkerTask): Promise<unknown> {
  const t0 = performance.now();
  try {
    return await dispatch(task);
  } finally {
    if (data?.busyMicros) Atomics.add(data.busyMicros, 0, BigInt(Math.round((performance.now() - t0) * 1000)));
  }
}

async function dispatch(task: WorkerTask): Promise<unknown> {
  switch (task.op) {
    case 'load': {
      const s = await getSession(task.model, threads);
      return { inputs: [...s.inputNames], outputs: [...s.outputNames] } satisfies LoadResult;
    }
    case 'detect': {
      const result = await detect(task, threads);
      // Hand the frame's pixels back without copying.
      return withTransfer(result, [result.data]);
    }
    case 'faces': {
      const result = await detectFaces(task, threads);
      return withTransfer(result, [result.data, ...result.crops.map((c) => c.jpeg)]);
    }
    case 'annotate': {
      const result = await annotate(task);
      return withTransfer(result, [result.jpeg, result.data]);
    }
    case 'crop': {
      const crops = await encodeCrops(new Uint8Array(task.data), task.width, task.height, task.crops, task.quality);
      return withTransfer({ crops, data: task.data } satisfies CropResult, [task.data, ...crops.map((c) => c.jpeg)]);
    }
    case 'embed-faces': {
      const result = await embedFaces(task, threads);
      return withTransfer(result, [result.data, ...result.faces.map((f) => f.embedding.buffer as ArrayBuffer)]);
    }
    case 'recognize-image': {
      const { width, height, rgb } = await decodeImage(new Uint8Array(task.image), task.maxPixels);
      const r = await embedFaces({ ...task, op: 'embed-faces', width, height, data: rgb.buffer as ArrayBuffer }, threads);
      const result: RecognizeImageResult = { faces: r.faces, detectMs: r.detectMs, embedMs: r.embedMs, width, height };
      return withTransfer(result, r.faces.map((f) => f.embedding.buffer as ArrayBuffer));
    }
    case 'reid': {
      const result = await reidEmbed(task, threads);
      // Every embedding has its own buffer (zero ones for empty boxes too), so none is listed twice.
      return withTransfer(result, [result.data, ...result.embeddings.map((e) => e.buffer as ArrayBuffer)]);
    }
    case 'pose': {
      const result = await estimatePoses(task, threads);
      return withTransfer(result, [result.data]);
    }
    case 'depth': {
      const result = await estimateDepth(task, threads);
      return withTransfer(result, [result.data, result.depth.data]);
    }
    case 'depth-image': {
      const result = await depthOfImage(task, threads);
      return withTransfer(result, [result.view.rgb, result.view.depth.data]);
    }
    case 'reconstruct': {
      const result = await reconstruct(task);
      return withTransfer(result, [...result.models.map((m) => m.glb), ...result.views.flatMap((v) => [v.rgb, v.depth.data])]);
    }
    case 'person-embed': {
      const result = await personEmbed(task, threads);
      return withTransfer(result, result.persons.flatMap((p) => [p.body.buffer as ArrayBuffer, ...(p.face ? [p.face.buffer as ArrayBuffer] : [])]));
    }
    default:
      throw new Error(`unknown worker task ${(task as { op: string }).op}`);
  }
}

/** Piscina's Transferable wrapper: `value` is posted back with `transfer` moved, not cloned. */
function withTransfer<T extends object>(value: T, transfer: ArrayBuffer[]): unknown {
  return move({ [transferableSymbol]: transfer, [valueSymbol]: value } as unknown as Parameters<typeof move>[0]);
}

/** Worker side of depth estimation: stretch to the model input, normalise, run, and hand back a float map. */
import { defineOp } from '../protocol.js';
import * as ort from 'onnxruntime-node';
import { getSession } from '../sessions.js';
import type { DepthMap } from '../../core/types.js';
import { decodeImage, encodeJpeg } from '../image/decode.js';
import { depthModelSpec, type DepthModelSpec } from '../models/depth.js';
import type { DepthImageResult, DepthImageTask, DepthResult, DepthTask } from './depth.protocol.js';
import { bilinearTaps } from '../image/resample.js';

export async function estimateDepth(task: DepthTask, threads: number): Promise<DepthResult> {
  const rgb = new Uint8Array(task.data);
  if (rgb.length !== task.width * task.height * 3) {
    throw new Error(`depth: frame is ${rgb.length} bytes, expected ${task.width}x${task.height}x3 RGB`);
  }
  const { depth, inferenceMs } = await depthOf(task.model, rgb, task.width, task.height, threads);
  return { depth, data: task.data, inferenceMs };
}

export async function depthOfImage(task: DepthImageTask, threads: number): Promise<DepthImageResult> {
  // Scaled down (never up) in C so that the longer side is at most maxSide: a tiny image stays tiny.
  const { width, height, rgb } = await decodeImage(new Uint8Array(task.image), { maxPixels: task.maxPixels, maxSide: task.maxSide });
  const { depth, inferenceMs } = await depthOf(task.model, rgb, width, height, threads);
  // What is kept of a client's image is this scaled copy, not the original upload.
  const jpeg = task.storeJpeg ? new Uint8Array(await encodeJpeg(rgb, width, height)).buffer as ArrayBuffer : undefined;
  return { view: { width, height, rgb: rgb.buffer as ArrayBuffer, depth }, inferenceMs, ...(jpeg ? { jpeg } : {}) };
}

async function depthOf(model: DepthImageTask['model'], rgb: Uint8Array, width: number, height: number, threads: number) {
  const spec = depthModelSpec(model.kind);
  const session = await getSession(model, threads);
  const input = depthInput(rgb, width, height, spec);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 3, spec.height, spec.width]) };
  const t0 = performance.now();
  const out = await session.run(feeds);
  const inferenceMs = performance.now() - t0;
  try {
    const tensor = out[session.outputNames[0]];
    const dims = tensor.dims;
    const [h, w] = [Number(dims[dims.length - 2]), Number(dims[dims.length - 1])];
    const values = tensor.data as Float32Array;
    if (values.length !== w * h) throw new Error(`depth: model output ${JSON.stringify(dims)} is not one map`);
    // A copy of our own: the tensor's memory belongs to ORT and is released with it.
    const depth: DepthMap = { width: w, height: h, data: values.slice().buffer as ArrayBuffer, kind: spec.output };
    return { depth, inferenceMs };
  } finally {
    for (const t of Object.values(out)) t.dispose();
  }
}

/** The whole frame stretched (bilinear, half-pixel centres) to the model size as normalised RGB NCHW planes. */
export function depthInput(rgb: Uint8Array, width: number, height: number, spec: DepthModelSpec): Float32Array {
  const W = spec.width;
  const H = spec.height;
  const plane = W * H;
  const out = new Float32Array(3 * plane);
  const cols = bilinearTaps(width, W, 3);
  const rows = bilinearTaps(height, H, width * 3);
  const scale = spec.std.map((s) => 1 / (255 * s));
  const offset = spec.mean.map((m, c) => m / spec.std[c]);
  for (let y = 0; y < H; y++) {
    const r0 = rows.lo[y];
    const r1 = rows.hi[y];
    const fy = rows.frac[y];
    for (let x = 0; x < W; x++) {
      const fx = cols.frac[x];
      const a = r0 + cols.lo[x];
      const b = r0 + cols.hi[x];
      const c = r1 + cols.lo[x];
      const d = r1 + cols.hi[x];
      const i = y * W + x;
      for (let ch = 0; ch < 3; ch++) {
        const top = rgb[a + ch] + (rgb[b + ch] - rgb[a + ch]) * fx;
        const bottom = rgb[c + ch] + (rgb[d + ch] - rgb[c + ch]) * fx;
        out[ch * plane + i] = (top + (bottom - top) * fy) * scale[ch] - offset[ch];
      }
    }
  }
  return out;
}

export const ops = [
  defineOp<DepthTask, DepthResult>({ op: 'depth', run: (t, env) => estimateDepth(t, env.threads), transfer: (r) => [r.data, r.depth.data] }),
  defineOp<DepthImageTask, DepthImageResult>({
    op: 'depth-image', run: (t, env) => depthOfImage(t, env.threads), transfer: (r) => [r.view.rgb, r.view.depth.data, ...(r.jpeg ? [r.jpeg] : [])],
  }),
];

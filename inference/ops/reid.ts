/**
 * Worker side of person re-identification: every box is cropped and stretched straight into the input tensor,
 * run through person-reidentification-retail-0287 and L2-normalised, all in one task per frame. The shipped
 * export has its batch dimension fixed at 1, so the task runs the model once per box (back to back, reusing
 * one input buffer) rather than once per batch.
 */
import { defineOp } from '../protocol.js';
import * as ort from 'onnxruntime-node';
import { checkModelShape, getSession } from '../sessions.js';
import { REID_EMBEDDING_SIZE, type ReidResult, type ReidTask } from './reid.protocol.js';
import { clipReidBox, REID_HEIGHT, REID_TENSOR_SIZE, REID_WIDTH, reidInput } from '../models/reid.js';

// One crop buffer per worker. The pool runs one task per worker at a time; a call that overlaps another
// anyway (direct callers, tests) gets its own buffer instead of overwriting one a running model still reads.
const shared = new Float32Array(REID_TENSOR_SIZE);
let sharedBusy = false;

export async function reidEmbed(task: ReidTask, threads: number): Promise<ReidResult> {
  const rgb = new Uint8Array(task.data);
  if (rgb.length !== task.width * task.height * 3) {
    throw new Error(`reid: frame is ${rgb.length} bytes, expected ${task.width}x${task.height}x3 RGB`);
  }
  const session = await getSession(task.model, threads);
  checkModel(session, task.model.path);
  if (task.boxes.length === 0) return { embeddings: [], data: task.data, inferenceMs: 0 };

  const t0 = performance.now();
  const own = !sharedBusy;
  sharedBusy = true;
  try {
    const input = own ? shared : new Float32Array(REID_TENSOR_SIZE);
    const tensor = new ort.Tensor('float32', input, [1, REID_HEIGHT, REID_WIDTH, 3]);
    const feeds = { [session.inputNames[0]]: tensor };
    const embeddings: Float32Array[] = [];
    for (const box of task.boxes) {
      if (!clipReidBox(box, task.width, task.height)) {
        embeddings.push(new Float32Array(REID_EMBEDDING_SIZE)); // nothing to see: similar to nothing
        continue;
      }
      reidInput(rgb, task.width, task.height, box, input, 0);
      // Awaited before the next crop overwrites the buffer the model reads from.
      const out = await session.run(feeds);
      try {
        embeddings.push(l2Normalised(out[session.outputNames[0]], session.outputNames[0]));
      } finally {
        for (const value of Object.values(out)) value.dispose();
      }
    }
    return { embeddings, data: task.data, inferenceMs: performance.now() - t0 };
  } finally {
    if (own) sharedBusy = false;
  }
}

/** The model must take one NHWC 256×128 BGR crop (batch 1 or dynamic) and give a 256-d vector. */
function checkModel(session: ort.InferenceSession, file: string): void {
  checkModelShape(session, 'reid', file, (input, output) => {
    const inputOk = input?.isTensor && input.type === 'float32' && input.shape.length === 4 &&
      (input.shape[0] === 1 || typeof input.shape[0] === 'string' || input.shape[0] === -1) &&
      input.shape[1] === REID_HEIGHT && input.shape[2] === REID_WIDTH && input.shape[3] === 3;
    const outLast = output?.isTensor ? output.shape[output.shape.length - 1] : undefined;
    return Boolean(inputOk && output?.isTensor && (outLast === REID_EMBEDDING_SIZE || typeof outLast === 'string'));
  }, `a person ReID model with NHWC input [1,${REID_HEIGHT},${REID_WIDTH},3] and output [1,${REID_EMBEDDING_SIZE}] (person-reidentification-retail-0287)`);
}

/** The 256-d output scaled to unit length, copied into its own ArrayBuffer (transferable alone). */
function l2Normalised(output: ort.OnnxValue, name: string): Float32Array {
  const data = output.data as Float32Array;
  if (data.length !== REID_EMBEDDING_SIZE) {
    throw new Error(`reid: model output ${name} has shape [${output.dims}], expected [1,${REID_EMBEDDING_SIZE}]`);
  }
  let sum = 0;
  for (let k = 0; k < REID_EMBEDDING_SIZE; k++) sum += data[k] * data[k];
  const norm = Math.sqrt(sum);
  const inv = norm > 0 && Number.isFinite(norm) ? 1 / norm : 0; // a zero (or broken) vector stays zero: similar to nothing
  const embedding = new Float32Array(REID_EMBEDDING_SIZE);
  for (let k = 0; k < REID_EMBEDDING_SIZE; k++) embedding[k] = data[k] * inv;
  return embedding;
}

export const ops = [
  // Every embedding has its own buffer (zero ones for empty boxes too), so none is listed twice.
  defineOp<ReidTask, ReidResult>({
    op: 'reid', run: (t, env) => reidEmbed(t, env.threads), transfer: (r) => [r.data, ...r.embeddings.map((e) => e.buffer as ArrayBuffer)],
  }),
];

/**
 * Worker side of face embedding: YuNet detection (the faces stage's own code) unless faces are given, 5-point
 * alignment of every face straight into one batch tensor, ONE MobileFaceNet run for the whole batch, and
 * L2-normalised 128-d embeddings.
 */
import { defineOp } from '../protocol.js';
import * as ort from 'onnxruntime-node';
import { getSession } from '../sessions.js';
import { alignFace, FACE_SIZE, FACE_TENSOR_SIZE } from '../image/face-align.js';
import { FACE_EMBEDDING_SIZE, type EmbedFacesResult, type EmbedFacesTask, type FaceInput } from './embed-faces.protocol.js';
import { detectFaces } from './faces.js';

// One batch buffer per worker, grown to the most faces seen. The pool runs one task per worker at a time; a
// call that overlaps another anyway (direct callers, tests) gets its own buffer instead of corrupting it.
let batch = new Float32Array(0);
let batchBusy = false;

export async function embedFaces(task: EmbedFacesTask, threads: number): Promise<EmbedFacesResult> {
  const rgb = new Uint8Array(task.data);
  if (rgb.length !== task.width * task.height * 3) {
    throw new Error(`embed-faces: frame is ${rgb.length} bytes, expected ${task.width}x${task.height}x3 RGB`);
  }
  const embedder = await getSession(task.embedder, threads);

  let faces: FaceInput[];
  let detectMs = 0;
  if (task.faces) {
    faces = task.faces;
  } else {
    const t0 = performance.now();
    const detected = await detectFaces(
      { op: 'faces', model: task.detector, width: task.width, height: task.height, data: task.data, scoreThreshold: task.scoreThreshold, maxSide: task.maxSide },
      threads,
    );
    faces = detected.faces;
    detectMs = performance.now() - t0;
  }
  if (faces.length === 0) return { faces: [], data: task.data, detectMs, embedMs: 0 };

  const t0 = performance.now();
  const embeddings = await embedAligned(embedder, rgb, task.width, task.height, faces);
  const embedMs = performance.now() - t0;
  return {
    faces: faces.map(({ box, score, landmarks }, i) => ({ box, score, landmarks, embedding: embeddings[i] })),
    data: task.data,
    detectMs,
    embedMs,
  };
}

/** Align every face into the batch buffer (or a private one if it is in use), run the model once, normalise. */
async function embedAligned(
  session: ort.InferenceSession,
  rgb: Uint8Array,
  width: number,
  height: number,
  faces: readonly FaceInput[],
): Promise<Float32Array[]> {
  const n = faces.length;
  const size = n * FACE_TENSOR_SIZE;
  const shared = !batchBusy;
  batchBusy = true;
  let out: ort.InferenceSession.OnnxValueMapType;
  try {
    if (shared && batch.length < size) batch = new Float32Array(size);
    const tensor = shared ? batch.subarray(0, size) : new Float32Array(size);
    faces.forEach((f, i) => alignFace(rgb, width, height, f.landmarks, tensor, i * FACE_TENSOR_SIZE));
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', tensor, [n, 3, FACE_SIZE, FACE_SIZE]) };
    out = await session.run(feeds);
  } finally {
    if (shared) batchBusy = false;
  }
  try {
    const output = out[session.outputNames[0]];
    const data = output.data as Float32Array;
    if (data.length !== n * FACE_EMBEDDING_SIZE) {
      throw new Error(`embed-faces: model output ${session.outputNames[0]} has shape [${output.dims}], expected [${n},${FACE_EMBEDDING_SIZE}]`);
    }
    return faces.map((_, i) => l2Normalised(data, i * FACE_EMBEDDING_SIZE));
  } finally {
    for (const value of Object.values(out)) value.dispose();
  }
}

/** A copy of data[offset .. offset+128) scaled to unit length, over its own ArrayBuffer (transferable alone). */
function l2Normalised(data: Float32Array, offset: number): Float32Array {
  let sum = 0;
  for (let k = 0; k < FACE_EMBEDDING_SIZE; k++) sum += data[offset + k] * data[offset + k];
  const norm = Math.sqrt(sum);
  const inv = norm > 0 && Number.isFinite(norm) ? 1 / norm : 0; // a zero (or broken) vector stays zero: similar to nothing
  const embedding = new Float32Array(FACE_EMBEDDING_SIZE);
  for (let k = 0; k < FACE_EMBEDDING_SIZE; k++) embedding[k] = data[offset + k] * inv;
  return embedding;
}

export const ops = [
  defineOp<EmbedFacesTask, EmbedFacesResult>({
    op: 'embed-faces', run: (t, env) => embedFaces(t, env.threads),
    transfer: (r) => [r.data, ...r.faces.map((f) => f.embedding.buffer as ArrayBuffer)],
  }),
];

/** Messages between the main thread and the worker for face embedding. Frames travel as transferred ArrayBuffers. */
import type { Box } from '../../core/types.js';
import type { ModelRef } from '../../core/types.js';

/** Floats per embedding (MobileFaceNet). */
export const FACE_EMBEDDING_SIZE = 128;

/** A face as YuNet reports it: box and 5 landmarks in source pixels (right eye, left eye, nose, right/left mouth corner). */
export interface FaceInput {
  box: Box;
  score: number;
  landmarks: [number, number][];
}

export interface EmbedFacesTask {
  op: 'embed-faces';
  /** YuNet (dynamic input); neither loaded nor run when `faces` is given. */
  detector: ModelRef;
  /** MobileFaceNet, input [batch,3,112,112] → output [batch,128]. */
  embedder: ModelRef;
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker and transferred back in the result. */
  data: ArrayBuffer;
  /** Minimum YuNet score, e.g. YUNET_SCORE_THRESHOLD (0.8). */
  scoreThreshold: number;
  /** Detection runs on the frame downscaled so its longer side is at most this; alignment uses full resolution. */
  maxSide: number;
  /** Faces already detected on this frame (e.g. by the faces stage): detection is skipped and these are embedded. */
  faces?: FaceInput[];
}

export interface EmbeddedFace extends FaceInput {
  /**
   * 128 floats, L2-normalised (so cosine similarity is a dot product). Each embedding is a view over its own
   * ArrayBuffer (byteOffset 0), so the worker transfers every `embedding.buffer` instead of copying it, and
   * a consumer may keep one without retaining the others.
   */
  embedding: Float32Array;
}

export interface EmbedFacesResult {
  /** Detector order (best first), or the order of `task.faces` when given. */
  faces: EmbeddedFace[];
  /** The task's frame buffer, handed back. */
  data: ArrayBuffer;
  /** Wall time of detection (pre-processing, YuNet, decoding); 0 when `task.faces` was given. */
  detectMs: number;
  /** Wall time of alignment, one batched MobileFaceNet run and normalisation; 0 when there is no face. */
  embedMs: number;
}

/** Cosine similarity of two L2-normalised embeddings (their dot product), in [-1, 1]. */
export function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`cosineSimilarity: lengths differ (${a.length} vs ${b.length})`);
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i] * b[i];
  return dot;
}

/** Messages between the main thread and the worker for person re-identification. Frames travel as transferred ArrayBuffers. */
import type { Box } from '../../core/types.js';
import type { ModelRef } from '../../core/types.js';

export { cosineSimilarity } from './embed-faces.protocol.js';

/** Floats per embedding (person-reidentification-retail-0287). */
export const REID_EMBEDDING_SIZE = 256;

export interface ReidTask {
  op: 'reid';
  /** person-reidentification-retail-0287 (NHWC): input [1,256,128,3] BGR 0–255 → output [1,256]. */
  model: ModelRef;
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker and transferred back in the result. */
  data: ArrayBuffer;
  /** Person boxes in source pixels (e.g. detections or tracks of this frame); each is clipped to the frame. */
  boxes: Box[];
}

export interface ReidResult {
  /**
   * One per box, in `boxes` order: 256 floats, L2-normalised (cosine similarity is a dot product). Each is a
   * view over its own ArrayBuffer (byteOffset 0), so the worker transfers every `embedding.buffer` and a
   * consumer may keep one without retaining the others. A box with no area inside the frame gets an all-zero
   * embedding (similarity 0 to everything) instead of failing the other boxes.
   */
  embeddings: Float32Array[];
  /** The task's frame buffer, handed back. */
  data: ArrayBuffer;
  /** Wall time of cropping, every model run (one per box: the model's batch is fixed at 1) and normalisation; 0 without boxes. */
  inferenceMs: number;
}

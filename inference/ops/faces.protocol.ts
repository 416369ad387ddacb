/** Messages between the main thread and the worker for the faces stage. Frames travel as transferred ArrayBuffers. */
import type { Box } from '../../core/types.js';
import type { ModelRef } from '../../core/types.js';
import type { Face } from '../models/yunet.js';

export type { Face } from '../models/yunet.js';

export interface FacesTask {
  op: 'faces';
  model: ModelRef;
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker and transferred back in the result. */
  data: ArrayBuffer;
  /** Minimum YuNet score, e.g. YUNET_SCORE_THRESHOLD (0.8). */
  scoreThreshold: number;
  /** The frame is downscaled so that its longer side is at most this (e.g. 640); never upscaled. */
  maxSide: number;
  /**
   * Regions of this frame to JPEG-encode in the worker (e.g. the best face of a track), so the pixels never
   * travel back for that. Each box (source pixels) is enlarged by 20 % around its centre and clipped to the
   * frame; a box that is empty after clipping yields no crop.
   */
  crops?: { key: number; box: Box }[];
  /** JPEG quality 1–100 for `crops`; default 85. */
  cropQuality?: number;
}

export interface FacesResult {
  /** Best first. */
  faces: Face[];
  /** The task's frame buffer, handed back. */
  data: ArrayBuffer;
  inferenceMs: number;
  /** One per requested crop that is not empty, in request order; each `jpeg` is its own transferable buffer. */
  crops: { key: number; jpeg: ArrayBuffer }[];
}

/** Messages between the main thread and the worker for depth estimation. Pixels travel as transferred ArrayBuffers. */
import type { DepthMap } from '../../core/types.js';
import type { ModelRef } from '../../core/types.js';

/** Depth of one packed RGB frame. */
export interface DepthTask {
  op: 'depth';
  /** A depth model; its kind (see depth-models.ts) fixes pre-processing and output meaning. */
  model: ModelRef;
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker and transferred back in the result. */
  data: ArrayBuffer;
}

export interface DepthResult {
  /** The depth map at the model's resolution, covering the whole frame. */
  depth: DepthMap;
  /** The task's frame buffer, handed back. */
  data: ArrayBuffer;
  inferenceMs: number;
}

/**
 * Decodes an encoded image (JPEG, PNG, …), scales it so its longer side is `maxSide`, and estimates its
 * depth: one view of a reconstruction.
 */
export interface DepthImageTask {
  op: 'depth-image';
  model: ModelRef;
  image: ArrayBuffer;
  maxSide: number;
  /** Images with more pixels than this are refused (decompression bombs). */
  maxPixels: number;
  /** Also answer the scaled image as a JPEG (what a reconstruction session keeps). */
  storeJpeg?: boolean;
}

/** One image ready to back-project: its pixels at the processing size and its depth map. */
export interface DepthView {
  width: number;
  height: number;
  /** Packed RGB, width × height × 3. */
  rgb: ArrayBuffer;
  depth: DepthMap;
}

export interface DepthImageResult { view: DepthView; inferenceMs: number; jpeg?: ArrayBuffer }

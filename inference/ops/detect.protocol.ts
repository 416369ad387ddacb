/** The detect op: YOLOX on a frame's pixels (transferred there and back). */
import type { Detection, ModelRef } from '../../core/types.js';

export interface DetectTask {
  op: 'detect';
  model: ModelRef;
  /** Size of `data`: the frame's, or its view's (`Frame.view`). */
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker and transferred back in the result. */
  data: ArrayBuffer;
  /** The frame's size when `data` is its view: boxes are reported in the frame's pixels. */
  frameWidth?: number;
  frameHeight?: number;
  scoreThreshold: number;
  nmsIou: number;
  classIds: number[] | null;
}

export interface DetectResult {
  detections: Detection[];
  data: ArrayBuffer;
  inferenceMs: number;
}

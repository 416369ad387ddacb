/** The detect op: YOLOX on a frame's pixels (transferred there and back). */
import type { Detection, ModelRef } from '../../core/types.js';

export interface DetectTask {
  op: 'detect';
  model: ModelRef;
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker and transferred back in the result. */
  data: ArrayBuffer;
  scoreThreshold: number;
  nmsIou: number;
  classIds: number[] | null;
}

export interface DetectResult {
  detections: Detection[];
  data: ArrayBuffer;
  inferenceMs: number;
}

/** Messages between the pose stage and its worker. Frames travel as transferred ArrayBuffers. */
import type { Box, Keypoint } from '../../core/types.js';
import type { ModelRef } from '../../core/types.js';

export interface PoseTask {
  op: 'pose';
  /** Ultralight-Nano-SimplePose: input [1,3,256,192] RGB ImageNet-normalised → heat maps [1,17,64,48]. */
  model: ModelRef;
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker and transferred back in the result. */
  data: ArrayBuffer;
  /** Person boxes in source pixels (tracks or detections of this frame). */
  boxes: Box[];
  /** Keypoints with at least this confidence are `visible`. */
  visibility: number;
}

export interface PoseResult {
  /** One entry per box, in `boxes` order: 17 COCO keypoints, or an empty list for a box with nothing inside the frame. */
  keypoints: Keypoint[][];
  /** The task's frame buffer, handed back. */
  data: ArrayBuffer;
  /** session.run time of each model run (one per estimated box). */
  runMs: number[];
  /** Wall time of cropping, every model run and decoding; 0 without boxes. */
  totalMs: number;
}

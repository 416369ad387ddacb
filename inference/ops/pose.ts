/**
 * Worker side of the pose stage: every person box of a frame is cropped into the input tensor, run through
 * SimplePose and decoded, all in one task. The shipped export fixes its batch dimension at 1 (ORT refuses a
 * batch of 3), so the task runs the model once per person, back to back, reusing one input buffer.
 */
import { defineOp } from '../protocol.js';
import * as ort from 'onnxruntime-node';
import { checkModelShape, getSession } from '../sessions.js';
import type { Keypoint } from '../../core/types.js';
import type { PoseResult, PoseTask } from './pose.protocol.js';
import {
  decodeHeatmaps, HEATMAP_HEIGHT, HEATMAP_WIDTH, POSE_HEIGHT, POSE_KEYPOINTS, POSE_TENSOR_SIZE, POSE_WIDTH, poseCropBox, poseInput,
} from '../models/simplepose.js';

// One input buffer per worker. The pool runs one task per worker at a time; an overlapping direct call
// (tests) gets its own buffer instead of overwriting one a running model still reads.
const shared = new Float32Array(POSE_TENSOR_SIZE);
let sharedBusy = false;

export async function estimatePoses(task: PoseTask, threads: number): Promise<PoseResult> {
  const rgb = new Uint8Array(task.data);
  if (rgb.length !== task.width * task.height * 3) {
    throw new Error(`pose: frame is ${rgb.length} bytes, expected ${task.width}x${task.height}x3 RGB`);
  }
  const session = await getSession(task.model, threads);
  checkModel(session, task.model.path);
  if (task.boxes.length === 0) return { keypoints: [], data: task.data, runMs: [], totalMs: 0 };

  const t0 = performance.now();
  const own = !sharedBusy;
  sharedBusy = true;
  try {
    const input = own ? shared : new Float32Array(POSE_TENSOR_SIZE);
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 3, POSE_HEIGHT, POSE_WIDTH]) };
    const keypoints: Keypoint[][] = [];
    const runMs: number[] = [];
    for (const box of task.boxes) {
      const crop = poseCropBox(box, task.width, task.height);
      if (!crop) { keypoints.push([]); continue; }
      poseInput(rgb, task.width, task.height, crop, input);
      // Awaited before the next crop overwrites the buffer the model reads from.
      const r0 = performance.now();
      const out = await session.run(feeds);
      runMs.push(performance.now() - r0);
      try {
        const heatmaps = out[session.outputNames[0]];
        if (heatmaps.data.length !== POSE_KEYPOINTS * HEATMAP_HEIGHT * HEATMAP_WIDTH) {
          throw new Error(`pose: model output has shape [${heatmaps.dims}], expected [1,${POSE_KEYPOINTS},${HEATMAP_HEIGHT},${HEATMAP_WIDTH}]`);
        }
        keypoints.push(decodeHeatmaps(heatmaps.data as Float32Array, crop, task.visibility));
      } finally {
        for (const value of Object.values(out)) value.dispose();
      }
    }
    return { keypoints, data: task.data, runMs, totalMs: performance.now() - t0 };
  } finally {
    if (own) sharedBusy = false;
  }
}

/** The model must take one NCHW 256×192 crop and give 17 heat maps, so a wrong model fails clearly, once. */
function checkModel(session: ort.InferenceSession, file: string): void {
  checkModelShape(session, 'pose', file, (input, output) => Boolean(
    input?.isTensor && input.type === 'float32' && input.shape.length === 4 &&
    input.shape[1] === 3 && input.shape[2] === POSE_HEIGHT && input.shape[3] === POSE_WIDTH &&
    output?.isTensor && output.shape.length === 4 && output.shape[1] === POSE_KEYPOINTS),
  `a top-down pose model with input [1,3,${POSE_HEIGHT},${POSE_WIDTH}] and heat maps [1,${POSE_KEYPOINTS},${HEATMAP_HEIGHT},${HEATMAP_WIDTH}] (Ultralight-Nano-SimplePose)`);
}

export const ops = [
  defineOp<PoseTask, PoseResult>({ op: 'pose', run: (t, env) => estimatePoses(t, env.threads), transfer: (r) => [r.data] }),
];

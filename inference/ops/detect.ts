/** Worker side of the detect stage: letterbox, YOLOX inference and decoding, next to the model. */
import { defineOp } from '../protocol.js';
import * as ort from 'onnxruntime-node';
import { columnsTensor, fixedInputSize, getSession, selectsColumns } from '../sessions.js';
import type { DetectResult, DetectTask } from './detect.protocol.js';
import { YOLOX_INPUT, decodeYolox, letterbox, yoloxColumns, yoloxInputSize } from '../models/yolox.js';
import { COLUMNS_INPUT } from '../models/onnx-output-columns.js';

// One input tensor buffer per worker, reused for every frame (a worker runs one task at a time); the largest input.
const input = new Float32Array(3 * YOLOX_INPUT * YOLOX_INPUT);

export async function detect(task: DetectTask, threads: number): Promise<DetectResult> {
  const session = await getSession(task.model, threads);
  const rgb = new Uint8Array(task.data);
  if (rgb.length !== task.width * task.height * 3) {
    throw new Error(`frame is ${rgb.length} bytes, expected ${task.width}x${task.height}x3 RGB`);
  }
  // A view's boxes are scaled up to the frame's pixels (the view keeps the frame's aspect); checked before any pixel work.
  const frame = frameSize(task);
  // A free-size model runs at the frame's aspect: no model time spent on letterbox padding.
  const size = fixedInputSize(session) ? { width: YOLOX_INPUT, height: YOLOX_INPUT } : yoloxInputSize(task.width, task.height);
  const { tensor, scale, inputWidth, inputHeight } = letterbox(rgb, task.width, task.height, YOLOX_INPUT, input, size);
  const feeds: Record<string, ort.Tensor> = { [session.inputNames[0]]: new ort.Tensor('float32', tensor, [1, 3, inputHeight, inputWidth]) };
  // Only the columns of the classes asked for come back (a few kilobytes instead of 0.9 MB per frame).
  const columns = selectsColumns(session) ? yoloxColumns(task.classIds) : null;
  if (columns) feeds[COLUMNS_INPUT] = columnsTensor(columns.indices);
  const t0 = performance.now();
  const out = await session.run(feeds);
  const inferenceMs = performance.now() - t0;
  const output = out[session.outputNames[0]];
  const detections = decodeYolox(output.data as Float32Array, {
    scoreThreshold: task.scoreThreshold,
    nmsIou: task.nmsIou,
    classIds: task.classIds ? new Set(task.classIds) : null,
    scoreColumns: columns?.classIds,
    width: frame.width,
    height: frame.height,
    scale: scale * (task.width / frame.width),
    inputWidth,
    inputHeight,
  });
  output.dispose();
  return { detections, data: task.data, inferenceMs };
}

function frameSize(task: DetectTask): { width: number; height: number } {
  const { frameWidth: width, frameHeight: height } = task;
  if (width === undefined && height === undefined) return { width: task.width, height: task.height };
  if (!Number.isInteger(width) || !Number.isInteger(height) || width! < task.width || height! < task.height) {
    throw new Error(`frame size ${width}x${height} is smaller than its ${task.width}x${task.height} view`);
  }
  return { width: width!, height: height! };
}

export const ops = [
  // The frame's pixels go back without copying.
  defineOp<DetectTask, DetectResult>({ op: 'detect', run: (t, env) => detect(t, env.threads), transfer: (r) => [r.data] }),
];

/** Messages between the main thread and inference workers. Frames travel as transferred ArrayBuffers. */
import type { Detection } from './types.js';

export interface ModelRef {
  /** Absolute path of the ONNX file. */
  path: string;
  kind: string;
}

export interface LoadTask { op: 'load'; model: ModelRef }
export interface LoadResult { inputs: string[]; outputs: string[] }

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

export type WorkerTask = LoadTask | DetectTask;

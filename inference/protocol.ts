/**
 * What crosses between the main thread and the inference workers: one task type per op (each declared beside its
 * op in ops/*.protocol.ts), the op contract, and the envelope an error crosses in so that its code survives.
 * Frames travel as transferred ArrayBuffers.
 */
import type { WireError } from '../core/errors.js';
import type { AnnotateTask } from './ops/annotate.protocol.js';
import type { CropTask } from './ops/crop.protocol.js';
import type { DepthImageTask, DepthTask } from './ops/depth.protocol.js';
import type { DetectTask } from './ops/detect.protocol.js';
import type { EmbedFacesTask } from './ops/embed-faces.protocol.js';
import type { FacesTask } from './ops/faces.protocol.js';
import type { LoadTask } from './ops/load.protocol.js';
import type { PersonEmbedTask } from './ops/person-embed.protocol.js';
import type { PoseTask } from './ops/pose.protocol.js';
import type { ReconstructTask } from './ops/reconstruct.protocol.js';
import type { RecognizeImageTask } from './ops/recognize-image.protocol.js';
import type { ReidTask } from './ops/reid.protocol.js';

export type { ModelRef } from '../core/types.js';
export type { CropResult, CropTask } from './ops/crop.protocol.js';
export type { DetectResult, DetectTask } from './ops/detect.protocol.js';
export type { LoadResult, LoadTask } from './ops/load.protocol.js';
export type { RecognizeImageResult, RecognizeImageTask } from './ops/recognize-image.protocol.js';

export type WorkerTask = LoadTask | DetectTask | FacesTask | AnnotateTask | CropTask | EmbedFacesTask | RecognizeImageTask | ReidTask
  | PoseTask | DepthTask | DepthImageTask | ReconstructTask | PersonEmbedTask;

/** What an op gets besides its task. */
export interface OpEnv {
  /** ONNX Runtime intra-op threads per session in this worker. */
  threads: number;
}

/**
 * One op a worker runs next to its model: `run` does the work, `transfer` names the result's buffers that go
 * back moved rather than copied. Each module of ops/ exports its ops as `ops`; the catalog lists the modules.
 */
export interface WorkerOp<T extends { op: string } = { op: string }, R = unknown> {
  op: T['op'];
  run(task: T, env: OpEnv): Promise<R>;
  transfer?(result: R): ArrayBuffer[];
}

/** Declares an op with its task type checked (the table holds them untyped). */
export function defineOp<T extends WorkerTask, R>(op: WorkerOp<T, R>): WorkerOp {
  return op as unknown as WorkerOp;
}

/** A failed task comes back as this plain object (a thrown error would lose its code in the structured clone). */
export interface FailedTask { sightlineError: WireError }

export function isFailedTask(v: unknown): v is FailedTask {
  return typeof v === 'object' && v !== null && 'sightlineError' in v;
}

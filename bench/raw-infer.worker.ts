/**
 * Bench-only Piscina worker: ONNX Runtime `session.run` on a ready 1×3×size×size float tensor and nothing
 * else (no letterbox, no decoding). Sessions come from the pipeline's own cache, so the session options
 * (intra-op threads, sequential mode, graph optimisation) are exactly those of the inference pool; a
 * column-selected detector is asked for persons only, as the people-counting graphs do.
 */
import * as ort from 'onnxruntime-node';
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { columnsTensor, getSession, selectsColumns } from '../inference/sessions.js';
import { COLUMNS_INPUT } from '../inference/models/onnx-output-columns.js';
import { yoloxColumns } from '../inference/models/yolox.js';
import type { ModelRef } from '../core/types.js';

export interface RawInferTask {
  model: ModelRef;
  /** NCHW float32 input; transferred in and back. Omit to only load the model. */
  tensor?: ArrayBuffer;
  size?: number;
  /** Also return a copy of the first output (for timing the decoder in the main thread). */
  returnOutput?: boolean;
}

export interface RawInferResult {
  tensor?: ArrayBuffer;
  /** `session.run` time measured in the worker, the same span as the pipeline's inference histogram. */
  runMs: number;
  output?: ArrayBuffer;
  /** The class ids of the output's score columns, when the session selects columns. */
  scoreColumns?: number[];
}

/** The persons' columns of YOLOX's output (box, objectness, person score). */
const PERSON_COLUMNS = yoloxColumns([0]);

const threads: number = (workerData as { ortThreads?: number } | undefined)?.ortThreads ?? 1;

export default async function run(task: RawInferTask): Promise<unknown> {
  const session = await getSession(task.model, threads);
  if (!task.tensor) return { runMs: 0 } satisfies RawInferResult;
  const size = task.size ?? 416;
  const feeds: Record<string, ort.Tensor> = { [session.inputNames[0]]: new ort.Tensor('float32', new Float32Array(task.tensor), [1, 3, size, size]) };
  const selected = selectsColumns(session);
  if (selected) feeds[COLUMNS_INPUT] = columnsTensor(PERSON_COLUMNS.indices);
  const t0 = performance.now();
  const out = await session.run(feeds);
  const runMs = performance.now() - t0;
  const output = out[session.outputNames[0]];
  const copy = task.returnOutput ? (output.data as Float32Array).slice().buffer : undefined;
  output.dispose();
  const result: RawInferResult = { tensor: task.tensor, runMs, output: copy, scoreColumns: selected ? PERSON_COLUMNS.classIds : undefined };
  const transfer = copy ? [task.tensor, copy] : [task.tensor];
  return move({ [transferableSymbol]: transfer, [valueSymbol]: result } as unknown as Parameters<typeof move>[0]);
}

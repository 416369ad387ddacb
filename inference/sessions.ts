/** Worker-side cache: each ONNX model is loaded once per worker and its session kept for the worker's life. */
import { coded } from '../core/errors.js';
import { existsSync, readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { withFreeInputSize } from './models/onnx-input-size.js';
import { COLUMNS_INPUT, withOutputColumns } from './models/onnx-output-columns.js';
import type { ModelRef } from './protocol.js';

/**
 * Model kinds loaded rewritten: with a free-size image input (their file's fixed size is only what they were exported
 * at) and a selection of the output's columns (the stage reads a few of them).
 */
const REWRITTEN = new Set(['yolox']);

const sessions = new Map<string, Promise<ort.InferenceSession>>();

export function getSession(model: ModelRef, intraOpNumThreads: number): Promise<ort.InferenceSession> {
  let s = sessions.get(model.path);
  if (!s) {
    s = createSession(model, intraOpNumThreads);
    sessions.set(model.path, s);
    // A failed load is not cached, so a model file fixed on disk is picked up on the next attempt.
    s.catch(() => sessions.delete(model.path));
  }
  return s;
}

async function createSession(model: ModelRef, intraOpNumThreads: number): Promise<ort.InferenceSession> {
  if (!existsSync(model.path)) {
    throw coded('MODEL_FAILED', `model file not found: ${model.path} (run the setup step to fill the model directory, or fix the graph's models.*.file)`);
  }
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  };
  if (REWRITTEN.has(model.kind)) {
    // Not rewritable, refused by ONNX Runtime once rewritten, or failing at another size: the file as it is.
    const rewritten = await rewrittenSession(model.path, options);
    if (rewritten) return rewritten;
  }
  try {
    return await ort.InferenceSession.create(model.path, options);
  } catch (err) {
    throw coded('MODEL_FAILED', `cannot load model ${model.path} as ONNX: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * The model with a free-size input and, where it takes it, a column selection on its output (the first of these
 * that loads and runs at a size other than its file's: a 64×96 probe).
 */
async function rewrittenSession(file: string, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession | null> {
  const free = withFreeInputSize(readFileSync(file));
  if (!free) return null;
  for (const bytes of [withOutputColumns(free), free]) {
    if (!bytes) continue;
    const session = await probed(bytes, options);
    if (session) return session;
  }
  return null;
}

async function probed(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession | null> {
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(bytes, options);
    const feeds: Record<string, ort.Tensor> = { [session.inputNames[0]]: new ort.Tensor('float32', new Float32Array(3 * 64 * 96), [1, 3, 64, 96]) };
    if (selectsColumns(session)) feeds[COLUMNS_INPUT] = columnsTensor([0, 1, 2, 3, 4, 5]);
    const out = await session.run(feeds);
    for (const v of Object.values(out)) v.dispose();
    return session;
  } catch {
    await session?.release();
    return null;
  }
}

/** Whether the session's output is narrowed to the columns fed as COLUMNS_INPUT (see onnx-output-columns.ts). */
export function selectsColumns(session: ort.InferenceSession): boolean {
  return session.inputNames.includes(COLUMNS_INPUT);
}

export function columnsTensor(columns: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(columns, BigInt), [columns.length]);
}

type ValueMetadata = ort.InferenceSession.ValueMetadata;
const shapeChecked = new WeakSet<ort.InferenceSession>();

/**
 * Checks a session's first input and output once: a model of the wrong shape fails with a message naming
 * what it takes and gives and what the stage expects, instead of a tensor error deep inside a run.
 */
export function checkModelShape(session: ort.InferenceSession, stage: string, file: string,
  ok: (input: ValueMetadata | undefined, output: ValueMetadata | undefined) => boolean, expected: string): void {
  if (shapeChecked.has(session)) return;
  const input = session.inputMetadata[0];
  const output = session.outputMetadata[0];
  if (!ok(input, output)) {
    const dims = (m: ValueMetadata | undefined): string => (m?.isTensor ? `[${m.shape.join(',')}]` : '?');
    throw new Error(`${stage}: ${file} takes ${dims(input)} and gives ${dims(output)}; expected ${expected}`);
  }
  shapeChecked.add(session);
}

/** The fixed [height, width] of a session's image input, or null when both are free (symbolic). */
export function fixedInputSize(session: ort.InferenceSession): [number, number] | null {
  const input = session.inputMetadata[0];
  if (!input?.isTensor) return null;
  const [, , h, w] = input.shape;
  return typeof h === 'number' && typeof w === 'number' ? [h, w] : null;
}

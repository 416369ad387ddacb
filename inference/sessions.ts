/** Worker-side cache: each ONNX model is loaded once per worker and its session kept for the worker's life. */
import { coded } from '../core/errors.js';
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import type { ModelRef } from './protocol.js';

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
  try {
    return await ort.InferenceSession.create(model.path, {
      intraOpNumThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
  } catch (err) {
    throw coded('MODEL_FAILED', `cannot load model ${model.path} as ONNX: ${(err as Error).message.split('\n')[0]}`);
  }
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

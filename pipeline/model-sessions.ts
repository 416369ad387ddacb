/** Worker-side cache: each ONNX model is loaded once per worker and its session kept for the worker's life. */
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import type { ModelRef } from './worker-protocol.js';

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
    throw new Error(`model file not found: ${model.path} (run the setup step to fill the model directory, or fix the graph's models.*.file)`);
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
    throw new Error(`cannot load model ${model.path} as ONNX: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** The load op: opens a model's session ahead of its first task, so a bad file is reported when a pipeline starts. */
import { defineOp } from '../protocol.js';
import { getSession } from '../sessions.js';
import type { LoadResult, LoadTask } from './load.protocol.js';

export const ops = [
  defineOp<LoadTask, LoadResult>({
    op: 'load',
    run: async (t, env) => {
      const s = await getSession(t.model, env.threads);
      return { inputs: [...s.inputNames], outputs: [...s.outputNames] };
    },
  }),
];

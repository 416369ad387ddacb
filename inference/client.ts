/**
 * What a transport needs to run model work on frames its clients send (DDFR frames, and the same for any
 * protocol that takes images): run a worker task and get its result. On a single node that is the process's
 * inference pool; on a cluster gateway it is a request to the workers (cluster/remote-inference.ts).
 * The transport does not know which.
 */
import type { ModelRef, WorkerTask } from './protocol.js';
import type { InferencePool } from './pool.js';

export interface InferenceClient {
  /** Runs one task; `transferList` names buffers of the task that may be moved instead of copied. */
  run<R>(task: WorkerTask, transferList?: ArrayBuffer[]): Promise<R>;
  /** Loads a model ahead of the first task where that is possible, so a bad file is reported at start. */
  preload(model: ModelRef): Promise<void>;
}

/** The process's own pool. */
export class LocalInference implements InferenceClient {
  constructor(private readonly pool: InferencePool) {}

  run<R>(task: WorkerTask, transferList: ArrayBuffer[] = []): Promise<R> {
    return this.pool.run<R>(task, transferList);
  }

  preload(model: ModelRef): Promise<void> {
    return this.pool.loadEverywhere(model);
  }
}

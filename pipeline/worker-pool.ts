/** The process's one inference pool: Piscina worker threads, each holding its own ONNX sessions. */
import { Piscina } from 'piscina';
import type { Metrics } from './metrics.js';
import type { ModelRef, WorkerTask } from './worker-protocol.js';

export class InferencePool {
  private readonly piscina: Piscina;
  /** Microseconds the workers spent running tasks, added by the workers themselves (Atomics). */
  private readonly busyMicros = new BigInt64Array(new SharedArrayBuffer(8));

  constructor(readonly workers: number, readonly ortThreads: number, metrics?: Metrics) {
    this.piscina = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: workers,
      maxThreads: workers,
      // One task per worker at a time: ORT already uses `ortThreads` cores per run.
      concurrentTasksPerWorker: 1,
      idleTimeout: Infinity,
      workerData: { ortThreads, busyMicros: this.busyMicros },
    });
    metrics?.workerThreads.set(workers);
    // Utilisation over the time since the previous scrape, from the busy time the workers report
    // (piscina's own `utilization` is cumulative since start, and scaled wrongly in 5.3).
    let lastBusy = 0n;
    let lastAt = performance.now();
    metrics?.onScrape(() => {
      const busy = Atomics.load(this.busyMicros, 0);
      const now = performance.now();
      const busySeconds = Number(busy - lastBusy) / 1e6;
      metrics.workerQueue.set(this.piscina.queueSize);
      metrics.workerBusySeconds.inc(busySeconds);
      if (now > lastAt) metrics.workerUtilization.set(Math.min(1, busySeconds / (((now - lastAt) / 1000) * workers)));
      lastBusy = busy;
      lastAt = now;
    });
  }

  get queueSize(): number {
    return this.piscina.queueSize;
  }

  run<R>(task: WorkerTask, transferList: ArrayBuffer[] = []): Promise<R> {
    return this.piscina.run(task, { transferList }) as Promise<R>;
  }

  /**
   * Loads a model on every worker before frames arrive, so no frame waits for a session to be created.
   * All workers are idle at that point and take one task each, so `workers` concurrent loads reach them all.
   */
  async loadEverywhere(model: ModelRef): Promise<void> {
    await Promise.all(Array.from({ length: this.workers }, () => this.run({ op: 'load', model })));
  }

  async close(): Promise<void> {
    await this.piscina.close({ force: true });
  }
}

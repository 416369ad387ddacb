/** The process's one inference pool: Piscina worker threads, each holding its own ONNX sessions. */
import { Piscina } from 'piscina';
import type { Metrics } from './metrics.js';
import type { WorkerTask } from './worker-protocol.js';

export class InferencePool {
  private readonly piscina: Piscina;

  constructor(readonly workers: number, readonly ortThreads: number, metrics?: Metrics) {
    this.piscina = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: workers,
      maxThreads: workers,
      // One task per worker at a time: ORT already uses `ortThreads` cores per run.
      concurrentTasksPerWorker: 1,
      idleTimeout: Infinity,
      workerData: { ortThreads },
    });
    metrics?.workerThreads.set(workers);
    metrics?.onScrape(() => {
      metrics.workerQueue.set(this.piscina.queueSize);
      metrics.workerUtilization.set(this.piscina.utilization);
    });
  }

  get queueSize(): number {
    return this.piscina.queueSize;
  }

  run<R>(task: WorkerTask, transferList: ArrayBuffer[] = []): Promise<R> {
    return this.piscina.run(task, { transferList }) as Promise<R>;
  }

  async close(): Promise<void> {
    await this.piscina.close({ force: true });
  }
}

/** The process's one inference pool: Piscina worker threads, each holding its own ONNX sessions. */
import { Piscina } from 'piscina';
import { fromWire } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';
import type { ModelRef } from '../core/types.js';
import { PriorityTaskQueue, withPriority } from './priority-queue.js';
import { isFailedTask, type WorkerTask } from './protocol.js';

export interface PoolOptions {
  workers: number;
  /** ONNX Runtime intra-op threads per session. */
  ortThreads: number;
  /** URLs of the op modules the workers load (the catalog's list). */
  ops: string[];
  metrics?: Metrics;
  /** Small young generations (`WORKER_YOUNG_GENERATION_MB`): for file runs, where memory matters more than CPU. */
  smallNursery?: boolean;
}

/**
 * A worker's young generation in a file run (V8 sizes it as three semi-spaces): 3 MB, against 48 MB by default. A
 * detection task allocates little and keeps nothing, so a small nursery is swept often and cheaply; with V8's default
 * the output tensors and buffers of a few hundred frames lay dead in each worker between sweeps (offline detection on
 * the sample video: peak RSS 253 → 243 MiB). Live runs keep V8's default: pose and face tasks allocate more, and with
 * 3 MB the default graph's chain cost 41 ms of CPU per frame instead of 28 (5 cameras: 9.8 % dropped against 0 %).
 */
export const WORKER_YOUNG_GENERATION_MB = 3;

export class InferencePool {
  private readonly piscina: Piscina;
  /** Microseconds the workers spent running tasks, added by the workers themselves (Atomics). */
  private readonly busyMicros = new BigInt64Array(new SharedArrayBuffer(8));
  private readonly pending = new Set<Promise<unknown>>();

  readonly workers: number;
  readonly ortThreads: number;

  constructor({ workers, ortThreads, ops, metrics, smallNursery }: PoolOptions) {
    this.workers = workers;
    this.ortThreads = ortThreads;
    this.piscina = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: workers,
      maxThreads: workers,
      // One task per worker at a time: ORT already uses `ortThreads` cores per run.
      concurrentTasksPerWorker: 1,
      idleTimeout: Infinity,
      workerData: { ops, ortThreads, busyMicros: this.busyMicros },
      // Older frames' tasks first (see priority-queue.ts).
      taskQueue: new PriorityTaskQueue(),
      ...(smallNursery ? { resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } } : {}),
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

  /** Seconds the workers have spent running tasks since the pool started (a reader takes rates of its own). */
  busySeconds(): number {
    return Number(Atomics.load(this.busyMicros, 0)) / 1e6;
  }

  /**
   * Runs a task on a free worker; a failure rejects with the op's coded error (SightlineError). Tasks wait in order of
   * `priority` (a frame's capture time: older frames first), else of arrival.
   */
  run<R>(task: WorkerTask, transferList: ArrayBuffer[] = [], priority?: number): Promise<R> {
    const p = (this.piscina.run(withPriority(task, priority), { transferList }) as Promise<unknown>).then((r) => {
      if (isFailedTask(r)) throw fromWire(r.sightlineError);
      return r as R;
    });
    this.pending.add(p);
    const forget = (): void => { this.pending.delete(p); };
    p.then(forget, forget);
    return p;
  }

  /**
   * Loads a model on every worker before frames arrive, so no frame waits for a session to be created.
   * All workers are idle at that point and take one task each, so `workers` concurrent loads reach them all.
   */
  async loadEverywhere(model: ModelRef): Promise<void> {
    await Promise.all(Array.from({ length: this.workers }, () => this.run({ op: 'load', model })));
  }

  /**
   * Lets running tasks finish (bounded) before the threads go: terminating a worker inside a native
   * ONNX Runtime call (a session still loading) aborts the whole process.
   */
  close(graceMs = 15_000): Promise<void> {
    return (this.closing ??= this.closeNow(graceMs));
  }

  private closing: Promise<void> | null = null;

  private async closeNow(graceMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs); });
    await Promise.race([Promise.allSettled([...this.pending]), grace]);
    clearTimeout(timer);
    await this.piscina.close({ force: true });
  }
}

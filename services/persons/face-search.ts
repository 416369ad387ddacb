/**
 * The main thread's side of 1:N face search: posts changes and batches of query embeddings to a dedicated
 * worker thread (face-search.worker.ts) that holds the index, so no search ever blocks the event loop.
 * Not the Piscina pool: the index is one large stateful object, built and kept by one thread.
 */
import { Worker } from 'node:worker_threads';
import type { FaceSearchOptions, FromSearchWorker, IndexStatus, SearchEngine, ToSearchWorker } from './face-search.protocol.js';
import type { Logger } from '../../core/log.js';
import type { Metrics } from '../../core/metrics.js';

export interface SearchMatch { personId: number; similarity: number }

export class FaceSearch {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, { resolve: (m: FromSearchWorker) => void; reject: (e: Error) => void }>();
  private readonly readyWaiters: (() => void)[] = [];
  private nextReq = 1;
  private closed = false;
  /** The worker's last report: rows, HNSW state, build progress. */
  status: IndexStatus = { size: 0, hnsw: 'none', progress: 0, deleted: 0 };
  /** The engine that answered the last query. */
  lastEngine: SearchEngine = 'exact';
  /** How the last graph was put in service, and how long that took (build, or read from the data directory). */
  lastBuild: { ms: number; size: number; loaded: boolean } | null = null;

  /** The worker starts on first use (or warm()): a process that never searches (e.g. `sightline process`) loads no index. */
  constructor(private readonly options: FaceSearchOptions, private readonly log: Logger, private readonly metrics?: Metrics) {}

  /** Starts the worker now, so its index is loaded (or its graph built) before the first query. */
  warm(): void {
    this.ensure();
  }

  private ensure(): Worker {
    if (!this.worker) this.start();
    return this.worker!;
  }

  private start(): void {
    const worker = this.worker = new Worker(new URL('./face-search.worker.js', import.meta.url));
    worker.on('message', (m: FromSearchWorker) => this.onMessage(m));
    worker.on('error', (err) => this.log.error(`face index: worker failed: ${err.message}`));
    worker.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`face search worker exited (${code})`));
      this.waiting.clear();
      if (this.worker === worker) this.worker = null;
      if (this.closed) return;
      // Everything it held is read again from the store by a new one, started by the next use (no restart loop).
      this.log.error(`face index: worker exited with code ${code}; a new one starts with the next search`);
    });
    this.post({ type: 'init', options: this.options });
  }

  private onMessage(m: FromSearchWorker): void {
    switch (m.type) {
      case 'status':
        this.status = m.status;
        this.metrics?.setFaceIndexStatus(m.status);
        if (m.status.hnsw === 'ready') this.readyWaiters.splice(0).forEach((r) => r());
        break;
      case 'log': this.log[m.level](m.message); break;
      case 'built':
        this.lastBuild = { ms: m.ms, size: m.size, loaded: m.loaded };
        this.metrics?.faceIndexBuilds.inc({ how: m.loaded ? 'loaded' : 'built' });
        break;
      case 'result': case 'closed': case 'failed': {
        const w = this.waiting.get(m.req);
        this.waiting.delete(m.req);
        if (m.type === 'failed') w?.reject(new Error(m.message)); else w?.resolve(m);
        break;
      }
    }
  }

  private post(m: ToSearchWorker, transfer: ArrayBuffer[] = []): void {
    this.ensure().postMessage(m, transfer);
  }

  private request(m: ToSearchWorker & { req: number }, transfer: ArrayBuffer[] = []): Promise<FromSearchWorker> {
    return new Promise((resolve, reject) => {
      this.waiting.set(m.req, { resolve, reject });
      this.post(m, transfer);
    });
  }

  /** Adds (or replaces) one embedding; searches posted after this call see it. */
  add(label: number, personId: number, vector: Float32Array): void {
    this.post({ type: 'add', label, personId, vector: Float32Array.from(vector) });
  }

  removeLabels(labels: number[]): void {
    this.post({ type: 'remove', labels });
  }

  removePerson(personId: number): void {
    this.post({ type: 'remove', personId });
  }

  /** The store was changed by another writer: the worker re-reads it and applies the difference. */
  reload(): void {
    this.post({ type: 'reload' });
  }

  /** The best person and similarity for each embedding (null when nobody is enrolled), one message for all. */
  async search(embeddings: Float32Array[]): Promise<(SearchMatch | null)[]> {
    if (!embeddings.length) return [];
    const dim = this.options.dim;
    const queries = new Float32Array(embeddings.length * dim);
    embeddings.forEach((e, i) => queries.set(e.subarray(0, dim), i * dim));
    const t0 = performance.now();
    const r = await this.request({ type: 'search', req: this.nextReq++, queries }, [queries.buffer]);
    if (r.type !== 'result') throw new Error(`unexpected ${r.type} reply to a search`);
    this.lastEngine = r.engine;
    this.metrics?.faceSearchSeconds.observe({ engine: r.engine }, (performance.now() - t0) / 1000);
    return Array.from(r.personIds, (personId, i) => (personId < 0 ? null : { personId, similarity: r.similarities[i] }));
  }

  /** Resolves when an HNSW graph answers (for benchmarks and tests; serving never waits for it). */
  whenHnswReady(): Promise<void> {
    this.ensure();
    if (this.status.hnsw === 'ready') return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Persists the graph if it changed, then stops the worker. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.worker) return;
    try {
      await this.request({ type: 'close', req: this.nextReq++ });
    } catch (err) {
      this.log.warn(`face index: ${(err as Error).message}`);
    }
    await this.worker?.terminate();
  }
}

/**
 * Messages between the main thread (FaceSearch), the face search worker, and the HNSW builder thread.
 * Messages on one port arrive in order, so a change posted before a query is applied before it.
 */
import type { FaceIndexStatus } from '../../core/metrics.js';

export interface FaceSearchOptions {
  /** The SQLite file of the store: the worker reads the embeddings itself (a read-only connection). */
  dbFile: string;
  /** Where the HNSW index is written (face-index.hnsw + face-index.json) and read back after a restart. */
  dataDir: string;
  dim: number;
  /** Below this many embeddings the exact scan answers (fast enough, and exact); HNSW from here up. */
  exactBelow: number;
  /** HNSW search breadth: higher is slower and closer to exact. */
  efSearch: number;
  /** HNSW graph degree and build breadth. */
  m: number;
  efConstruction: number;
}

export type SearchEngine = 'exact' | 'hnsw';
export type HnswState = 'none' | 'building' | 'loading' | 'ready';

export type ToSearchWorker =
  | { type: 'init'; options: FaceSearchOptions }
  /** Re-read every embedding from the store (another process changed it) and apply the difference. */
  | { type: 'reload' }
  | { type: 'add'; label: number; personId: number; vector: Float32Array }
  | { type: 'remove'; labels?: number[]; personId?: number }
  /** `queries` holds n × dim values (a frame's faces). */
  | { type: 'search'; req: number; queries: Float32Array }
  /** Persist the HNSW index if it changed since it was written, then answer `closed`. */
  | { type: 'close'; req: number };

/** The index's state as the worker reports it (the metrics take the same shape). */
export type IndexStatus = FaceIndexStatus & { hnsw: HnswState };

export type FromSearchWorker =
  | { type: 'status'; status: IndexStatus }
  /** One entry per query: the best person (-1 when the index is empty) and its cosine similarity. */
  | { type: 'result'; req: number; personIds: Int32Array; similarities: Float32Array; engine: SearchEngine; computeMs: number }
  | { type: 'log'; level: 'info' | 'warn' | 'error' | 'debug'; message: string }
  | { type: 'built'; ms: number; size: number; loaded: boolean }
  | { type: 'closed'; req: number }
  | { type: 'failed'; req: number; message: string };

export interface BuildRequest {
  dim: number;
  m: number;
  efConstruction: number;
  labels: Float64Array;
  /** labels.length × dim L2-normalised values. */
  vectors: Float32Array;
  /** Where to write the index and its metadata (written to temporary names, then renamed). */
  file: string;
  metaFile: string;
}

export type FromBuilder =
  | { type: 'progress'; done: number; total: number }
  | { type: 'done'; ms: number }
  | { type: 'error'; message: string };

/** What is written beside the index file: the rows it covers, so a restart can tell if it still fits. */
export interface IndexMeta {
  format: 1;
  dim: number;
  m: number;
  efConstruction: number;
  count: number;
  fingerprint: string;
  builtAt: string;
}

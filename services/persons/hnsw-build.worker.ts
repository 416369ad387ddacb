/**
 * Builds an HNSW index on a thread of its own (a build at 100 k embeddings takes a minute or more), so the
 * search worker keeps answering, with the exact scan, meanwhile. Writes the index and its metadata to
 * temporary names and renames them, so a crash never leaves a half-written index that looks complete.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import hnswlib from 'hnswlib-node';
import type { BuildRequest, FromBuilder, IndexMeta } from './face-search.protocol.js';
import { fingerprint } from './hnsw-files.js';

const post = (m: FromBuilder): void => parentPort!.postMessage(m);

async function build(req: BuildRequest): Promise<void> {
  const t0 = performance.now();
  const n = req.labels.length;
  const fp = fingerprint(req.labels, req.vectors, req.dim);
  const index = new hnswlib.HierarchicalNSW('ip', req.dim);
  // Room to grow: the search worker adds enrolments to this index after loading it.
  index.initIndex({ maxElements: Math.max(1024, Math.ceil(n * 1.25)), m: req.m, efConstruction: req.efConstruction, randomSeed: 100 });
  const row = new Array<number>(req.dim);
  let lastReport = performance.now();
  for (let r = 0; r < n; r++) {
    for (let i = 0, at = r * req.dim; i < req.dim; i++) row[i] = req.vectors[at + i];
    index.addPoint(row, req.labels[r]);
    if (performance.now() - lastReport > 1000) {
      lastReport = performance.now();
      post({ type: 'progress', done: r + 1, total: n });
    }
  }
  post({ type: 'progress', done: n, total: n });
  const tmp = `${req.file}.tmp`;
  await index.writeIndex(tmp);
  renameSync(tmp, req.file);
  const meta: IndexMeta = {
    format: 1, dim: req.dim, m: req.m, efConstruction: req.efConstruction, count: n, fingerprint: fp, builtAt: new Date().toISOString(),
  };
  writeFileSync(`${req.metaFile}.tmp`, JSON.stringify(meta));
  renameSync(`${req.metaFile}.tmp`, req.metaFile);
  post({ type: 'done', ms: performance.now() - t0 });
}

build(workerData as BuildRequest).catch((err: Error) => post({ type: 'error', message: err.message }));

/**
 * The face search worker: holds every known embedding and answers 1:N queries off the main thread.
 *
 * The exact scan (FaceIndex) always holds every row and answers while the index is small (below
 * `exactBelow` rows) or while no HNSW graph is ready. From `exactBelow` up, an HNSW graph (inner product
 * on L2-normalised vectors = cosine) answers instead. It is loaded from the data directory (patched when
 * its fingerprint shows the store changed since it was written), else built on a builder thread of its
 * own; changes that arrive meanwhile are applied to the exact scan at once and replayed on the new graph
 * when it is swapped in.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { parentPort, Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import hnswlib from 'hnswlib-node';
import { FaceIndex } from './face-index.js';
import type { BuildRequest, FaceSearchOptions, FromBuilder, FromSearchWorker, HnswState, IndexMeta, ToSearchWorker } from './face-search.protocol.js';
import { fingerprint, indexFiles, readMeta } from './hnsw-files.js';

type Hnsw = InstanceType<typeof hnswlib.HierarchicalNSW>;
type Change = { add: number; vector: Float32Array } | { remove: number[] };

/** Rows a graph is patched with (HNSW inserts on this thread) before a background rebuild is cheaper. */
const MAX_PATCH = (size: number): number => Math.max(2000, Math.floor(size * 0.1));

const port = parentPort!;
const post = (m: FromSearchWorker): void => port.postMessage(m);
const log = (level: 'info' | 'warn' | 'error' | 'debug', message: string): void => post({ type: 'log', level, message: `face index: ${message}` });

let opts: FaceSearchOptions;
let db: Database.Database;
let exact: FaceIndex;
/** Embedding id (HNSW label) → person id, for every row. */
const owners = new Map<number, number>();

/** The graph answering queries (kept in step with every change), or null. */
let current: Hnsw | null = null;
/** Labels marked deleted in `current` (still in the graph, skipped by searches). */
const deleted = new Set<number>();
/** Rows changed since `current` was last written to the data directory. */
let dirty = false;
/** A graph being built or loaded, and the changes to replay on it when it is ready. */
interface Job { journal: Change[]; builder: Worker | null; state: HnswState; progress: number }
let job: Job | null = null;
let closing = false;

function status(): void {
  post({
    type: 'status',
    status: {
      size: exact.size, hnsw: job && !current ? job.state : current ? 'ready' : 'none',
      progress: job ? job.progress : current ? 1 : 0, deleted: deleted.size,
    },
  });
}

function normalised(v: Float32Array): Float32Array {
  let sq = 0;
  for (let i = 0; i < v.length; i++) sq += v[i] * v[i];
  const inv = sq > 0 ? 1 / Math.sqrt(sq) : 0;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] * inv;
  return out;
}

// ---- changes --------------------------------------------------------------------------------------

function hnswAdd(index: Hnsw, label: number, vector: Float32Array): void {
  if (index.getCurrentCount() >= index.getMaxElements()) index.resizeIndex(Math.ceil(index.getMaxElements() * 1.5) + 1024);
  index.addPoint(Array.from(vector), label); // re-adding a deleted label un-deletes and updates it
}

function hnswRemove(index: Hnsw, label: number): boolean {
  try {
    index.markDelete(label);
    return true;
  } catch {
    return false; // not in this graph (or already deleted)
  }
}

function addRow(label: number, personId: number, raw: Float32Array): void {
  if (raw.length !== opts.dim) { log('warn', `embedding ${label} has ${raw.length} values, expected ${opts.dim}; ignored`); return; }
  const vector = normalised(raw);
  if (owners.has(label)) exact.removeLabels([label]);
  exact.add(personId, vector, label);
  owners.set(label, personId);
  if (current) { hnswAdd(current, label, vector); deleted.delete(label); dirty = true; }
  job?.journal.push({ add: label, vector });
}

function removed(labels: number[]): void {
  if (!labels.length) return;
  for (const l of labels) {
    owners.delete(l);
    if (current && hnswRemove(current, l)) { deleted.add(l); dirty = true; }
  }
  job?.journal.push({ remove: labels });
}

function readStore(): { label: number; personId: number; vector: Float32Array }[] {
  const rows = db.prepare('SELECT id, person_id, vector FROM person_embeddings ORDER BY id').all() as { id: number; person_id: number; vector: Buffer }[];
  return rows.map((r) => ({
    label: r.id, personId: r.person_id,
    vector: new Float32Array(r.vector.buffer.slice(r.vector.byteOffset, r.vector.byteOffset + r.vector.byteLength)),
  }));
}

/**
 * Brings the index to the store's rows, changing only what differs (another process wrote to it). Many
 * new rows at once (a bulk `sightline enroll`) would hold this thread for seconds in HNSW inserts: then the
 * graph is dropped and rebuilt in the background, and the exact scan answers meanwhile.
 */
function reload(): void {
  const rows = readStore();
  const have = new Map<number, { personId: number; vector: Float32Array }>();
  for (const r of exact.rows()) have.set(r.label, { personId: r.personId, vector: r.vector.slice() });
  const changed = rows.filter((r) => {
    const old = have.get(r.label);
    have.delete(r.label);
    return !(old && old.personId === r.personId && close(old.vector, normalised(r.vector)));
  });
  if (current && changed.length > MAX_PATCH(rows.length)) {
    log('info', `${changed.length} embeddings changed by another writer; rebuilding the HNSW index, exact search until it is ready`);
    current = null;
    deleted.clear();
    void job?.builder?.terminate();
    job = null;
  }
  for (const r of changed) addRow(r.label, r.personId, r.vector);
  removed(exact.removeLabels(have.keys()));
  if (changed.length || have.size) log('debug', `re-read the store: ${changed.length} added or changed, ${have.size} removed, ${exact.size} in all`);
  maybeBuild();
}

/** Equal up to float rounding (a vector normalised twice may differ from once in the last bit). */
function close(a: ArrayLike<number>, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < b.length; i++) if (Math.abs(a[i] - b[i]) > 1e-6) return false;
  return true;
}

// ---- building, loading, persisting -----------------------------------------------------------------

function snapshot(): { labels: Float64Array; vectors: Float32Array } {
  const labels = new Float64Array(exact.size);
  const vectors = new Float32Array(exact.size * opts.dim);
  let r = 0;
  for (const row of exact.rows()) { labels[r] = row.label; vectors.set(row.vector, r * opts.dim); r++; }
  return { labels, vectors };
}

/** Starts a build when the index is big enough and has no graph, or its graph carries many deleted rows. */
function maybeBuild(): void {
  if (job || closing || exact.size < opts.exactBelow) return;
  if (!current || deleted.size > Math.max(1000, exact.size * 0.3)) startBuild();
}

function startBuild(): void {
  const { labels, vectors } = snapshot();
  const { file, metaFile } = indexFiles(opts.dataDir);
  const req: BuildRequest = { dim: opts.dim, m: opts.m, efConstruction: opts.efConstruction, labels, vectors, file, metaFile };
  const t0 = performance.now();
  const n = labels.length; // the buffers are transferred (detached here) below
  const builder = new Worker(new URL('./hnsw-build.worker.js', import.meta.url), { workerData: req, transferList: [labels.buffer, vectors.buffer] as ArrayBuffer[] });
  const j: Job = job = { journal: [], builder, state: 'building', progress: 0 };
  log('info', `building an HNSW index of ${n} embeddings (M ${opts.m}, efConstruction ${opts.efConstruction}) in the background; exact search until it is ready`);
  let lastLog = performance.now();
  builder.on('message', (m: FromBuilder) => {
    if (job !== j) return;
    if (m.type === 'progress') {
      j.progress = m.done / m.total;
      const now = performance.now();
      if (now - lastLog > 10_000 && m.done < m.total) {
        lastLog = now;
        const s = (now - t0) / 1000;
        log('info', `HNSW build ${Math.round(j.progress * 100)} % (${m.done}/${m.total}), ${s.toFixed(0)} s, ~${(s / j.progress - s).toFixed(0)} s left`);
      }
      status();
    } else if (m.type === 'done') {
      j.builder = null;
      void swapIn(j, false, performance.now() - t0);
    } else {
      abandon(j, `HNSW build failed: ${m.message}; exact search stays in use`);
    }
  });
  builder.on('error', (err) => abandon(j, `HNSW builder crashed: ${err.message}; exact search stays in use`));
  status();
}

function abandon(j: Job, message: string): void {
  if (job !== j) return;
  log('error', message);
  void j.builder?.terminate();
  job = null;
  status();
}

/**
 * Loads the index file into a fresh graph (off this thread), brings it up to date, and swaps it in. Up to
 * date: the changes journalled since its snapshot, or, for a persisted graph whose fingerprint does not
 * match (rows changed while no server ran, or a crash before it was written back), a row-by-row comparison
 * with the exact index; either way, graph labels that are no rows any more are marked deleted.
 */
async function swapIn(j: Job, fromDisk: boolean, buildMs: number, compare = false): Promise<void> {
  j.state = 'loading';
  status();
  const next = new hnswlib.HierarchicalNSW('ip', opts.dim);
  const t0 = performance.now();
  try {
    await next.readIndex(indexFiles(opts.dataDir).file);
  } catch (err) {
    abandon(j, `could not read the HNSW index: ${(err as Error).message}`);
    if (fromDisk) maybeBuild();
    return;
  }
  if (job !== j || closing) return;
  next.setEf(opts.efSearch);
  let patched = j.journal.length;
  if (compare) {
    const stale: { label: number; vector: Float32Array }[] = [];
    for (const r of exact.rows()) {
      let same = false;
      try { same = close(next.getPoint(r.label), r.vector); } catch { /* not in the graph, or deleted there */ }
      if (!same) stale.push({ label: r.label, vector: r.vector.slice() });
    }
    if (stale.length > MAX_PATCH(exact.size)) {
      log('info', `the persisted HNSW index lacks ${stale.length} of ${exact.size} embeddings; rebuilding it instead`);
      job = null;
      startBuild();
      return;
    }
    for (const s of stale) hnswAdd(next, s.label, s.vector);
    patched = stale.length;
    if (stale.length) log('info', `added ${stale.length} embeddings the persisted HNSW index lacked`);
  } else {
    for (const c of j.journal) {
      if ('add' in c) hnswAdd(next, c.add, c.vector);
      else for (const l of c.remove) hnswRemove(next, l);
    }
  }
  // Labels in the graph that are no rows any more: deleted before the file was written, or since.
  deleted.clear();
  const live = new Set(owners.keys());
  for (const l of next.getIdsList()) if (!live.has(l)) { deleted.add(l); if (hnswRemove(next, l)) patched++; }
  dirty = patched > 0;
  current = next;
  job = null;
  const size = exact.size;
  log('info', fromDisk
    ? `loaded the persisted HNSW index (${size} embeddings) in ${((performance.now() - t0) / 1000).toFixed(1)} s`
    : `HNSW index of ${size} embeddings built in ${(buildMs / 1000).toFixed(1)} s; it answers from now on (efSearch ${opts.efSearch})`);
  post({ type: 'built', ms: fromDisk ? performance.now() - t0 : buildMs, size, loaded: fromDisk });
  status();
  maybeBuild();
}

/** Uses the persisted graph when it covers exactly the rows in the store; returns false when it does not. */
function tryPersisted(): boolean {
  const { metaFile } = indexFiles(opts.dataDir);
  const meta = readMeta(metaFile);
  if (!meta || meta.dim !== opts.dim || meta.m !== opts.m || meta.efConstruction !== opts.efConstruction) return false;
  const { labels, vectors } = snapshot();
  const matches = fingerprint(labels, vectors, opts.dim) === meta.fingerprint;
  if (!matches) log('info', 'the persisted HNSW index does not match the stored embeddings; loading it and applying the difference');
  const j: Job = job = { journal: [], builder: null, state: 'loading', progress: 1 };
  void swapIn(j, true, 0, !matches);
  return true;
}

/** Writes the graph when it has changed since it was written, so a restart loads it instead of rebuilding. */
function persist(): void {
  if (!current || !dirty) return;
  const { file, metaFile } = indexFiles(opts.dataDir);
  const { labels, vectors } = snapshot();
  current.writeIndexSync(`${file}.tmp`);
  renameSync(`${file}.tmp`, file);
  const meta: IndexMeta = {
    format: 1, dim: opts.dim, m: opts.m, efConstruction: opts.efConstruction, count: labels.length,
    fingerprint: fingerprint(labels, vectors, opts.dim), builtAt: new Date().toISOString(),
  };
  writeFileSync(`${metaFile}.tmp`, JSON.stringify(meta));
  renameSync(`${metaFile}.tmp`, metaFile);
  dirty = false;
}

// ---- search ----------------------------------------------------------------------------------------

function search(req: number, queries: Float32Array): void {
  const t0 = performance.now();
  const dim = opts.dim;
  const n = Math.floor(queries.length / dim);
  const personIds = new Int32Array(n).fill(-1);
  const similarities = new Float32Array(n);
  const useHnsw = current !== null && exact.size >= opts.exactBelow && exact.size > 0;
  for (let q = 0; q < n; q++) {
    const query = normalised(queries.subarray(q * dim, (q + 1) * dim));
    if (useHnsw) {
      const r = current!.searchKnn(Array.from(query), 1);
      const person = owners.get(r.neighbors[0]);
      if (person !== undefined) { personIds[q] = person; similarities[q] = 1 - r.distances[0]; continue; }
    }
    const m = exact.search(query);
    if (m) { personIds[q] = m.personId; similarities[q] = m.similarity; }
  }
  post({ type: 'result', req, personIds, similarities, engine: useHnsw ? 'hnsw' : 'exact', computeMs: performance.now() - t0 });
}

// ---- messages ----------------------------------------------------------------------------------------

function init(o: FaceSearchOptions): void {
  opts = o;
  exact = new FaceIndex(o.dim);
  db = new Database(o.dbFile, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const rows = readStore();
  exact.load(rows.map((r) => ({ personId: r.personId, vector: r.vector, label: r.label })));
  for (const r of rows) owners.set(r.label, r.personId);
  log('debug', `${exact.size} embeddings loaded`);
  if (exact.size >= o.exactBelow && !tryPersisted()) maybeBuild();
  status();
}

port.on('message', (m: ToSearchWorker) => {
  try {
    switch (m.type) {
      case 'init': init(m.options); break;
      case 'search': search(m.req, m.queries); break;
      case 'add': addRow(m.label, m.personId, m.vector); maybeBuild(); status(); break;
      case 'remove':
        removed(m.personId !== undefined ? exact.removePerson(m.personId) : exact.removeLabels(m.labels ?? []));
        maybeBuild();
        status();
        break;
      case 'reload': reload(); status(); break;
      case 'close':
        closing = true;
        void job?.builder?.terminate();
        try { persist(); } catch (err) { log('error', `could not persist the HNSW index: ${(err as Error).message}`); }
        db?.close();
        post({ type: 'closed', req: m.req });
        break;
    }
  } catch (err) {
    if (m.type === 'search' || m.type === 'close') post({ type: 'failed', req: m.req, message: (err as Error).message });
    else log('error', `${m.type} failed: ${(err as Error).message}`);
  }
});

/**
 * DDFR benchmark: end-to-end face recognition over WS `/ws`, and the 1:N search behind it.
 *
 *   UV_THREADPOOL_SIZE=64 node dist/bench/ddfr.js [--seconds 15] [--conns 1,8] [--workers N] [--ort-threads T]
 *       [--e2e-index 100000] [--sizes 1000,10000,100000] [--queries 300] [--threads 2] [--max-wait 300] [--row-wait 60]
 *       [--skip-e2e] [--skip-search] [--efs 64,128,256,400,800] [--experiments]
 *
 * 1. End to end: a server started with startApp and a graph of only the two face models and the `ddfr`
 *    transport (as test/ddfr.test.ts does), Obama and Biden enrolled over REST. Two 640×480 JPEG test frames
 *    are made with @napi-rs/canvas: obama2.jpg cropped to 4:3 (1 face) and a collage of 5 face crops
 *    (obama, obama2, biden, biden2, messi5; 4 known + 1 stranger), checked through the server itself.
 *    Then, for each connection count, every connection sends its next frame as soon as it has the reply
 *    to the previous one (closed loop, like the document's Python client) for --seconds: frames/s,
 *    per-frame latency and main-thread event-loop delay. Repeated with --e2e-index random rows added to
 *    the server's store (its search worker re-reads it and builds its HNSW graph, waited for), to show what
 *    1:N search at that size costs a live server. The clients run in this process too.
 * 2. 1:N search as the server runs it, for each N of --sizes: a store of N random L2-normalised 128-d
 *    embeddings (one person each) plus the real enrolled ones, searched through FaceSearch (a message round
 *    trip to the face search worker), once forced to the exact scan and once to HNSW with the default
 *    settings: p50/p95 per query and per 5-face message, the HNSW build time, recall@1 against the exact
 *    answer and the same-decision rate per query set (real faces, near-duplicates, returning faces,
 *    strangers); then an efSearch sweep on the largest graph (read from the file the worker wrote).
 * 3. With --experiments, the older exact-scan study: FaceIndex over N rows (query time, memory, build) and
 *    pure-JS experiments, in this file only:
 *    an Int8 copy with a per-row scale (with and without an exact re-rank of its top candidates), the
 *    scan split across worker_threads over a SharedArrayBuffer, a 128-bit SimHash Hamming pre-filter with
 *    an exact re-rank, and several queries per pass (a frame's faces); each with its speed-up and
 *    recall@1 against the exact result.
 *
 * Prints tables only; no assertions and no pass/fail on timings. Before each measured section it waits
 * (up to --max-wait s) for the 1-minute load to drop below 2.5, since the machine is shared, and up to
 * --row-wait s before each end-to-end row (the bench's own load lingers in the 1-minute average): read
 * the "other procs" and "load1" columns before trusting a frames/s figure.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { loadavg as load, percentile, summarize, table, waitForQuietMachine as waitForQuiet } from './report.js';
import { prng as rng } from '../test/prng.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MEDIA = path.join(ROOT, 'media');
const MODELS = path.join(ROOT, 'models');
const DIM = 128;
const THRESHOLD = 0.4; // transports/ddfr.ts default

// ---------------------------------------------------------------------------------------------------
// Helpers: percentiles, tables, CPU accounting, load.




const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
const f3 = (v: number): string => (Number.isFinite(v) ? v.toFixed(3) : '-');
const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '-');
const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


function cores(): number {
  return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

/** Busy CPU seconds of the whole machine so far, from /proc/stat (null where unavailable). */
function machineBusy(): number | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq] = f;
    return (user + nice + system + irq + softirq) / 100; // USER_HZ
  } catch {
    return null;
  }
}

interface CpuUse { wallS: number; cpuS: number; otherCores: number }

/** CPU of this process (all threads) and of everything else on the machine, from now until the call. */
function cpuMeter(): () => CpuUse {
  const c0 = process.cpuUsage();
  const m0 = machineBusy();
  const t0 = performance.now();
  return () => {
    const c = process.cpuUsage(c0);
    const m1 = machineBusy();
    const wallS = (performance.now() - t0) / 1000;
    const cpuS = (c.user + c.system) / 1e6;
    return { wallS, cpuS, otherCores: m0 !== null && m1 !== null ? Math.max(0, m1 - m0 - cpuS) / wallS : NaN };
  };
}

/** Waits (up to maxWaitS) for the 1-minute load average to drop below 2.5; returns the load it starts at. */

// ---------------------------------------------------------------------------------------------------
// Seeded random unit vectors (reproducible from run to run).

function gaussian(rand: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) { const s = spare; spare = null; return s; }
    const u = rand() || 1e-12;
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

function normalise(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  for (let i = 0; i < v.length; i++) v[i] *= inv;
  return v;
}

function randomUnit(g: () => number): Float32Array {
  const v = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) v[i] = g();
  return normalise(v);
}

// ---------------------------------------------------------------------------------------------------
// Scan kernels used by the experiments (main thread and scan workers alike).

/** The K best (score, row) pairs seen so far; `min` is the score a row must beat to enter. */
class TopK {
  readonly scores: Float64Array;
  readonly rows: Int32Array;
  n = 0;
  min = -Infinity;
  constructor(readonly k: number) {
    this.scores = new Float64Array(k);
    this.rows = new Int32Array(k);
  }
  reset(): void { this.n = 0; this.min = -Infinity; }
  push(score: number, row: number): void {
    let i = this.n < this.k ? this.n++ : this.k - 1;
    while (i > 0 && this.scores[i - 1] < score) { this.scores[i] = this.scores[i - 1]; this.rows[i] = this.rows[i - 1]; i--; }
    this.scores[i] = score;
    this.rows[i] = row;
    if (this.n === this.k) this.min = this.scores[this.k - 1];
  }
}

/** Float32 rows [r0, r1) · q, the same 4-accumulator loop as FaceIndex.search, into `top`. */
function scanF32(m: Float32Array, q: Float32Array, r0: number, r1: number, top: TopK): void {
  for (let r = r0, at = r0 * DIM; r < r1; r++, at += DIM) {
    let s0 = 0; let s1 = 0; let s2 = 0; let s3 = 0;
    for (let i = 0; i < DIM; i += 4) {
      s0 += m[at + i] * q[i];
      s1 += m[at + i + 1] * q[i + 1];
      s2 += m[at + i + 2] * q[i + 2];
      s3 += m[at + i + 3] * q[i + 3];
    }
    const s = s0 + s1 + s2 + s3;
    if (s > top.min) top.push(s, r);
  }
}

/** Int8 rows [r0, r1) · int8 query in integer arithmetic, times the row's scale (the query's is common). */
function scanI8(m: Int8Array, scales: Float32Array, q: Int8Array, r0: number, r1: number, top: TopK): void {
  for (let r = r0, at = r0 * DIM; r < r1; r++, at += DIM) {
    let s0 = 0; let s1 = 0; let s2 = 0; let s3 = 0;
    for (let i = 0; i < DIM; i += 4) {
      s0 = (s0 + m[at + i] * q[i]) | 0;
      s1 = (s1 + m[at + i + 1] * q[i + 1]) | 0;
      s2 = (s2 + m[at + i + 2] * q[i + 2]) | 0;
      s3 = (s3 + m[at + i + 3] * q[i + 3]) | 0;
    }
    const s = (s0 + s1 + s2 + s3) * scales[r];
    if (s > top.min) top.push(s, r);
  }
}

/** Several queries in one pass over the rows: each row is read from memory once for all of them. */
function scanF32Batch(m: Float32Array, qs: Float32Array, nq: number, count: number, best: Float64Array, bestRow: Int32Array): void {
  best.fill(-Infinity);
  bestRow.fill(-1);
  for (let r = 0, at = 0; r < count; r++, at += DIM) {
    for (let j = 0, qa = 0; j < nq; j++, qa += DIM) {
      let s0 = 0; let s1 = 0; let s2 = 0; let s3 = 0;
      for (let i = 0; i < DIM; i += 4) {
        s0 += m[at + i] * qs[qa + i];
        s1 += m[at + i + 1] * qs[qa + i + 1];
        s2 += m[at + i + 2] * qs[qa + i + 2];
        s3 += m[at + i + 3] * qs[qa + i + 3];
      }
      const s = s0 + s1 + s2 + s3;
      if (s > best[j]) { best[j] = s; bestRow[j] = r; }
    }
  }
}

function dotRow(m: Float32Array, row: number, q: Float32Array): number {
  let s = 0;
  for (let i = 0, at = row * DIM; i < DIM; i++) s += m[at + i] * q[i];
  return s;
}

/** Per-row symmetric Int8: q = round(x / scale), scale = max|x| / 127. */
function quantiseRows(m: Float32Array, count: number, out: Int8Array, scales: Float32Array): void {
  for (let r = 0, at = 0; r < count; r++, at += DIM) {
    let max = 0;
    for (let i = 0; i < DIM; i++) max = Math.max(max, Math.abs(m[at + i]));
    const scale = max > 0 ? max / 127 : 1;
    scales[r] = scale;
    for (let i = 0; i < DIM; i++) out[at + i] = Math.round(m[at + i] / scale);
  }
}

function quantiseQuery(q: Float32Array, out: Int8Array): number {
  let max = 0;
  for (let i = 0; i < DIM; i++) max = Math.max(max, Math.abs(q[i]));
  const scale = max > 0 ? max / 127 : 1;
  for (let i = 0; i < DIM; i++) out[i] = Math.round(q[i] / scale);
  return scale;
}

/**
 * 128-bit SimHash per row (the signs of the row after a random rotation, so it does not depend on how the
 * embedding's own axes are spread): a Hamming-distance pass over 16 bytes per row picks the K nearest codes,
 * which are then re-scored exactly from the float32 matrix. Adding a row costs one fast rotation (3 × 128·7 additions).
 */
class SignPrefilter {
  private readonly signs: Float64Array;
  private readonly tmp = new Float64Array(DIM);
  private codes = new Int32Array(0);
  private dist = new Uint8Array(0);
  private readonly hist = new Int32Array(DIM + 1);
  private readonly qcode = new Int32Array(4);
  count = 0;

  constructor(seed: number) {
    // A random rotation as three rounds of (random ±1 signs, then a Walsh-Hadamard transform): orthogonal,
    // so the 128 bits are independent estimates, and O(d log d) per vector instead of a 128×128 product.
    const rand = rng(seed);
    this.signs = new Float64Array(3 * DIM);
    for (let i = 0; i < this.signs.length; i++) this.signs[i] = rand() < 0.5 ? -1 : 1;
  }

  get bytes(): number { return this.codes.byteLength + this.dist.byteLength; }

  private code(v: Float32Array, at: number, out: Int32Array, outAt: number): void {
    const t = this.tmp;
    for (let i = 0; i < DIM; i++) t[i] = v[at + i];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < DIM; i++) t[i] *= this.signs[round * DIM + i];
      for (let h = 1; h < DIM; h <<= 1) {
        for (let i = 0; i < DIM; i += h << 1) {
          for (let j = i; j < i + h; j++) { const a = t[j]; const b = t[j + h]; t[j] = a + b; t[j + h] = a - b; }
        }
      }
    }
    for (let w = 0; w < 4; w++) {
      let x = 0;
      for (let b = 0; b < 32; b++) if (t[w * 32 + b] > 0) x |= 1 << b;
      out[outAt + w] = x;
    }
  }

  build(m: Float32Array, count: number): void {
    this.codes = new Int32Array(count * 4);
    this.dist = new Uint8Array(count);
    for (let r = 0; r < count; r++) this.code(m, r * DIM, this.codes, r * 4);
    this.count = count;
  }

  search(m: Float32Array, q: Float32Array, k: number): { row: number; score: number } {
    const { codes, dist, hist, qcode, count } = this;
    this.code(q, 0, qcode, 0);
    const q0 = qcode[0]; const q1 = qcode[1]; const q2 = qcode[2]; const q3 = qcode[3];
    hist.fill(0);
    for (let r = 0, a = 0; r < count; r++, a += 4) {
      let x = codes[a] ^ q0;
      x -= (x >>> 1) & 0x55555555; x = (x & 0x33333333) + ((x >>> 2) & 0x33333333); x = (x + (x >>> 4)) & 0x0f0f0f0f;
      let d = Math.imul(x, 0x01010101) >>> 24;
      x = codes[a + 1] ^ q1;
      x -= (x >>> 1) & 0x55555555; x = (x & 0x33333333) + ((x >>> 2) & 0x33333333); x = (x + (x >>> 4)) & 0x0f0f0f0f;
      d += Math.imul(x, 0x01010101) >>> 24;
      x = codes[a + 2] ^ q2;
      x -= (x >>> 1) & 0x55555555; x = (x & 0x33333333) + ((x >>> 2) & 0x33333333); x = (x + (x >>> 4)) & 0x0f0f0f0f;
      d += Math.imul(x, 0x01010101) >>> 24;
      x = codes[a + 3] ^ q3;
      x -= (x >>> 1) & 0x55555555; x = (x & 0x33333333) + ((x >>> 2) & 0x33333333); x = (x + (x >>> 4)) & 0x0f0f0f0f;
      d += Math.imul(x, 0x01010101) >>> 24;
      dist[r] = d;
      hist[d]++;
    }
    // Every row closer than `lim`, and rows at exactly `lim` until there are k candidates.
    let lim = 0;
    let below = 0;
    while (lim < DIM && below + hist[lim] < k) below += hist[lim++];
    let atLim = k - below;
    let best = -Infinity;
    let bestRow = -1;
    for (let r = 0; r < count; r++) {
      const d = dist[r];
      if (d > lim || (d === lim && atLim-- <= 0)) continue;
      const s = dotRow(m, r, q);
      if (s > best) { best = s; bestRow = r; }
    }
    return { row: bestRow, score: best };
  }
}

// ---------------------------------------------------------------------------------------------------
// Scan workers: each scans its slice of a SharedArrayBuffer matrix when the generation counter moves.
// ctrl: [0] generation, [1] slices done, [2] mode (0 = float32, 1 = int8), [3] count, [4] quit.

const K_MAX = 16;

interface ScanShared {
  ctrl: SharedArrayBuffer; f32: SharedArrayBuffer; i8: SharedArrayBuffer; scales: SharedArrayBuffer;
  query: SharedArrayBuffer; query8: SharedArrayBuffer; results: SharedArrayBuffer; slices: number;
}

function scanWorkerMain(d: ScanShared & { slice: number }): void {
  const ctrl = new Int32Array(d.ctrl);
  const f32 = new Float32Array(d.f32);
  const i8 = new Int8Array(d.i8);
  const scales = new Float32Array(d.scales);
  const q = new Float32Array(d.query);
  const q8 = new Int8Array(d.query8);
  const res = new Float64Array(d.results);
  const top = new TopK(K_MAX);
  let gen = Atomics.load(ctrl, 0);
  for (;;) {
    Atomics.wait(ctrl, 0, gen);
    gen = Atomics.load(ctrl, 0);
    if (Atomics.load(ctrl, 4)) return;
    const mode = Atomics.load(ctrl, 2);
    const count = Atomics.load(ctrl, 3);
    const k = mode === 0 ? 1 : K_MAX;
    const per = Math.ceil(count / d.slices);
    const r0 = Math.min(count, d.slice * per);
    const r1 = Math.min(count, r0 + per);
    const t = k === 1 ? new TopK(1) : top;
    t.reset();
    if (mode === 0) scanF32(f32, q, r0, r1, t); else scanI8(i8, scales, q8, r0, r1, t);
    const base = d.slice * K_MAX * 2;
    for (let j = 0; j < K_MAX; j++) {
      res[base + 2 * j] = j < t.n ? t.scores[j] : -Infinity;
      res[base + 2 * j + 1] = j < t.n ? t.rows[j] : -1;
    }
    Atomics.add(ctrl, 1, 1);
    Atomics.notify(ctrl, 1);
  }
}

/** The main thread scans slice 0 itself; `slices - 1` workers scan the others. */
class SplitScanner {
  readonly ctrl: Int32Array;
  readonly f32: Float32Array;
  readonly i8: Int8Array;
  readonly scales: Float32Array;
  private readonly q: Float32Array;
  private readonly q8: Int8Array;
  private readonly res: Float64Array;
  private readonly workers: Worker[] = [];
  private readonly top = new TopK(K_MAX);
  count = 0;

  constructor(private readonly shared: ScanShared) {
    this.ctrl = new Int32Array(shared.ctrl);
    this.f32 = new Float32Array(shared.f32);
    this.i8 = new Int8Array(shared.i8);
    this.scales = new Float32Array(shared.scales);
    this.q = new Float32Array(shared.query);
    this.q8 = new Int8Array(shared.query8);
    this.res = new Float64Array(shared.results);
  }

  static create(rows: number, slices: number): SplitScanner {
    return new SplitScanner({
      ctrl: new SharedArrayBuffer(4 * 8), f32: new SharedArrayBuffer(rows * DIM * 4), i8: new SharedArrayBuffer(rows * DIM),
      scales: new SharedArrayBuffer(rows * 4), query: new SharedArrayBuffer(DIM * 4), query8: new SharedArrayBuffer(DIM),
      results: new SharedArrayBuffer(slices * K_MAX * 2 * 8), slices,
    });
  }

  async start(): Promise<void> {
    for (let s = 1; s < this.shared.slices; s++) {
      const w = new Worker(new URL(import.meta.url), { workerData: { ddfrScan: true, ...this.shared, slice: s } });
      await new Promise<void>((resolve, reject) => { w.once('online', resolve); w.once('error', reject); });
      this.workers.push(w);
    }
    await sleep(200); // let them reach Atomics.wait
  }

  /** Best row for `query`: exact (float32) or int8 with its top-`rerank` re-scored exactly from f32. */
  search(query: Float32Array, mode: 0 | 1, rerank: number): { row: number; score: number } {
    const { ctrl, q, q8, res, top } = this;
    q.set(query);
    if (mode === 1) quantiseQuery(query, q8);
    Atomics.store(ctrl, 1, 0);
    Atomics.store(ctrl, 2, mode);
    Atomics.store(ctrl, 3, this.count);
    Atomics.add(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    const slices = this.shared.slices;
    const per = Math.ceil(this.count / slices);
    const mine = new TopK(mode === 0 ? 1 : Math.max(1, rerank));
    if (mode === 0) scanF32(this.f32, q, 0, Math.min(this.count, per), mine);
    else scanI8(this.i8, this.scales, q8, 0, Math.min(this.count, per), mine);
    for (;;) {
      const done = Atomics.load(ctrl, 1);
      if (done >= slices - 1) break;
      Atomics.wait(ctrl, 1, done);
    }
    // Merge: every slice's candidates, then (int8) an exact re-score of the best `rerank`.
    top.reset();
    const merged = mode === 0 ? new TopK(1) : new TopK(Math.max(1, rerank));
    for (let j = 0; j < mine.n; j++) merged.push(mine.scores[j], mine.rows[j]);
    for (let s = 1; s < slices; s++) {
      const base = s * K_MAX * 2;
      for (let j = 0; j < merged.k; j++) {
        const row = res[base + 2 * j + 1];
        if (row >= 0 && res[base + 2 * j] > merged.min) merged.push(res[base + 2 * j], row);
      }
    }
    if (mode === 0 || rerank <= 1) return { row: merged.rows[0], score: mode === 0 ? merged.scores[0] : dotRow(this.f32, merged.rows[0], query) };
    let best = -Infinity;
    let bestRow = -1;
    for (let j = 0; j < merged.n; j++) {
      const s = dotRow(this.f32, merged.rows[j], query);
      if (s > best) { best = s; bestRow = merged.rows[j]; }
    }
    return { row: bestRow, score: best };
  }

  async stop(): Promise<void> {
    Atomics.store(this.ctrl, 4, 1);
    Atomics.add(this.ctrl, 0, 1);
    Atomics.notify(this.ctrl, 0);
    await Promise.all(this.workers.map((w) => new Promise((r) => w.once('exit', r))));
  }
}

// ---------------------------------------------------------------------------------------------------
// 1. End to end over WS /ws.

type Face = { id: string; top: number; right: number; bottom: number; left: number; name: string; surname: string | null };
type Reply = { status: string; faces: Face[] } | null;

interface Real { label: string; embedding: Float32Array }

interface E2eOut {
  enrolled: { personId: number; vector: Float32Array }[];
  queries: Real[];
}

async function endToEnd(opts: { seconds: number; conns: number[]; workers?: number; ortThreads?: number; maxWait: number; rowWait: number;
  measure: boolean; bigIndex: number }): Promise<E2eOut> {
  const { createCanvas, loadImage } = await import('@napi-rs/canvas');
  const { default: WebSocket } = await import('ws');
  const { parseGraph } = await import('../app/catalog.js');
  const { loadSettings } = await import('../config/settings.js');
  const { startApp } = await import('../app/app.js');
  const { createLogger } = await import('../core/log.js');
  const { FaceRecognizer } = await import('../services/persons/face-recognizer.js');
  const { modelPath } = await import('../config/graph.js');

  const settings = {
    ...loadSettings([], process.env, {
      ...(opts.workers ? { workers: opts.workers } : {}), ...(opts.ortThreads ? { ortThreads: opts.ortThreads } : {}),
    }),
    host: '127.0.0.1', logLevel: 'warn' as const, modelDir: MODELS, dataDir: mkdtempSync(path.join(os.tmpdir(), 'sightline-bench-ddfr-')),
  };
  const graph = parseGraph(`
models:
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  arcface: { file: face_recognition_mobilefacenet_128d.onnx, kind: mobilefacenet }
transports:
  ddfr: { port: 0, detector: faces, embedder: arcface }
  metrics: { port: 0 }
`, 'bench-ddfr.yaml');
  const app = await startApp(graph, settings, { log: createLogger('warn', 'bench') });
  const port = app.portOf('ddfr')!;
  const base = `http://127.0.0.1:${port}`;
  const wsUrl = `ws://127.0.0.1:${port}/ws`;
  console.log(`\nserver: ddfr on ${port}; worker layout ${settings.workers} workers × ${settings.ortThreads} ORT intra-op threads `
    + `(settings: workers=${settings.workers}, ortThreads=${settings.ortThreads}; ${cores()} cores); data dir ${settings.dataDir}`);

  try {
    // --- Enrol Obama and Biden through the REST API, as the test does.
    const photo = (name: string): Buffer => readFileSync(path.join(MEDIA, name));
    const post = async (p: string, body: unknown): Promise<{ status: number; json: unknown }> => {
      const res = await fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, json: await res.json() };
    };
    for (const [person, file] of [[{ name: 'Barack', surname: 'Obama', birthday: '1961-08-04', role: 'user' }, 'obama.jpg'],
      [{ name: 'Joe', surname: 'Biden', birthday: '1942-11-20', role: 'guest' }, 'biden.jpg']] as const) {
      const created = await post('/persons', person);
      const { id } = created.json as { id: number };
      const added = await post(`/persons/${id}/photos`, { image: photo(file).toString('base64') });
      console.log(`enrolled ${person.name} ${person.surname} (person ${id}) from ${file}: HTTP ${created.status}/${added.status}`);
    }

    // A recognizer on the server's own pool, for face boxes (to crop) and embeddings (for part 2).
    const recognizer = new FaceRecognizer(app.pool, app.persons, {
      detector: { path: modelPath(graph, settings.modelDir, 'faces'), kind: 'yunet' },
      embedder: { path: modelPath(graph, settings.modelDir, 'arcface'), kind: 'mobilefacenet' },
      faceScore: 0.8, threshold: THRESHOLD, maxSide: 1280, maxPixels: 40_000_000,
    });

    /** Sends frames on one connection, each after the previous reply. */
    const recognizeWs = async (frames: Buffer[]): Promise<Reply[]> => {
      const ws = new WebSocket(wsUrl);
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
      const replies: Reply[] = [];
      for (const f of frames) {
        const reply = new Promise<Reply>((resolve) => ws.once('message', (m) => resolve(JSON.parse(m.toString()) as Reply)));
        ws.send(f);
        replies.push(await reply);
      }
      ws.close();
      return replies;
    };
    const names = (r: Reply): string => (r ? r.faces.map((f) => (f.name === 'Unknown' ? 'Unknown' : `${f.name} ${f.surname}`)).join(', ') || '(none)' : 'null');

    // --- Test frame 1: obama2.jpg (626×1200) cropped to 4:3 around the face, scaled to 640×480.
    const W = 640;
    const H = 480;
    const boxesOf = async (file: string) => (await recognizer.recognize(photo(file))).faces;
    const o2 = await loadImage(photo('obama2.jpg'));
    const o2face = (await boxesOf('obama2.jpg'))[0].box;
    const cw = Math.min(o2.width, (o2.height * 4) / 3);
    const ch = (cw * 3) / 4;
    const cx = Math.min(Math.max((o2face[0] + o2face[2]) / 2 - cw / 2, 0), o2.width - cw);
    const cy = Math.min(Math.max((o2face[1] + o2face[3]) / 2 - ch / 2, 0), o2.height - ch);
    const one = createCanvas(W, H);
    one.getContext('2d').drawImage(o2, cx, cy, cw, ch, 0, 0, W, H);
    const frame1 = await one.encode('jpeg', 90);

    // --- Test frame 5: five face crops (square, `margin` × the face's size) in a 3 + 2 grid.
    const sources = ['obama.jpg', 'obama2.jpg', 'biden.jpg', 'biden2.jpg', 'messi5.jpg'];
    const crops: { img: Awaited<ReturnType<typeof loadImage>>; box: number[] }[] = [];
    for (const file of sources) {
      let faces = await boxesOf(file);
      let img = await loadImage(photo(file));
      if (!faces.length && file === 'messi5.jpg') { faces = await boxesOf('two_people.jpg'); img = await loadImage(photo('two_people.jpg')); }
      const biggest = [...faces].sort((a, b) => (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]) - (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]))[0];
      crops.push({ img, box: biggest.box });
    }
    const cells = [[0, 0, 213, 240], [213, 0, 214, 240], [427, 0, 213, 240], [0, 240, 320, 240], [320, 240, 320, 240]];
    const collage = async (margin: number, cellFill: number): Promise<Buffer> => {
      const c = createCanvas(W, H);
      const ctx = c.getContext('2d');
      ctx.fillStyle = '#808080';
      ctx.fillRect(0, 0, W, H);
      crops.forEach(({ img, box }, i) => {
        const side0 = Math.max(box[2] - box[0], box[3] - box[1]) * margin;
        const side = Math.min(side0, img.width, img.height);
        const sx = Math.min(Math.max((box[0] + box[2]) / 2 - side / 2, 0), img.width - side);
        const sy = Math.min(Math.max((box[1] + box[3]) / 2 - side / 2, 0), img.height - side);
        const [x, y, w, h] = cells[i];
        const d = Math.min(w, h) * cellFill;
        ctx.drawImage(img, sx, sy, side, side, x + (w - d) / 2, y + (h - d) / 2, d, d);
      });
      return c.encode('jpeg', 90);
    };
    let frame5: Buffer | null = null;
    let frame5Reply: Reply = null;
    for (const [margin, fill] of [[2, 0.95], [1.7, 0.95], [2.5, 0.95], [2, 0.8]]) {
      const candidate = await collage(margin, fill);
      const [r] = await recognizeWs([candidate]);
      console.log(`5-face collage (crop ${margin}× face, ${Math.round(fill * 100)}% of cell): YuNet found ${r ? r.faces.length : 'null'} faces: ${names(r)}`);
      if (!frame5 || (r && r.faces.length === 5)) { frame5 = candidate; frame5Reply = r; }
      if (r && r.faces.length === 5) break;
    }
    const [r1] = await recognizeWs([frame1]);
    const testFrames = [
      { label: '1 face', jpeg: frame1, faces: r1 ? r1.faces.length : 0, names: names(r1) },
      { label: '5 faces', jpeg: frame5!, faces: frame5Reply ? frame5Reply.faces.length : 0, names: names(frame5Reply) },
    ];
    table('Test frames (640×480 JPEG q90), checked through the server', ['frame', 'bytes', 'faces found', 'names (server reply)'],
      testFrames.map((f) => [f.label, f.jpeg.length, f.faces, f.names]));

    // Embeddings for part 2: the enrolled rows (from the store) and real query faces.
    const enrolled = (app.store.db.prepare('SELECT person_id, vector FROM person_embeddings ORDER BY id').all() as { person_id: number; vector: Buffer }[])
      .map((r) => ({ personId: r.person_id, vector: new Float32Array(r.vector.buffer.slice(r.vector.byteOffset, r.vector.byteOffset + r.vector.byteLength)) }));
    const queries: Real[] = [];
    for (const [label, bytes] of [['obama2', photo('obama2.jpg')], ['obama3', photo('obama3.jpg')], ['biden2', photo('biden2.jpg')],
      ['two_people', photo('two_people.jpg')], ['messi5', photo('messi5.jpg')], ['collage', frame5!], ['1-face frame', frame1]] as const) {
      (await recognizer.recognize(bytes)).faces.forEach((f, i) => queries.push({ label: `${label}#${i}`, embedding: f.embedding }));
    }

    if (opts.measure) {
      // --- Where a frame's time goes: the worker task alone, one at a time (decode + detect + embed).
      await waitForQuiet('end-to-end breakdown', opts.maxWait);
      const breakdown: (string | number)[][] = [];
      for (const f of testFrames) {
        const detect: number[] = [];
        const embed: number[] = [];
        const total: number[] = [];
        for (let i = 0; i < 40; i++) {
          const bytes = f.jpeg.buffer.slice(f.jpeg.byteOffset, f.jpeg.byteOffset + f.jpeg.byteLength) as ArrayBuffer;
          const t0 = performance.now();
          const r = await app.pool.run<{ detectMs: number; embedMs: number }>({
            op: 'recognize-image', image: bytes, maxPixels: 40_000_000, detector: recognizer.opts.detector,
            embedder: recognizer.opts.embedder, scoreThreshold: 0.8, maxSide: 1280,
          }, [bytes]);
          if (i < 5) continue; // warm-up
          total.push(performance.now() - t0);
          detect.push(r.detectMs);
          embed.push(r.embedMs);
        }
        const t = summarize(total);
        const d = summarize(detect);
        const e = summarize(embed);
        breakdown.push([f.label, t.n, f1(t.p50), f1(d.p50), f1(e.p50), f1(t.p50 - d.p50 - e.p50), f1(t.p95)]);
      }
      table('Worker task alone, 1 in flight (pool.run recognize-image; ms, p50 unless noted)',
        ['frame', 'runs', 'round trip', 'YuNet detect', 'MobileFaceNet embed', 'decode+IPC+rest', 'round trip p95'], breakdown);

      // --- Closed loop over WS: with the 2 enrolled rows, then with `bigIndex` random rows added to the
      // server's own index (in memory only; matches to them find no person in the store, so stay Unknown).
      const rows: (string | number)[][] = [];
      const run = async (indexRows: number): Promise<void> => {
        for (const f of testFrames) {
          for (const n of opts.conns) {
            const loadAt = await waitForQuiet(`${f.label}, ${n} conn, ${indexRows} rows`, opts.rowWait);
            const r = await closedLoop(WebSocket, wsUrl, f.jpeg, n, opts.seconds, f.faces);
            const lat = summarize(r.latencies);
            rows.push([f.label, n, indexRows, r.frames, f1(r.frames / r.cpu.wallS), f1((r.frames * f.faces) / r.cpu.wallS), f1(lat.p50), f1(lat.p95),
              f1(lat.max), r.nulls + r.wrongCount, f1((r.cpu.cpuS * 1000) / Math.max(1, r.frames)), f1(r.loopP99Ms), f2(r.cpu.otherCores), loadAt.split(' ')[0]]);
            console.log(`  ${f.label}, ${n} conn, ${indexRows} rows: ${r.frames} frames in ${f1(r.cpu.wallS)} s`);
          }
        }
      };
      await run(app.persons.indexSize);
      if (opts.bigIndex > 0) {
        await addRandomRows(app, opts.bigIndex, 999);
        await run(app.persons.indexSize);
      }
      table(`End-to-end recognition over WS /ws, closed loop, ~${opts.seconds} s per row (${settings.workers} workers × ${settings.ortThreads} ORT threads, ${cores()} cores)`,
        ['frame', 'conns', 'index rows', 'frames', 'frames/s', 'faces/s', 'p50 ms', 'p95 ms', 'max ms', 'null/bad', 'CPU ms/frame', 'loop delay p99 ms', 'other procs', 'load1 at start'], rows);
      console.log('  latency: send → reply on one connection. CPU ms/frame: this whole process (server + in-process clients) per frame.');
      console.log('  loop delay p99: main-thread event-loop delay (the 1:N search runs in the face search worker). other procs: cores used by other processes meanwhile.');
      console.log('  null/bad: replies that were null or had another face count than the check above (both should be 0).');
    }
    return { enrolled, queries };
  } finally {
    await app.stop();
  }
}

/**
 * Adds `n` random embeddings to the server's store (one synthetic person owns them: a match to one of them
 * is far below the threshold, so stays Unknown), has the search worker re-read the store, and waits until
 * its HNSW graph answers (built in the background, or loaded from the data directory).
 */
async function addRandomRows(app: import('../app/app.js').App, n: number, seed: number): Promise<number> {
  const g = gaussian(rng(seed));
  const db = app.store.db;
  const person = Number(db.prepare("INSERT INTO persons (name, role, created_ms) VALUES ('Synthetic', 'guest', ?)").run(Date.now()).lastInsertRowid);
  const insert = db.prepare('INSERT INTO person_embeddings (person_id, vector, photo_sha256, created_ms) VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < n; i++) { const v = randomUnit(g); insert.run(person, Buffer.from(v.buffer), 'synthetic', Date.now()); }
  })();
  const search = app.persons.search!;
  search.reload();
  const t0 = performance.now();
  await search.search([randomUnit(g)]); // after the reload
  if (search.status.size >= app.settings.faceIndexExactBelow) await search.whenHnswReady();
  return performance.now() - t0;
}

async function closedLoop(WebSocketCtor: typeof import('ws').default, url: string, jpeg: Buffer, conns: number, seconds: number, faces: number) {
  const sockets = await Promise.all(Array.from({ length: conns }, () => new Promise<import('ws').default>((resolve, reject) => {
    const ws = new WebSocketCtor(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  })));
  // A short warm-up so the first frames' one-off costs are not measured.
  await Promise.all(sockets.map((ws) => new Promise((r) => { ws.once('message', r); ws.send(jpeg); })));
  const latencies: number[] = [];
  let frames = 0;
  let nulls = 0;
  let wrongCount = 0;
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const meter = cpuMeter();
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(sockets.map((ws) => new Promise<void>((done) => {
    let sentAt = 0;
    ws.on('message', (m) => {
      const now = performance.now();
      latencies.push(now - sentAt);
      frames++;
      const r = JSON.parse(m.toString()) as Reply;
      if (r === null) nulls++;
      else if (r.faces.length !== faces) wrongCount++;
      if (now >= deadline) { done(); return; }
      sentAt = performance.now();
      ws.send(jpeg);
    });
    sentAt = performance.now();
    ws.send(jpeg);
  })));
  const cpu = meter();
  loop.disable();
  for (const ws of sockets) ws.close();
  return { latencies, frames, nulls, wrongCount, cpu, loopP99Ms: loop.percentile(99) / 1e6 };
}

// ---------------------------------------------------------------------------------------------------
// 2. 1:N search.

async function searchBench(opts: { sizes: number[]; queries: number; threads: number; maxWait: number }, real: E2eOut): Promise<void> {
  const { FaceIndex } = await import('../services/persons/face-index.js');
  const g = gaussian(rng(12345));
  const maxN = Math.max(...opts.sizes);
  const enrolled = real.enrolled.map((e) => ({ personId: e.personId, vector: normalise(Float32Array.from(e.vector)) }));
  const randomRows: Float32Array[] = [];
  for (let i = 0; i < maxN; i++) randomRows.push(randomUnit(g));
  console.log(`\n${real.enrolled.length} real enrolled embeddings (person ids ${[...new Set(enrolled.map((e) => e.personId))].join(', ')}); `
    + `${real.queries.length} real query faces: ${real.queries.map((q) => q.label).join(' ')}`);

  // Query sets: real faces; "returning" = an indexed random row plus noise (cosine ≈ 0.6 to it, a typical
  // same-person similarity); "stranger" = fresh random unit vectors (near-ties: the hardest case for recall).
  const nQ = opts.queries;
  const sigma = Math.sqrt((1 / 0.6 ** 2 - 1) / DIM);

  const split = opts.threads > 1 ? SplitScanner.create(maxN + enrolled.length, opts.threads) : null;
  if (split) await split.start();
  const single = SplitScanner.create(maxN + enrolled.length, 1); // buffers for the 1-thread int8 runs (no workers)

  const main: (string | number)[][] = [];
  const exp: (string | number)[][] = [];
  const batchRows: (string | number)[][] = [];
  const strangerRows: (string | number)[][] = [];
  try {
    for (const n of opts.sizes) {
      await waitForQuiet(`1:N search, N = ${n}`, opts.maxWait);
      // The index as KnownPersons builds it: FaceIndex.load over the rows (each random row its own "person").
      const rows = [...enrolled, ...randomRows.slice(0, n).map((vector, i) => ({ personId: 1000 + i, vector }))];
      const index = new FaceIndex(DIM);
      const tb = performance.now();
      index.load(rows);
      const buildMs = performance.now() - tb;
      const matrix = (index as unknown as { matrix: Float32Array }).matrix;
      const total = rows.length;

      const pick = rng(31 + n);
      const rand = gaussian(rng(777 + n));
      const returning: Float32Array[] = [];
      for (let i = 0; i < nQ; i++) {
        const base = randomRows[Math.floor(pick() * n)];
        const v = new Float32Array(DIM);
        for (let k = 0; k < DIM; k++) v[k] = base[k] + sigma * rand();
        returning.push(normalise(v));
      }
      const strangers = Array.from({ length: nQ }, () => randomUnit(rand));
      const realQ = real.queries.map((q) => normalise(Float32Array.from(q.embedding)));
      const sets = { real: realQ, returning, stranger: strangers };
      const allQ = [...realQ, ...returning, ...strangers];

      // Exact: FaceIndex.search itself (warm-up first), and the ground truth for recall.
      for (let i = 0; i < 30; i++) index.search(allQ[i % allQ.length]);
      const exactTimes: number[] = [];
      const truth = new Map<Float32Array, { personId: number; similarity: number }>();
      for (const q of allQ) {
        const t0 = performance.now();
        const m = index.search(q)!;
        exactTimes.push(performance.now() - t0);
        truth.set(q, m);
      }
      const ex = summarize(exactTimes);
      main.push([total, f3(ex.p50), f3(ex.p95), f3(ex.mean), f1(5 * ex.p50), mb(total * DIM * 4), mb(matrix.byteLength), f1(buildMs)]);

      // Stranger similarities: how close the best random row gets to a fresh random vector.
      const sims = strangers.map((q) => truth.get(q)!.similarity).sort((a, b) => a - b);
      const realStrangers = real.queries.map((q, i) => ({ q, m: truth.get(realQ[i])! })).filter(({ m }) => m.personId >= 1000 || m.similarity < THRESHOLD);
      strangerRows.push([total, f3(percentile(sims, 0.5)), f3(sims[sims.length - 1]), pct(sims.filter((s) => s >= THRESHOLD).length / sims.length),
        realStrangers.length ? f3(Math.max(...realStrangers.map((x) => x.m.similarity))) : '-']);

      // Row ids of the exact answers (person ids: enrolled ones map to their first row; random rows are 1000 + i).
      const rowOf = (personId: number, q: Float32Array): number => {
        if (personId >= 1000) return enrolled.length + personId - 1000;
        let best = -Infinity; let row = -1;
        for (let r = 0; r < enrolled.length; r++) {
          if (enrolled[r].personId !== personId) continue;
          const s = dotRow(matrix, r, q);
          if (s > best) { best = s; row = r; }
        }
        return row;
      };
      const personOfRow = (row: number): number => (row < enrolled.length ? enrolled[row].personId : 1000 + row - enrolled.length);

      // Shared copies of the same normalised matrix for the experiments.
      let quantMs = 0;
      for (const s of split ? [split, single] : [single]) {
        s.f32.set(matrix.subarray(0, total * DIM));
        const tq = performance.now();
        quantiseRows(s.f32, total, s.i8, s.scales);
        quantMs = performance.now() - tq;
        s.count = total;
      }

      const sign = new SignPrefilter(4242);
      const tSign = performance.now();
      sign.build(single.f32, total);
      const signBuildMs = performance.now() - tSign;
      const f32 = single.f32;
      const variants: { label: string; search: (q: Float32Array) => { row: number; score: number }; memory: number; buildMs: number }[] = [
        { label: 'exact, bench kernel, 1 thread', search: (q) => single.search(q, 0, 1), memory: total * DIM * 4, buildMs: 0 },
        { label: 'int8 per-row scale, 1 thread', search: (q) => single.search(q, 1, 1), memory: total * (DIM + 4), buildMs: quantMs },
        { label: 'int8 + exact re-rank top 16, 1 thread', search: (q) => single.search(q, 1, 16), memory: total * (DIM * 5 + 4), buildMs: quantMs },
      ];
      if (split) {
        variants.push({ label: `exact, ${opts.threads} threads (SAB)`, search: (q) => split.search(q, 0, 1), memory: total * DIM * 4, buildMs: 0 });
        variants.push({ label: `int8 + re-rank 16, ${opts.threads} threads (SAB)`, search: (q) => split.search(q, 1, 16), memory: total * (DIM * 5 + 4), buildMs: quantMs });
      }
      for (const k of [256, 1024]) {
        variants.push({ label: `SimHash-128 pre-filter + exact re-rank top ${k}, 1 thread`, search: (q) => sign.search(f32, q, k),
          memory: total * DIM * 4 + sign.bytes, buildMs: signBuildMs });
      }
      exp.push([total, 'FaceIndex.search (exact, baseline)', f3(ex.p50), f3(ex.p95), '1.00×', '100%', '100%', '100%', '100% / 100% / 100%', mb(total * DIM * 4), '-']);
      for (const v of variants) {
        for (let i = 0; i < 30; i++) v.search(allQ[i % allQ.length]);
        const times: number[] = [];
        const hit: Record<string, number> = { real: 0, returning: 0, stranger: 0 };
        const same: Record<string, number> = { real: 0, returning: 0, stranger: 0 };
        for (const [set, qs] of Object.entries(sets)) {
          for (const q of qs) {
            const t0 = performance.now();
            const r = v.search(q);
            times.push(performance.now() - t0);
            const t = truth.get(q)!;
            if (r.row === rowOf(t.personId, q)) hit[set]++;
            // The decision DDFR makes: the person's name if similarity ≥ threshold, else Unknown.
            const decided = r.score >= THRESHOLD ? personOfRow(r.row) : -1;
            const expected = t.similarity >= THRESHOLD ? t.personId : -1;
            if (decided === expected) same[set]++;
          }
        }
        const s = summarize(times);
        exp.push([total, v.label, f3(s.p50), f3(s.p95), `${(ex.p50 / s.p50).toFixed(2)}×`,
          pct(hit.real / realQ.length), pct(hit.returning / returning.length), pct(hit.stranger / strangers.length),
          `${pct(same.real / realQ.length)} / ${pct(same.returning / returning.length)} / ${pct(same.stranger / strangers.length)}`, mb(v.memory), v.buildMs ? f1(v.buildMs) : '-']);
      }

      // Several faces per frame: identify() scans once per face; one pass for all of them reads the matrix once.
      for (const nq of [5]) {
        const qs = new Float32Array(nq * DIM);
        const best = new Float64Array(nq);
        const bestRow = new Int32Array(nq);
        const frames = Math.max(20, Math.floor(nQ / 4));
        const seq: number[] = [];
        const bat: number[] = [];
        let agree = 0;
        for (let f = 0; f < frames + 5; f++) {
          const group = Array.from({ length: nq }, (_, j) => allQ[(f * nq + j) % allQ.length]);
          group.forEach((q, j) => qs.set(q, j * DIM));
          let t0 = performance.now();
          const exactRows = group.map((q) => index.search(q)!);
          const ts = performance.now() - t0;
          t0 = performance.now();
          scanF32Batch(single.f32, qs, nq, total, best, bestRow);
          const tb2 = performance.now() - t0;
          if (f < 5) continue;
          seq.push(ts);
          bat.push(tb2);
          group.forEach((q, j) => { if (rowOf(exactRows[j].personId, q) === bestRow[j]) agree++; });
        }
        const a = summarize(seq);
        const b = summarize(bat);
        batchRows.push([total, nq, f3(a.p50), f3(a.p95), f3(b.p50), f3(b.p95), `${(a.p50 / b.p50).toFixed(2)}×`, pct(agree / (frames * nq))]);
      }
    }
  } finally {
    if (split) await split.stop();
  }

  table(`1:N search, FaceIndex.search (exact scan, main thread), ${nQ * 2} synthetic + ${real.queries.length} real queries per N`,
    ['rows', 'p50 ms', 'p95 ms', 'mean ms', '5 faces/frame ms (5×p50)', 'matrix (used)', 'matrix (allocated)', 'FaceIndex.load ms'], main);
  console.log('  rows = N random unit vectors + the real enrolled embeddings. Target: ≤ 5 ms per search at 100 k.');
  table('Experiments in this file (pure JS), per single-face query; recall@1 = same row as the exact scan',
    ['rows', 'variant', 'p50 ms', 'p95 ms', 'speed-up (p50)', 'recall real', 'recall returning', 'recall stranger', 'same decision real / returning / stranger', 'memory', 'extra build ms'], exp);
  console.log('  returning = an indexed row plus noise (cosine ≈ 0.6 to it); stranger = a fresh random unit vector, whose best match is a near-tie.');
  console.log(`  same decision = the name DDFR would send (person if similarity ≥ ${THRESHOLD}, else Unknown) equals the exact one, per query set.`);
  console.log('  memory: int8 = codes + scales; with re-rank the float32 matrix is kept as well (5 bytes per value). SimHash: float32 matrix + 16 B code + 1 B scratch per row.');
  console.log('  extra build ms: one-off cost on top of FaceIndex.load for the whole index (quantising, or hashing every row).');
  table('A frame with 5 faces: 5 × FaceIndex.search vs one pass scoring 5 queries per row (exact, 1 thread)',
    ['rows', 'faces', '5 × search p50 ms', 'p95 ms', 'one pass p50 ms', 'p95 ms', 'speed-up', 'same rows'], batchRows);
  table('Synthetic strangers vs the threshold (random 128-d unit vectors; real faces are not uniformly spread, read as a bound only)',
    ['rows', 'best similarity p50', 'best similarity max', `share ≥ ${THRESHOLD} (false accept)`, 'real strangers: best similarity'], strangerRows);
}

// ---------------------------------------------------------------------------------------------------
// 3. The search as the server runs it: FaceSearch → face search worker, exact scan and HNSW.

async function indexBench(opts: { sizes: number[]; queries: number; maxWait: number; efs: number[] }, real: E2eOut): Promise<void> {
  const { Store } = await import('../services/store/store.js');
  const { FaceSearch } = await import('../services/persons/face-search.js');
  const { createLogger } = await import('../core/log.js');
  const { loadSettings } = await import('../config/settings.js');
  const { indexFiles } = await import('../services/persons/hnsw-files.js');
  const { default: hnswlib } = await import('hnswlib-node');
  const defaults = loadSettings([], process.env);
  const log = createLogger('info', 'bench');
  const g = gaussian(rng(4711));
  const nQ = opts.queries;
  const sigma = (cos: number): number => Math.sqrt((1 / cos ** 2 - 1) / DIM);
  const noisy = (base: Float32Array, cos: number): Float32Array => normalise(base.map((x) => x + sigma(cos) * g()));

  const timing: (string | number)[][] = [];
  const recall: (string | number)[][] = [];
  const sweep: (string | number)[][] = [];
  for (const n of opts.sizes) {
    await waitForQuiet(`face search worker, N = ${n}`, opts.maxWait);
    // A store like the server's: the real enrolled embeddings (their own persons) and N random ones, one person each.
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sightline-bench-index-'));
    const store = Store.open(dataDir);
    const addPerson = store.db.prepare("INSERT INTO persons (name, role, created_ms) VALUES (?, 'guest', 0)");
    const addRow = store.db.prepare("INSERT INTO person_embeddings (person_id, vector, photo_sha256, created_ms) VALUES (?, ?, 'bench', 0)");
    const random: Float32Array[] = [];
    store.db.transaction(() => {
      const realPerson = new Map<number, number>();
      for (const e of real.enrolled) {
        if (!realPerson.has(e.personId)) realPerson.set(e.personId, Number(addPerson.run(`real ${e.personId}`).lastInsertRowid));
        addRow.run(realPerson.get(e.personId), Buffer.from(Float32Array.from(e.vector).buffer));
      }
      for (let i = 0; i < n; i++) {
        const v = randomUnit(g);
        random.push(v);
        addRow.run(Number(addPerson.run(`r${i}`).lastInsertRowid), Buffer.from(v.buffer));
      }
    })();
    const rows = n + real.enrolled.length;
    const options = (exactBelow: number) => ({
      dbFile: store.file, dim: DIM, exactBelow, efSearch: defaults.faceIndexEf, m: defaults.faceIndexM, efConstruction: defaults.faceIndexEfConstruction,
    });
    const exact = new FaceSearch({ ...options(Number.MAX_SAFE_INTEGER), dataDir: path.join(dataDir, 'exact') }, log);
    const hnsw = new FaceSearch({ ...options(0), dataDir }, log);
    try {
      await hnsw.whenHnswReady();
      const build = hnsw.lastBuild!;

      const pick = rng(99 + n);
      const sets: Record<string, Float32Array[]> = {
        real: real.queries.map((q) => normalise(Float32Array.from(q.embedding))),
        'near-dup (cos 0.9)': Array.from({ length: nQ }, () => noisy(random[Math.floor(pick() * n)], 0.9)),
        'returning (cos 0.6)': Array.from({ length: nQ }, () => noisy(random[Math.floor(pick() * n)], 0.6)),
        stranger: Array.from({ length: nQ }, () => randomUnit(g)),
      };
      const all = Object.values(sets).flat();
      const truth = new Map<Float32Array, { personId: number; similarity: number } | null>();
      const times = { exact: [] as number[], hnsw: [] as number[] };
      for (const [engine, s] of [['exact', exact], ['hnsw', hnsw]] as const) {
        for (let i = 0; i < 20; i++) await s.search([all[i % all.length]]); // warm-up
        for (const q of all) {
          const t0 = performance.now();
          const [m] = await s.search([q]);
          times[engine].push(performance.now() - t0);
          if (engine === 'exact') truth.set(q, m);
        }
        if (s.lastEngine !== engine) throw new Error(`expected ${engine}, the worker answered with ${s.lastEngine}`);
      }
      // A frame's 5 faces in one message.
      const batch = { exact: [] as number[], hnsw: [] as number[] };
      for (const [engine, s] of [['exact', exact], ['hnsw', hnsw]] as const) {
        for (let f = 0; f < Math.max(20, nQ / 5); f++) {
          const faces = Array.from({ length: 5 }, (_, j) => all[(f * 5 + j) % all.length]);
          const t0 = performance.now();
          await s.search(faces);
          batch[engine].push(performance.now() - t0);
        }
      }
      const ex = summarize(times.exact);
      const hn = summarize(times.hnsw);
      const exB = summarize(batch.exact);
      const hnB = summarize(batch.hnsw);
      timing.push([rows, f3(ex.p50), f3(ex.p95), f3(hn.p50), f3(hn.p95), `${(ex.p50 / hn.p50).toFixed(1)}×`, f2(exB.p50), f2(hnB.p50), f1(build.ms / 1000)]);

      // Recall@1 (same person as the exact scan) and the decision DDFR sends (name if ≥ threshold, else Unknown).
      const row: (string | number)[] = [rows];
      for (const qs of Object.values(sets)) {
        const got = await hnsw.search(qs);
        let same = 0;
        let decision = 0;
        got.forEach((m, i) => {
          const t = truth.get(qs[i]);
          if (m?.personId === t?.personId) same++;
          const a = m && m.similarity >= THRESHOLD ? m.personId : -1;
          const b = t && t.similarity >= THRESHOLD ? t.personId : -1;
          if (a === b) decision++;
        });
        row.push(`${pct(same / qs.length)} / ${pct(decision / qs.length)}`);
      }
      recall.push(row);

      // efSearch sweep on the same graph (the file the worker wrote), in this thread: no message round trip.
      if (n === Math.max(...opts.sizes)) {
        const index = new hnswlib.HierarchicalNSW('ip', DIM);
        await index.readIndex(indexFiles(dataDir).file);
        const labelPerson = new Map<number, number>((store.db.prepare('SELECT id, person_id FROM person_embeddings').all() as { id: number; person_id: number }[]).map((r) => [r.id, r.person_id]));
        for (const ef of opts.efs) {
          index.setEf(ef);
          const t: number[] = [];
          const cells: string[] = [];
          for (const qs of Object.values(sets)) {
            let same = 0;
            for (const q of qs) {
              const t0 = performance.now();
              const r = index.searchKnn(Array.from(q), 1);
              t.push(performance.now() - t0);
              if (labelPerson.get(r.neighbors[0]) === truth.get(q)?.personId) same++;
            }
            cells.push(pct(same / qs.length));
          }
          const s = summarize(t);
          sweep.push([rows, ef, f3(s.p50), f3(s.p95), ...cells, ef === defaults.faceIndexEf ? '← default' : '']);
        }
      }
    } finally {
      await exact.close();
      await hnsw.close();
      store.close();
    }
  }
  const p = `M ${defaults.faceIndexM}, efConstruction ${defaults.faceIndexEfConstruction}, efSearch ${defaults.faceIndexEf}`;
  table(`1:N search through the face search worker (FaceSearch.search round trip, 1 face per message; HNSW ${p})`,
    ['rows', 'exact p50 ms', 'exact p95 ms', 'HNSW p50 ms', 'HNSW p95 ms', 'speed-up (p50)', 'exact 5 faces/msg p50 ms', 'HNSW 5 faces/msg p50 ms', 'HNSW build s'], timing);
  console.log(`  ${nQ * 3} synthetic + ${real.queries.length} real queries per N. The server uses exact below ${defaults.faceIndexExactBelow} rows and HNSW from there (setting face-index-exact-below).`);
  console.log('  HNSW build: on the builder thread, while the exact scan answers; includes writing the index file and reading it back into the search worker.');
  table('HNSW recall@1 vs the exact scan / same decision as the exact scan (name if similarity ≥ 0.4, else Unknown), per query set',
    ['rows', ...Object.keys({ real: 0, 'near-dup (cos 0.9)': 0, 'returning (cos 0.6)': 0, stranger: 0 })], recall);
  console.log('  real: faces from the media photos; near-dup/returning: an indexed random row plus noise at that cosine; stranger: a fresh random');
  console.log('  unit vector, whose best match (cosine ≈ 0.35) is a near-tie among many rows and below the threshold, so Unknown either way.');
  table('efSearch sweep on the largest graph, searched in this thread (no worker round trip): p50/p95 ms and recall@1 per query set',
    ['rows', 'efSearch', 'p50 ms', 'p95 ms', 'real', 'near-dup', 'returning', 'stranger', ''], sweep);
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '15' },
      conns: { type: 'string', default: '1,8' },
      workers: { type: 'string', default: '0' },
      'ort-threads': { type: 'string', default: '0' },
      sizes: { type: 'string', default: '1000,10000,100000' },
      queries: { type: 'string', default: '300' },
      threads: { type: 'string', default: '2' },
      'e2e-index': { type: 'string', default: '100000' },
      'max-wait': { type: 'string', default: '300' },
      'row-wait': { type: 'string', default: '60' },
      'skip-e2e': { type: 'boolean', default: false },
      'skip-search': { type: 'boolean', default: false },
      experiments: { type: 'boolean', default: false },
      efs: { type: 'string', default: '64,128,256,400,800' },
    },
  });
  const t0 = Date.now();
  console.log(`DDFR benchmark — node ${process.version}, ${cores()} cores (${os.cpus()[0]?.model ?? '?'}), UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(default 4)'}`);
  console.log(`loadavg at start: ${load()}`);
  const maxWait = Number(values['max-wait']);
  const real = await endToEnd({
    seconds: Number(values.seconds), conns: values.conns!.split(',').map(Number), maxWait, rowWait: Number(values['row-wait']), measure: !values['skip-e2e'], bigIndex: Number(values['e2e-index']),
    workers: Number(values.workers) || undefined, ortThreads: Number(values['ort-threads']) || undefined,
  });
  const sizes = values.sizes!.split(',').map(Number);
  if (!values['skip-search']) {
    await indexBench({ sizes, queries: Number(values.queries), maxWait, efs: values.efs!.split(',').map(Number) }, real);
  }
  if (values.experiments) {
    await searchBench({ sizes, queries: Number(values.queries), threads: Number(values.threads), maxWait }, real);
  }
  console.log(`\nloadavg at end: ${load()}; took ${Math.round((Date.now() - t0) / 1000)} s`);
}

if (isMainThread) {
  main().catch((err) => { console.error(err); process.exitCode = 1; });
} else if ((workerData as { ddfrScan?: boolean } | null)?.ddfrScan) {
  scanWorkerMain(workerData as ScanShared & { slice: number });
}

/**
 * Detect benchmark: how close does the whole pipeline get to what ONNX Runtime alone can do?
 *
 *   UV_THREADPOOL_SIZE=64 node dist/bench/detect.js [--workers N] [--ort-threads T] [--max-in-flight M]
 *       [--compare-in-flight 3,4] [--raw-frames 200] [--raw-passes 2] [--live-seconds 30]
 *
 * 0. Decode vtest.avi once through the pipeline's own GstSource (decode-only throughput and CPU cost).
 * 1. Raw ORT throughput: letterbox the first frames in the main thread, then run session.run only,
 *    in a Piscina pool with the pipeline's layout (workers × ORT threads), `workers` calls in flight;
 *    repeated after step 2 (1b) to show drift.
 * 2. Whole pipeline offline (decode → detect) on all frames via startApp (again per --compare-in-flight
 *    value); ratio pipeline / raw, CPU by thread, and a per-frame CPU budget.
 * 3. Live: the file in real time, and a test:// source, each for --live-seconds.
 *
 * Prints tables only; no assertions and no pass/fail on timings. On a shared machine, read the "other
 * processes" figures before the fps ones: the CPU-per-frame numbers are the ones that noise barely moves.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Piscina } from 'piscina';
import { parseGraph } from '../app/catalog.js';
import { loadSettings, type ResolvedSettings, type Settings } from '../config/settings.js';
import { startApp, type App } from '../app/app.js';
import { createLogger } from '../core/log.js';
import { GstSource } from '../pipeline/sources/gst-source.js';
import type { Frame } from '../core/types.js';
import type { ModelRef, WorkerTask } from '../inference/protocol.js';
import { YOLOX_INPUT, YOLOX_NMS_IOU, YOLOX_SCORE_THRESHOLD, decodeYolox, letterbox } from '../inference/models/yolox.js';
import type { RawInferResult, RawInferTask } from './raw-infer.worker.js';
import { cores, cpuMeter, cpuNote, threadCpu, threadShares, type CpuUse, type ThreadShare } from './cpu.js';
import { summarize, table, type Summary } from './report.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VTEST = path.join(ROOT, 'media', 'vtest.avi');
const MODEL_DIR = path.join(ROOT, 'models');
const MODEL: ModelRef = { path: path.join(MODEL_DIR, 'yolox_nano.onnx'), kind: 'yolox' };
const PERSON = new Set([0]);
const log = createLogger('warn', 'bench');

// ---------------------------------------------------------------------------------------------------
// Small helpers: percentiles, CPU accounting, table printing.




const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(0)}%` : '-');

/** Prints an aligned table; the first column (or, with 'all', every column) is left-aligned, numbers right. */

// ---------------------------------------------------------------------------------------------------
// prom-client histograms from the app's registry: count, mean and bucket-interpolated percentiles.

interface MetricValues { values: { value: number; labels: Record<string, string | number | undefined>; metricName?: string }[] }

interface HistSummary { count: number; mean: number; p50: number; p95: number }

async function histogram(metric: { get(): Promise<MetricValues> }, labels: Record<string, string>): Promise<HistSummary> {
  const { values } = await metric.get();
  const mine = values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  const count = mine.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
  const sum = mine.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
  const buckets = mine.filter((v) => v.metricName?.endsWith('_bucket') && v.labels.le !== '+Inf')
    .map((v) => [Number(v.labels.le), v.value] as const).sort((a, b) => a[0] - b[0]);
  // Linear interpolation inside the bucket holding the q-th observation (what histogram_quantile does).
  const quantile = (q: number): number => {
    const rank = q * count;
    let lo = 0;
    let below = 0;
    for (const [le, cum] of buckets) {
      if (cum >= rank) return lo + (le - lo) * ((rank - below) / Math.max(1, cum - below));
      lo = le;
      below = cum;
    }
    return Infinity;
  };
  return { count, mean: count ? sum / count : NaN, p50: quantile(0.5), p95: quantile(0.95) };
}

async function counterRows(metric: { get(): Promise<MetricValues> }): Promise<{ labels: Record<string, string>; value: number }[]> {
  const { values } = await metric.get();
  return values.map((v) => ({ labels: Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)])), value: v.value }));
}

async function counterTotal(metric: { get(): Promise<MetricValues> }): Promise<number> {
  return (await counterRows(metric)).reduce((a, r) => a + r.value, 0);
}

// ---------------------------------------------------------------------------------------------------
// 0. Decode once through the pipeline's GstSource.

interface Decoded { frames: Frame[]; total: number; cpu: CpuUse }

/** Decodes the whole file as fast as GStreamer allows (no consumer back-pressure), keeping the first `keep` frames. */
function decodeFile(keep: number): Promise<Decoded> {
  const spec = benchGraph(`{ uri: "file://${VTEST}", realtime: false, loop: false }`).sources.cam;
  return new Promise((resolve, reject) => {
    const source = new GstSource(spec, log.child('decode'));
    const frames: Frame[] = [];
    let total = 0;
    const meter = cpuMeter();
    source.frames.subscribe({
      next: (f) => { total++; if (frames.length < keep) frames.push(f); },
      complete: () => {
        const cpu = meter();
        source.stop('decoded');
        if (source.current === 'failed') reject(new Error(`decode failed: ${source.state.value.reason}`));
        else resolve({ frames, total, cpu });
      },
    });
    source.start();
  });
}

// ---------------------------------------------------------------------------------------------------
// 1. Raw ONNX Runtime throughput.

/** Frames letterboxed in the main thread, outside any timed part. */
interface Prepared {
  tensors: ArrayBuffer[];
  /** Wall ms per call, and process CPU ms per call (the only busy thread then; robust to other processes). */
  letterboxMs: Summary;
  letterboxCpuMs: number;
  width: number;
  height: number;
  scale: number;
}

function prepare(frames: Frame[]): Prepared {
  const ms: number[] = [];
  const tensors: ArrayBuffer[] = [];
  let scale = 1;
  // Warm the JIT first, as a long-running worker is: the timed calls are then the steady-state cost.
  for (const f of frames.slice(0, 10)) letterbox(new Uint8Array(f.data), f.width, f.height, YOLOX_INPUT);
  const meter = cpuMeter();
  for (const f of frames) {
    const t0 = performance.now();
    const lb = letterbox(new Uint8Array(f.data), f.width, f.height, YOLOX_INPUT);
    ms.push(performance.now() - t0);
    tensors.push(lb.tensor.buffer as ArrayBuffer);
    scale = lb.scale;
  }
  const letterboxCpuMs = (meter().cpuS * 1000) / frames.length;
  return { tensors, letterboxMs: summarize(ms), letterboxCpuMs, width: frames[0].width, height: frames[0].height, scale };
}

interface RawResult { calls: number; fps: number; cpu: CpuUse; roundTrip: Summary; run: Summary; outputs: Float32Array[]; scoreColumns?: number[] }

/**
 * session.run only, in a Piscina pool laid out like InferencePool (workers × ortThreads, one task per
 * worker), with `workers` calls in flight. Afterwards collects `sampleOutputs` raw outputs (untimed).
 */
async function rawRun(input: Prepared, settings: ResolvedSettings, passes: number, sampleOutputs = 0): Promise<RawResult> {
  const { tensors } = input;
  if (tensors.length <= settings.workers) throw new Error(`need more than ${settings.workers} frames for the raw run`);
  const pool = new Piscina({
    filename: new URL('./raw-infer.worker.js', import.meta.url).href,
    minThreads: settings.workers,
    maxThreads: settings.workers,
    concurrentTasksPerWorker: 1,
    idleTimeout: Infinity,
    workerData: { ortThreads: settings.ortThreads },
  });
  const call = async (i: number, returnOutput = false): Promise<RawInferResult> => {
    const k = i % tensors.length;
    const task: RawInferTask = { model: MODEL, tensor: tensors[k], size: YOLOX_INPUT, returnOutput };
    const r = await pool.run(task, { transferList: [tensors[k]] }) as RawInferResult;
    tensors[k] = r.tensor!; // transferred back: reused on the next pass
    return r;
  };
  try {
    // Load the model in every worker (one task per worker at a time), then warm each one up.
    await Promise.all(Array.from({ length: settings.workers }, () => pool.run({ model: MODEL } satisfies RawInferTask)));
    await lanes(settings.workers, settings.workers * 5, (i) => call(i));

    const calls = tensors.length * passes;
    const roundTrip: number[] = [];
    const run: number[] = [];
    const meter = cpuMeter();
    await lanes(settings.workers, calls, async (i) => {
      const t0 = performance.now();
      const r = await call(i);
      roundTrip.push(performance.now() - t0);
      run.push(r.runMs);
    });
    const cpu = meter();

    const sampled: RawInferResult[] = [];
    for (let i = 0; i < sampleOutputs; i++) sampled.push(await call(i, true));
    const outputs = sampled.map((r) => new Float32Array(r.output!));
    return { calls, fps: calls / cpu.wallS, cpu, roundTrip: summarize(roundTrip), run: summarize(run), outputs, scoreColumns: sampled[0]?.scoreColumns };
  } finally {
    await pool.close({ force: true });
  }
}

/** What the pipeline's worker adds after session.run: YOLOX decoding + NMS, persons only. */
function decoderCost(input: Prepared, outputs: Float32Array[], scoreColumns?: number[]): Summary {
  const decode = (out: Float32Array): void => void decodeYolox(out, {
    scoreThreshold: YOLOX_SCORE_THRESHOLD, nmsIou: YOLOX_NMS_IOU, classIds: PERSON,
    scoreColumns,
    width: input.width, height: input.height, scale: input.scale,
  });
  for (let pass = 0; pass < 5; pass++) outputs.forEach(decode); // JIT warm-up
  return summarize(outputs.map((out) => {
    const t0 = performance.now();
    decode(out);
    return performance.now() - t0;
  }));
}

/** Runs `task(0..total-1)` with `concurrency` calls in flight. */
async function lanes(concurrency: number, total: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => { while (next < total) await task(next++); };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

// ---------------------------------------------------------------------------------------------------
// 2 and 3. The whole pipeline through startApp.

function benchGraph(source: string) {
  return parseGraph(`
sources:
  cam: ${source}
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  cam:
    source: cam
    stages:
      - id: detect
        use: detect
        with: { model: people, classes: [person], score: 0.3, nmsIou: 0.45 }
`, 'bench.yaml');
}

interface Sink { seq: number; capturedAtMs: number; atMs: number; latencyMs: number; perfMs: number }

/** How well the pipeline keeps the inference pool fed, from timestamps around InferencePool.run. */
interface PoolFeed {
  /** Share of the busy span (first detect submitted → last one done) with fewer than `workers` tasks running. */
  underfilled: number;
  /** Per frame: result back in the main thread → packet at the sink (in-order hold + chain). */
  hold: Summary;
}

/**
 * Wraps the app's pool.run (the detect stage looks it up per call) to timestamp detect tasks. Tasks are
 * submitted in frame order, so the i-th detect task is the i-th frame at the sink.
 */
function watchPool(app: App, workers: number): (sinks: Sink[]) => PoolFeed {
  const pool = app.pool;
  const run = pool.run.bind(pool);
  const done: number[] = [];
  let running = 0;
  let since = 0;
  let first = 0;
  let last = 0;
  let underMs = 0;
  const change = (delta: number): void => {
    const now = performance.now();
    if (running < workers && first) underMs += now - since;
    running += delta;
    since = now;
  };
  pool.run = (<R>(task: WorkerTask, transfer?: ArrayBuffer[]): Promise<R> => {
    if (task.op !== 'detect') return run<R>(task, transfer);
    const i = done.length;
    done.push(NaN);
    if (!first) { first = performance.now(); since = first; }
    change(+1);
    return run<R>(task, transfer).finally(() => { done[i] = last = performance.now(); change(-1); });
  }) as typeof pool.run;
  return (sinks) => ({
    underfilled: underMs / Math.max(1, last - first),
    hold: summarize(sinks.slice(0, done.length).map((s, i) => s.perfMs - done[i]).filter(Number.isFinite)),
  });
}

interface PipelineRun {
  sinks: Sink[];
  startupMs: number;
  cpu: CpuUse;
  /** Per-thread CPU from the end of startApp to the end of the run. */
  threads: ThreadShare[];
  feed: PoolFeed;
  framesIn: number;
  processed: number;
  dropped: { reason: string; value: number }[];
  stage: HistSummary;
  inference: HistSummary;
}

/** Starts the app on `source`, collects sink events until the app ends or `seconds` pass, then stops it. */
async function runPipeline(source: string, settings: ResolvedSettings, seconds?: number): Promise<PipelineRun> {
  const t0 = performance.now();
  const meter = cpuMeter();
  const app = await startApp(benchGraph(source), settings, { serve: false, log });
  const startupMs = performance.now() - t0;
  const threads0 = threadCpu();
  const feed = watchPool(app, settings.workers);
  const sinks: Sink[] = [];
  app.bus.on('detections').subscribe((d) => {
    const atMs = Date.now();
    sinks.push({ seq: d.seq, capturedAtMs: d.capturedAtMs, atMs, latencyMs: atMs - d.capturedAtMs, perfMs: performance.now() });
  });
  if (seconds === undefined) {
    await app.runtime.whenDone();
  } else {
    await Promise.race([app.runtime.whenDone(), new Promise((r) => setTimeout(r, seconds * 1000))]);
  }
  const cpu = meter();
  const threads = threadShares(threads0, threadCpu(), cpu.wallS - startupMs / 1000, settings.workers);
  await app.stop();
  const m = app.metrics;
  return {
    sinks, startupMs, cpu, threads, feed: feed(sinks),
    framesIn: await counterTotal(m.framesIn),
    processed: await counterTotal(m.framesProcessed),
    dropped: (await counterRows(m.framesDropped)).map((r) => ({ reason: r.labels.reason, value: r.value })),
    stage: await histogram(m.stageLatency, { pipeline: 'cam', stage: 'detect' }),
    inference: await histogram(m.inferenceSeconds, { model: 'people' }),
  };
}

/** Frames per second between the sink receipts of the `skip`-th and the last frame. */
function sinkFps(sinks: Sink[], skip: number): number {
  if (sinks.length <= skip + 1) return NaN;
  const first = skip === 0 ? Math.min(...sinks.map((s) => s.capturedAtMs)) : sinks[skip].atMs;
  return (sinks.length - skip) / ((sinks[sinks.length - 1].atMs - first) / 1000);
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      workers: { type: 'string' }, 'ort-threads': { type: 'string' }, 'max-in-flight': { type: 'string' },
      'raw-frames': { type: 'string', default: '200' }, 'raw-passes': { type: 'string', default: '2' },
      'live-seconds': { type: 'string', default: '30' },
      'compare-in-flight': { type: 'string', default: '' },
    },
    strict: true,
  });
  // A scratch data directory, so the bench never touches the repository's data/ (store, keys).
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sightline-bench-'));
  process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const overrides: Partial<Settings> = { modelDir: MODEL_DIR, dataDir, logLevel: 'warn', host: '127.0.0.1' };
  if (flags.workers) overrides.workers = Number(flags.workers);
  if (flags['ort-threads']) overrides.ortThreads = Number(flags['ort-threads']);
  if (flags['max-in-flight']) overrides.maxInFlight = Number(flags['max-in-flight']);
  const settings = loadSettings([], process.env, overrides);
  const rawFrames = Number(flags['raw-frames']);
  const rawPasses = Number(flags['raw-passes']);
  const liveSeconds = Number(flags['live-seconds']);
  const compareInFlight = (flags['compare-in-flight'] ?? '').split(',').filter(Boolean).map(Number);

  const cpu = os.cpus()[0];
  table('Machine and layout', ['item', 'value'], [
    ['cpu', `${cpu?.model ?? 'unknown'} (${cores()} cores available, ${os.cpus().length} reported)`],
    ['memory', `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`],
    ['node / platform', `${process.version} / ${process.platform}-${process.arch}`],
    ['UV_THREADPOOL_SIZE', process.env.UV_THREADPOOL_SIZE ?? '(unset: 4)'],
    ['workers x ORT threads', `${settings.workers} x ${settings.ortThreads} (= ${settings.workers * settings.ortThreads} threads)`],
    ['maxInFlight', settings.maxInFlight],
    ['model', `${path.basename(MODEL.path)} at ${YOLOX_INPUT}x${YOLOX_INPUT}`],
  ]);
  if (!process.env.UV_THREADPOOL_SIZE) console.log('warning: UV_THREADPOOL_SIZE is unset; GStreamer sources may starve the libuv pool');
  if (settings.maxInFlight < settings.workers) {
    console.log(`note: maxInFlight ${settings.maxInFlight} < workers ${settings.workers}: one pipeline cannot keep every worker busy`);
  }

  // 0. Decode.
  const decoded = await decodeFile(rawFrames);
  const decodeCpuMs = (decoded.cpu.cpuS * 1000) / decoded.total;
  table('0. Decode only (GstSource, offline, no stages)', ['frames', 'size', 'wall s', 'fps', 'CPU ms/frame'], [
    [decoded.total, `${decoded.frames[0].width}x${decoded.frames[0].height}`, f2(decoded.cpu.wallS),
      f1(decoded.total / decoded.cpu.wallS), f2(decodeCpuMs)],
  ]);
  console.log(`   CPU: ${cpuNote(decoded.cpu)}`);

  // 1. Raw ORT, before the pipeline; repeated after it to show drift on a shared machine.
  const input = prepare(decoded.frames);
  decoded.frames.length = 0;
  const raw = await rawRun(input, settings, rawPasses, 20);
  const rawTable = (title: string, r: RawResult): void => {
    table(`${title} (session.run only, ${r.calls} calls over ${input.tensors.length} letterboxed frames, ${settings.workers} in flight)`,
      ['metric', 'fps', 'mean ms', 'p50 ms', 'p95 ms', 'max ms'], [
        ['throughput', f1(r.fps), '', '', '', ''],
        ['per call, round trip (main)', '', f2(r.roundTrip.mean), f2(r.roundTrip.p50), f2(r.roundTrip.p95), f2(r.roundTrip.max)],
        ['per call, session.run (worker)', '', f2(r.run.mean), f2(r.run.p50), f2(r.run.p95), f2(r.run.max)],
      ]);
    console.log(`   CPU: ${cpuNote(r.cpu)}`);
  };
  rawTable('1. Raw ONNX Runtime', raw);

  // 2. Whole pipeline, offline: the settings as given, then any --compare-in-flight variants.
  const variants = [settings, ...compareInFlight.map((m) => ({ ...settings, maxInFlight: m }))];
  const offline: { label: string; r: PipelineRun; fpsAll: number; fpsSteady: number; lat: Summary }[] = [];
  const warm = 2 * settings.workers;
  for (const v of variants) {
    const r = await runPipeline(`{ uri: "file://${VTEST}", realtime: false, loop: false }`, v);
    offline.push({
      label: `maxInFlight ${v.maxInFlight}`, r, fpsAll: sinkFps(r.sinks, 0), fpsSteady: sinkFps(r.sinks, warm),
      lat: summarize(r.sinks.map((x) => x.latencyMs)),
    });
  }
  const ms = (h: HistSummary): string => `${f1(h.mean * 1000)} / ${f1(h.p50 * 1000)} / ${f1(h.p95 * 1000)} ms`;
  const row = (name: string, f: (o: typeof offline[number]) => string): string[] => [name, ...offline.map(f)];
  table('2. Whole pipeline offline (decode -> detect), vtest.avi, realtime: false', ['metric', ...offline.map((o) => o.label)], [
    row('frames in / processed / dropped', (o) => `${o.r.framesIn} / ${o.r.processed} / ${o.r.dropped.reduce((a, d) => a + d.value, 0)}`),
    row('startApp (pool + model preload)', (o) => `${f1(o.r.startupMs)} ms`),
    row('fps, first capture -> last sink', (o) => f1(o.fpsAll)),
    row(`fps, steady (after first ${warm} frames)`, (o) => f1(o.fpsSteady)),
    row('fps, wall incl. startup and stop', (o) => f1(o.r.sinks.length / o.r.cpu.wallS)),
    row('capture->sink latency p50 / p95 / max', (o) => `${f1(o.lat.p50)} / ${f1(o.lat.p95)} / ${f1(o.lat.max)} ms`),
    row(`capture->sink latency, first ${settings.workers} frames`, (o) => o.r.sinks.slice(0, settings.workers).map((x) => x.latencyMs).join(', ') + ' ms'),
    row('stage latency mean / ~p50 / ~p95', (o) => ms(o.r.stage)),
    row('inference (session.run) mean / ~p50 / ~p95', (o) => ms(o.r.inference)),
    row('stage - inference (letterbox, decode, transfer)', (o) => `${f1((o.r.stage.mean - o.r.inference.mean) * 1000)} ms mean`),
    row('pool under-filled (< workers tasks running)', (o) => `${pct(o.r.feed.underfilled)} of busy span`),
    row('result -> sink hold mean / p95 (in-order wait)', (o) => `${f1(o.r.feed.hold.mean)} / ${f1(o.r.feed.hold.p95)} ms`),
    row('process CPU per frame', (o) => `${f2((o.r.cpu.cpuS * 1000) / o.r.processed)} ms`),
    row('process CPU', (o) => `${pct(o.r.cpu.utilization)} of ${cores()} cores`),
    row('other processes / steal', (o) => `${f2(o.r.cpu.otherCores)} / ${f2(o.r.cpu.stealCores)} cores`),
  ]);
  console.log('   ~p50/~p95 are interpolated from the Prometheus histogram buckets');
  if (offline[0].r.threads.some((t) => t.cpuS > 0)) {
    table('2b. Offline pipeline: CPU by thread after startApp (busy = CPU s / wall s)', ['thread', ...offline.map((o) => o.label)],
      offline[0].r.threads.map((t, i) => [t.label, ...offline.map((o) => `${f2(o.r.threads[i].cpuS)} s ${pct(o.r.threads[i].busy).padStart(4)}`)]));
  }

  const rawAfter = await rawRun(input, settings, rawPasses);
  rawTable('1b. Raw ONNX Runtime again, after the pipeline', rawAfter);

  // Ratios. fps ratios move with whatever else runs on the machine; the CPU-per-frame ratio barely does,
  // and is the ceiling of the fps ratio whenever the cores are the bottleneck.
  const rawMean = (raw.fps + rawAfter.fps) / 2;
  const rawCpuMs = Math.min(raw.cpu.cpuS / raw.calls, rawAfter.cpu.cpuS / rawAfter.calls) * 1000;
  table('Ratio pipeline / raw (target >= 0.90)', ['pipeline', 'measure', 'pipeline', 'raw', 'ratio'], offline.flatMap((o) => {
    const cpuMs = (o.r.cpu.cpuS * 1000) / o.r.processed;
    return [
      [o.label, 'fps steady vs raw before', f1(o.fpsSteady), f1(raw.fps), f2(o.fpsSteady / raw.fps)],
      [o.label, 'fps steady vs raw after', f1(o.fpsSteady), f1(rawAfter.fps), f2(o.fpsSteady / rawAfter.fps)],
      [o.label, 'fps steady vs raw mean', f1(o.fpsSteady), f1(rawMean), f2(o.fpsSteady / rawMean)],
      [o.label, 'fps all frames vs raw mean', f1(o.fpsAll), f1(rawMean), f2(o.fpsAll / rawMean)],
      [o.label, 'CPU ms/frame (raw / pipeline)', f2(cpuMs), f2(rawCpuMs), f2(rawCpuMs / cpuMs)],
    ];
  }));
  const decoder = decoderCost(input, raw.outputs, raw.scoreColumns);
  // Process CPU per raw call, not session.run wall time (which other processes on the machine inflate).
  const inferCpu = rawCpuMs;
  const budget = decodeCpuMs + input.letterboxCpuMs + inferCpu + decoder.mean;
  table('Per-frame CPU budget (CPU ms per frame, measured in isolation)', ['part', 'ms/frame', 'share'], [
    ['GStreamer decode + convert (process CPU / frame, step 0)', f2(decodeCpuMs), pct(decodeCpuMs / budget)],
    [`letterbox 768x576 -> 416 (JS, main thread, step 1; wall p50 ${f2(input.letterboxMs.p50)})`, f2(input.letterboxCpuMs), pct(input.letterboxCpuMs / budget)],
    ['session.run (process CPU per raw call, lower of 1/1b)', f2(inferCpu), pct(inferCpu / budget)],
    ['decodeYolox + NMS, persons (JS, main thread, wall)', f2(decoder.mean), pct(decoder.mean / budget)],
    ['total', f2(budget), ''],
    [`CPU-bound ceiling on ${cores()} cores`, `${f1((cores() * 1000) / budget)} fps`, ''],
    ...offline.map((o) => [`offline pipeline (${o.label}), measured process CPU`, f2((o.r.cpu.cpuS * 1000) / o.r.processed), '']),
  ]);

  // 3. Live.
  const live = [
    { name: 'file, realtime: true (10 fps)', source: `{ uri: "file://${VTEST}", realtime: true, loop: true }` },
    { name: 'test://smpte 768x576 @ 10 fps', source: '{ uri: "test://smpte", width: 768, height: 576, fps: 10 }' },
  ];
  const liveRows: (string | number)[][] = [];
  for (const l of live) {
    const r = await runPipeline(l.source, settings, liveSeconds);
    const s = summarize(r.sinks.map((x) => x.latencyMs));
    const byReason = r.dropped.filter((d) => d.value > 0).map((d) => `${d.reason} ${d.value}`).join(', ') || 'none';
    liveRows.push([l.name, f1(r.cpu.wallS), Math.round(r.cpu.wallS * 10), r.framesIn, r.processed, byReason,
      f1(s.p50), f1(s.p95), f1(s.max), f1(r.stage.mean * 1000), f1(r.inference.mean * 1000), pct(r.cpu.utilization),
      f2(r.cpu.otherCores)]);
  }
  table(`3. Live mode, ~${liveSeconds} s each (latency = capture -> sink)`,
    ['source', 'wall s', 'nominal', 'in', 'processed', 'dropped by reason', 'p50 ms', 'p95 ms', 'max ms', 'stage ms', 'infer ms', 'CPU', 'other cores'],
    liveRows);
  console.log('   nominal = wall s x 10 fps; frames GStreamer drops before the appsink (max-buffers=1 drop=true) are not counted as "in"');
}

main().then(
  () => { process.exitCode = 0; },
  (err: unknown) => { console.error(err); process.exitCode = 1; },
);

/**
 * Capacity: how many cameras one machine carries in real time, and what each frame costs.
 *
 *   node dist/bench/capacity.js [--chain counting|full] [--cameras 8,12,16] [--seconds 40] [--warmup 10]
 *       [--source file|rtsp] [--every 1] [--motion] [--peer path/to/peer_ort.py --peer-python python3] [--offline-runs 3]
 *       [--skip-live] [--default-gc]
 *
 * Live: N cameras, each the sample video played in real time at 640×360, 10 fps (a file source, or clients of one
 * RTSP test server), through the counting chain (detect → track → count) or the default graph's chain (+ faces every 2,
 * pose, activity, annotate). Per camera: frames in, processed, dropped by reason, p50/p95 capture→sink latency and
 * processed fps; over all: fairness (min and max processed fps), CPU ms per frame by thread, and whether the run
 * holds the target (p95 ≤ 150 ms, drops ≤ 1 %).
 *
 * Offline: `sightline process` on the sample video with detection only, whole process against `peer_ort.py` (OpenCV
 * decode + onnxruntime, frame after frame), alternating runs, wall time and peak RSS; the ratio is what counts. Twice:
 * at the file's own size (the detector's input is sampled from it in the worker) and with the source configured at
 * the detector's input size (GStreamer scales in C; boxes are then in 416×312 pixels).
 *
 * Prints tables only; nothing here is asserted. On a shared machine, read the CPU-per-frame figures first.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseGraph } from '../app/catalog.js';
import { startApp } from '../app/app.js';
import { ALLOCATOR_ENV } from '../app/allocator.js';
import { tuneGc } from '../app/gc-tuning.js';
import { loadSettings } from '../config/settings.js';
import { createLogger } from '../core/log.js';
import { startRtspServer, type RtspServer } from '../test/rtsp-server.js';
import { cores, cpuMeter, cpuNote, threadCpu, threadShares } from './cpu.js';
import { percentile, rerunWithThreadpool, table, waitForQuietMachine } from './report.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VTEST = path.join(ROOT, 'media', 'vtest.avi');
const BIN = path.join(ROOT, 'dist', 'bin', 'sightline.cjs');

const { values: args } = parseArgs({
  options: {
    chain: { type: 'string', default: 'counting' },
    cameras: { type: 'string', default: '4,8,12' },
    seconds: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '10' },
    source: { type: 'string', default: 'file' },
    every: { type: 'string', default: '1' },
    motion: { type: 'boolean', default: false },
    peer: { type: 'string' },
    'peer-python': { type: 'string', default: 'python3' },
    'offline-runs': { type: 'string', default: '3' },
    'skip-live': { type: 'boolean', default: false },
    'default-gc': { type: 'boolean', default: false },
  },
});

const f0 = (v: number): string => (Number.isFinite(v) ? v.toFixed(0) : '-');
const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-');

/** The stages of a camera's pipeline. */
function chainYaml(chain: string, every: number, motion: boolean): string {
  const detect = `      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.1${every > 1 ? `, every: ${every}` : ''}${motion ? ', motion: {}' : ''} } }`;
  const counting = [detect, '      - { id: track, use: track }',
    '      - { id: count, use: count, with: { line: [[0.5, 0.0], [0.5, 1.0]], event: { windowSeconds: 60, minIn: 5, holdSeconds: 20 } } }'];
  if (chain === 'counting') return counting.join('\n');
  return [...counting,
    '      - { id: faces, use: faces, with: { model: faces, every: 2, save: true, score: 0.7 } }',
    '      - { id: pose, use: pose, with: { model: pose, every: 2, visibility: 0.2, maxPersons: 12, minHeight: 32 } }',
    '      - { id: activity, use: activity, with: { fallSpeed: 0.8, lyingSeconds: 1.5 } }',
    '      - { id: annotate, use: annotate, with: { quality: 70, fps: 15 } }'].join('\n');
}

function liveGraph(n: number, uri: (i: number) => string, chain: string, every: number, motion: boolean): string {
  const sources = Array.from({ length: n }, (_, i) => `  cam${i}: { uri: "${uri(i)}", width: 640, height: 360, fps: 10${uri(i).startsWith('file') ? ', realtime: true, loop: true' : ''} }`);
  const pipelines = Array.from({ length: n }, (_, i) => `  cam${i}:\n    source: cam${i}\n    stages:\n${chainYaml(chain, every, motion)}`);
  return `sources:\n${sources.join('\n')}
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  pose: { file: pose_ultralight_nano_simplepose_256x192.onnx, kind: simplepose }
pipelines:\n${pipelines.join('\n')}\n`;
}

interface CameraRow { id: string; framesIn: number; processed: number; drops: Record<string, number>; lat: number[]; fps: number }

async function liveRun(n: number, chain: string, every: number, motion: boolean, rtsp: RtspServer | null): Promise<void> {
  await waitForQuietMachine(`${n} cameras`, 120);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sightline-capacity-'));
  const settings = { ...loadSettings([], process.env), host: '127.0.0.1', logLevel: 'warn' as const, dataDir };
  const uri = (i: number): string => (rtsp ? rtsp.url : `file://${VTEST}`) + (rtsp ? '' : `?camera=${i}`);
  const graph = parseGraph(liveGraph(n, uri, chain, every, motion), 'capacity.yaml');
  const app = await startApp(graph, settings, { serve: false, log: createLogger('warn', 'bench') });
  const warmupMs = Number(args.warmup) * 1000;
  const seconds = Number(args.seconds);
  await new Promise((r) => setTimeout(r, warmupMs));
  // Counters from here on: frames in per source, drops per pipeline and reason, sink latencies per pipeline.
  const snapshot = async () => {
    // Copies: prom-client hands out its live objects.
    const get = async (m: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> }) =>
      (await m.get()).values.map((v) => ({ value: v.value, labels: { ...v.labels } }));
    return { framesIn: await get(app.metrics.framesIn), processed: await get(app.metrics.framesProcessed), dropped: await get(app.metrics.framesDropped) };
  };
  const before = await snapshot();
  const lat = new Map<string, number[]>();
  const sub = app.bus.on('packet').subscribe((p) => {
    let l = lat.get(p.pipeline);
    if (!l) lat.set(p.pipeline, (l = []));
    l.push(Date.now() - p.frame.capturedAtMs);
  });
  const threads0 = threadCpu();
  const cpu = cpuMeter();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const use = cpu();
  const threads1 = threadCpu();
  sub.unsubscribe();
  const after = await snapshot();
  await app.stop();
  rmSync(dataDir, { recursive: true, force: true });

  const delta = (list: 'framesIn' | 'processed' | 'dropped', match: (l: Record<string, unknown>) => boolean): number =>
    after[list].filter((v) => match(v.labels)).reduce((a, v) => a + v.value, 0) - before[list].filter((v) => match(v.labels)).reduce((a, v) => a + v.value, 0);
  const rows: CameraRow[] = Array.from({ length: n }, (_, i) => {
    const id = `cam${i}`;
    const processed = delta('processed', (l) => l.pipeline === id);
    const drops: Record<string, number> = {};
    for (const reason of ['stale', 'late', 'stage_error']) drops[reason] = delta('dropped', (l) => l.pipeline === id && l.reason === reason);
    return { id, framesIn: delta('framesIn', (l) => l.source === id), processed, drops, lat: lat.get(id) ?? [], fps: processed / seconds };
  });
  const all = rows.flatMap((r) => r.lat);
  const framesIn = rows.reduce((a, r) => a + r.framesIn, 0);
  const processed = rows.reduce((a, r) => a + r.processed, 0);
  const dropped = rows.reduce((a, r) => a + Object.values(r.drops).reduce((x, y) => x + y, 0), 0);
  const fps = rows.map((r) => r.fps);
  const mean = fps.reduce((a, v) => a + v, 0) / fps.length;
  table(`${n} cameras, ${chain} chain${every > 1 ? `, detect every ${every}` : ''}${motion ? ', motion gating' : ''}, ${args.source} sources, ${seconds} s`,
    ['camera', 'in', 'processed', 'stale', 'late', 'error', 'p50 ms', 'p95 ms', 'fps'],
    rows.map((r) => [r.id, r.framesIn, r.processed, r.drops.stale, r.drops.late, r.drops.stage_error,
      f0(percentile(r.lat, 0.5)), f0(percentile(r.lat, 0.95)), f1(r.fps)]));
  const p95 = percentile(all, 0.95);
  const dropShare = dropped / Math.max(1, framesIn);
  console.log(`all: p50 ${f0(percentile(all, 0.5))} ms, p95 ${f0(p95)} ms; drops ${(dropShare * 100).toFixed(1)} % of ${framesIn} frames in; `
    + `fps per camera min ${f1(Math.min(...fps))} / mean ${f1(mean)} / max ${f1(Math.max(...fps))} `
    + `(spread ${f0((Math.max(...fps) - Math.min(...fps)) / Math.max(0.01, mean) * 50)} % around the mean)`);
  console.log(`CPU: ${cpuNote(use)}; ${f1((use.cpuS * 1000) / Math.max(1, processed))} ms per processed frame`);
  table('CPU per processed frame, by thread', ['thread', 'ms/frame', 'busy'],
    threadShares(threads0, threads1, use.wallS, settings.workers).map((s) => [s.label, f1((s.cpuS * 1000) / Math.max(1, processed)), `${(s.busy * 100).toFixed(0)}%`]));
  console.log(`verdict: ${p95 <= 150 && dropShare <= 0.01 ? 'HOLDS' : 'does not hold'} (p95 ≤ 150 ms and drops ≤ 1 %)`);
}

/** Runs a command, returning wall seconds and its peak RSS (MiB), from GNU time. */
function timed(cmd: string, cmdArgs: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ wallS: number; rssMiB: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-v', cmd, ...cmdArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('exit', (code) => {
      const wallS = (performance.now() - t0) / 1000;
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      if (code !== 0) reject(new Error(`${cmd} exited with ${code}: ${err.slice(-500)}`));
      else resolve({ wallS, rssMiB: rss ? Number(rss[1]) / 1024 : NaN, out });
    });
  });
}

/** The offline graph: detection only, at the file's own size or with the source scaled to the model's input by GStreamer. */
function offlineGraph(modelSize: boolean): string {
  const size = modelSize ? ', width: 416, height: 312' : '';
  return `sources:\n  plaza: { uri: "file://${VTEST}"${size} }\nmodels:\n  people: { file: yolox_nano.onnx, kind: yolox }\n`
    + 'pipelines:\n  plaza:\n    source: plaza\n    stages:\n      - { id: detect, use: detect, with: { model: people, classes: [person] } }\n';
}

async function offline(): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sightline-offline-'));
  const variants = [
    { label: 'sightline process, 768×576 (the file\'s size)', graph: offlineGraph(false) },
    { label: 'sightline process, source at 416×312', graph: offlineGraph(true) },
  ].map((v, i) => {
    const file = path.join(dataDir, `detect-${i}.yaml`);
    writeFileSync(file, v.graph);
    return { ...v, file, runs: [] as { wallS: number; rssMiB: number }[], frames: 0 };
  });
  const runs = Number(args['offline-runs']);
  const peer: { wallS: number; rssMiB: number }[] = [];
  await waitForQuietMachine('offline', 120);
  const output = path.join(dataDir, 'out.jsonl');
  for (let i = 0; i < runs; i++) {
    for (const v of variants) {
      v.runs.push(await timed(process.execPath, [BIN, 'process', v.file, '--input', VTEST, '--output', output, '--data-dir', dataDir, '--log-level', 'warn'],
        { ...process.env, ...ALLOCATOR_ENV }));
      v.frames = readFileSync(output, 'utf8').split('\n').filter((l) => l.startsWith('{"pipeline"')).length;
    }
    if (args.peer) peer.push(await timed(args['peer-python'], [args.peer, VTEST, path.join(ROOT, 'models', 'yolox_nano.onnx'), String(cores())]));
  }
  rmSync(dataDir, { recursive: true, force: true });
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const peerWall = peer.length ? med(peer.map((r) => r.wallS)) : NaN;
  const rows: (string | number)[][] = variants.map((v) => {
    const wall = med(v.runs.map((r) => r.wallS));
    return [v.label, f1(wall), f0(med(v.runs.map((r) => r.rssMiB))), v.frames, peer.length ? `${(peerWall / wall).toFixed(2)}×` : '-'];
  });
  if (peer.length) rows.push(['peer_ort.py (OpenCV + onnxruntime)', f1(peerWall), f0(med(peer.map((r) => r.rssMiB))), '-', '1.00×']);
  table(`offline detect-only on vtest.avi, median of ${runs} alternating runs`, ['run', 'wall s', 'peak RSS MiB', 'frames', 'speed vs peer'], rows);
}

async function main(): Promise<void> {
  // As `sightline run` does; --default-gc measures without it.
  if (!args['default-gc']) tuneGc();
  console.log(`capacity on ${cores()} cores (${os.cpus()[0]?.model ?? 'cpu'}), load ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  if (!args['skip-live']) {
    const rtsp = args.source === 'rtsp' ? await startRtspServer({ fps: 10 }) : null;
    try {
      for (const n of args.cameras.split(',').map(Number)) await liveRun(n, args.chain, Number(args.every), args.motion, rtsp);
    } finally {
      await rtsp?.stop('SIGTERM');
    }
  }
  if (Number(args['offline-runs']) > 0) await offline();
}

if (!rerunWithThreadpool()) await main();

/** The `sightline` command as a user runs it: a child process, real files, real signals. */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { media, metric } from './helpers.js';

const BIN = path.resolve('dist/bin/sightline.cjs');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sightline-cli-'));

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function sightline(args: string[], opts: { onStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); opts.onStderr?.(stderr, child); });
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function writeGraph(name: string, yaml: string): string {
  const file = path.join(tmp, name);
  writeFileSync(file, yaml);
  return file;
}

const DETECT_GRAPH = (uri: string, extra = '') => `sources:
  cam: { uri: "${uri}" }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  main:
    source: cam
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person] } }
${extra}`;

test('validate: an invalid graph exits 2 naming file, line and key', async (t) => {
  const file = writeGraph('bad.yaml', DETECT_GRAPH('file://x.avi').replace('use: detect', 'use: detekt'));
  const r = await sightline(['validate', file]);
  t.is(r.code, 2);
  t.regex(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:9:\\d+: pipelines\\.main\\.stages\\[0\\]\\.use: unknown stage "detekt"`));
  const ok = await sightline(['validate', writeGraph('ok.yaml', DETECT_GRAPH('file://x.avi'))]);
  t.is(ok.code, 0);
  t.regex(ok.stdout, /ok \(1 sources, 1 pipelines\)/);
  t.is(ok.stderr, '');
  // A graph that loads but will not do what it seems to: a warning with file, line and key, and exit 0.
  const counter = writeGraph('counter.yaml', DETECT_GRAPH('file://x.avi', 'transports:\n  people-counter: { pipeline: main }\n'));
  const warned = await sightline(['validate', counter]);
  t.is(warned.code, 0);
  t.regex(warned.stderr, new RegExp(`^warning: ${counter.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:11:\\d+: transports\\.people-counter\\.pipeline: pipeline "main" produces no JPEG`));
});

test('unknown commands and flags exit 2 with usage', async (t) => {
  t.is((await sightline(['frobnicate', 'x.yaml'])).code, 2);
  const r = await sightline(['run', 'x.yaml', '--no-such-flag']);
  t.is(r.code, 2);
  t.regex(r.stderr, /Usage:/);
  t.regex((await sightline(['run', path.join(tmp, 'missing.yaml')])).stderr, /cannot read graph file/);
});

test('process: a file runs to its end with progress, JSON lines and a summary', async (t) => {
  const out = path.join(tmp, 'vtest.jsonl');
  const graphFile = writeGraph('proc.yaml', DETECT_GRAPH('file://ignored.avi'));
  const r = await sightline(['process', graphFile, '--input', media('vtest.avi'), '--output', out]);
  t.is(r.code, 0, r.stderr);
  const all = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const lines = all.slice(0, -1) as { frame: number; detections: { label: string; score: number; box: number[] }[] }[];
  t.is(lines.length, 795);
  // Only what the pipeline computes: a detect stage alone gives detections and nothing else.
  t.deepEqual(Object.keys(lines[0]), ['pipeline', 'source', 'frame', 'ptsMs', 'width', 'height', 'detections']);
  const { summary } = all[all.length - 1];
  t.like(summary, { frames: 795, dropped: 0, pipelines: { main: { frames: 795, stageErrors: 0 } } });
  t.deepEqual(Object.keys(summary.pipelines.main), ['frames', 'detections', 'stageErrors']);
  t.is(summary.pipelines.main.detections.person, lines.reduce((n, l) => n + l.detections.filter((d) => d.label === 'person').length, 0));
  t.deepEqual(lines.slice(0, 3).map((l) => l.frame), [0, 1, 2]);
  t.true(lines[100].detections.filter((d) => d.label === 'person' && d.score >= 0.3).length >= 4);
  t.regex(r.stderr, /\d+\/795 frames\s+[\d.]+ fps\s+ETA \d+:\d\d/);
  t.regex(r.stderr, /frames:\s+795 in [\d.]+ s \([\d.]+ fps\)/);
  t.regex(r.stderr, /dropped:\s+0/);
  t.regex(r.stderr, /detections: person \d+/);
});

test('process: a corrupt input fails with exit 1 and the reason', async (t) => {
  const bad = path.join(tmp, 'garbage.mp4');
  writeFileSync(bad, Buffer.alloc(50_000, 7));
  const r = await sightline(['process', writeGraph('proc2.yaml', DETECT_GRAPH('file://x.avi')), '--input', bad, '--output', path.join(tmp, 'g.jsonl')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /FAILED:\s+pipeline main: .+/);
});

test('run: serves /metrics while running and exits cleanly on SIGTERM', async (t) => {
  const port = 19000 + Math.floor(Math.random() * 1000);
  const graphFile = writeGraph('run.yaml', DETECT_GRAPH('test://ball?num-buffers=100000', `transports:\n  metrics: { port: ${port} }\n`)
    .replace('{ uri: "test://ball?num-buffers=100000" }', '{ uri: "test://ball?num-buffers=100000", width: 320, height: 240, fps: 10 }'));
  let scraped = '';
  const r = await sightline(['run', graphFile, '--host', '127.0.0.1'], {
    onStderr: (text, child) => {
      if (scraped || !text.includes('pipeline main running')) return;
      scraped = 'pending';
      // Let a few frames through, then scrape and stop.
      setTimeout(() => {
        void fetch(`http://127.0.0.1:${port}/metrics`).then((res) => res.text()).then((body) => {
          scraped = body;
          child.kill('SIGTERM');
        });
      }, 1500);
    },
  });
  t.is(r.code, 0, r.stderr);
  t.is(r.signal, null);
  t.regex(r.stderr, /SIGTERM: stopping/);
  t.true((metric(scraped, 'sightline_frames_processed_total', { pipeline: 'main', source: 'cam' }) ?? 0) > 0);
  t.is(metric(scraped, 'sightline_source_state', { source: 'cam', state: 'running' }), 1);
});

test('process: complete results per frame (tracks, crossings, faces, poses, activities) and a summary that adds them up', async (t) => {
  const out = path.join(tmp, 'complete.jsonl');
  const graphFile = writeGraph('complete.yaml', `sources:
  cam: { uri: "file://ignored.avi" }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  pose: { file: pose_ultralight_nano_simplepose_256x192.onnx, kind: simplepose }
pipelines:
  main:
    source: cam
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.1 } }
      - { id: track, use: track }
      - { id: count, use: count, with: { line: [[0.5, 0.0], [0.5, 1.0]], in: left-to-right } }
      - { id: faces, use: faces, with: { model: faces, every: 2, score: 0.7 } }
      - { id: pose, use: pose, with: { model: pose, maxPersons: 12 } }
      - { id: activity, use: activity }
`);
  const r = await sightline(['process', graphFile, '--input', media('vtest.avi'), '--output', out, '--data-dir', path.join(tmp, 'complete-data')]);
  t.is(r.code, 0, r.stderr);
  const all = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const frames = all.slice(0, -1);
  const { summary } = all[all.length - 1];
  t.is(frames.length, 795);
  t.deepEqual(Object.keys(frames[0]), ['pipeline', 'source', 'frame', 'ptsMs', 'width', 'height', 'detections', 'tracks', 'crossings', 'faces', 'poses',
    'activities', 'occupancy']);
  const sum = (f: (l: any) => number) => frames.reduce((n: number, l: any) => n + f(l), 0);
  const main = summary.pipelines.main;
  const trackIds = new Set(frames.flatMap((l: any) => l.tracks.map((x: any) => x.id)));
  t.is(main.tracks, trackIds.size);
  t.deepEqual(main.crossings, {
    in: sum((l) => l.crossings.filter((c: any) => c.direction === 'in').length), out: sum((l) => l.crossings.filter((c: any) => c.direction === 'out').length),
  });
  // faces runs on every other frame: the others have no `faces` key (not computed), not an empty list.
  t.deepEqual(frames.filter((l: any) => 'faces' in l).map((l: any) => l.frame % 2), new Array(398).fill(0));
  t.is(main.faces.detections, sum((l) => l.faces?.length ?? 0));
  t.is(main.poses, sum((l) => l.poses.length));
  t.is(Object.values(main.postures as Record<string, number>).reduce((a, b) => a + b, 0), sum((l) => l.activities.length));
  t.is(main.maxOccupancy, Math.max(...frames.map((l: any) => l.occupancy)));
  t.true(main.crossings.in + main.crossings.out > 0, 'people cross the middle of the plaza');
  // A pose: 17 COCO keypoints as [x, y, confidence] in source pixels, on its track.
  const pose = frames.flatMap((l: any) => l.poses).find((p: any) => p.track !== undefined);
  t.is(pose.keypoints.length, 17);
  t.true(pose.keypoints.every((k: number[]) => k.length === 3 && k[2] >= 0 && k[2] <= 1));
  t.true(trackIds.has(pose.track));
  const activity = frames.flatMap((l: any) => l.activities)[0];
  t.deepEqual(Object.keys(activity), ['track', 'posture', 'confidence', 'speed', 'fallen']);
  for (const line of ['tracks', 'crossings', 'faces', 'poses', 'postures', 'falls', 'occupancy']) t.regex(r.stderr, new RegExp(`^${line}:`, 'm'));
  t.log(r.stderr.split('\n').filter((l) => /^(frames|detections|tracks|crossings|faces|poses|postures|falls|occupancy|traffic):/.test(l)).join('\n'));
});

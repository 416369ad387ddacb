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
  const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { frame: number; detections: { label: string; score: number; box: number[] }[] });
  t.is(lines.length, 795);
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

/**
 * Live reload against a running server: the graph file is edited on disk and the watcher applies the
 * difference. Untouched pipelines keep their runner (and so their state) and lose no frame.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { firstValueFrom, filter, timeout } from 'rxjs';
import { parseGraph } from '../app/catalog.js';
import { startApp, type App } from '../app/app.js';
import type { BusEvents } from '../core/events.js';
import { memoryLogger, metric, scrape, testSettings } from './helpers.js';

const source = (pattern: string) => `{ uri: "test://${pattern}", width: 160, height: 120, fps: 5 }`;
const pipeline = (src: string, score = 0.3) => `
    source: ${src}
    stages: [{ id: detect, use: detect, with: { model: people, score: ${score} } }]`;

function graphYaml(opts: { sources: Record<string, string>; pipelines: Record<string, string>; metricsPort?: number }): string {
  return `sources:\n${Object.entries(opts.sources).map(([k, v]) => `  ${k}: ${v}`).join('\n')}
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:\n${Object.entries(opts.pipelines).map(([k, v]) => `  ${k}:${v}`).join('\n')}
transports:
  metrics: { port: ${opts.metricsPort ?? 0} }
`;
}

/** Records every packet's seq per pipeline. */
function recordSeqs(app: App): Map<string, number[]> {
  const seqs = new Map<string, number[]>();
  app.bus.on('packet').subscribe((p) => {
    if (!seqs.has(p.pipeline)) seqs.set(p.pipeline, []);
    seqs.get(p.pipeline)!.push(p.frame.seq);
  });
  return seqs;
}

async function packetsOf(app: App, pipeline: string, n = 3): Promise<void> {
  let seen = 0;
  await firstValueFrom(app.bus.on('packet').pipe(filter((p) => p.pipeline === pipeline && ++seen >= n), timeout(30_000)));
}

async function edit(app: App, file: string, yaml: string): Promise<BusEvents['config']> {
  const event = firstValueFrom(app.bus.on('config').pipe(timeout(15_000)));
  writeFileSync(file, yaml);
  return event;
}

function noGaps(list: number[]): boolean {
  return list.every((s, i) => i === 0 || s === list[i - 1] + 1);
}

test('edits to the graph file are applied by difference while the server runs', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sightline-reload-'));
  const file = path.join(dir, 'graph.yaml');
  const v1 = { sources: { a: source('ball'), b: source('smpte') }, pipelines: { pa: pipeline('a'), pb: pipeline('b') } };
  writeFileSync(file, graphYaml(v1));
  const log = memoryLogger();
  const app = await startApp(parseGraph(graphYaml(v1), file), testSettings(), { log, graphFile: file, watch: true });
  t.teardown(() => app.stop());
  const seqs = recordSeqs(app);
  await packetsOf(app, 'pa');
  const pa = app.runtime.pipelines.get('pa')!;
  const pb = app.runtime.pipelines.get('pb')!;

  // 1. Add a source and a pipeline reading it.
  const v2 = { sources: { ...v1.sources, c: source('snow') }, pipelines: { ...v1.pipelines, pc: pipeline('c') } };
  let ev = await edit(app, file, graphYaml(v2));
  t.is(ev.result, 'applied');
  t.deepEqual(ev.changes!.sources.added, ['c']);
  t.deepEqual(ev.changes!.pipelines.added, ['pc']);
  await packetsOf(app, 'pc');
  t.is(app.runtime.pipelines.get('pa'), pa, 'untouched pipeline kept its runner');

  // 2. Change a stage option: only that pipeline restarts.
  const v3 = { ...v2, pipelines: { ...v2.pipelines, pb: pipeline('b', 0.5) } };
  ev = await edit(app, file, graphYaml(v3));
  t.deepEqual(ev.changes!.pipelines.changed, ['pb']);
  t.deepEqual(ev.changes!.sources, { added: [], removed: [], changed: [] });
  t.not(app.runtime.pipelines.get('pb'), pb, 'changed pipeline was restarted');
  t.is(app.runtime.pipelines.get('pa'), pa);
  t.deepEqual(app.graph.pipelines.pb.stages[0].with, { model: 'people', score: 0.5, nmsIou: 0.45, every: 1 });
  await packetsOf(app, 'pb');
  // The restarted pipeline was swapped, not stopped and started: no frame of its source fell between the two.
  const pbSeqs = [...new Set(seqs.get('pb'))].sort((a, b) => a - b);
  t.true(noGaps(pbSeqs), `pb seqs: ${pbSeqs.join(',')}`);
  t.is(pb.state, 'stopped');

  // 3. Remove a pipeline and its source.
  const v4 = { sources: v1.sources, pipelines: { pa: v3.pipelines.pa, pb: v3.pipelines.pb } };
  ev = await edit(app, file, graphYaml(v4));
  t.deepEqual(ev.changes!.pipelines.removed, ['pc']);
  t.deepEqual(ev.changes!.sources.removed, ['c']);
  t.false(app.runtime.pipelines.has('pc'));
  t.false(app.runtime.sources.has('c'));

  // 4. An invalid file is rejected with file:line, and the running graph stays.
  ev = await edit(app, file, graphYaml(v4).replace('use: detect', 'use: detekt'));
  t.is(ev.result, 'invalid');
  t.true(ev.errors!.some((e) => e.startsWith(`${file}:`) && e.includes('unknown stage "detekt"')), ev.errors!.join('\n'));
  t.true(log.lines.some((l) => l.includes('graph reload rejected')));
  t.is(app.runtime.pipelines.get('pa'), pa);
  t.is(pa.state, 'running');
  t.is(app.graph.pipelines.pa.stages[0].use, 'detect');
  const before = (seqs.get('pa') ?? []).length;
  await packetsOf(app, 'pa');
  t.true(seqs.get('pa')!.length > before, 'still processing after the rejected edit');

  // The untouched pipeline saw every frame of its source across all four reloads.
  t.true(noGaps(seqs.get('pa')!), `pa seqs: ${seqs.get('pa')!.join(',')}`);
  const text = await scrape(app.portOf('metrics')!);
  t.is(metric(text, 'sightline_frames_dropped_total', { pipeline: 'pa', source: 'a', reason: 'stale' }) ?? 0, 0);
  t.is(metric(text, 'sightline_config_reloads_total', { result: 'applied' }), 3);
  t.is(metric(text, 'sightline_config_reloads_total', { result: 'invalid' }), 1);
  t.is(metric(text, 'sightline_source_state', { source: 'c', state: 'running' }), undefined, 'removed source has no series');
});

test('a changed source keeps its pipelines (and their state) and moves them to the new source', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sightline-reload-'));
  const file = path.join(dir, 'graph.yaml');
  const v1 = { sources: { a: source('ball') }, pipelines: { pa: pipeline('a') } };
  writeFileSync(file, graphYaml(v1));
  const app = await startApp(parseGraph(graphYaml(v1), file), testSettings(), { log: memoryLogger(), graphFile: file, watch: true });
  t.teardown(() => app.stop());
  await packetsOf(app, 'pa');
  const pa = app.runtime.pipelines.get('pa')!;
  const oldSource = app.runtime.sources.get('a')!;

  const ev = await edit(app, file, graphYaml({ sources: { a: source('smpte') }, pipelines: v1.pipelines }));
  t.deepEqual(ev.changes!.sources.changed, ['a']);
  t.deepEqual(ev.changes!.pipelines.changed, []);
  t.is(oldSource.current, 'stopped');
  t.not(app.runtime.sources.get('a'), oldSource);
  const seen = firstValueFrom(app.bus.on('packet').pipe(filter((p) => p.pipeline === 'pa'), timeout(30_000)));
  t.is((await seen).frame.source, 'a');
  t.is(app.runtime.pipelines.get('pa'), pa);
  t.is(pa.state, 'running');
  // An edit that changes nothing but a comment is no restart.
  const port = app.portOf('metrics')!;
  const same = await edit(app, file, graphYaml({ sources: { a: source('smpte') }, pipelines: v1.pipelines }) + '# a comment\n');
  t.is(same.result, 'unchanged');
  t.is(app.portOf('metrics'), port);
  t.is(app.runtime.pipelines.get('pa'), pa);
});

/**
 * Live-reload benchmark: an app started from a graph file it watches, with three live test:// sources
 * (10 fps, 160×120, detect) and three pipelines. Edits change one stage option of pipeline `pa`
 * (score 0.3 ↔ 0.35); every fifth edit is followed by an invalid one (then the valid file again).
 *
 *   UV_THREADPOOL_SIZE=64 node dist/bench/reload.js [--reloads 20]
 *
 * Measures the time from writing the file to the `config` event (this includes the watcher's
 * debounce, printed separately), from writing to the first packet of the restarted pipeline, and
 * frames dropped / seq gaps in the untouched pipelines, in a baseline window without edits and over
 * the edits. Plain-text tables only; no assertions.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { firstValueFrom, filter, map, switchMap, take, timeout } from 'rxjs';
import { parseGraph } from '../app/catalog.js';
import { watchFile } from '../config/watch.js';
import { startApp, type App } from '../app/app.js';
import { createLogger } from '../core/log.js';
import { testSettings } from '../test/helpers.js';
import { loadavg, percentile, table, waitForQuietMachine } from './report.js';

process.chdir(fileURLToPath(new URL('../..', import.meta.url))); // models/ is relative to the root

const { values: args } = parseArgs({ options: { reloads: { type: 'string', default: '20' } } });
const RELOADS = Number(args.reloads);
const BASELINE_MS = 20_000;
const PIPELINES = ['pa', 'pb', 'pc'];
const CHANGED = 'pa';
/** The watcher's default debounce, read from config/watch.ts as compiled. */
const DEBOUNCE_MS = Number(/debounceMs\s*=\s*(\d+)/.exec(watchFile.toString())?.[1] ?? NaN);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** n, p50, p95, max of some durations in ms ("-" when there are none). */
function stats(values: number[]): (string | number)[] {
  if (!values.length) return [0, '-', '-', '-'];
  const r = (v: number) => Math.round(v);
  return [values.length, r(percentile(values, 0.50)), r(percentile(values, 0.95)), r(Math.max(...values))];
}

/** Waits (up to 5 minutes) for the machine's 1-minute load to drop to 2.5 or below. */

function graphYaml(score: number, use = 'detect'): string {
  const source = (pattern: string) => `{ uri: "test://${pattern}", width: 160, height: 120, fps: 10 }`;
  const pipeline = (src: string, s = 0.3, u = 'detect') => `
    source: ${src}
    stages: [{ id: detect, use: ${u}, with: { model: people, score: ${s} } }]`;
  return `sources:
  a: ${source('ball')}
  b: ${source('smpte')}
  c: ${source('snow')}
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  pa:${pipeline('a', score, use)}
  pb:${pipeline('b')}
  pc:${pipeline('c')}
transports:
  metrics: { port: 0 }
`;
}

/** Frames dropped per pipeline (all reasons) and by reason, from the metrics registry. */
async function drops(app: App): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const v of (await app.metrics.framesDropped.get()).values) {
    const key = `${v.labels.pipeline}\t${v.labels.reason}`;
    out.set(key, (out.get(key) ?? 0) + v.value);
  }
  return out;
}

/** Frames of the source a pipeline never delivered: the holes in its packets' seqs. */
function missing(seqs: number[]): number {
  let n = 0;
  for (let i = 1; i < seqs.length; i++) n += Math.max(0, seqs[i] - seqs[i - 1] - 1);
  return n;
}

interface Edit { result: string; changed: string; configMs: number; packetMs: number }

/** Writes the file and times the config event, and (for `changed`) the restarted pipeline's first packet. */
async function timedEdit(app: App, file: string, yaml: string, changed?: string): Promise<Edit> {
  const stamp = <T>(x: T) => ({ x, at: performance.now() });
  const config = firstValueFrom(app.bus.on('config').pipe(map(stamp), timeout(30_000)));
  // The old runner drains before the new one starts, so packets after its `running` are the new runner's.
  const packet = changed ? firstValueFrom(app.bus.on('pipeline.state').pipe(
    filter((s) => s.pipeline === changed && s.state === 'running'), take(1),
    switchMap(() => app.bus.on('packet').pipe(filter((p) => p.pipeline === changed))), map(stamp), timeout(30_000))) : null;
  packet?.catch(() => undefined);
  const t0 = performance.now();
  writeFileSync(file, yaml);
  const ev = await config;
  const first = await packet?.catch(() => null);
  return {
    result: ev.x.result, changed: ev.x.changes?.pipelines.changed.join(',') ?? '',
    configMs: ev.at - t0, packetMs: first ? first.at - t0 : NaN,
  };
}

async function main(): Promise<void> {
  console.log(`loadavg at start: ${loadavg()}`);
  await waitForQuietMachine('measure');
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'sightline-reload-bench-')), 'graph.yaml');
  let score = 0.3;
  writeFileSync(file, graphYaml(score));
  const logLines: string[] = [];
  const app = await startApp(parseGraph(graphYaml(score), file), testSettings(),
    { log: createLogger('warn', 'bench', (l) => logLines.push(l)), graphFile: file, watch: true });

  const seqs = new Map<string, number[]>(PIPELINES.map((p) => [p, []]));
  app.bus.on('packet').subscribe((p) => seqs.get(p.pipeline)?.push(p.frame.seq));
  // Warm up: every pipeline has processed frames for a few seconds.
  await Promise.all(PIPELINES.map((id) => firstValueFrom(app.bus.on('packet').pipe(filter((p) => p.pipeline === id), timeout(60_000)))));
  await sleep(3000);

  const marks: { drops: Map<string, number>; seqAt: Map<string, number>; at: number }[] = [];
  const mark = async () => marks.push({ drops: await drops(app), seqAt: new Map(PIPELINES.map((p) => [p, seqs.get(p)!.length])), at: Date.now() });
  await mark();
  await sleep(BASELINE_MS);
  await mark();

  const edits: Edit[] = [];
  const invalid: Edit[] = [];
  const restored: Edit[] = [];
  for (let i = 0; i < RELOADS; i++) {
    score = score === 0.3 ? 0.35 : 0.3;
    edits.push(await timedEdit(app, file, graphYaml(score), CHANGED));
    await sleep(1000);
    if ((i + 1) % 5 === 0) {
      invalid.push(await timedEdit(app, file, graphYaml(score, 'detekt')));
      restored.push(await timedEdit(app, file, graphYaml(score)));
      await sleep(1000);
    }
    if ((i + 1) % 10 === 0) process.stdout.write(`  ${i + 1}/${RELOADS} reloads\n`);
  }
  await mark();

  const applied = edits.filter((e) => e.result === 'applied');
  table(`Reload latency (ms), ${RELOADS} edits of pipelines.${CHANGED}.stages[0].with.score; watcher debounce ${DEBOUNCE_MS} ms (config/watch.ts default)`,
    ['from the file write to', 'n', 'p50', 'p95', 'max'], [
      ['config "applied"', ...stats(applied.map((e) => e.configMs))],
      ['config "applied", minus the debounce', ...stats(applied.map((e) => e.configMs - DEBOUNCE_MS))],
      [`first packet of the restarted ${CHANGED}`, ...stats(applied.map((e) => e.packetMs).filter(Number.isFinite))],
      ['  (config "applied" → that packet)', ...stats(applied.map((e) => e.packetMs - e.configMs).filter(Number.isFinite))],
      ['config "invalid" (unknown stage)', ...stats(invalid.filter((e) => e.result === 'invalid').map((e) => e.configMs))],
      ['config "unchanged" (valid file restored)', ...stats(restored.filter((e) => e.result === 'unchanged').map((e) => e.configMs))],
    ]);
  const odd = [
    ...edits.filter((e) => e.result !== 'applied' || e.changed !== CHANGED).map((e) => `edit: ${e.result} (changed: ${e.changed || 'none'})`),
    ...edits.filter((e) => e.result === 'applied' && !Number.isFinite(e.packetMs)).map(() => `edit: no packet from the restarted ${CHANGED} within 30 s`),
    ...invalid.filter((e) => e.result !== 'invalid').map((e) => `invalid edit: ${e.result}`),
    ...restored.filter((e) => e.result !== 'unchanged').map((e) => `restore: ${e.result} (changed: ${e.changed || 'none'})`),
  ];
  if (odd.length) table('Unexpected outcomes', ['edit'], odd.map((o) => [o]));

  const windows = [['baseline (no edits)', marks[0], marks[1]], ['during the edits', marks[1], marks[2]]] as const;
  const reasons = [...new Set([...marks[2].drops.keys()].map((k) => k.split('\t')[1]))].sort();
  const rows = windows.flatMap(([name, a, b]) => PIPELINES.map((p) => {
    const d = reasons.map((r) => (b.drops.get(`${p}\t${r}`) ?? 0) - (a.drops.get(`${p}\t${r}`) ?? 0));
    const list = seqs.get(p)!.slice(Math.max(0, a.seqAt.get(p)! - 1), b.seqAt.get(p));
    return [`${name}, ${(b.at - a.at) / 1000 | 0} s`, p === CHANGED ? `${p} (edited)` : p, list.length, ...d, d.reduce((x, y) => x + y, 0), missing(list)];
  }));
  table('Frames per pipeline (target for the untouched pb, pc: 0 dropped, 0 missing)',
    ['window', 'pipeline', 'packets', ...reasons.map((r) => `dropped ${r}`), 'dropped all', 'seqs missing'], rows);

  const logged = logLines.filter((l) => / (WARN|ERROR) /.test(l));
  console.log(`\n${logged.length} warnings/errors logged (each rejected edit logs one error)`);
  await app.stop();
  console.log(`\nloadavg at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => { console.error(err); process.exitCode = 1; });

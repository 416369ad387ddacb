/**
 * Outage benchmark: an RTSP camera (a real GstRtspServer) that dies or freezes again and again, next to
 * a steady test:// source, driven by the same outage() as test/rtsp.test.ts.
 *
 *   UV_THREADPOOL_SIZE=64 node --expose-gc dist/bench/outage.js [--cycles 50] [--down-ms 800]
 *
 * Every third outage freezes the server (SIGSTOP/SIGCONT: the TCP connection stays up, only the
 * watchdog notices); the others kill it. Prints how long the source takes to deliver frames again after
 * the camera's return, memory, threads and GStreamer pipelines over the run, reconnects and drops by
 * reason, and the longest gap in the steady source. Plain-text tables only; no assertions.
 */
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { firstValueFrom, filter, timeout } from 'rxjs';
import { startApp, type App } from '../app/app.js';
import { createLogger } from '../core/log.js';
import { gstPipelines } from '../pipeline/sources/gst-source.js';
import { graph, testSettings } from '../test/helpers.js';
import { outage, outageGraph, processThreads, type OutageCycle } from '../test/outage.js';
import { startRtspServer, type RtspServer } from '../test/rtsp-server.js';
import { loadavg, percentile, table, waitForQuietMachine } from './report.js';

process.chdir(fileURLToPath(new URL('../..', import.meta.url))); // media/ and models/ are relative to the root

const { values: args } = parseArgs({ options: { cycles: { type: 'string', default: '50' }, 'down-ms': { type: 'string', default: '800' } } });
const CYCLES = Number(args.cycles);
const DOWN_MS = Number(args['down-ms']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
/** RSS, JS heap in use (MiB) and thread count right now. */
const snapshot = () => { const m = process.memoryUsage(); return [mib(m.rss), mib(m.heapUsed), processThreads()]; };


/** n, p50, p95, max of some durations in ms ("-" when there are none). */
function stats(values: number[]): (string | number)[] {
  if (!values.length) return [0, '-', '-', '-'];
  return [values.length, percentile(values, 0.50), percentile(values, 0.95), Math.max(...values)];
}

/** Waits (up to 5 minutes) for the machine's 1-minute load to drop to 2.5 or below. */

/** Longest gap between calls to tick() since the last reset(). */
function gapMeter() {
  let last = 0;
  const m = { max: 0, tick: () => { const now = Date.now(); if (last) m.max = Math.max(m.max, now - last); last = now; },
    reset: () => { last = 0; m.max = 0; } };
  return m;
}

async function counterRows(app: App, name: 'sourceReconnects' | 'framesDropped', key: 'source' | 'pipeline'): Promise<(string | number)[][]> {
  const { values } = await app.metrics[name].get();
  return values.map((v) => { const l = v.labels as Record<string, string>; return [l[key], l.reason, v.value]; }).sort((a, b) => `${a[0]}${a[1]}`.localeCompare(`${b[0]}${b[1]}`));
}

/** After a cycle that timed out: bring the camera back whatever state it was left in, and wait for frames. */
async function recover(app: App, server: RtspServer): Promise<void> {
  await server.restart();
  await firstValueFrom(app.bus.on('source.state').pipe(filter((s) => s.source === 'cam' && s.state === 'running'), timeout(30_000))).catch(() => undefined);
}

async function main(): Promise<void> {
  console.log(`loadavg at start: ${loadavg()}`);
  await waitForQuietMachine('measure');
  const logLines: string[] = [];
  const server = await startRtspServer();
  const app = await startApp(graph(outageGraph(server.url)), testSettings(), { log: createLogger('warn', 'bench', (l) => logLines.push(l)) });

  const steadyPackets = gapMeter();
  const steadyFrames = gapMeter();
  app.bus.on('packet').subscribe((p) => { if (p.pipeline === 'steady') steadyPackets.tick(); });
  app.runtime.sources.get('steady')!.frames.subscribe(() => steadyFrames.tick());

  // Warm up: the camera connected, models loaded, a few seconds of frames through both pipelines.
  await firstValueFrom(app.bus.on('packet').pipe(filter((p) => p.pipeline === 'cam'), timeout(30_000)));
  await sleep(5000);
  const start = snapshot();
  const startedAt = Date.now();
  steadyPackets.reset();
  steadyFrames.reset();
  console.log(`warm: rss ${start[0]} MiB, ${start[2]} threads; ${CYCLES} cycles, camera down ${DOWN_MS} ms each`);

  const cycles: (OutageCycle & { how: string })[] = [];
  const failures: string[] = [];
  let after10: (string | number)[] | null = null;
  for (let i = 0; i < CYCLES; i++) {
    const how = i % 3 === 2 ? 'freeze' : 'kill';
    try {
      cycles.push({ how, ...await outage(app, server, 'cam', how, DOWN_MS) });
    } catch (err) {
      failures.push(`cycle ${i + 1} (${how}): ${(err as Error).message}`);
      await recover(app, server);
    }
    if (i === 9) after10 = snapshot();
    if ((i + 1) % 10 === 0) process.stdout.write(`  ${i + 1}/${CYCLES} cycles\n`);
  }
  const runS = (Date.now() - startedAt) / 1000;
  const end = snapshot();
  const gaps = { packets: steadyPackets.max, frames: steadyFrames.max };
  for (let i = 0; i < 5; i++) { (globalThis as { gc?: () => void }).gc?.(); await sleep(200); }
  const endAfterGc = snapshot();

  table(`Recovery after the camera's return (ms), ${CYCLES} cycles in ${runS.toFixed(0)} s`, ['outage', 'n', 'p50', 'p95', 'max'],
    [...['kill', 'freeze'].map((how) => [how, ...stats(cycles.filter((c) => c.how === how).map((c) => c.recoveryMs))]),
      ['all', ...stats(cycles.map((c) => c.recoveryMs))]]);
  const reasons = new Map<string, number>();
  for (const c of cycles) reasons.set(`${c.how}\t${c.reason}`, (reasons.get(`${c.how}\t${c.reason}`) ?? 0) + 1);
  table('What the source saw go down', ['outage', 'retry reason', 'cycles'], [...reasons].map(([k, n]) => [...k.split('\t'), n]));
  if (failures.length) table('Cycles that timed out', ['cycle'], failures.map((f) => [f]));

  table('Memory and threads', ['', 'RSS MiB', 'JS heap MiB', 'threads'], [
    ['start (after warm-up)', ...start],
    ...(after10 ? [['after cycle 10', ...after10]] : []),
    ['end', ...end],
    ['end, after gc', ...endAfterGc],
  ]);
  const alive = gstPipelines.built - gstPipelines.freed;
  table('GStreamer pipelines (after gc)', ['built', 'freed', 'alive'], [[gstPipelines.built, gstPipelines.freed, alive]]);
  table('Reconnects by reason (sightline_source_reconnects_total)', ['source', 'reason', 'count'], await counterRows(app, 'sourceReconnects', 'source'));
  table('Frames dropped by reason (sightline_frames_dropped_total)', ['pipeline', 'reason', 'frames'], await counterRows(app, 'framesDropped', 'pipeline'));
  table('Steady source (test://ball, 5 fps: 200 ms between frames)', ['longest gap during the run', 'ms'],
    [['between source frames', gaps.frames], ['between steady pipeline packets', gaps.packets]]);

  const logged = logLines.filter((l) => / (WARN|ERROR) /.test(l));
  console.log(`\n${logged.length} warnings/errors logged (retries included); errors:`);
  for (const l of new Set(logLines.filter((l) => / ERROR /.test(l)).map((l) => l.slice(25)))) console.log(`  ${l}`);
  await app.stop();
  await server.stop();
  console.log(`\nloadavg at end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => { console.error(err); process.exitCode = 1; });

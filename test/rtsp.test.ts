/**
 * RTSP cameras that drop and come back, against a real RTSP server: every outage is noticed, the
 * source reconnects within seconds of the camera's return, nothing stale is processed afterwards,
 * pipeline state survives, and nothing (pipelines, threads, memory) accumulates across outages.
 */
import test from 'ava';
import { startApp } from '../app/app.js';
import { gstPipelines } from '../pipeline/sources/gst-source.js';
import type { Packet } from '../core/types.js';
import { graph, memoryLogger, metric, scrape, testSettings } from './helpers.js';
import { outage, outageGraph, type OutageCycle } from './outage.js';
import { startRtspServer } from './rtsp-server.js';

const CYCLES = 10;

test('an RTSP source survives repeated camera outages without leaking or replaying stale frames', async (t) => {
  const server = await startRtspServer();
  t.teardown(() => server.stop());
  const app = await startApp(graph(outageGraph(server.url)), testSettings(), { log: memoryLogger() });
  t.teardown(() => app.stop());

  const runner = app.runtime.pipelines.get('cam')!;
  const source = app.runtime.sources.get('cam')!;
  const packets: Packet[] = [];
  let retryingSince = 0;
  let backAt = 0;
  const staleAfterRetry: number[] = [];
  app.bus.on('source.state').subscribe((s) => {
    if (s.source !== 'cam') return;
    if (s.state === 'retrying' && s.previous === 'running') retryingSince = Date.now();
    if (s.state === 'running') backAt = Date.now();
  });
  app.bus.on('packet').subscribe((p) => {
    if (p.pipeline !== 'cam') return;
    packets.push(p);
    // Once the camera is back, no frame captured before the outage may reach the sink.
    if (backAt > retryingSince && retryingSince && p.frame.capturedAtMs < retryingSince) staleAfterRetry.push(p.frame.seq);
  });
  const steadyBefore = () => app.runtime.sources.get('steady')!.lastFrameAt;

  // Warm up: frames flowing and some tracks made.
  await new Promise((r) => setTimeout(r, 3000));
  t.is(source.current, 'running');
  const maxTrackIdBefore = Math.max(0, ...packets.flatMap((p) => p.tracks ?? []).map((tr) => tr.id));

  const cycles: OutageCycle[] = [];
  for (let i = 0; i < CYCLES; i++) {
    // Mostly kills; every third outage is a frozen camera that keeps its TCP connection (the watchdog's case).
    const how = i % 3 === 2 ? 'freeze' : 'kill';
    cycles.push(await outage(app, server, 'cam', how, 800));
    t.log(`cycle ${i + 1} (${how}): ${cycles[i].reason}; recovered ${cycles[i].recoveryMs} ms after the camera returned; rss ${(cycles[i].rssBytes / 2 ** 20).toFixed(0)} MiB, ${cycles[i].threads} threads`);
  }

  for (const c of cycles) t.true(c.recoveryMs <= 5000, `recovered ${c.recoveryMs} ms after the camera returned`);
  t.true(cycles.some((c) => /no frame for 2 s/.test(c.reason)), 'a frozen camera is caught by the watchdog');
  t.deepEqual(staleAfterRetry, [], 'no frame from before an outage was processed after the reconnect');
  // Each reconnect builds a pipeline; the dropped ones are collected and freed, so they do not pile up.
  t.true(source.pipelinesBuilt > CYCLES);
  for (let i = 0; i < 5 && gstPipelines.built - gstPipelines.freed > 3; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((r) => setTimeout(r, 200));
  }
  t.true(gstPipelines.built - gstPipelines.freed <= 3, `pipelines alive: ${gstPipelines.built - gstPipelines.freed} of ${gstPipelines.built} built`);
  // Threads and memory settle: compare the last cycles with the second (after warm-up allocations).
  const threads = cycles.map((c) => c.threads);
  t.true(threads[CYCLES - 1] <= threads[1] + 4, `threads ${threads.join(',')}`);
  const rssGrowthMiB = (cycles[CYCLES - 1].rssBytes - cycles[1].rssBytes) / 2 ** 20;
  t.true(rssGrowthMiB < 40, `RSS grew ${rssGrowthMiB.toFixed(1)} MiB over ${CYCLES - 2} outages`);

  // Pipeline state survived: the same runner, and track ids continue rather than restart.
  t.is(app.runtime.pipelines.get('cam'), runner);
  t.is(runner.state, 'running');
  const idsAfter = packets.slice(-20).flatMap((p) => p.tracks ?? []).map((tr) => tr.id);
  if (maxTrackIdBefore > 0 && idsAfter.length) t.true(Math.min(...idsAfter) >= 1);
  t.true(steadyBefore() > Date.now() - 2000, 'the other source kept running');

  const text = await scrape(app.portOf('metrics')!);
  const reconnects = ['error', 'eos', 'watchdog'].reduce((a, r) => a + (metric(text, 'sightline_source_reconnects_total', { source: 'cam', reason: r }) ?? 0), 0);
  t.true(reconnects >= CYCLES, `reconnects ${reconnects}`);
  t.true((metric(text, 'sightline_source_reconnects_total', { source: 'cam', reason: 'watchdog' }) ?? 0) >= 1);
  t.is(metric(text, 'sightline_source_state', { source: 'cam', state: 'running' }), 1);
  t.true(metric(text, 'sightline_source_last_frame_age_seconds', { source: 'cam' })! < 5);
  t.is(metric(text, 'sightline_source_reconnects_total', { source: 'steady', reason: 'error' }), 0, 'the other source never reconnected');
});

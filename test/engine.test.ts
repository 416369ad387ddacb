/**
 * End to end on real parts: GStreamer decodes vtest.avi, YOLOX runs in the worker pool, metrics are
 * scraped over HTTP. Broken pipelines (corrupt video, missing model) fail alone, with a clear reason.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startApp } from '../app/app.js';
import type { BusEvents } from '../core/events.js';
import { graph, media, memoryLogger, metric, scrape, testSettings } from './helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sightline-engine-'));
const corrupt = path.join(tmp, 'corrupt.avi');
const truncated = path.join(tmp, 'truncated.avi');
// Random-looking bytes with no container, and the real file cut a third of the way through.
writeFileSync(corrupt, Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919 + 13) % 251)));
const vtest = readFileSync(media('vtest.avi'));
writeFileSync(truncated, vtest.subarray(0, Math.floor(vtest.length / 3)));

const GRAPH = `
sources:
  plaza: { uri: "file://${media('vtest.avi')}" }
  broken: { uri: "file://${corrupt}" }
  cut: { uri: "file://${truncated}" }
  pattern: { uri: "test://smpte?num-buffers=50", width: 320, height: 240, fps: 25 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  ghost: { file: no-such-model.onnx, kind: yolox }
pipelines:
  plaza:
    source: plaza
    stages: [{ id: detect, use: detect, with: { model: people, classes: [person], score: 0.3 } }]
  broken:
    source: broken
    stages: [{ id: detect, use: detect, with: { model: people } }]
  cut:
    source: cut
    stages: [{ id: detect, use: detect, with: { model: people } }]
  ghost:
    source: pattern
    stages: [{ id: detect, use: detect, with: { model: ghost } }]
transports:
  metrics: { port: 0 }
`;

test('vtest.avi through the graph: pedestrians found, broken pipelines fail alone, metrics scraped', async (t) => {
  const log = memoryLogger();
  const app = await startApp(graph(GRAPH), testSettings(), { log });
  const detections: BusEvents['detections'][] = [];
  const states: BusEvents['source.state'][] = [];
  app.bus.on('detections').subscribe((d) => { if (d.source === 'plaza') detections.push(d); });
  app.bus.on('source.state').subscribe((s) => states.push(s));
  try {
    await app.runtime.whenDone();

    // Every frame of the file, in order.
    t.is(detections.length, 795);
    t.deepEqual(detections.map((d) => d.seq), Array.from({ length: 795 }, (_, i) => i));
    const f100 = detections[100];
    t.is(f100.width, 768);
    t.is(f100.height, 576);
    t.is(f100.ptsNs, 10e9);
    const persons = f100.detections.filter((d) => d.label === 'person' && d.score >= 0.3);
    t.true(persons.length >= 4, `frame 100: ${persons.length} persons`);
    for (const { box: [x1, y1, x2, y2] } of persons) {
      t.true(x1 >= 0 && y1 >= 0 && x2 <= 768 && y2 <= 576 && x2 > x1 && y2 > y1, `box ${[x1, y1, x2, y2]}`);
      // Pedestrians seen from above: taller than wide, and not the whole frame.
      t.true(y2 - y1 > x2 - x1 && y2 - y1 < 300);
    }
    t.true(detections.every((d) => d.detections.every((x) => x.label === 'person')));

    const p = app.runtime.pipelines;
    t.is(p.get('plaza')!.state, 'stopped');
    t.is(p.get('broken')!.state, 'failed');
    t.regex(p.get('broken')!.reason ?? '', /(Could not determine type of stream|not.*(demux|decode))/i);
    t.is(p.get('ghost')!.state, 'failed');
    t.regex(p.get('ghost')!.reason ?? '', /stage "detect": model "ghost": model file not found: .*no-such-model\.onnx/);
    // The truncated file decodes what it has, then ends or errors: either way it ends alone.
    t.true(['stopped', 'failed'].includes(p.get('cut')!.state));
    t.true(states.some((s) => s.source === 'broken' && s.state === 'failed'));
    t.true(states.some((s) => s.source === 'plaza' && s.previous === 'running' && s.state === 'stopped'));
    t.true(log.lines.some((l) => l.includes('pipeline ghost failed') && l.includes('no-such-model.onnx')));

    const port = [...app.ports.values()][0];
    const text = await scrape(port);
    t.is(metric(text, 'sightline_frames_in_total', { source: 'plaza' }), 795);
    t.is(metric(text, 'sightline_frames_processed_total', { pipeline: 'plaza', source: 'plaza' }), 795);
    t.is(metric(text, 'sightline_stage_latency_seconds_count', { pipeline: 'plaza', stage: 'detect' }), 795);
    t.is(metric(text, 'sightline_pipeline_latency_seconds_count', { pipeline: 'plaza' }), 795);
    const stageSum = metric(text, 'sightline_stage_latency_seconds_sum', { pipeline: 'plaza', stage: 'detect' })!;
    t.true(stageSum > 0 && stageSum / 795 < 2, `mean stage latency ${stageSum / 795}s`);
    const inferCount = metric(text, 'sightline_inference_seconds_count', { model: 'people' })!;
    t.true(inferCount >= 795);
    const inferSum = metric(text, 'sightline_inference_seconds_sum', { model: 'people' })!;
    t.true(inferSum / inferCount > 0.001 && inferSum / inferCount < 1, `mean inference ${inferSum / inferCount}s`);
    t.is(metric(text, 'sightline_source_state', { source: 'plaza', state: 'stopped' }), 1);
    t.is(metric(text, 'sightline_source_state', { source: 'broken', state: 'failed' }), 1);
    t.is(metric(text, 'sightline_pipeline_up', { pipeline: 'ghost' }), 0);
    t.is(metric(text, 'sightline_worker_threads'), app.settings.workers);
    t.is(metric(text, 'sightline_worker_queue_size'), 0);
    const util = metric(text, 'sightline_worker_utilization')!;
    t.true(util > 0 && util <= 1, `utilization ${util}`);
    t.true(metric(text, 'process_resident_memory_bytes')! > 50e6);
    t.true(metric(text, 'process_cpu_seconds_total')! > 1);

    const health = await (await fetch(`http://127.0.0.1:${port}/health`)).json() as { status: string; pipelines: Record<string, { state: string }> };
    t.is(health.status, 'degraded');
    t.is(health.pipelines.plaza.state, 'stopped');
  } finally {
    await app.stop();
  }
});

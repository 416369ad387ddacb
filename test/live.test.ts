/**
 * Live sources: latest frame wins. A source faster than its pipeline has its stale frames dropped and
 * counted; nothing queues, and every frame that came in is accounted for as processed or dropped.
 */
import test from 'ava';
import { firstValueFrom, filter, take, toArray } from 'rxjs';
import { startApp } from '../app/app.js';
import { graph, memoryLogger, testSettings } from './helpers.js';

test('a live source faster than detection drops stale frames, counts them, and keeps order', async (t) => {
  // 100 fps of 640x480 against ~15-40 ms of detection per frame with one frame in flight.
  const g = graph(`
sources:
  fast: { uri: "test://ball", width: 640, height: 480, fps: 100 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  live:
    source: fast
    maxInFlight: 1
    stages: [{ id: detect, use: detect, with: { model: people } }]
`);
  const app = await startApp(g, testSettings(), { serve: false, log: memoryLogger() });
  const seqs = await firstValueFrom(app.bus.on('packet').pipe(filter((p) => p.pipeline === 'live'), take(40), toArray()));
  const source = app.runtime.sources.get('fast')!;
  t.is(source.current, 'running');
  t.true(source.live);
  await app.stop();

  const seqList = seqs.map((p) => p.frame.seq);
  t.true(seqList.every((s, i) => i === 0 || s > seqList[i - 1]), 'sink order follows capture order');
  t.true(seqList.some((s, i) => i > 0 && s - seqList[i - 1] > 1), 'frames were skipped between processed ones');

  const total = async (m: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> }, labels: Record<string, string> = {}) =>
    (await m.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
  const framesIn = await total(app.metrics.framesIn, { source: 'fast' });
  const processed = await total(app.metrics.framesProcessed, { pipeline: 'live' });
  const stale = await total(app.metrics.framesDropped, { pipeline: 'live', reason: 'stale' });
  const dropped = await total(app.metrics.framesDropped, { pipeline: 'live' });
  t.true(stale > 0, `stale drops: ${stale}`);
  t.true(processed >= 40);
  t.is(processed + dropped, framesIn, `in ${framesIn} = processed ${processed} + dropped ${dropped}`);
});

test('an offline file source is never dropped: it waits for the stages', async (t) => {
  const g = graph(`
sources:
  file: { uri: "file://${process.env.SIGHTLINE_MEDIA_DIR ?? 'media'}/vtest.avi", width: 384, height: 288 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  offline:
    source: file
    maxInFlight: 1
    stages: [{ id: detect, use: detect, with: { model: people } }]
`);
  const app = await startApp(g, testSettings(), { serve: false, log: memoryLogger() });
  await app.runtime.whenDone();
  const processed = (await app.metrics.framesProcessed.get()).values.reduce((a, v) => a + v.value, 0);
  const dropped = (await app.metrics.framesDropped.get()).values.reduce((a, v) => a + v.value, 0);
  await app.stop();
  t.is(processed, 795);
  t.is(dropped, 0);
  t.is(app.runtime.sources.get('file')!.current, 'stopped');
});

test('a looping file starts again at its end, with stream time running on', async (t) => {
  const g = graph(`
sources:
  clip: { uri: "file://${process.env.SIGHTLINE_MEDIA_DIR ?? 'media'}/short_hamilton_clip.mp4", width: 160, height: 90, loop: true }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  clip:
    source: clip
    stages: [{ id: detect, use: detect, with: { model: people } }]
`);
  const app = await startApp(g, testSettings(), { serve: false, log: memoryLogger() });
  // The clip has 300 frames; 360 means it went round at least once.
  const packets = await firstValueFrom(app.bus.on('packet').pipe(take(360), toArray()));
  await app.stop();
  const pts = packets.map((p) => p.frame.ptsNs);
  t.true(pts.every((v, i) => i === 0 || v > pts[i - 1]), 'stream time only moves forward across the loop');
  t.true(pts[359] > 11e9, `pts at frame 360: ${pts[359]}`);
  t.is(app.runtime.sources.get('clip')!.pipelinesBuilt, 2);
});

/**
 * Stages one at a time, through the stage harness: packets in, packets and bus events out, in virtual time. What
 * used to need the wall clock (stats on a timer, a traffic event's hold time, the counting day's reset) is checked
 * to the millisecond here.
 */
import test from 'ava';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import type { Box, Detection, Packet, TrackedObject } from '../core/types.js';
import { dayKey } from '../services/counting/day.js';
import { annotateStage } from '../stages/annotate.js';
import { countStage } from '../stages/count.js';
import { detectPhase, detectStage } from '../stages/detect.js';
import { trackStage } from '../stages/track.js';
import { packet, StageHarness } from './harness/stage-harness.js';

const W = 640;
const H = 480;

/** A confirmed person track at horizontal position `x` (box 40×120, feet at y 400). */
const person = (id: number, x: number): TrackedObject =>
  ({ id, box: [x - 20, 280, x + 20, 400], score: 0.9, classId: 0, label: 'person', state: 'confirmed', velocity: [0, 0] });

/** Frames at 10 fps from `startMs`, each with the tracks `at(i)` gives. */
const walk = (startMs: number, frames: number, at: (i: number) => TrackedObject[]): Packet[] =>
  Array.from({ length: frames }, (_, i) => packet(i, startMs + i * 100, { tracks: at(i) }));

const LINE = { line: [[0.5, 0], [0.5, 1]] as [[number, number], [number, number]] };

test('count: a walker left to right is one in; stats go out on the clock, and with every count', async (t) => {
  const h = new StageHarness(countStage, { ...LINE, statsIntervalMs: 500 });
  t.teardown(() => h.close());
  const start = h.clock.now();
  const out = await h.run(walk(start, 30, (i) => [person(7, 100 + i * 15)]));
  const crossed = h.eventsOf('count.crossed');
  t.deepEqual(crossed.map((c) => [c.trackId, c.direction]), [[7, 'in']]);
  t.is(out.filter((p) => p.crossings?.length).length, 1, 'the crossing is on exactly one packet');
  t.deepEqual(out.at(-1)!.counting, { line: [[W / 2, 0], [W / 2, H]], countIn: 1, countOut: 0 });
  // 2.9 s of frames: stats at start, every 500 ms (5 ticks), and once more at the crossing.
  const stats = h.eventsOf('count.stats').map((s) => s.atMs - start);
  const crossedAt = crossed[0].atMs - start;
  t.deepEqual(stats, [0, 500, 1000, 1500, 2000, 2500, crossedAt].sort((a, b) => a - b));
  t.like(h.eventsOf('count.stats').at(-1), { countIn: 1, countOut: 0 });
  t.like(h.counts.dayCounters('p', dayKey(start, '00:00')), { countIn: 1, countOut: 0 });
});

test('count: a traffic event starts at minIn within the window and ends after holdSeconds below it', async (t) => {
  const h = new StageHarness(countStage, { ...LINE, event: { windowSeconds: 10, minIn: 3, holdSeconds: 5 } });
  t.teardown(() => h.close());
  const start = h.clock.now();
  // Three walkers a second apart, each crossing within 2 s of frames.
  const packets: Packet[] = [];
  for (let k = 0; k < 3; k++) {
    for (let i = 0; i < 20; i++) packets.push(packet(packets.length, start + k * 2000 + i * 100, { tracks: [person(10 + k, 100 + i * 25)] }));
  }
  await h.run(packets);
  const started = h.eventsOf('traffic.event');
  t.is(started.length, 1);
  t.like(started[0], { status: 'started', countIn: 3 });
  const startMs = started[0].startMs;
  // The window empties 10 s after the first crossing; the event ends 5 s after that, with no frames at all.
  h.clock.advance(20_000);
  const ended = h.eventsOf('traffic.event').filter((e) => e.status === 'ended');
  t.is(ended.length, 1);
  t.like(ended[0], { startMs, countIn: 3 });
  const firstIn = h.eventsOf('count.crossed')[0].atMs;
  t.true(ended[0].endMs! >= firstIn + 15_000 && ended[0].endMs! <= firstIn + 15_500, `ended ${ended[0].endMs! - firstIn} ms after the first in`);
});

test('count: the day starts over at resetAt; a track on its side of the line then is not counted twice', async (t) => {
  const h = new StageHarness(countStage, { ...LINE, resetAt: '03:00' });
  t.teardown(() => h.close());
  // A minute before the local reset time.
  const d = new Date(h.clock.now());
  d.setHours(2, 59, 0, 0);
  if (d.getTime() < h.clock.now()) d.setDate(d.getDate() + 1);
  h.clock.set(d.getTime());
  const before = h.clock.now();
  await h.run(walk(before, 30, (i) => [person(1, 100 + i * 15)]));
  t.is(h.counts.dayCounters('p', dayKey(before, '03:00')).countIn, 1);
  // Past 03:00: the next frame belongs to a new day, whose totals start at zero.
  h.clock.advance(120_000);
  const after = h.clock.now();
  t.not(dayKey(after, '03:00'), dayKey(before, '03:00'));
  const out = await h.run([packet(100, after, { tracks: [person(1, 560)] })]);
  t.deepEqual(out[0].counting, { line: [[W / 2, 0], [W / 2, H]], countIn: 0, countOut: 0 });
  t.like(h.counts.dayCounters('p', dayKey(after, '03:00')), { countIn: 0, countOut: 0 });
});

test('track: detections become confirmed tracks after minHits, with ids from the reserved block', async (t) => {
  const h = new StageHarness(trackStage, { minHits: 3 });
  t.teardown(() => h.close());
  const det = (x: number): Detection => ({ box: [x, 100, x + 40, 220] as Box, score: 0.9, classId: 0, label: 'person' });
  const packets = Array.from({ length: 6 }, (_, i) => packet(i, h.clock.now() + i * 100, { detections: [det(100 + i * 4)] }));
  const out = await h.run(packets);
  const confirmed = out.map((p) => (p.tracks ?? []).filter((tr) => tr.state === 'confirmed').length);
  t.deepEqual(confirmed.slice(0, 2), [0, 0], 'not before minHits');
  t.true(confirmed.slice(2).every((n) => n === 1));
  const ids = new Set(out.flatMap((p) => (p.tracks ?? []).map((tr) => tr.id)));
  t.deepEqual([...ids], [1], 'the first block of a fresh store starts at 1');
  t.is(h.counts.nextTrackIds('cam'), 1001, 'the next block is reserved before any id of this one is handed out');
});

test('annotate: one JPEG per frame up to fps (by capture time), drawn where the tracks are; none while nobody wants them', async (t) => {
  const h = new StageHarness(annotateStage, { fps: 5, quality: 80 }, { poolThreads: 1 });
  t.teardown(() => h.close());
  const start = h.clock.now();
  const frames = (from: number) => Array.from({ length: 10 },
    (_, i) => packet(from + i, start + (from + i) * 100, { tracks: [person(4, 320)] }, { width: W, height: H }, true));
  // Nobody watches: nothing is encoded.
  t.true((await h.run(frames(0))).every((p) => !p.jpeg));
  const unwant = h.bus.want('jpeg', 'p');
  const out = await h.run(frames(10));
  const encoded = out.filter((p) => p.jpeg);
  // The first frame, then one per 200 ms, half a period of jitter allowed: frames 10, 11, 12, 14, 16, 18.
  t.deepEqual(out.flatMap((p) => (p.jpeg ? [p.frame.seq] : [])), [10, 11, 12, 14, 16, 18]);
  t.true(out.every((p) => p.frame.data.byteLength === W * H * 3), 'the pixels come back from the worker');
  const img = await loadImage(Buffer.from(encoded[0].jpeg!.data));
  t.deepEqual([img.width, img.height], [W, H]);
  // The track's box is drawn on a black frame: its outline is bright, the middle of the frame away from it is not.
  const c = createCanvas(W, H).getContext('2d');
  c.drawImage(img, 0, 0);
  const at = (x: number, y: number) => [...c.getImageData(x, y, 1, 1).data.slice(0, 3)].reduce((a, b) => a + b, 0);
  t.true(at(300, 340) > 150, `left edge of the box at ${at(300, 340)}`);
  t.true(at(100, 100) < 30, `empty frame at ${at(100, 100)}`);
  unwant();
  t.true((await h.run(frames(20))).every((p) => !p.jpeg), 'the last viewer gone, encoding stops');
});

test('detect: every 2 runs on one frame in two, in the pipeline\'s phase; motion gating skips still frames, runs when something moves and every maxSkip', async (t) => {
  const graph = { file: 'g.yaml', sources: {}, models: { people: { id: 'people', file: 'yolox_nano.onnx', kind: 'yolox' } }, pipelines: {}, transports: {} };
  const frame = (seq: number, squareX: number | null): Packet => {
    const p = packet(seq, 1_000 + seq * 100, {}, { width: W, height: H }, true);
    if (squareX !== null) {
      const rgb = new Uint8Array(p.frame.data);
      for (let y = 100; y < 200; y++) rgb.fill(255, (y * W + squareX) * 3, (y * W + squareX + 100) * 3);
    }
    return p;
  };
  const every = new StageHarness(detectStage, { model: 'people', every: 2 }, { graph, poolThreads: 1 });
  t.teardown(() => every.close());
  const a = await every.run(Array.from({ length: 6 }, (_, i) => frame(i, null)));
  const phase = detectPhase('p', 2);
  t.deepEqual(a.map((p) => p.detectSkipped ?? (p.detections ? 'ran' : '?')),
    Array.from({ length: 6 }, (_, i) => ((i + phase) % 2 === 0 ? 'ran' : 'every')), 'one frame in two, in the pipeline\'s phase');
  // Pipelines take different phases, so cameras started together do not all detect on the same ticks.
  const phases = Array.from({ length: 12 }, (_, i) => detectPhase(`cam${i}`, 2));
  t.true(phases.includes(0) && phases.includes(1), `phases of cam0…cam11: ${phases.join('')}`);
  t.is(detectPhase('anything', 1), 0);

  const gated = new StageHarness(detectStage, { model: 'people', motion: { maxSkip: 4 } }, { graph, poolThreads: 1 });
  t.teardown(() => gated.close());
  // Still for 7 frames (a detection on the first, then at most 4 skipped), then a square moving 20 px a frame.
  const frames = [...Array.from({ length: 7 }, (_, i) => frame(i, 100)), ...Array.from({ length: 3 }, (_, i) => frame(7 + i, 120 + 20 * i))];
  const b = await gated.run(frames);
  t.deepEqual(b.map((p) => p.detectSkipped ?? 'ran'), ['ran', 'no_motion', 'no_motion', 'no_motion', 'no_motion', 'ran', 'no_motion', 'ran', 'ran', 'ran']);
  const text = await gated.metrics.render();
  t.regex(text, /sightline_detect_skipped_total\{pipeline="p",reason="no_motion"\} 5/);
});

test('track: on frames detection skipped, the tracks of the last detection move on by their motion; ids stay', async (t) => {
  const h = new StageHarness(trackStage, { minHits: 1 });
  t.teardown(() => h.close());
  const det = (x: number): Detection => ({ box: [x, 100, x + 40, 220] as Box, score: 0.9, classId: 0, label: 'person' });
  // Detections on even frames only, the person moving 10 px a frame.
  const packets = Array.from({ length: 12 }, (_, i) => packet(i, 1_000 + i * 100, i % 2 ? { detectSkipped: 'every' as const } : { detections: [det(100 + 10 * i)] }));
  const out = await h.run(packets);
  t.true(out.every((p) => p.tracks?.length === 1 && p.tracks[0].id === 1), JSON.stringify(out.map((p) => p.tracks?.map((tr) => tr.id))));
  // By the end the motion model has the speed: a skipped frame's box is where the person would be (±3 px).
  const last = out[11].tracks![0].box[0];
  t.true(Math.abs(last - 210) <= 3, `predicted x ${last.toFixed(1)}, expected about 210`);
});

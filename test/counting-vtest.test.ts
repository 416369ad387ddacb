/**
 * People counting on real video, end to end: vtest.avi through detect → track → count with a vertical
 * line at mid-frame. The expected figures were checked by looking at annotated frames at each crossing
 * (people walking across the plaza, some turning back); the test guards them within a margin and checks
 * the invariants exactly.
 */
import test from 'ava';
import { startApp } from '../app/app.js';
import type { BusEvents } from '../core/events.js';
import { dayKey } from '../services/counting/people-counter.js';
import { graph, media, memoryLogger, testSettings } from './helpers.js';

test('vtest.avi with a vertical line: plausible in/out counts, each a real crossing of a confirmed track', async (t) => {
  const app = await startApp(graph(`
sources:
  plaza: { uri: "file://${media('vtest.avi')}" }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  plaza:
    source: plaza
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.1 } }
      - { id: track, use: track }
      - { id: count, use: count, with: { line: [[0.5, 0], [0.5, 1]], in: left-to-right } }
`), testSettings(), { serve: false, log: memoryLogger() });
  const crossings: BusEvents['count.crossed'][] = [];
  const confirmedAt = new Map<number, Set<number>>();
  const anchors = new Map<number, number[]>();
  app.bus.on('count.crossed').subscribe((c) => crossings.push(c));
  app.bus.on('packet').subscribe((p) => {
    confirmedAt.set(p.frame.seq, new Set((p.tracks ?? []).map((tr) => tr.id)));
    for (const tr of p.tracks ?? []) {
      if (!anchors.has(tr.id)) anchors.set(tr.id, []);
      anchors.get(tr.id)!.push((tr.box[0] + tr.box[2]) / 2);
    }
  });
  await app.runtime.whenDone();
  const counts = app.counts.dayCounters('plaza', dayKey(Date.now(), '00:00'));
  await app.stop();

  const ins = crossings.filter((c) => c.direction === 'in').length;
  const outs = crossings.filter((c) => c.direction === 'out').length;
  t.log(`in ${ins}, out ${outs}, ${new Set(crossings.map((c) => c.trackId)).size} tracks crossed, ${anchors.size} tracks in all`);
  t.true(ins >= 8 && ins <= 20, `in ${ins}`);
  t.true(outs >= 8 && outs <= 20, `out ${outs}`);
  // The store holds exactly what was reported.
  t.is(counts.countIn, ins);
  t.is(counts.countOut, outs);
  const byTrack = new Map<number, string[]>();
  for (const c of crossings) byTrack.set(c.trackId, [...(byTrack.get(c.trackId) ?? []), c.direction]);
  for (const [id, dirs] of byTrack) {
    // A track can only count again by crossing back: directions alternate.
    t.true(dirs.every((d, i) => i === 0 || d !== dirs[i - 1]), `track ${id}: ${dirs.join(',')}`);
    // And it really moved across the line (x = 384): its anchor was seen on both sides.
    const xs = anchors.get(id)!;
    t.true(Math.min(...xs) < 384 && Math.max(...xs) > 384, `track ${id} spans ${Math.min(...xs)}..${Math.max(...xs)}`);
  }
});

/** TrackGallery bookkeeping (refresh, occlusion, averaging, forgetting) and the fused distance, on exact vectors. */
import test from 'ava';
import { matchConfidence, personDistance, TrackGallery } from '../services/looks/person-gallery.js';
import type { Box } from '../core/types.js';

const unit = (...v: number[]): Float32Array => {
  const n = Math.hypot(...v);
  return new Float32Array(v.map((x) => x / n));
};
const opts = { refreshFrames: 10, history: 3, forgetFrames: 30, maxOccluded: 0.3 };
const box = (x: number): Box => [x, 0, x + 10, 20];

test('a new track is due at once, then again only every refreshFrames frames', (t) => {
  const g = new TrackGallery(opts);
  const tracks = [{ id: 1, box: box(0) }, { id: 2, box: box(100) }];
  t.deepEqual(g.due(tracks, 0).map((x) => x.id), [1, 2]);
  g.update(1, 0, { body: unit(1, 0) });
  g.update(2, 0, { body: unit(0, 1) });
  t.deepEqual(g.due(tracks, 9), []);
  t.deepEqual(g.due(tracks, 10).map((x) => x.id), [1, 2]);
  t.deepEqual(g.due([...tracks, { id: 3, box: box(200) }], 11).map((x) => x.id), [1, 2, 3]);
});

test('a track another covers by more than maxOccluded is not refreshed (its crop shows someone else)', (t) => {
  const g = new TrackGallery(opts);
  g.update(1, 0, { body: unit(1, 0) });
  g.update(2, 0, { body: unit(0, 1) });
  const overlapping = [{ id: 1, box: box(0) }, { id: 2, box: box(5) }]; // half of each box covered
  t.deepEqual(g.due(overlapping, 20), []);
  const touching = [{ id: 1, box: box(0) }, { id: 2, box: box(8) }]; // a fifth covered
  t.deepEqual(g.due(touching, 20).map((x) => x.id), [1, 2]);
});

test('a track first seen covered is described at once, then again as soon as it is clear, dropping the covered look', (t) => {
  const g = new TrackGallery(opts);
  const covered = g.due([{ id: 1, box: box(0) }, { id: 2, box: box(5) }], 0);
  t.deepEqual(covered.map((x) => [x.id, x.covered]), [[1, true], [2, true]]);
  g.update(1, 0, { body: unit(1, 0) }, true);
  g.update(2, 0, { body: unit(1, 1) }, true);
  t.deepEqual(g.due([{ id: 1, box: box(0) }, { id: 2, box: box(5) }], 1), [], 'still covered: nothing better to take');
  t.deepEqual(g.due([{ id: 1, box: box(0) }], 2).map((x) => [x.id, x.covered]), [[1, false]], 'clear two frames later');
  g.update(1, 2, { body: unit(0, 1) });
  t.deepEqual([...g.get(1)!.body], [0, 1], 'the covered look is gone');
  t.deepEqual(g.due([{ id: 1, box: box(0) }], 3), [], 'then every refreshFrames frames again');
});

test('the appearance is the normalised mean of the last `history` looks; the face is the latest', (t) => {
  const g = new TrackGallery(opts);
  g.update(1, 0, { body: unit(1, 0), face: unit(1, 0) });
  g.update(1, 10, { body: unit(0, 1) });
  const a = g.get(1)!;
  t.true(Math.abs(a.body[0] - Math.SQRT1_2) < 1e-6 && Math.abs(a.body[1] - Math.SQRT1_2) < 1e-6);
  t.is(a.face, undefined, 'no face in the latest look');
  g.update(1, 20, { body: unit(0, 1) });
  g.update(1, 30, { body: unit(0, 1) }); // the first look falls out of the history of 3
  t.deepEqual([...g.get(1)!.body], [0, 1]);
});

test('tracks not seen for forgetFrames frames are forgotten', (t) => {
  const g = new TrackGallery(opts);
  g.update(1, 0, { body: unit(1, 0) });
  g.update(2, 0, { body: unit(0, 1) });
  g.due([{ id: 2, box: box(0) }], 25); // track 2 still seen
  g.prune(31);
  t.is(g.get(1), undefined);
  t.truthy(g.get(2));
  t.is(g.size, 1);
});

test('distance is 1 − cosine of the bodies, fused with the faces when both sides show one', (t) => {
  const ref = { body: unit(1, 0), face: unit(0, 1) };
  t.is(personDistance(ref, { body: unit(1, 0) }, 0.5), 0);
  t.true(Math.abs(personDistance(ref, { body: unit(1, 1) }, 0.5) - (1 - Math.SQRT1_2)) < 1e-6);
  // Same body, other face: half the weight on a face similarity of 0.
  t.true(Math.abs(personDistance(ref, { body: unit(1, 0), face: unit(1, 0) }, 0.5) - 0.5) < 1e-6);
  t.is(personDistance(ref, { body: unit(1, 0), face: unit(1, 0) }, 0), 0, 'faceWeight 0: body only');
  t.is(personDistance({ body: unit(1, 0) }, { body: unit(1, 0), face: unit(1, 0) }, 0.5), 0, 'no reference face: body only');
  t.is(personDistance(ref, { body: new Float32Array(3) }, 0.5), 1, 'vectors of another size are similar to nothing');
  t.is(matchConfidence(0, 0.4), 1);
  t.is(matchConfidence(0.4, 0.4), 0.5);
  t.is(matchConfidence(1, 0.4), 0);
});

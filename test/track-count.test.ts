/**
 * People counting core: assignment, Kalman filter, ByteTracker and LineCounter, driven by synthetic
 * walkers (deterministic paths + seeded noise) with exact expected counts.
 */
import test from 'ava';
import type { Box, Detection } from '../core/types.js';
import { iou } from '../core/geometry.js';
import { linearAssignment } from '../stages/track/assignment.js';
import { boxToXyah, KalmanBoxFilter, xyahToBox, type Xyah } from '../stages/track/kalman.js';
import { ByteTracker, type ByteTrackOptions, type Track } from '../stages/track/bytetrack.js';
import { LineCounter, type Crossing, type LineCounterOptions } from '../stages/count/line-counter.js';
import { prng } from './prng.js';

// ---------- synthetic walkers ----------

const W = 1280;
const H = 720;
const HYST = 0.01; // LineCounter default
type Pt = [number, number];

/** Anchor (bottom-centre) positions of a straight walk, `frames` samples including both ends. */
function walk(from: Pt, to: Pt, frames: number): Pt[] {
  return Array.from({ length: frames }, (_, i) => {
    const f = frames === 1 ? 1 : i / (frames - 1);
    return [from[0] + f * (to[0] - from[0]), from[1] + f * (to[1] - from[1])];
  });
}

function stay(at: Pt, frames: number): Pt[] {
  return Array.from({ length: frames }, () => [at[0], at[1]]);
}

interface Walker {
  /** Anchor per frame from `start`; null = no detection this frame. */
  path: (Pt | null)[];
  start?: number;
  /** Box width and height in pixels. */
  size?: [number, number];
  /** Detection score, constant or per path index. */
  score?: number | ((i: number) => number);
  /** Uniform ± pixels added to each box edge. */
  noise?: number;
}

/** Ground-truth box for an anchor: the box is clipped to the frame like a detector's output. */
function boxAt(p: Pt, [w, h]: [number, number]): Box {
  return [Math.max(0, p[0] - w / 2), Math.max(0, p[1] - h), Math.min(W, p[0] + w / 2), Math.min(H, p[1])];
}

interface Scene {
  dets: Detection[][];
  /** gt[frame][walker] = true box or null. */
  gt: (Box | null)[][];
}

/** Render walkers into per-frame detections; boxes narrower than 8 px (mostly off-frame) are not detected. */
function render(walkers: Walker[], seed = 1): Scene {
  const rand = prng(seed);
  const frames = Math.max(...walkers.map((w) => (w.start ?? 0) + w.path.length));
  const dets: Detection[][] = [];
  const gt: (Box | null)[][] = [];
  for (let f = 0; f < frames; f++) {
    const frameDets: Detection[] = [];
    const frameGt: (Box | null)[] = [];
    for (const w of walkers) {
      const i = f - (w.start ?? 0);
      const p = i >= 0 && i < w.path.length ? w.path[i] : null;
      const box = p ? boxAt(p, w.size ?? [60, 160]) : null;
      if (!box || box[2] - box[0] < 8) {
        frameGt.push(null);
        continue;
      }
      frameGt.push(box);
      const n = w.noise ?? 1;
      const noisy = box.map((v) => v + (rand() * 2 - 1) * n) as Box;
      const score = typeof w.score === 'function' ? w.score(i) : (w.score ?? 0.9);
      frameDets.push({ box: noisy, score, classId: 0, label: 'person' });
    }
    dets.push(frameDets);
    gt.push(frameGt);
  }
  return { dets, gt };
}

interface RunResult {
  counts: { in: number; out: number };
  crossings: Crossing[];
  /** Distinct confirmed ids, in order of first appearance. */
  ids: number[];
  /** Ids that covered each walker (matched by IoU against its true box). */
  idsPerWalker: Set<number>[];
  tracker: ByteTracker;
  counter: LineCounter;
}

const VERTICAL: LineCounterOptions = { line: [[0.5, 0], [0.5, 1]], inDirection: 'left-to-right' };

function run(
  walkers: Walker[],
  counterOpts: LineCounterOptions = VERTICAL,
  trackerOpts: Partial<ByteTrackOptions> = {},
  seed = 1,
): RunResult {
  const { dets, gt } = render(walkers, seed);
  const tracker = new ByteTracker(trackerOpts);
  const counter = new LineCounter(counterOpts);
  const crossings: Crossing[] = [];
  const ids: number[] = [];
  const idsPerWalker = walkers.map(() => new Set<number>());
  dets.forEach((frameDets, f) => {
    const tracks = tracker.update(frameDets, f, f * 40);
    crossings.push(...counter.update(tracks, W, H, f * 40));
    for (const t of tracks) if (t.state === 'confirmed' && !ids.includes(t.id)) ids.push(t.id);
    for (const [wi, id] of owners(gt[f], tracks)) idsPerWalker[wi].add(id);
  });
  return { counts: counter.counts, crossings, ids, idsPerWalker, tracker, counter };
}

/** [walker, track id] pairs for one frame: optimal one-to-one matching of true boxes to tracks at IoU > 0.3. */
function owners(gt: (Box | null)[], tracks: Track[]): Array<[number, number]> {
  const walkers = gt.flatMap((box, wi) => (box ? [{ wi, box }] : []));
  const cost = walkers.map(({ box }) => tracks.map((t) => 1 - iou(box, t.box)));
  if (walkers.length === 0 || tracks.length === 0) return [];
  return linearAssignment(cost, 0.7).matches.map(([r, c]) => [walkers[r].wi, tracks[c].id]);
}

/** Walker anchors sit at y = 440 (feet), i.e. box 280..440; the vertical line is at x = 640. */
const Y = 440;
const LEFT: Pt = [200, Y];
const RIGHT: Pt = [1080, Y];

// ---------- assignment ----------

test('assignment: known 3×3 optimum', (t) => {
  const r = linearAssignment([
    [4, 1, 3],
    [2, 0, 5],
    [3, 2, 2],
  ]);
  t.deepEqual(r.matches, [[0, 1], [1, 0], [2, 2]]);
  t.deepEqual(r.unmatchedRows, []);
  t.deepEqual(r.unmatchedCols, []);
});

test('assignment: known 4×3 optimum leaves the costliest row out', (t) => {
  const r = linearAssignment([
    [9, 2, 7],
    [6, 4, 3],
    [5, 8, 1],
    [7, 6, 9],
  ]);
  // Best total: (0,1)=2 + (2,2)=1 + one of rows 1/3 on col 0: row1 → 6, row3 → 7 → pick row 1. Total 9.
  t.deepEqual(r.matches, [[0, 1], [1, 0], [2, 2]]);
  t.deepEqual(r.unmatchedRows, [3]);
  t.deepEqual(r.unmatchedCols, []);
});

test('assignment: gating never matches a pair above maxCost', (t) => {
  const r = linearAssignment([[0.9, 0.95], [0.85, 0.1]], 0.8);
  t.deepEqual(r.matches, [[1, 1]]);
  t.deepEqual(r.unmatchedRows, [0]);
  t.deepEqual(r.unmatchedCols, [0]);
  const none = linearAssignment([[Infinity, NaN]], 0.8);
  t.deepEqual(none.matches, []);
  t.deepEqual(none.unmatchedCols, [0, 1]);
});

test('assignment: gate keeps a strong match over two mediocre ones (lapjv cost_limit semantics)', (t) => {
  const cost = [
    [0.1, 0.6],
    [0.5, 10],
  ];
  // Ungated, 0.6 + 0.5 = 1.1 beats 0.1 + 10.
  t.deepEqual(linearAssignment(cost).matches, [[0, 1], [1, 0]]);
  // Gated at 0.8: 0.1 + two unmatched at 0.4 each = 0.9 < 1.1.
  t.deepEqual(linearAssignment(cost, 0.8).matches, [[0, 0]]);
});

test('assignment: empty inputs', (t) => {
  t.deepEqual(linearAssignment([]), { matches: [], unmatchedRows: [], unmatchedCols: [] });
  t.deepEqual(linearAssignment([[], []]), { matches: [], unmatchedRows: [0, 1], unmatchedCols: [] });
});

test('assignment: matches brute force on random gated matrices', (t) => {
  const rand = prng(7);
  for (let trial = 0; trial < 300; trial++) {
    const rows = 1 + Math.floor(rand() * 5);
    const cols = 1 + Math.floor(rand() * 5);
    const cost = Array.from({ length: rows }, () => Array.from({ length: cols }, () => Math.round(rand() * 100) / 100));
    const gate = 0.2 + rand() * 0.8;
    const r = linearAssignment(cost, gate);
    const objective = (pairs: Array<[number, number]>): number =>
      pairs.reduce((s, [i, j]) => s + cost[i][j], 0) + (gate / 2) * (rows + cols - 2 * pairs.length);
    t.true(r.matches.every(([i, j]) => cost[i][j] <= gate));
    t.is(r.unmatchedRows.length, rows - r.matches.length);
    t.is(r.unmatchedCols.length, cols - r.matches.length);
    t.true(Math.abs(objective(r.matches) - bruteForce(cost, gate)) < 1e-9, `trial ${trial}`);
  }
});

/** Minimum of the gated objective over every partial matching. */
function bruteForce(cost: number[][], gate: number): number {
  const rows = cost.length;
  const cols = cost[0].length;
  const usedCols = new Array<boolean>(cols).fill(false);
  const go = (i: number): number => {
    if (i === rows) return (gate / 2) * usedCols.filter((u) => !u).length;
    let best = gate / 2 + go(i + 1); // row i unmatched
    for (let j = 0; j < cols; j++) {
      if (usedCols[j] || cost[i][j] > gate) continue;
      usedCols[j] = true;
      best = Math.min(best, cost[i][j] + go(i + 1));
      usedCols[j] = false;
    }
    return best;
  };
  return go(0);
}

// ---------- Kalman ----------

test('kalman: box ↔ xyah round trip', (t) => {
  const box: Box = [10, 20, 70, 180];
  t.deepEqual(boxToXyah(box), [40, 100, 60 / 160, 160]);
  t.deepEqual(xyahToBox(boxToXyah(box)), box);
});

test('kalman: converges to a constant-velocity target', (t) => {
  const kf = new KalmanBoxFilter();
  const rand = prng(3);
  const truth = (k: number): Xyah => [100 + 5 * k, 400 - 2 * k, 0.4, 150];
  const s = kf.initiate(truth(0));
  for (let k = 1; k <= 60; k++) {
    kf.predict(s);
    const z = truth(k).map((v, i) => v + (i === 2 ? 0 : (rand() * 2 - 1) * 2)) as Xyah;
    kf.update(s, z);
  }
  t.true(Math.abs(s.mean[4] - 5) < 0.3, `vx ${s.mean[4]}`);
  t.true(Math.abs(s.mean[5] + 2) < 0.3, `vy ${s.mean[5]}`);
  t.true(Math.abs(s.mean[0] - truth(60)[0]) < 3);
  t.true(Math.abs(s.mean[1] - truth(60)[1]) < 3);
  t.true(Math.abs(s.mean[2] - 0.4) < 1e-3);
  // Pure prediction then follows the motion.
  kf.predict(s);
  t.true(Math.abs(s.mean[0] - truth(61)[0]) < 3);
  // Covariance stays symmetric and positive on the diagonal.
  for (let i = 0; i < 8; i++) {
    t.true(s.cov[i * 8 + i] > 0);
    for (let j = 0; j < 8; j++) t.is(s.cov[i * 8 + j], s.cov[j * 8 + i]);
  }
});

// ---------- tracker + counter scenarios ----------

test('clean crossing left→right counts in=1, right→left counts out=1', (t) => {
  const ltr = run([{ path: walk(LEFT, RIGHT, 100) }]);
  t.deepEqual(ltr.counts, { in: 1, out: 0 });
  t.deepEqual(ltr.ids, [1]);
  t.is(ltr.crossings[0].trackId, 1);
  t.is(ltr.crossings[0].direction, 'in');
  t.true(ltr.crossings[0].anchor[0] >= 640 + HYST * W - 1e-9);

  const rtl = run([{ path: walk(RIGHT, LEFT, 100) }]);
  t.deepEqual(rtl.counts, { in: 0, out: 1 });
  t.deepEqual(rtl.ids, [1]);
});

test('jitter across the line (±hysteresis/2 for 100 frames) never counts', (t) => {
  const amp = (HYST / 2) * W;
  const jitter = Array.from({ length: 100 }, (_, i): Pt => [640 + amp * Math.sin((2 * Math.PI * i) / 12), Y]);
  t.deepEqual(run([{ path: jitter }]).counts, { in: 0, out: 0 });
  // Also when the track already committed to the left side before it started dithering.
  const arriveJitterLeave = [...walk(LEFT, [640 - amp, Y], 60), ...jitter, ...walk([640 - amp, Y], LEFT, 60)];
  const r = run([{ path: arriveJitterLeave }]);
  t.deepEqual(r.counts, { in: 0, out: 0 });
  t.deepEqual(r.ids, [1]);
});

test('stop-and-go on the line counts exactly once', (t) => {
  const path = [...walk(LEFT, [640, Y], 50), ...stay([640, Y], 50), ...walk([640, Y], RIGHT, 50)];
  const r = run([{ path, noise: 3 }]);
  t.deepEqual(r.counts, { in: 1, out: 0 });
  t.deepEqual(r.ids, [1]);
});

test('a track that crosses and comes back counts in=1 and out=1', (t) => {
  const path = [...walk(LEFT, [900, Y], 80), ...walk([900, Y], LEFT, 80)];
  const r = run([{ path }]);
  t.deepEqual(r.counts, { in: 1, out: 1 });
  t.deepEqual(r.crossings.map((c) => c.direction), ['in', 'out']);
  t.deepEqual(r.ids, [1]);
});

test('re-crossing in again after coming back counts in=2', (t) => {
  const path = [...walk(LEFT, [900, Y], 60), ...walk([900, Y], [400, Y], 50), ...walk([400, Y], RIGHT, 60)];
  const r = run([{ path }]);
  t.deepEqual(r.counts, { in: 2, out: 1 });
  t.deepEqual(r.ids, [1]);
});

test('short-lived detections across the line never count and never burn ids', (t) => {
  // A 2-frame blip straddling the line, then a flickering false positive (2 on, 2 off), then a real walker.
  const blip: Walker = { path: walk([630, Y], [650, Y], 2) };
  const flicker: Walker = {
    start: 5,
    path: Array.from({ length: 60 }, (_, i) => (i % 4 < 2 ? ([620 + i, 300] as Pt) : null)),
  };
  const walker: Walker = { start: 80, path: walk(LEFT, RIGHT, 100) };
  const r = run([blip, flicker, walker]);
  t.deepEqual(r.counts, { in: 1, out: 0 });
  t.deepEqual(r.ids, [1]);
  t.is(r.crossings[0].trackId, 1);
  t.is(r.idsPerWalker[0].size, 0);
  t.is(r.idsPerWalker[1].size, 0);
});

test('two people crossing side by side count twice with distinct ids', (t) => {
  // 100 px apart vertically: the boxes overlap (IoU ≈ 0.23), as shoulder-to-shoulder walkers do.
  const r = run([
    { path: walk(LEFT, RIGHT, 100) },
    { path: walk([200, Y + 100], [1080, Y + 100], 100) },
  ]);
  t.deepEqual(r.counts, { in: 2, out: 0 });
  t.deepEqual(r.ids, [1, 2]);
  t.deepEqual(new Set(r.crossings.map((c) => c.trackId)).size, 2);
  t.deepEqual(r.idsPerWalker.map((s) => s.size), [1, 1]);
});

test('occlusion gap of 10 frames across the line: one count, same id', (t) => {
  // Visible up to x = 600 (before the line), hidden 10 frames, visible again from x ≈ 688.
  const full = walk(LEFT, RIGHT, 101); // 8.8 px/frame
  const path = full.map((p, i) => (i > 45 && i <= 55 ? null : p));
  t.true(path[45]![0] < 640 - HYST * W && path[56]![0] > 640 + HYST * W);
  const r = run([{ path }]);
  t.deepEqual(r.counts, { in: 1, out: 0 });
  t.deepEqual(r.ids, [1]);
  t.deepEqual([...r.idsPerWalker[0]], [1]);
});

test('a walker who speeds up while hidden is found again on widened boxes (C-BIoU): one count, same id', (t) => {
  // 2 px/frame up to x = 600, hidden 10 frames while walking on at 8 px/frame, seen again from x = 688: the motion
  // model predicts x ≈ 620, so the boxes no longer overlap, as for a man walking on behind someone standing.
  const slow = walk([520, Y], [600, Y], 41);
  const hidden = Array.from({ length: 10 }, () => null);
  const fast = walk([688, Y], [1000, Y], 40);
  const path = [...slow, ...hidden, ...fast];
  const r = run([{ path }]);
  t.deepEqual(r.counts, { in: 1, out: 0 });
  t.deepEqual(r.ids, [1]);

  // Without recovery the walker comes back as a new track that starts past the line: the crossing is lost.
  const off = run([{ path }], VERTICAL, { recoverGrowth: 0 });
  t.deepEqual(off.counts, { in: 0, out: 0 });
  t.deepEqual(off.ids, [1, 2]);

  // A box of another height is someone else (a child, or a person cut by an occluder): a new id.
  const other = run([{ path: [...slow, ...hidden] }, { path: fast, start: slow.length + hidden.length, size: [40, 90] }]);
  t.deepEqual(other.ids, [1, 2]);
  t.deepEqual(other.counts, { in: 0, out: 0 });
});

test('line near the frame edge: a walker leaving the frame counts once its anchor passes the line', (t) => {
  // Line at x = 0.98: only 0.02 of room, so the required distance shrinks to half of it (anchor x ≥ 0.99·W).
  // The detector box is clipped at the border, so the anchor of a leaving walker creeps towards x = W.
  const edge: LineCounterOptions = { line: [[0.98, 0], [0.98, 1]], inDirection: 'left-to-right' };
  const exits = run([{ path: walk([900, Y], [1400, Y], 60) }], edge);
  t.deepEqual(exits.counts, { in: 1, out: 0 });
  t.true(exits.crossings[0].anchor[0] >= 0.99 * W - 1e-9);
  t.true(exits.crossings[0].anchor[0] <= W);

  // Approaching to just short of the line and turning back never counts.
  const turns = run([{ path: [...walk([900, Y], [0.975 * W, Y], 30), ...walk([0.975 * W, Y], [900, Y], 30)] }], edge);
  t.deepEqual(turns.counts, { in: 0, out: 0 });

  // Entering from the border: first seen beyond the line on the border side commits there at once (by
  // confirmation the clipped anchor is usually inside the band), and counts out once clear on the left.
  const enters = run([{ path: walk([1300, Y], [900, Y], 60) }], edge);
  t.deepEqual(enters.counts, { in: 0, out: 1 });
  // Entering and turning back inside the band never counts.
  const peeks = run([{ path: [...walk([1300, Y], [0.975 * W, Y], 20), ...walk([0.975 * W, Y], [1300, Y], 20)] }], edge);
  t.deepEqual(peeks.counts, { in: 0, out: 0 });
});

test('a diagonal line counts the same as a vertical one for the same motion', (t) => {
  // Crosses y = 440 (0.611) at x ≈ 0.533·W; perpendicular hysteresis makes no difference to the outcome.
  const diagonal: LineCounterOptions = { line: [[0.35, 0], [0.65, 1]], inDirection: 'left-to-right' };
  const motions: Walker[][] = [
    [{ path: walk(LEFT, RIGHT, 100) }],
    [{ path: walk(RIGHT, LEFT, 100) }],
    [{ path: [...walk(LEFT, [900, Y], 80), ...walk([900, Y], LEFT, 80)] }],
  ];
  for (const m of motions) t.deepEqual(run(m, diagonal).counts, run(m, VERTICAL).counts);
  t.deepEqual(run(motions[2], diagonal).counts, { in: 1, out: 1 });

  // Jitter of ±hysteresis/2 measured perpendicular to the diagonal does not count either.
  const n: Pt = [1 / Math.hypot(1, 0.3), -0.3 / Math.hypot(1, 0.3)]; // unit normal, normalised coords
  const foot: Pt = [0.35 + 0.3 * (Y / H), Y / H];
  const amp = HYST / 2;
  const jitter = Array.from({ length: 100 }, (_, i): Pt => {
    const k = amp * Math.sin((2 * Math.PI * i) / 12);
    return [(foot[0] + k * n[0]) * W, (foot[1] + k * n[1]) * H];
  });
  t.deepEqual(run([{ path: jitter }], diagonal).counts, { in: 0, out: 0 });
});

test('crossing outside the segment extent does not count', (t) => {
  const short: LineCounterOptions = { line: [[0.5, 0], [0.5, 0.4]], inDirection: 'left-to-right' };
  // Feet at y = 440 (0.61): passes 0.21 below the end of the segment.
  t.deepEqual(run([{ path: walk(LEFT, RIGHT, 100) }], short).counts, { in: 0, out: 0 });
  // Feet at y = 280 (0.39): on the segment.
  t.deepEqual(run([{ path: walk([200, 280], [1080, 280], 100) }], short).counts, { in: 1, out: 0 });
  // Just past the end but within the default 0.02 margin (y = 0.41): still counts.
  t.deepEqual(run([{ path: walk([200, 0.41 * H], [1080, 0.41 * H], 100) }], short).counts, { in: 1, out: 0 });
});

test('direction names map onto the line orientation either way round', (t) => {
  const down = [{ path: walk([640, 150], [640, 650], 100), size: [60, 100] as [number, number] }];
  const horiz = (inDirection: LineCounterOptions['inDirection'], reversed = false): LineCounterOptions => ({
    line: reversed ? [[0.9, 0.6], [0.1, 0.6]] : [[0.1, 0.6], [0.9, 0.6]],
    inDirection,
  });
  t.deepEqual(run(down, horiz('top-to-bottom')).counts, { in: 1, out: 0 });
  t.deepEqual(run(down, horiz('top-to-bottom', true)).counts, { in: 1, out: 0 });
  t.deepEqual(run(down, horiz('bottom-to-top')).counts, { in: 0, out: 1 });
  // A→B pointing right: s > 0 is below the line on screen, so moving down is 'positive'.
  t.deepEqual(run(down, horiz('positive')).counts, { in: 1, out: 0 });
  t.deepEqual(run(down, horiz('positive', true)).counts, { in: 0, out: 1 });
  t.throws(() => new LineCounter(horiz('left-to-right')), { instanceOf: RangeError });
  t.throws(() => new LineCounter({ line: [[0.5, 0.5], [0.5, 0.5]], inDirection: 'positive' }), { instanceOf: RangeError });
});

test('low-score detections keep a track alive (same id) but never start one', (t) => {
  // Scores drop to 0.2–0.4 for frames 35..75, which spans the crossing (frame ≈ 50).
  const rand = prng(11);
  const lowScores = Array.from({ length: 100 }, () => 0.2 + rand() * 0.2);
  const dimmed: Walker = { path: walk(LEFT, RIGHT, 100), score: (i) => (i >= 35 && i <= 75 ? lowScores[i] : 0.9) };
  // Another walker that is only ever detected with low scores, well away from the first.
  const faint: Walker = { path: walk([200, 700], [1080, 700], 100), score: (i) => lowScores[i] };
  const r = run([dimmed, faint]);
  t.deepEqual(r.counts, { in: 1, out: 0 });
  t.deepEqual(r.ids, [1]);
  t.deepEqual([...r.idsPerWalker[0]], [1]);
  t.is(r.idsPerWalker[1].size, 0);

  // Without the second stage the same walker would be lost for 41 frames (> maxLost 30) and re-born.
  const noSecondStage = run([dimmed], VERTICAL, { lowThresh: 0.5 });
  t.true(noSecondStage.ids.length === 2, `ids ${noSecondStage.ids.join(',')}`);
});

test('two walkers crossing paths (X) keep their ids', (t) => {
  // Head-on: A walks right, B walks left 30 px lower; their boxes fully overlap around the line.
  const a: Walker = { path: walk(LEFT, RIGHT, 100) };
  const b: Walker = { path: walk([1080, Y + 30], [200, Y + 30], 100) };
  const r = run([a, b]);
  t.deepEqual(r.counts, { in: 1, out: 1 });
  t.deepEqual(r.idsPerWalker.map((s) => [...s]), [[1], [2]]);
  t.deepEqual(
    r.crossings.map((c) => [c.trackId, c.direction]),
    r.crossings.map((c) => [c.trackId, c.trackId === 1 ? 'in' : 'out']),
  );

  // Same, but B (behind) is occluded by A for 8 frames around the meeting point; diagonal paths.
  const a2: Walker = { path: walk([200, 300], [1080, 560], 100) };
  const bPath = walk([1080, 300], [200, 560], 100).map((p, i) => (i >= 46 && i < 54 ? null : p));
  const r2 = run([a2, { path: bPath }]);
  t.deepEqual(r2.counts, { in: 1, out: 1 });
  t.deepEqual(r2.idsPerWalker.map((s) => [...s]), [[1], [2]]);
});

test('ids are never reused and memory stays bounded over 1000 short-lived walkers', (t) => {
  // A new walker every 12 frames, each crossing in 40 frames, in one of four lanes that never overlap.
  const walkers: Walker[] = Array.from({ length: 1000 }, (_, k) => {
    const y = 200 + (k % 4) * 170;
    return { start: k * 12, path: walk([500, y], [780, y], 40), size: [50, 120] as [number, number] };
  });
  const { dets } = render(walkers, 5);
  const tracker = new ByteTracker({ idStart: 1 });
  const counter = new LineCounter(VERTICAL);
  const seen: number[] = [];
  let maxLive = 0;
  let maxCounterState = 0;
  dets.forEach((frameDets, f) => {
    const tracks = tracker.update(frameDets, f);
    counter.update(tracks, W, H, f * 40);
    for (const tr of tracks) if (!seen.includes(tr.id)) seen.push(tr.id);
    maxLive = Math.max(maxLive, tracker.tracks.length);
    maxCounterState = Math.max(maxCounterState, counter.trackCount);
  });
  t.deepEqual(seen, Array.from({ length: 1000 }, (_, i) => i + 1)); // one id each, in order, none reused
  t.deepEqual(counter.counts, { in: 1000, out: 0 });
  t.true(maxLive <= 8, `max live tracks ${maxLive}`);
  t.true(maxCounterState <= 30, `max counter state ${maxCounterState}`);
  // After the scene empties, lost tracks expire and the tracker holds nothing.
  for (let f = dets.length; f < dets.length + 40; f++) tracker.update([], f);
  t.is(tracker.tracks.length, 0);
});

test('idStart resumes numbering; includeLost reports predicted lost tracks until maxLost', (t) => {
  const { dets } = render([{ path: walk(LEFT, [600, Y], 20) }]);
  const tracker = new ByteTracker({ idStart: 42, includeLost: true, maxLost: 5 });
  let last: Track[] = [];
  dets.forEach((d, f) => (last = tracker.update(d, f)));
  t.deepEqual(last.map((x) => [x.id, x.state]), [[42, 'confirmed']]);
  const vx = last[0].velocity[0];
  t.true(Math.abs(vx - 20.95) < 1.5, `vx ${vx}`);

  const lost = tracker.update([], 20);
  t.deepEqual(lost.map((x) => [x.id, x.state, x.hits]), [[42, 'lost', 0]]);
  t.true(lost[0].box[0] > last[0].box[0]); // predicted forward
  for (let f = 21; f <= 24; f++) t.is(tracker.update([], f).length, 1); // lost for 5 frames in all
  t.is(tracker.update([], 25).length, 0); // unseen for 6 frames > maxLost 5
  t.is(tracker.tracks.length, 0);
});

test('tentative tracks are listed without an id and are dropped after one miss', (t) => {
  const tracker = new ByteTracker();
  const det: Detection = { box: [100, 100, 160, 260], score: 0.9, classId: 0, label: 'person' };
  t.deepEqual(tracker.update([det], 0), []);
  t.deepEqual(tracker.tracks.map((x) => [x.id, x.state]), [[-1, 'tentative']]);
  t.deepEqual(tracker.update([], 1), []);
  t.is(tracker.tracks.length, 0);
  // Scores in [highThresh, newTrackThresh) never start a track.
  tracker.update([{ ...det, score: 0.55 }], 2);
  t.is(tracker.tracks.length, 0);
});

// ---------- counter on hand-made tracks ----------

const boxAtX = (x: number): Box => [x - 30, 280, x + 30, 440];

test('counter: only confirmed tracks move it; forget and staleness free state; reset zeroes counts', (t) => {
  const c = new LineCounter({ ...VERTICAL, staleFrames: 3 });
  const feed = (x: number, state: Track['state'] = 'confirmed', id = 7): Crossing[] =>
    c.update([{ id, box: boxAtX(x), state }], W, H, 0);
  feed(500, 'tentative');
  feed(800, 'tentative');
  t.is(c.trackCount, 0);
  feed(500);
  feed(700, 'lost'); // lost: ignored, but keeps the state alive
  t.deepEqual(feed(800).map((x) => x.direction), ['in']);
  t.deepEqual(c.counts, { in: 1, out: 0 });
  c.reset();
  t.deepEqual(c.counts, { in: 0, out: 0 });
  t.deepEqual(feed(500).map((x) => x.direction), ['out']); // per-track side survived reset
  c.forget(7);
  t.is(c.trackCount, 0);
  feed(800); // fresh state: commits to the right without counting
  t.deepEqual(c.counts, { in: 0, out: 1 });
  for (let i = 0; i < 4; i++) c.update([], W, H, 0);
  t.is(c.trackCount, 0);
});

test('counter: anchor choice decides which point must cross', (t) => {
  // Horizontal line at y = 0.5 (360 px); a box whose feet are below the line but whose head is above.
  const line: LineCounterOptions['line'] = [[0, 0.5], [1, 0.5]];
  const box = (top: number): Box => [600, top, 660, top + 160];
  const feed = (anchor: 'bottom-center' | 'top-center' | 'center'): { in: number; out: number } => {
    const c = new LineCounter({ line, inDirection: 'top-to-bottom', anchor });
    for (const top of [100, 200, 300]) c.update([{ id: 1, box: box(top), state: 'confirmed' }], W, H, 0);
    return c.counts;
  };
  t.deepEqual(feed('bottom-center'), { in: 1, out: 0 }); // feet 260 → 460
  t.deepEqual(feed('center'), { in: 1, out: 0 }); // centre 180 → 380 (≥ 360 + 7.2)
  t.deepEqual(feed('top-center'), { in: 0, out: 0 }); // head 100 → 300, still above
});

test('counter: a track carries its origin, so a crossing made while it was tentative still counts', (t) => {
  const feed = (origin: number, xs: number[]): { in: number; out: number } => {
    const c = new LineCounter(VERTICAL);
    for (const x of xs) c.update([{ id: 1, box: boxAtX(x), state: 'confirmed', origin: boxAtX(origin) }], W, H, 0);
    return c.counts;
  };
  // First seen clear on the left, confirmed already past the line: counts once it is clear on the right.
  t.deepEqual(feed(600, [660, 700, 720]), { in: 1, out: 0 });
  t.deepEqual(feed(600, [645, 648]), { in: 0, out: 0 }); // not clear on the right yet (640 + 12.8)
  // First seen inside the band, left of the line, then leaving on the right: counted once; leaving on the left: not.
  t.deepEqual(feed(636, [650, 700, 760]), { in: 1, out: 0 });
  t.deepEqual(feed(644, [630, 600, 520]), { in: 0, out: 1 });
  t.deepEqual(feed(636, [620, 560]), { in: 0, out: 0 });
  // Born exactly on the line: no side, so leaving it commits without counting.
  t.deepEqual(feed(640, [700, 760]), { in: 0, out: 0 });
  // Without an origin the first clear position only commits.
  const c = new LineCounter(VERTICAL);
  for (const x of [660, 700, 720]) c.update([{ id: 1, box: boxAtX(x), state: 'confirmed' }], W, H, 0);
  t.deepEqual(c.counts, { in: 0, out: 0 });
});

test('tracker: a track keeps the detection that started it as its origin', (t) => {
  const tracker = new ByteTracker();
  let tracks: Track[] = [];
  for (let f = 0; f < 5; f++) tracks = tracker.update([{ box: boxAtX(500 + 10 * f), score: 0.9, classId: 0, label: 'person' }], f);
  t.is(tracks.length, 1);
  t.deepEqual(tracks[0]!.origin, boxAtX(500));
  t.true(tracks[0]!.box[0] > boxAtX(530)[0]);
});

test('RateGate lets a stream at exactly the cap through, and thins a faster one to the cap', async (t) => {
  const { RateGate } = await import('../core/rate-gate.js');
  const at10 = new RateGate(10);
  // 10 fps with ±3 ms of jitter against a cap of 10: every frame passes.
  const passed10 = Array.from({ length: 100 }, (_, i) => at10.allow(i * 100 + ((i * 7919) % 7) - 3)).filter(Boolean).length;
  t.is(passed10, 100);
  const at5 = new RateGate(5);
  const passed5 = Array.from({ length: 300 }, (_, i) => at5.allow(i * 33.3)).filter(Boolean).length;
  t.true(passed5 >= 49 && passed5 <= 51, `${passed5} of 300 frames at 30 fps through a 5 fps gate (10 s)`);
});

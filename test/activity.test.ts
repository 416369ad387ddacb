/**
 * Activity analysis on synthetic skeletons: posture rules on static poses, and fall detection on
 * keypoint sequences at 10 fps (a fall, sitting down slowly, lying down slowly, a fast crouch, a trip
 * with an immediate get-up): only the real fall raises a fall, and standing up afterwards is a recovery.
 */
import test from 'ava';
import type { Packet } from '../core/types.js';
import { StageHarness } from './harness/stage-harness.js';
import { activityStage } from '../stages/activity.js';
import { COCO_KEYPOINTS, type Box, type Keypoint, type KeypointName, type PersonPose } from '../core/types.js';
import { ActivityAnalyzer, type ActivityUpdate } from '../stages/activity/analyzer.js';
import { classifyPosture } from '../stages/activity/posture.js';
import { prng } from './prng.js';

// ---------- synthetic skeletons ----------

/** Joint positions in body heights: x to the side of the feet, y up from the floor. */
type Skeleton = Record<KeypointName, [number, number]>;

function symmetric(centre: Partial<Record<'nose', [number, number]>>, pairs: Record<string, [number, number]>): Skeleton {
  const s: Partial<Skeleton> = { nose: centre.nose };
  for (const [part, [dx, y]] of Object.entries(pairs)) {
    s[`left_${part}` as KeypointName] = [dx, y];
    s[`right_${part}` as KeypointName] = [-dx, y];
  }
  return s as Skeleton;
}

const STANDING = symmetric({ nose: [0, 0.93] }, {
  eye: [0.02, 0.95], ear: [0.05, 0.94], shoulder: [0.12, 0.82], elbow: [0.14, 0.64], wrist: [0.14, 0.48],
  hip: [0.07, 0.53], knee: [0.07, 0.28], ankle: [0.07, 0.04],
});
const SITTING = symmetric({ nose: [0, 0.68] }, {
  eye: [0.02, 0.7], ear: [0.05, 0.69], shoulder: [0.12, 0.57], elbow: [0.15, 0.42], wrist: [0.12, 0.32],
  hip: [0.07, 0.28], knee: [0.08, 0.3], ankle: [0.08, 0.04],
});
const CROUCHING = symmetric({ nose: [0.04, 0.58] }, {
  eye: [0.03, 0.6], ear: [0.06, 0.59], shoulder: [0.12, 0.48], elbow: [0.14, 0.36], wrist: [0.12, 0.28],
  hip: [0.08, 0.22], knee: [0.1, 0.3], ankle: [0.07, 0.04],
});
// On the floor, head to the left.
const LYING: Skeleton = {
  nose: [-0.46, 0.08], left_eye: [-0.47, 0.1], right_eye: [-0.45, 0.1], left_ear: [-0.43, 0.11], right_ear: [-0.43, 0.05],
  left_shoulder: [-0.34, 0.12], right_shoulder: [-0.34, 0.04], left_elbow: [-0.18, 0.14], right_elbow: [-0.18, 0.03],
  left_wrist: [-0.05, 0.14], right_wrist: [-0.05, 0.02], left_hip: [-0.05, 0.1], right_hip: [-0.05, 0.05],
  left_knee: [0.2, 0.1], right_knee: [0.2, 0.05], left_ankle: [0.45, 0.09], right_ankle: [0.45, 0.05],
};

const HEIGHT = 200; // px
const FLOOR = 500;

function keypoints(s: Skeleton, footX: number, confidence = 0.7): Keypoint[] {
  return COCO_KEYPOINTS.map((name) => ({
    name, x: footX + s[name][0] * HEIGHT, y: FLOOR - s[name][1] * HEIGHT, confidence, visible: true,
  }));
}

/** The detector's box: the keypoints' extent with a margin. */
function boxOf(kp: Keypoint[]): Box {
  const m = 0.05 * HEIGHT;
  return [Math.min(...kp.map((k) => k.x)) - m, Math.min(...kp.map((k) => k.y)) - m, Math.max(...kp.map((k) => k.x)) + m, Math.max(...kp.map((k) => k.y)) + m];
}

function blend(a: Skeleton, b: Skeleton, f: number): Skeleton {
  const s: Partial<Skeleton> = {};
  for (const name of COCO_KEYPOINTS) s[name] = [a[name][0] + (b[name][0] - a[name][0]) * f, a[name][1] + (b[name][1] - a[name][1]) * f];
  return s as Skeleton;
}

type Ease = (f: number) => number;
const easeIn: Ease = (f) => f * f; // accelerating, like falling
const smooth: Ease = (f) => f * f * (3 - 2 * f); // deliberate movement

/** Hold a skeleton, or move to one, for `seconds`. */
type Step = { hold: Skeleton; seconds: number } | { to: Skeleton; seconds: number; ease?: Ease };

const FPS = 10;

/** Skeleton per frame at 10 fps. */
function sequence(start: Skeleton, steps: Step[]): Skeleton[] {
  const frames: Skeleton[] = [];
  let at = start;
  for (const step of steps) {
    const n = Math.round(step.seconds * FPS);
    if ('hold' in step) {
      at = step.hold;
      for (let i = 0; i < n; i++) frames.push(at);
    } else {
      const from = at;
      for (let i = 1; i <= n; i++) frames.push(blend(from, step.to, (step.ease ?? smooth)(i / n)));
      at = step.to;
    }
  }
  return frames;
}

/** Real keypoints jitter and drop out: ± `px` on each coordinate, and a share of them below visibility. */
interface Noise { px: number; dropout: number; seed: number }

/** Runs a single person's frames through a fresh analyzer; returns every update. */
function run(frames: Skeleton[], analyzer = new ActivityAnalyzer(), noise?: Noise): ActivityUpdate[] {
  let last: [number, number] | undefined;
  const rand = prng(noise?.seed ?? 1);
  return frames.map((s, i) => {
    const kp = keypoints(s, 300).map((k) => {
      if (!noise) return k;
      const x = k.x + (rand() * 2 - 1) * noise.px;
      const y = k.y + (rand() * 2 - 1) * noise.px;
      return rand() < noise.dropout ? { ...k, x, y, confidence: 0.1, visible: false } : { ...k, x, y };
    });
    const box = boxOf(kp);
    const centre: [number, number] = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2];
    const velocity: [number, number] = last ? [centre[0] - last[0], centre[1] - last[1]] : [0, 0];
    last = centre;
    const pose: PersonPose = { trackId: 7, box, score: 0.9, confidence: 0.7, keypoints: kp };
    const tMs = (i * 1000) / FPS;
    return analyzer.update({ tMs, atMs: 1_700_000_000_000 + tMs, tracks: [{ id: 7, box, velocity, state: 'confirmed' }], poses: [pose] });
  });
}

const falls = (u: ActivityUpdate[]) => u.flatMap((x) => x.falls);
const recoveries = (u: ActivityUpdate[]) => u.flatMap((x) => x.recoveries);
const postureAt = (u: ActivityUpdate[], i: number) => u[i].activities[0]?.posture;

// ---------- posture ----------

test('posture of static skeletons: standing, sitting, crouching counts as sitting, lying', (t) => {
  for (const [s, expected] of [[STANDING, 'standing'], [SITTING, 'sitting'], [CROUCHING, 'sitting'], [LYING, 'lying']] as const) {
    const kp = keypoints(s, 300);
    const r = classifyPosture(kp, boxOf(kp), 0);
    t.is(r.posture, expected);
    t.true(r.confidence > 0.5 && r.confidence <= 1, `${expected} confidence ${r.confidence}`);
  }
});

test('upright posture by speed in body heights per second; boxes alone when shoulders or hips are missing', (t) => {
  const kp = keypoints(STANDING, 300);
  const box = boxOf(kp);
  t.is(classifyPosture(kp, box, 0.1).posture, 'standing');
  t.is(classifyPosture(kp, box, 0.6).posture, 'walking');
  t.is(classifyPosture(kp, box, 2).posture, 'running');
  const noTorso = kp.map((k) => (k.name.endsWith('hip') ? { ...k, confidence: 0.05, visible: false } : k));
  t.is(classifyPosture(noTorso, box, 0.6).posture, 'walking', 'a tall box');
  t.is(classifyPosture(undefined, [0, 0, 200, 60], 0).posture, 'lying', 'a wide box');
  t.is(classifyPosture(undefined, [0, 0, 100, 100], 0).posture, 'unknown');
});

// ---------- falls ----------

test('a fall (fast drop to the floor, lying still) raises one fall; standing up again is a recovery', (t) => {
  const u = run(sequence(STANDING, [
    { hold: STANDING, seconds: 2 },
    { to: LYING, seconds: 0.6, ease: easeIn },
    { hold: LYING, seconds: 4 },
    { to: SITTING, seconds: 1.5 },
    { to: STANDING, seconds: 1 },
    { hold: STANDING, seconds: 3 },
  ]));
  const f = falls(u);
  t.is(f.length, 1, JSON.stringify(f));
  const fall = f[0];
  t.is(fall.trackId, 7);
  const fallFrame = u.findIndex((x) => x.falls.length);
  t.log(`fall at ${fallFrame / FPS} s: duration ${fall.fallDuration} s, severity ${fall.impactSeverity.toFixed(2)}, confidence ${fall.confidence.toFixed(2)}`);
  // Lying for the default 1.5 s after reaching the floor at 2.6 s.
  t.true(fallFrame / FPS >= 2.6 + 1.5 - 0.5 && fallFrame / FPS <= 2.6 + 1.5 + 0.6, `fall reported at ${fallFrame / FPS} s`);
  t.true(fall.fallDuration > 0.2 && fall.fallDuration <= 1.5, `fallDuration ${fall.fallDuration}`);
  t.true(fall.impactSeverity > 0.3 && fall.impactSeverity <= 1, `impactSeverity ${fall.impactSeverity}`);
  t.true(fall.confidence > 0.5 && fall.confidence <= 1, `confidence ${fall.confidence}`);
  t.true(u[fallFrame].activities[0].fallen);
  t.is(postureAt(u, fallFrame), 'lying');

  const r = recoveries(u);
  t.is(r.length, 1);
  t.is(r[0].trackId, 7);
  t.true(r[0].lyingSeconds > 3 && r[0].lyingSeconds < 7.5, `lying ${r[0].lyingSeconds} s`);
  t.false(u[u.length - 1].activities[0].fallen);
  t.is(postureAt(u, u.length - 1), 'standing');
});

test('sitting down slowly is no fall', (t) => {
  const u = run(sequence(STANDING, [{ hold: STANDING, seconds: 2 }, { to: SITTING, seconds: 1.5 }, { hold: SITTING, seconds: 5 }]));
  t.deepEqual(falls(u), []);
  t.is(postureAt(u, u.length - 1), 'sitting');
});

test('lying down slowly (sit, then lie back) is no fall', (t) => {
  const u = run(sequence(STANDING, [
    { hold: STANDING, seconds: 2 }, { to: SITTING, seconds: 2 }, { hold: SITTING, seconds: 1 }, { to: LYING, seconds: 3 }, { hold: LYING, seconds: 6 },
  ]));
  t.deepEqual(falls(u), []);
  t.is(postureAt(u, u.length - 1), 'lying');
  t.false(u[u.length - 1].activities[0].fallen);
});

test('a fast crouch (and standing up again) is no fall', (t) => {
  const u = run(sequence(STANDING, [
    { hold: STANDING, seconds: 2 }, { to: CROUCHING, seconds: 0.5, ease: easeIn }, { hold: CROUCHING, seconds: 4 }, { to: STANDING,
      seconds: 1 }, { hold: STANDING, seconds: 2 },
  ]));
  t.deepEqual(falls(u), []);
  t.true(u.some((x) => x.activities[0].posture === 'sitting'), 'the crouch reads as sitting');
});

test('dropping onto a chair fast is no fall (it never lies)', (t) => {
  const u = run(sequence(STANDING, [{ hold: STANDING, seconds: 2 }, { to: SITTING, seconds: 0.4, ease: easeIn }, { hold: SITTING, seconds: 5 }]));
  t.deepEqual(falls(u), []);
});

test('a fall followed by getting straight up (lying under the configured time) is no fall', (t) => {
  const u = run(sequence(STANDING, [
    { hold: STANDING, seconds: 2 }, { to: LYING, seconds: 0.6, ease: easeIn }, { hold: LYING, seconds: 0.5 }, { to: STANDING, seconds: 1 },
      { hold: STANDING, seconds: 3 },
  ]));
  t.deepEqual(falls(u), []);
  t.deepEqual(recoveries(u), []);
});

test('the lying time is configurable: with 4 s, a fall with 3 s on the floor is not reported', (t) => {
  const steps: Step[] = [{ hold: STANDING, seconds: 2 }, { to: LYING, seconds: 0.6, ease: easeIn }, { hold: LYING, seconds: 3 }, { to: STANDING,
    seconds: 1.5 }];
  t.is(falls(run(sequence(STANDING, steps))).length, 1, 'reported with the default 1.5 s');
  t.is(falls(run(sequence(STANDING, steps), new ActivityAnalyzer({ lyingMs: 4000 }))).length, 0);
});

// ---------- trajectory, prediction, occupancy ----------

test('trajectory keeps the last N centres; the prediction follows the tracker velocity', (t) => {
  const a = new ActivityAnalyzer({ trajectoryLength: 5, predictMs: 1000 });
  let last: ActivityUpdate | undefined;
  for (let i = 0; i < 12; i++) {
    const x = 100 + 4 * i; // 4 px per frame at 10 fps = 40 px/s
    const box: Box = [x - 20, 100, x + 20, 260];
    last = a.update({ tMs: i * 100, atMs: 1000 + i * 100, tracks: [{ id: 1, box, velocity: [4, 0], state: 'confirmed' }], poses: [] });
  }
  const act = last!.activities[0];
  t.deepEqual(act.trajectory.map((p) => p.x), [128, 132, 136, 140, 144]);
  t.deepEqual(act.trajectory.map((p) => p.atMs), [1700, 1800, 1900, 2000, 2100]);
  t.true(Math.abs(act.speedPxPerS - 40) < 1e-6, `speed ${act.speedPxPerS}`);
  t.true(Math.abs(act.predicted.x - (144 + 40)) < 1e-6 && act.predicted.y === 180, `predicted ${JSON.stringify(act.predicted)}`);
  t.is(act.predicted.horizonMs, 1000);
});

test('occupancy changes once a new count holds; lost tracks do not count', (t) => {
  const a = new ActivityAnalyzer({ occupancyHoldMs: 300 });
  const track = (id: number, state: 'confirmed' | 'lost' = 'confirmed') => ({ id, box: [0, 0, 50, 150] as Box, velocity: [0, 0] as [number, number], state });
  const counts = [[1, 2], [1, 2], [1, 2], [1, 2], [1, 2, 3], [1, 2], [1, 2], [1], [1], [1], [1], [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]];
  const changes = counts.map((ids, i) => a.update({ tMs: i * 100, atMs: i * 100, tracks: [...ids.map((id) => track(id)), track(9, 'lost')] }))
    .flatMap((u) => (u.occupancyChange ? [u.occupancyChange] : []));
  t.deepEqual(changes.map((c) => [c.previous, c.count, c.changeType]), [[0, 2, 'increase'], [2, 1, 'decrease'], [1, 3, 'increase']],
    'a one-frame third person is flicker, not an arrival');
});

// ---------- the stage ----------

test('the activity stage publishes the fall, the recovery and occupancy on the bus, fills packets and counts falls', async (t) => {
  const h = new StageHarness(activityStage, { occupancyHoldSeconds: 0 }, { pipeline: 'home', source: 'hall' });
  t.teardown(() => h.close());

  const frames = sequence(STANDING, [
    { hold: STANDING, seconds: 2 }, { to: LYING, seconds: 0.5, ease: easeIn }, { hold: LYING, seconds: 3 }, { to: STANDING, seconds: 1.5 },
      { hold: STANDING, seconds: 2 },
  ]);
  let last: [number, number] = [0, 0];
  const packets: Packet[] = frames.map((s, i) => {
    const kp = keypoints(s, 300);
    const box = boxOf(kp);
    const centre: [number, number] = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2];
    const velocity: [number, number] = i ? [centre[0] - last[0], centre[1] - last[1]] : [0, 0];
    last = centre;
    return {
      pipeline: 'home',
      frame: { source: 'hall', seq: i, ptsNs: i * 100e6, capturedAtMs: 5_000 + i * 100, width: 640, height: 480, format: 'RGB', data: new ArrayBuffer(0) },
      tracks: [{ id: 3, box, score: 0.9, classId: 0, label: 'person', state: 'confirmed', velocity }],
      poses: [{ trackId: 3, box, score: 0.9, confidence: 0.7, keypoints: kp }],
    };
  });
  const out = await h.run(packets);
  const got = { fall: h.eventsOf('activity.fall'), recovered: h.eventsOf('activity.recovered'), occupancy: h.eventsOf('occupancy') };

  t.is(out.length, packets.length);
  t.true(out.every((p) => p.activities?.length === 1 && p.occupancy === 1));
  t.is(got.fall.length, 1);
  const f = got.fall[0];
  t.like(f, { pipeline: 'home', source: 'hall', trackId: 3, recoveryDetected: false });
  t.true(f.atMs > 5_000 + 2_500 && f.atMs < 5_000 + 5_500, `wall-clock time of the fall ${f.atMs}`);
  t.is(f.box.length, 4);
  t.is(got.recovered.length, 1);
  t.like(got.recovered[0], { pipeline: 'home', source: 'hall', trackId: 3 });
  t.true(got.recovered[0].atMs > f.atMs);
  t.deepEqual(got.occupancy.map((o) => [o.previous, o.count, o.changeType, o.source]), [[0, 1, 'increase', 'hall']]);
  const text = await h.metrics.render();
  t.regex(text, /sightline_falls_total\{pipeline="home",source="hall"\} 1/);
});

test('with keypoint jitter (±4 px on a 200 px person) and 15 % dropouts, only the fall raises a fall', (t) => {
  const noise = (seed: number): Noise => ({ px: 4, dropout: 0.15, seed });
  const cases: [string, Step[], number][] = [
    ['fall', [{ hold: STANDING, seconds: 2 }, { to: LYING, seconds: 0.6, ease: easeIn }, { hold: LYING, seconds: 4 }], 1],
    ['standing still', [{ hold: STANDING, seconds: 20 }], 0],
    ['sitting down slowly', [{ hold: STANDING, seconds: 2 }, { to: SITTING, seconds: 1.5 }, { hold: SITTING, seconds: 8 }], 0],
    ['lying down slowly', [{ hold: STANDING, seconds: 2 }, { to: SITTING, seconds: 2 }, { to: LYING, seconds: 3 }, { hold: LYING, seconds: 8 }], 0],
    ['fast crouch', [{ hold: STANDING, seconds: 2 }, { to: CROUCHING, seconds: 0.5, ease: easeIn }, { hold: CROUCHING, seconds: 4 }, { to: STANDING, seconds: 1 }], 0],
  ];
  for (const [name, steps, expected] of cases) {
    for (const seed of [1, 2, 3, 4, 5]) {
      t.is(falls(run(sequence(STANDING, steps), new ActivityAnalyzer(), noise(seed))).length, expected, `${name}, seed ${seed}`);
    }
  }
});

test('time going backwards (a restarted stream) starts the tracks over; unseen tracks are forgotten', (t) => {
  const a = new ActivityAnalyzer({ forgetMs: 1000 });
  const track = (id: number) => ({ id, box: [0, 0, 50, 150] as Box, velocity: [1, 0] as [number, number], state: 'confirmed' as const });
  for (let i = 0; i < 5; i++) a.update({ tMs: 10_000 + i * 100, atMs: i, tracks: [track(1), track(2)], poses: [] });
  t.is(a.size, 2);
  const u = a.update({ tMs: 0, atMs: 9, tracks: [track(1)], poses: [] });
  t.is(a.size, 1);
  t.is(u.activities[0].trajectory.length, 1, 'the trajectory starts over');
  a.update({ tMs: 1500, atMs: 10, tracks: [track(3)], poses: [] });
  t.is(a.size, 1, 'track 1 unseen for 1.5 s is forgotten');
});

/**
 * Per-track activity of one source, fed frame by frame with timestamps, tracks and poses: smoothed posture,
 * trajectory and predicted position, fall detection with recovery, and occupancy. No I/O and no clock of its
 * own, so every decision can be replayed from synthetic sequences.
 *
 * A fall is a fast downward motion of the torso (shoulder/hip centre; speed in body heights per second, so it
 * holds at any distance) followed, within `fallWindowMs` of the fastest moment, by lying for `lyingMs`.
 * Sitting or lying down slowly never reaches the speed; crouching or dropping onto a chair fast never lies.
 */
import type { Box, Keypoint, PersonActivity, PersonPose, Posture, TrackedObject } from '../../core/types.js';
import { classifyPosture, DEFAULT_POSTURE, torsoGeometry, type PostureThresholds } from './posture.js';

export interface ActivityOptions extends PostureThresholds {
  /** Downward torso speed (body heights per second, over `speedWindowMs`) that starts a possible fall. */
  fallSpeed: number;
  /** The torso must drop at least this share of the body height during the descent. */
  minDrop: number;
  /** Lying must start within this time of the fastest moment of the descent. */
  fallWindowMs: number;
  /** Lying this long after the descent confirms a fall. */
  lyingMs: number;
  /** Upright this long after a fall is a recovery. */
  recoverMs: number;
  /** Window over which the torso speed is measured. */
  speedWindowMs: number;
  /** Postures are a majority vote over this window (one odd frame does not flip them). */
  smoothMs: number;
  /** Box centres kept per track. */
  trajectoryLength: number;
  /** How far ahead the predicted position is. */
  predictMs: number;
  /** A count of persons must hold this long before occupancy changes (tracks flicker). */
  occupancyHoldMs: number;
  /** A track unseen this long is forgotten. */
  forgetMs: number;
}

export const DEFAULT_ACTIVITY: ActivityOptions = {
  ...DEFAULT_POSTURE,
  fallSpeed: 0.8,
  minDrop: 0.3,
  fallWindowMs: 2000,
  lyingMs: 1500,
  recoverMs: 1000,
  speedWindowMs: 400,
  smoothMs: 500,
  trajectoryLength: 20,
  predictMs: 1000,
  occupancyHoldMs: 500,
  forgetMs: 5000,
};

export interface ActivityFrame {
  /** Media time of the frame (ms), used for every duration and speed; going backwards resets the tracks. */
  tMs: number;
  /** Wall-clock time (ms since epoch) stamped on trajectories and events. */
  atMs: number;
  tracks: readonly Pick<TrackedObject, 'id' | 'box' | 'velocity' | 'state'>[];
  /** Poses of this frame; undefined when the pose stage skipped it (the last postures then hold). */
  poses?: readonly PersonPose[];
}

export interface FallEvent { trackId: number; box: Box; fallDuration: number; impactSeverity: number; confidence: number; atMs: number }
export interface RecoveryEvent { trackId: number; lyingSeconds: number; atMs: number }
export interface OccupancyChange { count: number; previous: number; changeType: 'increase' | 'decrease'; atMs: number }

export interface ActivityUpdate {
  activities: PersonActivity[];
  occupancy: number;
  falls: FallEvent[];
  recoveries: RecoveryEvent[];
  occupancyChange?: OccupancyChange;
}

interface Sample { t: number; torsoY: number; height: number; posture: Posture; confidence: number }

type FallState =
  | { phase: 'idle' }
  | { phase: 'descending'; start: number; startY: number; peak: number; peakAt: number; lyingSince?: number; lyingConfidence: number[] }
  | { phase: 'fallen'; lyingSince: number; uprightSince?: number };

interface TrackState {
  samples: Sample[];
  trajectory: { x: number; y: number; atMs: number }[];
  fall: FallState;
  lastSeen: number;
  posture: Posture;
  confidence: number;
}

const UPRIGHT: ReadonlySet<Posture> = new Set(['standing', 'walking', 'running']);

export class ActivityAnalyzer {
  readonly options: ActivityOptions;
  private readonly tracks = new Map<number, TrackState>();
  private lastT?: number;
  /** Estimated media time between frames, to turn the tracker's per-frame velocity into per-millisecond. */
  private frameMs?: number;
  private occupancy = 0;
  private pending?: { count: number; since: number };

  constructor(options: Partial<ActivityOptions> = {}) {
    this.options = { ...DEFAULT_ACTIVITY, ...options };
  }

  update(frame: ActivityFrame): ActivityUpdate {
    const o = this.options;
    const { tMs: t, atMs } = frame;
    if (this.lastT !== undefined && t < this.lastT) this.tracks.clear(); // a looped file starts over
    if (this.lastT !== undefined && t > this.lastT) {
      const dt = t - this.lastT;
      this.frameMs = this.frameMs === undefined ? dt : this.frameMs * 0.9 + dt * 0.1;
    }
    this.lastT = t;

    const live = frame.tracks.filter((tr) => tr.state !== 'lost');
    const poseOf = new Map<number, PersonPose>();
    for (const p of frame.poses ?? []) if (p.trackId !== undefined) poseOf.set(p.trackId, p);

    const out: ActivityUpdate = { activities: [], occupancy: 0, falls: [], recoveries: [] };
    for (const tr of live) {
      let s = this.tracks.get(tr.id);
      if (!s) this.tracks.set(tr.id, (s = { samples: [], trajectory: [], fall: { phase: 'idle' }, lastSeen: t, posture: 'unknown', confidence: 0 }));
      s.lastSeen = t;
      const [x1, y1, x2, y2] = tr.box;
      const cx = (x1 + x2) / 2;
      const cy = (y1 + y2) / 2;
      s.trajectory.push({ x: cx, y: cy, atMs });
      if (s.trajectory.length > o.trajectoryLength) s.trajectory.shift();

      const perMs = this.frameMs ? 1 / this.frameMs : 0;
      const speedPxPerS = Math.hypot(tr.velocity[0], tr.velocity[1]) * perMs * 1000;
      const pose = poseOf.get(tr.id);
      // A carried pose is an earlier estimate moved with the box: it adds nothing the box does not already say.
      if (frame.poses !== undefined && !pose?.carried) {
        this.observe(s, t, tr.box, pose?.keypoints, speedPxPerS);
        this.advanceFall(tr.id, tr.box, s, t, atMs, out);
      }
      out.activities.push({
        trackId: tr.id, posture: s.posture, confidence: s.confidence, speedPxPerS,
        trajectory: s.trajectory.map((p) => ({ ...p })),
        predicted: { x: cx + tr.velocity[0] * perMs * o.predictMs, y: cy + tr.velocity[1] * perMs * o.predictMs, horizonMs: o.predictMs },
        fallen: s.fall.phase === 'fallen',
      });
    }
    for (const [id, s] of this.tracks) if (t - s.lastSeen > o.forgetMs) this.tracks.delete(id);

    out.occupancyChange = this.updateOccupancy(live.length, t, atMs);
    out.occupancy = this.occupancy;
    return out;
  }

  /** Adds this frame's torso position and raw posture, and re-votes the track's posture. */
  private observe(s: TrackState, t: number, box: Box, keypoints: readonly Keypoint[] | undefined, speedPxPerS: number): void {
    const o = this.options;
    const height = this.bodyHeight(s, t, box[3] - box[1]);
    const raw = classifyPosture(keypoints, box, speedPxPerS / height, o);
    const g = torsoGeometry(keypoints);
    // Without shoulders and hips, the box point at the same share of its height stands in for the torso centre.
    const torsoY = g ? (g.shoulders.y + g.hips.y) / 2 : box[1] + 0.4 * (box[3] - box[1]);
    s.samples.push({ t, torsoY, height: box[3] - box[1], posture: raw.posture, confidence: raw.confidence });
    const keepMs = Math.max(3000, o.speedWindowMs, o.smoothMs);
    while (s.samples.length > 1 && t - s.samples[0].t > keepMs) s.samples.shift();

    const votes = new Map<Posture, { n: number; confidence: number }>();
    for (const x of s.samples) {
      if (t - x.t > o.smoothMs || x.posture === 'unknown') continue;
      const v = votes.get(x.posture) ?? { n: 0, confidence: 0 };
      votes.set(x.posture, { n: v.n + 1, confidence: v.confidence + x.confidence });
    }
    let best: Posture = 'unknown';
    let bestN = 0;
    let bestConfidence = 0;
    for (const [posture, v] of votes) {
      // Ties go to the current frame's posture.
      if (v.n > bestN || (v.n === bestN && posture === raw.posture)) { best = posture; bestN = v.n; bestConfidence = v.confidence / v.n; }
    }
    s.posture = best;
    s.confidence = best === 'unknown' ? 0 : bestConfidence;
  }

  /** The person's upright height: the tallest box of the last 3 s (a lying box would understate it). */
  private bodyHeight(s: TrackState, t: number, current: number): number {
    let h = current;
    for (const x of s.samples) if (t - x.t <= 3000) h = Math.max(h, x.height);
    return Math.max(h, 1);
  }

  private advanceFall(id: number, box: Box, s: TrackState, t: number, atMs: number, out: ActivityUpdate): void {
    const o = this.options;
    const f = s.fall;
    const lying = s.posture === 'lying';
    if (f.phase === 'fallen') {
      if (UPRIGHT.has(s.posture)) {
        f.uprightSince ??= t;
        if (t - f.uprightSince >= o.recoverMs) {
          out.recoveries.push({ trackId: id, lyingSeconds: (f.uprightSince - f.lyingSince) / 1000, atMs });
          s.fall = { phase: 'idle' };
        }
      } else {
        f.uprightSince = undefined;
      }
      return;
    }

    const descent = this.descent(s, t);
    if (f.phase === 'idle') {
      if (descent && descent.speed >= o.fallSpeed) {
        s.fall = { phase: 'descending', start: descent.start, startY: descent.startY, peak: descent.speed, peakAt: t, lyingConfidence: [] };
        this.advanceFall(id, box, s, t, atMs, out); // the same frame may already be lying
      }
      return;
    }

    // Descending: keep the fastest moment while the torso still goes down fast.
    if (descent && descent.start <= f.peakAt && descent.speed > f.peak) { f.peak = descent.speed; f.peakAt = t; }
    if (lying) {
      f.lyingSince ??= t;
      f.lyingConfidence.push(s.confidence);
      const height = this.bodyHeight(s, t, box[3] - box[1]);
      const dropped = (s.samples[s.samples.length - 1].torsoY - f.startY) / height;
      if (t - f.lyingSince >= o.lyingMs && dropped >= o.minDrop) {
        const lyingConfidence = f.lyingConfidence.reduce((a, b) => a + b, 0) / f.lyingConfidence.length;
        out.falls.push({
          trackId: id, box,
          fallDuration: (Math.max(f.lyingSince, f.peakAt) - f.start) / 1000,
          // 2.5 body heights per second is about a free fall of the hips from standing.
          impactSeverity: Math.min(1, f.peak / 2.5),
          confidence: Math.min(1, 0.5 * lyingConfidence + 0.5 * Math.min(1, f.peak / (2 * o.fallSpeed))),
          atMs,
        });
        s.fall = { phase: 'fallen', lyingSince: f.lyingSince };
      }
    } else {
      f.lyingSince = undefined;
      f.lyingConfidence = [];
      if (t - f.peakAt > o.fallWindowMs) s.fall = { phase: 'idle' };
    }
  }

  /**
   * The current downward torso speed over `speedWindowMs` (body heights per second), and where the descent
   * began: the earliest sample from which the torso went down steadily, which must not itself be lying
   * (someone already on the floor does not fall).
   */
  private descent(s: TrackState, t: number): { speed: number; start: number; startY: number } | undefined {
    const o = this.options;
    const n = s.samples.length;
    if (n < 2) return undefined;
    const now = s.samples[n - 1];
    let ref: Sample | undefined;
    for (let i = n - 2; i >= 0; i--) {
      if (t - s.samples[i].t > o.speedWindowMs) break;
      ref = s.samples[i];
    }
    if (!ref || now.t - ref.t < o.speedWindowMs / 4) return undefined;
    const height = this.bodyHeight(s, t, now.height);
    const speed = ((now.torsoY - ref.torsoY) / height) / ((now.t - ref.t) / 1000);
    if (speed <= 0) return undefined;
    // Walk back while the torso was going down (a still torso is where the descent began).
    let i = n - 1;
    while (i > 0 && s.samples[i - 1].torsoY < s.samples[i].torsoY - 0.003 * height) i--;
    const start = s.samples[i];
    if (start.posture === 'lying') return undefined;
    return { speed, start: start.t, startY: start.torsoY };
  }

  /** Reports a new count once it has held for `occupancyHoldMs`. */
  private updateOccupancy(count: number, t: number, atMs: number): OccupancyChange | undefined {
    if (count === this.occupancy) { this.pending = undefined; return undefined; }
    if (!this.pending || this.pending.count !== count) this.pending = { count, since: t };
    if (t - this.pending.since < this.options.occupancyHoldMs) return undefined;
    const previous = this.occupancy;
    this.occupancy = count;
    this.pending = undefined;
    return { count, previous, changeType: count > previous ? 'increase' : 'decrease', atMs };
  }

  /** Tracks currently followed (for tests and diagnostics). */
  get size(): number {
    return this.tracks.size;
  }
}

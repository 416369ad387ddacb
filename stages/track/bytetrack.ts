/**
 * ByteTrack multi-object tracker (Zhang et al., 2022): IoU association on Kalman-predicted boxes in
 * two stages, so low-confidence detections (typically partly occluded people) extend existing tracks
 * instead of being thrown away, without ever starting new tracks.
 *
 * Pure and deterministic: no I/O, no clocks, no randomness. Per `update`:
 *   0. predict every track one step per elapsed frame;
 *   1. high dets (score ≥ highThresh)          ↔ confirmed + lost tracks   (gate 1−IoU ≤ matchThresh)
 *   2. low dets (lowThresh ≤ score < highThresh) ↔ confirmed tracks left over (gate lowMatchThresh)
 *      confirmed tracks still unmatched become lost;
 *  2b. high dets left over                      ↔ lost tracks, on boxes widened by the time lost (recovery)
 *   3. high dets left over                      ↔ tentative tracks          (gate tentativeMatchThresh)
 *      tentative tracks still unmatched are removed;
 *   4. high dets left over with score ≥ newTrackThresh start tentative tracks;
 *   5. lost tracks unseen for more than maxLost frames are removed (and forgotten).
 *
 * Differences from the reference implementation, on purpose:
 *   - a track is confirmed only after `minHits` consecutive matches, also on the first frame, and only
 *     then gets an id — tentative noise never burns ids, which keeps counts and ids stable;
 *   - tentative tracks are Kalman-predicted too (the reference leaves them static);
 *   - no detection-score fusion into the IoU cost, and association is class-aware by default.
 */
import type { Box, Detection } from '../../core/types.js';
import { iou } from '../../core/geometry.js';
import { linearAssignment } from './assignment.js';
import { boxToXyah, KalmanBoxFilter, xyahToBox, type KalmanState } from './kalman.js';

export type TrackState = 'tentative' | 'confirmed' | 'lost';

/** Immutable snapshot of a track; safe to keep, serialise or post to another thread. */
export interface Track {
  /** Positive integer (from `idStart`) once confirmed; -1 while tentative. */
  id: number;
  state: TrackState;
  /** Kalman-filtered box when matched this frame; the prediction while lost. Source pixels. */
  box: Box;
  /** Score of the last matched detection. */
  score: number;
  classId: number;
  label: string;
  /** Consecutive frames matched, up to and including the last match (0 while lost). */
  hits: number;
  /** Frames since the track was created. */
  age: number;
  /** `frameIndex` of the last matched detection. */
  lastSeenFrame: number;
  /** `timestampMs` of the last matched detection, when the caller passes timestamps. */
  lastSeenMs?: number;
  /** Centre velocity in pixels per frame. */
  velocity: [number, number];
  /** The detection that started the track (before it was confirmed): where the object was first seen. */
  origin: Box;
}

export interface ByteTrackOptions {
  /** Detections at or above this score take part in stage 1 (and 3, 4). */
  highThresh: number;
  /** Detections below this score are ignored entirely. */
  lowThresh: number;
  /** Minimum score for an unmatched detection to start a track. */
  newTrackThresh: number;
  /** Stage-1 gate on 1 − IoU. */
  matchThresh: number;
  /** Stage-2 (low-score) gate on 1 − IoU. */
  lowMatchThresh: number;
  /** Stage-3 (tentative tracks) gate on 1 − IoU. */
  tentativeMatchThresh: number;
  /** Consecutive matched frames before a tentative track is confirmed and gets an id. */
  minHits: number;
  /** Frames a lost track is kept (and predicted) before it is removed for good. */
  maxLost: number;
  /**
   * Recovery of lost tracks (C-BIoU, Yang et al. 2023): a high-score detection no track claimed is matched to a lost
   * track on boxes widened by this fraction of their size per frame lost on each side (capped at `recoverMax`), so a
   * person who walked on behind someone is found again where the motion model could not follow. 0 turns it off.
   */
  recoverGrowth: number;
  /** The widest recovery buffer, as a fraction of the box on each side. */
  recoverMax: number;
  /** First id handed out; pass the last id + 1 to resume numbering after a restart. */
  idStart: number;
  /** Also return lost tracks (with predicted boxes) from `update`. */
  includeLost: boolean;
  /** Only associate detections with tracks of the same class. */
  classAware: boolean;
}

export const BYTETRACK_DEFAULTS: Readonly<ByteTrackOptions> = {
  highThresh: 0.5,
  lowThresh: 0.1,
  newTrackThresh: 0.6,
  matchThresh: 0.8,
  lowMatchThresh: 0.5,
  tentativeMatchThresh: 0.7,
  minHits: 3,
  maxLost: 30,
  recoverGrowth: 0.2,
  recoverMax: 2.5,
  idStart: 1,
  includeLost: false,
  classAware: true,
};

/** Mutable internal track. */
interface STrack {
  id: number;
  state: TrackState;
  kf: KalmanState;
  score: number;
  classId: number;
  label: string;
  hits: number;
  origin: Box;
  /** Internal clock values (see ByteTracker.clock), immune to caller frame-index resets. */
  bornAt: number;
  seenAt: number;
  lastSeenFrame: number;
  lastSeenMs?: number;
}

interface Association {
  matches: Array<[STrack, Detection]>;
  unmatchedTracks: STrack[];
  unmatchedDets: Detection[];
}

export class ByteTracker {
  private readonly opts: ByteTrackOptions;
  private readonly kalman = new KalmanBoxFilter();
  private live: STrack[] = [];
  private nextId: number;
  /** Monotonic frame clock driving the lifecycle; advances by the (positive) frame-index delta. */
  private clock = 0;
  private lastFrameIndex: number | undefined;

  constructor(opts: Partial<ByteTrackOptions> = {}) {
    this.opts = validate({ ...BYTETRACK_DEFAULTS, ...definedOnly(opts) });
    this.nextId = this.opts.idStart;
  }

  /** Every track in memory (tentative, confirmed and lost), as snapshots. */
  get tracks(): readonly Track[] {
    return this.live.map((t) => this.snapshot(t));
  }

  /**
   * Feed one frame's detections. `frameIndex` should increase by one per source frame; gaps (e.g.
   * detecting every Nth frame) are predicted through, and a decrease (source restart) counts as one step.
   * Returns confirmed tracks matched in this frame, plus lost ones with `includeLost`, sorted by id.
   */
  update(detections: readonly Detection[], frameIndex: number, timestampMs?: number): Track[] {
    if (!Number.isFinite(frameIndex)) throw new RangeError(`frameIndex must be finite, got ${frameIndex}`);
    const steps = this.advanceClock(frameIndex);
    for (const t of this.live) this.predict(t, steps);

    const o = this.opts;
    const usable = detections.filter(isUsable);
    const high = usable.filter((d) => d.score >= o.highThresh);
    const low = usable.filter((d) => d.score >= o.lowThresh && d.score < o.highThresh);
    const confirmed = this.live.filter((t) => t.state === 'confirmed');
    const lost = this.live.filter((t) => t.state === 'lost');
    const tentative = this.live.filter((t) => t.state === 'tentative');
    const matchOf = (a: Association): void => a.matches.forEach(([t, d]) => this.match(t, d, frameIndex, timestampMs));

    // 1. High-score detections to every established track, lost ones included (re-identification).
    const first = this.associate([...confirmed, ...lost], high, o.matchThresh);
    matchOf(first);

    // 2. Low-score detections only extend tracks that were visible last frame.
    const stillTracked = first.unmatchedTracks.filter((t) => t.state === 'confirmed');
    const second = this.associate(stillTracked, low, o.lowMatchThresh);
    matchOf(second);
    for (const t of second.unmatchedTracks) markLost(t);

    // 2b. Leftover high-score detections to lost tracks, on boxes widened by the time lost.
    // With recoverGrowth 0 the boxes stay as they are, and pairs that missed stage 1's gate miss it again.
    const stillLost = first.unmatchedTracks.filter((t) => t.state === 'lost');
    const recovered = this.associate(stillLost, first.unmatchedDets, o.matchThresh, (t) => this.recoverBuffer(t));
    matchOf(recovered);

    // 3. Leftover high-score detections to tentative tracks; a tentative track that misses once is noise.
    const third = this.associate(tentative, recovered.unmatchedDets, o.tentativeMatchThresh);
    matchOf(third);
    const dead = new Set<STrack>(third.unmatchedTracks);

    // 4. Births, 5. expiry of lost tracks.
    for (const d of third.unmatchedDets) if (d.score >= o.newTrackThresh) this.start(d, frameIndex, timestampMs);
    for (const t of this.live) if (t.state === 'lost' && this.clock - t.seenAt > o.maxLost) dead.add(t);
    if (dead.size > 0) this.live = this.live.filter((t) => !dead.has(t));

    return this.live
      .filter((t) => (t.state === 'confirmed' && t.seenAt === this.clock) || (o.includeLost && t.state === 'lost'))
      .sort((a, b) => a.id - b.id)
      .map((t) => this.snapshot(t));
  }

  /**
   * The tracks of the last update as predicted at `frameIndex`, for a frame on which detection did not run (detect
   * every Nth frame, or no motion): the confirmed tracks matched at the last update, moved by their motion model.
   * Nothing changes inside: the next update predicts from the last one as if this frame had not been seen.
   */
  predicted(frameIndex: number): Track[] {
    const ahead = this.lastFrameIndex === undefined ? 0 : Math.max(0, Math.round(frameIndex - this.lastFrameIndex));
    return this.live
      .filter((t) => t.state === 'confirmed' && t.seenAt === this.clock)
      .sort((a, b) => a.id - b.id)
      .map((t) => {
        const kf = { mean: Float64Array.from(t.kf.mean), cov: Float64Array.from(t.kf.cov) };
        for (let i = 0; i < Math.min(ahead, this.opts.maxLost + 1); i++) this.kalman.predict(kf);
        return { ...this.snapshot(t), box: xyahToBox(kf.mean), velocity: [kf.mean[4], kf.mean[5]] as [number, number] };
      });
  }

  /** Advances the clock; returns the frames elapsed since the previous update (≥ 1). */
  private advanceClock(frameIndex: number): number {
    const delta = this.lastFrameIndex === undefined ? 1 : Math.round(frameIndex - this.lastFrameIndex);
    const steps = delta >= 1 ? delta : 1;
    this.clock += steps;
    this.lastFrameIndex = frameIndex;
    return steps;
  }

  /** Predict through the elapsed frames; capped because a lost track dies after maxLost frames anyway. */
  private predict(t: STrack, steps: number): void {
    // A lost track's height is not observed, so do not let it keep growing or shrinking (as in ByteTrack).
    if (t.state === 'lost') t.kf.mean[7] = 0;
    const n = Math.min(steps, this.opts.maxLost + 1);
    for (let i = 0; i < n; i++) this.kalman.predict(t.kf);
  }

  /** The recovery buffer of a lost track: grows with the frames it has been lost. */
  private recoverBuffer(t: STrack): number {
    return Math.min(this.opts.recoverMax, this.opts.recoverGrowth * (this.clock - t.seenAt));
  }

  /** `buffer` widens both boxes of a pair by that fraction of their own size on each side (0: plain IoU). */
  private associate(tracks: STrack[], dets: Detection[], gate: number, buffer?: (t: STrack) => number): Association {
    // A 0×n cost matrix cannot say n, so handle the empty cases here.
    if (tracks.length === 0 || dets.length === 0) return { matches: [], unmatchedTracks: tracks, unmatchedDets: dets };
    const cost = tracks.map((t) => {
      const b = buffer?.(t) ?? 0;
      const predicted = xyahToBox(t.kf.mean);
      const box = widen(predicted, b);
      return dets.map((d) => {
        if (this.opts.classAware && d.classId !== t.classId) return Infinity;
        // Widened boxes overlap whatever their sizes; a person found again is seen about as tall as when lost.
        if (b > 0 && !similarHeight(predicted, d.box)) return Infinity;
        return 1 - iou(box, widen(d.box, b));
      });
    });
    const { matches, unmatchedRows, unmatchedCols } = linearAssignment(cost, gate);
    return {
      matches: matches.map(([r, c]) => [tracks[r], dets[c]]),
      unmatchedTracks: unmatchedRows.map((r) => tracks[r]),
      unmatchedDets: unmatchedCols.map((c) => dets[c]),
    };
  }

  private match(t: STrack, d: Detection, frameIndex: number, timestampMs: number | undefined): void {
    this.kalman.update(t.kf, boxToXyah(d.box));
    t.score = d.score;
    t.classId = d.classId;
    t.label = d.label;
    t.hits += 1;
    t.seenAt = this.clock;
    t.lastSeenFrame = frameIndex;
    t.lastSeenMs = timestampMs;
    if (t.state === 'lost') t.state = 'confirmed'; // re-found: keeps its id
    else if (t.state === 'tentative' && t.hits >= this.opts.minHits) this.confirm(t);
  }

  private start(d: Detection, frameIndex: number, timestampMs: number | undefined): void {
    const t: STrack = {
      id: -1,
      state: 'tentative',
      kf: this.kalman.initiate(boxToXyah(d.box)),
      score: d.score,
      classId: d.classId,
      label: d.label,
      hits: 1,
      origin: [...d.box],
      bornAt: this.clock,
      seenAt: this.clock,
      lastSeenFrame: frameIndex,
      lastSeenMs: timestampMs,
    };
    if (this.opts.minHits <= 1) this.confirm(t);
    this.live.push(t);
  }

  private confirm(t: STrack): void {
    t.state = 'confirmed';
    t.id = this.nextId++;
  }

  private snapshot(t: STrack): Track {
    const out: Track = {
      id: t.id,
      state: t.state,
      box: xyahToBox(t.kf.mean),
      score: t.score,
      classId: t.classId,
      label: t.label,
      hits: t.hits,
      age: this.clock - t.bornAt,
      lastSeenFrame: t.lastSeenFrame,
      velocity: [t.kf.mean[4], t.kf.mean[5]],
      origin: t.origin,
    };
    if (t.lastSeenMs !== undefined) out.lastSeenMs = t.lastSeenMs;
    return out;
  }
}

/** Heights within a factor of 1.5: a box cut by an occluder or the frame's edge is not the person it was. */
function similarHeight(a: Box, b: Box): boolean {
  const ha = a[3] - a[1];
  const hb = b[3] - b[1];
  return Math.max(ha, hb) <= 1.5 * Math.min(ha, hb);
}

function widen(box: Box, b: number): Box {
  if (b === 0) return box;
  const dx = (box[2] - box[0]) * b;
  const dy = (box[3] - box[1]) * b;
  return [box[0] - dx, box[1] - dy, box[2] + dx, box[3] + dy];
}

function markLost(t: STrack): void {
  t.state = 'lost';
  t.hits = 0;
}

/** Boxes the Kalman filter can represent: finite, positive width and height, finite score. */
function isUsable(d: Detection): boolean {
  const [x1, y1, x2, y2] = d.box;
  return [x1, y1, x2, y2, d.score].every(Number.isFinite) && x2 > x1 && y2 > y1;
}

/** Drop keys explicitly set to undefined so they do not override defaults. */
function definedOnly<T extends object>(o: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function validate(o: ByteTrackOptions): ByteTrackOptions {
  const unit = ['highThresh', 'lowThresh', 'newTrackThresh', 'matchThresh', 'lowMatchThresh', 'tentativeMatchThresh'] as const;
  for (const k of unit) {
    if (!(o[k] >= 0 && o[k] <= 1)) throw new RangeError(`ByteTracker: ${k} must be in [0, 1], got ${o[k]}`);
  }
  if (o.lowThresh > o.highThresh) throw new RangeError('ByteTracker: lowThresh must not exceed highThresh');
  if (o.newTrackThresh < o.highThresh) throw new RangeError('ByteTracker: newTrackThresh must be ≥ highThresh');
  for (const k of ['recoverGrowth', 'recoverMax'] as const) {
    if (!(o[k] >= 0 && o[k] <= 10)) throw new RangeError(`ByteTracker: ${k} must be in [0, 10], got ${o[k]}`);
  }
  for (const k of ['minHits', 'maxLost', 'idStart'] as const) {
    if (!Number.isSafeInteger(o[k])) throw new RangeError(`ByteTracker: ${k} must be an integer, got ${o[k]}`);
  }
  if (o.minHits < 1) throw new RangeError('ByteTracker: minHits must be ≥ 1');
  if (o.maxLost < 0) throw new RangeError('ByteTracker: maxLost must be ≥ 0');
  return o;
}

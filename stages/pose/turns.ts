/**
 * Per-track pose turns, pure: with `every: N` on a tracked pipeline, each track's pose is estimated on one frame in N
 * (tracks take turns by id, so the model's work is spread evenly over the frames), and on the frames between, the
 * track's last keypoints are carried, moved and scaled with its box. Every frame then has a pose for every track,
 * at about 1/N of the model's cost. A pose has one batch of 1 in this model, and batching the crops of a frame into
 * one call was no faster on a CPU (5 crops: 27.2 ms batched against 25.5 ms one by one), so turns are the saving.
 */
import type { Box, Keypoint, PersonPose } from '../../core/types.js';

interface Estimate { seq: number; pose: PersonPose }

export class PoseTurns {
  /** The frame each track was last given a turn on (decided in frame order, before its estimate is back). */
  private readonly turnSeq = new Map<number, number>();
  /** Each track's newest estimate. */
  private readonly estimates = new Map<number, Estimate>();

  constructor(private readonly every: number) {}

  /**
   * Whether a track gets a turn on frame `seq`: a track never estimated, its turn by id, or one whose turns were
   * missed (frames dropped) for twice the interval. Also forgets the tracks not in `liveIds`.
   */
  due(trackIds: readonly number[], seq: number, liveIds: ReadonlySet<number>): boolean[] {
    for (const id of this.turnSeq.keys()) if (!liveIds.has(id)) this.turnSeq.delete(id);
    for (const id of this.estimates.keys()) if (!liveIds.has(id)) this.estimates.delete(id);
    return trackIds.map((id) => {
      const last = this.turnSeq.get(id);
      const due = last === undefined || (seq + id) % this.every === 0 || seq - last >= 2 * this.every;
      if (due) this.turnSeq.set(id, seq);
      return due;
    });
  }

  /** Keeps a fresh estimate (of the newest frame, if estimates come back out of order). */
  estimated(seq: number, pose: PersonPose): void {
    if (pose.trackId === undefined) return;
    const e = this.estimates.get(pose.trackId);
    if (!e || e.seq <= seq) this.estimates.set(pose.trackId, { seq, pose });
  }

  /** The track's last keypoints moved onto `box`, or undefined before its first estimate. */
  carry(trackId: number, box: Box, score: number): PersonPose | undefined {
    const e = this.estimates.get(trackId);
    if (!e) return undefined;
    return { trackId, box, score, confidence: e.pose.confidence, keypoints: moveKeypoints(e.pose.keypoints, e.pose.box, box), carried: true };
  }
}

/** Keypoints placed in `from` mapped to the same places in `to` (translation and scale per axis). */
export function moveKeypoints(keypoints: readonly Keypoint[], from: Box, to: Box): Keypoint[] {
  const sx = (to[2] - to[0]) / Math.max(1e-6, from[2] - from[0]);
  const sy = (to[3] - to[1]) / Math.max(1e-6, from[3] - from[1]);
  return keypoints.map((k) => ({ ...k, x: to[0] + (k.x - from[0]) * sx, y: to[1] + (k.y - from[1]) * sy }));
}

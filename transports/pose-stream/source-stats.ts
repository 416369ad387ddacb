/**
 * What the pose stream knows of each source (environment) from the packets reaching the sink: frame
 * rate, latency, the quality figure that stands in for the document's `csi_quality`, the tracks of the
 * last frame, and a rolling 1-minute analytics window.
 */
import type { Packet, PersonActivity, TrackedObject } from '../../core/types.js';

const RATE_WINDOW_MS = 5_000;
const ANALYTICS_WINDOW_MS = 60_000;
const MOVING: ReadonlySet<string> = new Set(['walking', 'running']);

interface FrameSample { atMs: number; seq: number; latencyMs: number }
interface WindowSample {
  atMs: number; occupancy: number; detections: number; scoreSum: number; tracked: number;
  moving: number; stationary: number; dtS: number; movementStarts: number;
}

export interface AnalyticsFigures {
  occupancy: { current: number; average: number; peak: number };
  activity: { movement_events: number; stationary_time: number; activity_level: number };
  detection: { total_detections: number; average_confidence: number; tracking_accuracy: number };
}

export class SourceStats {
  private frames: FrameSample[] = [];
  private window: WindowSample[] = [];
  /** Figures of the previous full minute, for trends. */
  previous: AnalyticsFigures | null = null;
  private windowStartMs = 0;
  tracks: TrackedObject[] = [];
  firstSeenMs = new Map<number, number>();
  private movingIds = new Set<number>();
  lastPacketMs = 0;

  constructor(readonly source: string) {}

  add(p: Packet, nowMs: number): void {
    const latencyMs = Math.max(0, nowMs - p.frame.capturedAtMs);
    this.frames.push({ atMs: nowMs, seq: p.frame.seq, latencyMs });
    while (this.frames.length && this.frames[0].atMs < nowMs - RATE_WINDOW_MS) this.frames.shift();

    const persons = (p.tracks ?? []).filter((t) => t.label === 'person' && t.state === 'confirmed');
    const dets = (p.detections ?? []).filter((d) => d.label === 'person');
    const acts = new Map<number, PersonActivity>((p.activities ?? []).map((a) => [a.trackId, a]));
    let moving = 0;
    let movementStarts = 0;
    const nowMoving = new Set<number>();
    for (const t of persons) {
      const a = acts.get(t.id);
      // Without the activity stage, "moving" falls back to the tracker's speed: a quarter body height per second.
      const isMoving = a ? MOVING.has(a.posture) : Math.hypot(...t.velocity) * this.fps() > 0.25 * (t.box[3] - t.box[1]);
      if (isMoving) {
        moving++;
        nowMoving.add(t.id);
        if (!this.movingIds.has(t.id)) movementStarts++;
      }
      if (!this.firstSeenMs.has(t.id)) this.firstSeenMs.set(t.id, nowMs);
    }
    this.movingIds = nowMoving;
    const dtS = this.lastPacketMs ? Math.min(1, (nowMs - this.lastPacketMs) / 1000) : 0;
    this.lastPacketMs = nowMs;
    this.window.push({
      atMs: nowMs, occupancy: p.occupancy ?? persons.length, detections: dets.length,
      scoreSum: dets.reduce((s, d) => s + d.score, 0), tracked: Math.min(persons.length, dets.length),
      moving, stationary: persons.length - moving, dtS, movementStarts,
    });
    if (!this.windowStartMs) this.windowStartMs = nowMs;
    if (nowMs - this.windowStartMs >= ANALYTICS_WINDOW_MS) {
      this.previous = this.analytics(nowMs);
      this.windowStartMs = nowMs;
    }
    while (this.window.length && this.window[0].atMs < nowMs - ANALYTICS_WINDOW_MS) this.window.shift();
    this.tracks = persons;
    for (const id of this.firstSeenMs.keys()) if (!persons.some((t) => t.id === id)) this.firstSeenMs.delete(id);
  }

  /** Frames per second reaching the sink over the last few seconds. */
  fps(nowMs = Date.now()): number {
    const recent = this.frames.filter((f) => f.atMs >= nowMs - RATE_WINDOW_MS);
    if (recent.length < 2) return 0;
    const span = (recent[recent.length - 1].atMs - recent[0].atMs) / 1000;
    return span > 0 ? (recent.length - 1) / span : 0;
  }

  averageLatencyMs(): number {
    return this.frames.length ? this.frames.reduce((s, f) => s + f.latencyMs, 0) / this.frames.length : 0;
  }

  /**
   * Share of the source's recent frames that made it through the pipeline (the stand-in for `csi_quality`):
   * sequence numbers skipped between consecutive packets are frames dropped as stale or failed.
   */
  quality(): number {
    if (this.frames.length < 2) return 1;
    const span = this.frames[this.frames.length - 1].seq - this.frames[0].seq + 1;
    return span > 0 ? Math.min(1, this.frames.length / span) : 1;
  }

  analytics(nowMs = Date.now()): AnalyticsFigures {
    const w = this.window.filter((s) => s.atMs >= nowMs - ANALYTICS_WINDOW_MS);
    const n = w.length || 1;
    const detections = w.reduce((s, x) => s + x.detections, 0);
    const personFrames = w.reduce((s, x) => s + x.moving + x.stationary, 0);
    return {
      occupancy: {
        current: w.length ? w[w.length - 1].occupancy : 0,
        average: round(w.reduce((s, x) => s + x.occupancy, 0) / n, 2),
        peak: w.reduce((m, x) => Math.max(m, x.occupancy), 0),
      },
      activity: {
        movement_events: w.reduce((s, x) => s + x.movementStarts, 0),
        stationary_time: round(w.reduce((s, x) => s + x.stationary * x.dtS, 0), 1),
        activity_level: personFrames ? round(w.reduce((s, x) => s + x.moving, 0) / personFrames, 3) : 0,
      },
      detection: {
        total_detections: detections,
        average_confidence: detections ? round(w.reduce((s, x) => s + x.scoreSum, 0) / detections, 3) : 0,
        tracking_accuracy: detections ? round(w.reduce((s, x) => s + x.tracked, 0) / detections, 3) : 0,
      },
    };
  }
}

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Sums/averages the figures of several sources (a subscription without environment_id). */
export function combine(list: AnalyticsFigures[]): AnalyticsFigures {
  if (list.length === 1) return list[0];
  const sum = (f: (a: AnalyticsFigures) => number) => list.reduce((s, a) => s + f(a), 0);
  const total = sum((a) => a.detection.total_detections);
  const weighted = (f: (a: AnalyticsFigures) => number) => (total ? round(sum((a) => f(a) * a.detection.total_detections) / total, 3) : 0);
  return {
    occupancy: { current: sum((a) => a.occupancy.current), average: round(sum((a) => a.occupancy.average), 2), peak: sum((a) => a.occupancy.peak) },
    activity: {
      movement_events: sum((a) => a.activity.movement_events),
      stationary_time: round(sum((a) => a.activity.stationary_time), 1),
      activity_level: list.length ? round(sum((a) => a.activity.activity_level) / list.length, 3) : 0,
    },
    detection: { total_detections: total, average_confidence: weighted((a) => a.detection.average_confidence),
      tracking_accuracy: weighted((a) => a.detection.tracking_accuracy) },
  };
}

/** The document's trend words, from this window against the previous one. */
export function trends(now: AnalyticsFigures, before: AnalyticsFigures | null): Record<string, string> {
  const dir = (a: number, b: number, up: string, down: string): string => {
    if (!before) return 'stable';
    const tol = Math.max(0.05 * Math.abs(b), 1e-3);
    return a > b + tol ? up : a < b - tol ? down : 'stable';
  };
  return {
    occupancy_trend: dir(now.occupancy.average, before?.occupancy.average ?? 0, 'increasing', 'decreasing'),
    activity_trend: dir(now.activity.activity_level, before?.activity.activity_level ?? 0, 'increasing', 'decreasing'),
    confidence_trend: dir(now.detection.average_confidence, before?.detection.average_confidence ?? 0, 'improving', 'declining'),
  };
}

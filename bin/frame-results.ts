/**
 * What `sightline process` writes: one JSON line per frame with everything the pipeline's stages found (detections,
 * tracks, crossings, faces, poses, activities, occupancy, stage errors), then a summary line with the counts of the
 * run. A frame line has a key for each packet field the pipeline produced, so an absent key means "not computed" and
 * an empty list "computed, nothing found". The schema is in the README (Command line).
 */
import type { BusEvents } from '../core/events.js';
import type { Box, Packet } from '../core/types.js';

const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};
const box = (b: Box): number[] => b.map((v) => round(v, 1));

/** One frame's line (without the newline). */
export function frameLine(p: Packet): string {
  const f = p.frame;
  const line: Record<string, unknown> = {
    pipeline: p.pipeline, source: f.source, frame: f.seq, ptsMs: Math.round(f.ptsNs / 1e6), width: f.width, height: f.height,
  };
  if (p.detections) line.detections = p.detections.map((d) => ({ label: d.label, score: round(d.score, 3), box: box(d.box) }));
  if (p.tracks) line.tracks = p.tracks.map((t) => ({ id: t.id, label: t.label, score: round(t.score, 3), box: box(t.box) }));
  if (p.crossings) line.crossings = p.crossings.map((c) => ({ track: c.trackId, direction: c.direction }));
  if (p.faces) {
    line.faces = p.faces.map((x) => ({
      ...(x.trackId !== undefined ? { track: x.trackId } : {}), score: round(x.score, 3), box: box(x.box),
      landmarks: x.landmarks.map(([lx, ly]) => [round(lx, 1), round(ly, 1)]),
    }));
  }
  if (p.poses) {
    line.poses = p.poses.map((q) => ({
      ...(q.trackId !== undefined ? { track: q.trackId } : {}), score: round(q.score, 3), confidence: round(q.confidence, 3), box: box(q.box),
      // COCO order (nose … right_ankle): [x, y, confidence] in source pixels.
      keypoints: q.keypoints.map((k) => [round(k.x, 1), round(k.y, 1), round(k.confidence, 3)]),
      ...(q.carried ? { carried: true } : {}),
    }));
  }
  if (p.activities) {
    line.activities = p.activities.map((a) => ({
      track: a.trackId, posture: a.posture, confidence: round(a.confidence, 3), speed: round(a.speedPxPerS, 1), fallen: a.fallen,
    }));
  }
  if (p.occupancy !== undefined) line.occupancy = p.occupancy;
  if (p.errors?.length) line.errors = p.errors;
  return JSON.stringify(line);
}

/** Counts of one pipeline over a run; only what its stages produce appears. */
interface PipelineCounts {
  frames: number;
  errors: number;
  detections?: Record<string, number>;
  tracks?: Set<number>;
  crossings?: { in: number; out: number };
  faces?: { detections: number; tracks: Set<number>; saved: Set<number> };
  poses?: number;
  postures?: Record<string, number>;
  falls?: number;
  recoveries?: number;
  maxOccupancy?: number;
  trafficEvents?: number;
}

/** What a run found, per pipeline, from its packets and bus events. */
export class RunSummary {
  private readonly pipelines = new Map<string, PipelineCounts>();

  private of(pipeline: string): PipelineCounts {
    let c = this.pipelines.get(pipeline);
    if (!c) this.pipelines.set(pipeline, (c = { frames: 0, errors: 0 }));
    return c;
  }

  get frames(): number {
    let n = 0;
    for (const c of this.pipelines.values()) n += c.frames;
    return n;
  }

  addPacket(p: Packet): void {
    const c = this.of(p.pipeline);
    c.frames++;
    if (p.errors?.length) c.errors++;
    if (p.detections) {
      c.detections ??= {};
      for (const d of p.detections) c.detections[d.label] = (c.detections[d.label] ?? 0) + 1;
    }
    if (p.tracks) {
      c.tracks ??= new Set();
      for (const t of p.tracks) c.tracks.add(t.id);
    }
    if (p.crossings) {
      c.crossings ??= { in: 0, out: 0 };
      c.trafficEvents ??= 0;
      for (const x of p.crossings) c.crossings[x.direction]++;
    }
    if (p.faces) {
      c.faces ??= { detections: 0, tracks: new Set(), saved: new Set() };
      c.faces.detections += p.faces.length;
      for (const x of p.faces) if (x.trackId !== undefined) c.faces.tracks.add(x.trackId);
    }
    if (p.poses) c.poses = (c.poses ?? 0) + p.poses.length;
    if (p.activities) {
      c.postures ??= {};
      c.falls ??= 0;
      c.recoveries ??= 0;
      for (const a of p.activities) c.postures[a.posture] = (c.postures[a.posture] ?? 0) + 1;
    }
    if (p.occupancy !== undefined) c.maxOccupancy = Math.max(c.maxOccupancy ?? 0, p.occupancy);
  }

  addFall(e: BusEvents['activity.fall']): void {
    const c = this.of(e.pipeline);
    c.falls = (c.falls ?? 0) + 1;
  }

  addRecovery(e: BusEvents['activity.recovered']): void {
    const c = this.of(e.pipeline);
    c.recoveries = (c.recoveries ?? 0) + 1;
  }

  addFaceSaved(e: BusEvents['face.saved']): void {
    const c = this.of(e.pipeline);
    (c.faces ??= { detections: 0, tracks: new Set(), saved: new Set() }).saved.add(e.faceId);
  }

  addTrafficEvent(e: BusEvents['traffic.event']): void {
    const c = this.of(e.pipeline);
    if (e.status === 'started') c.trafficEvents = (c.trafficEvents ?? 0) + 1;
  }

  /** The counts as JSON: sets become their sizes. */
  toJson(): Record<string, unknown> {
    return Object.fromEntries([...this.pipelines].map(([id, c]) => [id, {
      frames: c.frames,
      ...(c.detections ? { detections: sortedCounts(c.detections) } : {}),
      ...(c.tracks ? { tracks: c.tracks.size } : {}),
      ...(c.crossings ? { crossings: c.crossings } : {}),
      ...(c.faces ? { faces: { detections: c.faces.detections, tracks: c.faces.tracks.size, saved: c.faces.saved.size } } : {}),
      ...(c.poses !== undefined ? { poses: c.poses } : {}),
      ...(c.postures ? { postures: sortedCounts(c.postures) } : {}),
      ...(c.falls !== undefined ? { falls: c.falls, recoveries: c.recoveries ?? 0 } : {}),
      ...(c.maxOccupancy !== undefined ? { maxOccupancy: c.maxOccupancy } : {}),
      ...(c.trafficEvents !== undefined ? { trafficEvents: c.trafficEvents } : {}),
      stageErrors: c.errors,
    }]));
  }

  /** Lines for the terminal: one per kind of count, per pipeline when there are several. */
  describe(): string[] {
    const json = this.toJson();
    const several = this.pipelines.size > 1;
    const out: string[] = [];
    for (const [id, raw] of Object.entries(json)) {
      const c = raw as Record<string, unknown>;
      const label = (name: string) => `${several ? `${id} ` : ''}${name}:`.padEnd(several ? 12 + id.length : 12);
      const counts = (o: unknown) => Object.entries(o as Record<string, number>).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
      if (c.detections) out.push(`${label('detections')}${counts(c.detections)}`);
      if (c.tracks !== undefined) out.push(`${label('tracks')}${String(c.tracks)}`);
      if (c.crossings) out.push(`${label('crossings')}${counts(c.crossings)}`);
      if (c.faces) out.push(`${label('faces')}${counts(c.faces)}`);
      if (c.poses !== undefined) out.push(`${label('poses')}${String(c.poses)}`);
      if (c.postures) out.push(`${label('postures')}${counts(c.postures)}`);
      if (c.falls !== undefined) out.push(`${label('falls')}${String(c.falls)} (recoveries ${String(c.recoveries)})`);
      if (c.maxOccupancy !== undefined) out.push(`${label('occupancy')}at most ${String(c.maxOccupancy)}`);
      if (c.trafficEvents !== undefined) out.push(`${label('traffic')}${String(c.trafficEvents)} event(s)`);
      if (c.stageErrors) out.push(`${label('errors')}${String(c.stageErrors)} frame(s) with a stage error`);
    }
    return out;
  }
}

function sortedCounts(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort((a, b) => b[1] - a[1]));
}

/** The `data` of each server message, built from packets and bus events with the document's field names. */
import path from 'node:path';
import type { BusEvents } from '../../core/events.js';
import type { GraphChanges } from '../../pipeline/graph-diff.js';
import type { Box, Packet, PersonActivity, PersonPose, TrackedObject } from '../../core/types.js';
import type { Place } from './environments.js';
import type { Filters } from './subscriptions.js';
import { round } from './source-stats.js';

const box = (b: Box) => ({ x: Math.round(b[0]), y: Math.round(b[1]), width: Math.round(b[2] - b[0]), height: Math.round(b[3] - b[1]) });
const centre = (b: Box) => ({ x: Math.round((b[0] + b[2]) / 2), y: Math.round((b[1] + b[3]) / 2) });
const iso = (ms: number) => new Date(ms).toISOString();

interface Person {
  person_id: number; track_id: number | null; confidence: number;
  bounding_box: ReturnType<typeof box>;
  keypoints?: { name: string; x: number; y: number; confidence: number; visible: boolean }[];
  activity: { type: string; confidence: number; velocity?: { x: number; y: number } };
  dense_pose?: null;
}

/** Persons of a packet: confirmed person tracks (else raw person detections), with their pose and activity. */
export function persons(p: Packet, f: Filters, fps: number): Person[] {
  const poses = new Map<number, PersonPose>();
  for (const pose of p.poses ?? []) if (pose.trackId !== undefined) poses.set(pose.trackId, pose);
  const acts = new Map<number, PersonActivity>((p.activities ?? []).map((a) => [a.trackId, a]));
  const tracks: TrackedObject[] | undefined = p.tracks?.filter((t) => t.label === 'person' && t.state === 'confirmed');
  const items = tracks
    ? tracks.map((t) => ({ id: t.id, trackId: t.id as number | null, box: t.box, score: t.score, velocity: t.velocity, pose: poses.get(t.id),
      act: acts.get(t.id) }))
    : (p.detections ?? []).filter((d) => d.label === 'person').map((d, i) => ({
      id: i + 1, trackId: null, box: d.box, score: d.score, velocity: [0, 0] as [number, number],
      // Untracked poses are matched to detections by their box.
      pose: p.poses?.find((q) => q.box.every((v, k) => Math.abs(v - d.box[k]) < 1e-3)), act: undefined,
    }));
  const out: Person[] = [];
  for (const it of items) {
    if (it.score < f.minConfidence) continue;
    const person: Person = {
      person_id: it.id, track_id: it.trackId, confidence: round(it.score, 3), bounding_box: box(it.box),
      activity: { type: it.act?.posture ?? 'unknown', confidence: round(it.act?.confidence ?? 0, 3) },
    };
    if (f.includeKeypoints) {
      person.keypoints = (it.pose?.keypoints ?? []).map((k) => ({
        name: k.name, x: round(k.x, 1), y: round(k.y, 1), confidence: round(k.confidence, 3), visible: k.visible,
      }));
    }
    // Velocity in source pixels per second (the tracker's is per frame).
    if (f.includeVelocity) person.activity.velocity = { x: round(it.velocity[0] * fps, 1), y: round(it.velocity[1] * fps, 1) };
    if (f.includeDensePose) person.dense_pose = null;
    out.push(person);
  }
  return out;
}

export function poseData(p: Packet, f: Filters, meta: { fps: number; quality: number; modelVersion: string; environment: string }, nowMs: number) {
  return {
    frame_id: p.frame.seq,
    environment_id: meta.environment,
    processing_time_ms: round(nowMs - p.frame.capturedAtMs, 1),
    persons: persons(p, f, meta.fps),
    metadata: { model_version: meta.modelVersion, csi_quality: round(meta.quality, 3), frame_rate: round(meta.fps, 1) },
  };
}

export function trackingUpdate(environment: string, t: TrackedObject, event: 'track_started' | 'track_lost', firstSeenMs: number) {
  return {
    environment_id: environment, track_id: t.id, person_id: t.id, event, position: centre(t.box), confidence: round(t.score, 3),
    metadata: { first_detection: iso(firstSeenMs), track_quality: round(t.score, 3) },
  };
}

export function trajectory(environment: string, a: PersonActivity, score: number) {
  const conf = round(score, 3);
  return {
    environment_id: environment, track_id: a.trackId, person_id: a.trackId,
    trajectory: a.trajectory.map((q) => ({ timestamp: iso(q.atMs), position: { x: Math.round(q.x), y: Math.round(q.y) }, confidence: conf })),
    prediction: {
      next_position: { x: Math.round(a.predicted.x), y: Math.round(a.predicted.y) },
      // Confidence of a constant-velocity guess shrinks with how far ahead it looks.
      confidence: round(conf * Math.exp(-a.predicted.horizonMs / 2000), 3),
      time_horizon: round(a.predicted.horizonMs / 1000, 2),
    },
  };
}

export function occupancyUpdate(e: BusEvents['occupancy'], environment: string, tracks: TrackedObject[], previousIds: Set<number>) {
  return {
    environment_id: environment, current_occupancy: e.count, previous_occupancy: e.previous,
    change_type: e.changeType === 'increase' ? 'person_entered' : 'person_left',
    confidence: tracks.length ? round(tracks.reduce((s, t) => s + t.score, 0) / tracks.length, 3) : 1,
    persons: tracks.map((t) => ({ person_id: t.id, track_id: t.id, status: previousIds.has(t.id) ? 'active' : 'new' })),
  };
}

export function fallEvent(e: BusEvents['activity.fall'], place: Place) {
  return {
    event_type: 'fall_detected', severity: 'high', environment_id: place.environment, person_id: e.trackId, track_id: e.trackId,
    confidence: round(e.confidence, 3), location: centre(e.box),
    details: { fall_duration: round(e.fallDuration, 2), impact_severity: round(e.impactSeverity, 3), recovery_detected: e.recoveryDetected },
    actions: ['alert_triggered'],
  };
}

export function recoveryEvent(e: BusEvents['activity.recovered'], place: Place) {
  return {
    event_type: 'recovery_detected', severity: 'medium', environment_id: place.environment, person_id: e.trackId, track_id: e.trackId,
    confidence: 1, details: { lying_duration: round(e.lyingSeconds, 2), recovery_detected: true }, actions: [],
  };
}

/** A camera (the document's router) going down or coming back. */
export function hardwareEvent(e: BusEvents['source.state'], place: Place, wasDown: boolean, lastFrameMs: number | undefined) {
  const up = e.state === 'running';
  const event = up ? (wasDown ? 'router_reconnected' : 'router_connected') : 'router_disconnected';
  const severity = e.state === 'failed' ? 'error' : e.state === 'retrying' ? 'warning' : 'info';
  const message = up
    ? `Camera ${e.source} is delivering frames.`
    : e.state === 'retrying' ? `Camera ${e.source} connection lost${e.reason ? ` (${e.reason})` : ''}. Attempting reconnection...`
      : e.state === 'failed' ? `Camera ${e.source} failed${e.reason ? `: ${e.reason}` : ''}.`
        : `Camera ${e.source} stopped${e.reason ? ` (${e.reason})` : ''}.`;
  return {
    event, router_id: e.source, environment_id: place.environment, device_type: 'camera', state: e.state, severity, message,
    metadata: { last_seen: lastFrameMs ? iso(lastFrameMs) : null, reconnect_attempts: e.attempt ?? 0 },
  };
}

export function systemEvent(e: BusEvents['pipeline.state'], place: Place | undefined, sessionId: string, components: Record<string, string>, snapshot = false) {
  const event = snapshot ? 'system_status'
    : e.state === 'running' ? 'system_started' : e.state === 'failed' ? 'system_error' : e.state === 'stopped' ? 'system_stopped' : 'system_starting';
  return {
    event, status: e.state, severity: e.state === 'failed' ? 'error' : 'info', session_id: sessionId,
    ...(e.reason ? { message: e.reason } : {}),
    configuration: { pipeline: e.pipeline, environment_id: place?.environment ?? null },
    components,
  };
}

/** `config_update` from an applied reload: one changed field per added/changed/removed graph entry. */
export function configUpdate(e: BusEvents['config'], changes: GraphChanges, graph: Record<string, Record<string, unknown>>) {
  const changed: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [section, c] of Object.entries(changes) as [keyof GraphChanges, GraphChanges[keyof GraphChanges]][]) {
    for (const id of [...c.added, ...c.changed]) {
      changed.push(`${section}.${id}`);
      values[`${section}.${id}`] = graph[section]?.[id] ?? null;
    }
    for (const id of c.removed) {
      changed.push(`${section}.${id}`);
      values[`${section}.${id}`] = null;
    }
  }
  return {
    changed_fields: changed, new_values: values, applied_by: `config_file:${path.basename(e.file)}`,
    // Reloads are applied live, by difference.
    requires_restart: false, summary: e.summary,
  };
}

/**
 * Subscription messages (`subscribe`, `unsubscribe`, `update_subscription`): validation of the documented
 * filters and throttles into typed subscriptions. A bad value is reported with the field it is in and why,
 * as the document's SUBSCRIPTION_ERROR shows.
 */
import { SightlineError } from '../../core/errors.js';
export const EVENT_TYPES = [
  'pose_data', 'tracking_update', 'pose_data_trajectory', 'occupancy_update', 'activity_event',
  'system_event', 'hardware_event', 'performance_update', 'analytics_stream', 'analytics_update', 'config_update',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** `event_types` an activity_event subscription may filter on. */
export const ACTIVITY_EVENT_TYPES = ['fall_detected', 'recovery_detected', 'alert_triggered'] as const;
export const SEVERITIES = ['info', 'warning', 'error', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface Filters {
  environmentId?: string;
  minConfidence: number;
  includeKeypoints: boolean;
  includeDensePose: boolean;
  includeVelocity: boolean;
  severity?: Severity[];
  activityTypes?: string[];
}

export interface Throttle { maxFps: number; bufferSize: number }

export interface Subscription {
  id: string;
  eventType: EventType;
  filters: Filters;
  throttle: Throttle;
  quality: 'low' | 'high';
  notes: string[];
}

/** An invalid subscription: BAD_SUBSCRIPTION, naming the field and why (the document's SUBSCRIPTION_ERROR details). */
export class SubscriptionError extends SightlineError {
  constructor(readonly field: string, readonly reason: string, readonly subscriptionId?: string) {
    super('BAD_SUBSCRIPTION', `${field}: ${reason}`, { field, reason, subscription_id: subscriptionId ?? null });
  }
}

/** Largest rate and buffer per stream (data rate table: pose 30 FPS high / 10 FPS low quality; analytics 60/min). */
const MAX_FPS: Record<EventType, number> = {
  pose_data: 30, tracking_update: 30, pose_data_trajectory: 30, occupancy_update: 30, activity_event: 30,
  system_event: 100 / 60, hardware_event: 100 / 60, config_update: 100 / 60,
  performance_update: 1, analytics_stream: 1, analytics_update: 1,
};
const MAX_BUFFER = 10;
const MIN_FPS = 0.01;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface ValidationContext {
  /** Names an `environment_id` filter may take: environment ids and source ids. */
  environments(): string[];
}

function bool(f: Json, key: string, fallback: boolean): boolean {
  if (!(key in f)) return fallback;
  if (typeof f[key] !== 'boolean') throw new SubscriptionError(key, 'Value must be true or false');
  return f[key] as boolean;
}

function stringList<T extends string>(f: Json, key: string, allowed: readonly T[]): T[] | undefined {
  if (!(key in f)) return undefined;
  const v = f[key];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) throw new SubscriptionError(key, 'Value must be a list of strings');
  const bad = list.find((x) => !allowed.includes(x as T));
  if (bad !== undefined) throw new SubscriptionError(key, `Unknown value "${String(bad).slice(0, 64)}"; expected one of ${allowed.join(', ')}`);
  return list as T[];
}

/** Applies `filters` (and a throttle given in them or beside them) onto `base`. */
function applyFilters(eventType: EventType, base: Filters, raw: Json, ctx: ValidationContext): Filters {
  const f: Filters = { ...base };
  if ('environment_id' in raw) {
    const env = raw.environment_id;
    if (env === null) f.environmentId = undefined;
    else if (typeof env !== 'string') throw new SubscriptionError('environment_id', 'Value must be a string');
    else if (!ctx.environments().includes(env)) {
      throw new SubscriptionError('environment_id', `Unknown environment "${env.slice(0, 64)}"; known: ${ctx.environments().join(', ') || 'none'}`);
    } else f.environmentId = env;
  }
  if ('min_confidence' in raw) {
    const c = raw.min_confidence;
    if (typeof c !== 'number' || !Number.isFinite(c) || c < 0 || c > 1) throw new SubscriptionError('min_confidence', 'Value must be between 0 and 1');
    f.minConfidence = c;
  }
  f.includeKeypoints = bool(raw, 'include_keypoints', f.includeKeypoints);
  f.includeDensePose = bool(raw, 'include_dense_pose', f.includeDensePose);
  f.includeVelocity = bool(raw, 'include_velocity', f.includeVelocity);
  const severity = stringList(raw, 'severity', SEVERITIES);
  if (severity) f.severity = severity;
  const types = stringList(raw, 'event_types', ACTIVITY_EVENT_TYPES);
  if (types) {
    if (eventType !== 'activity_event') throw new SubscriptionError('event_types', 'Only activity_event subscriptions filter on event_types');
    f.activityTypes = types;
  }
  const known = ['environment_id', 'min_confidence', 'include_keypoints', 'include_dense_pose', 'include_velocity', 'severity', 'event_types', 'max_fps', 'buffer_size'];
  const unknown = Object.keys(raw).find((k) => !known.includes(k));
  if (unknown !== undefined) throw new SubscriptionError(unknown.slice(0, 64), `Unknown filter; expected one of ${known.join(', ')}`);
  return f;
}

function applyThrottle(eventType: EventType, base: Throttle, raw: Json): Throttle {
  const t = { ...base };
  if ('max_fps' in raw) {
    const v = raw.max_fps;
    const max = MAX_FPS[eventType];
    // At least one message every 100 s: a rate of 1e-300 would be a period no timer can hold.
    if (typeof v !== 'number' || !Number.isFinite(v) || v < MIN_FPS || v > 30) throw new SubscriptionError('max_fps', `Value must be a number above 0 (at least ${MIN_FPS}) and at most 30`);
    t.maxFps = Math.min(v, max);
  }
  if ('buffer_size' in raw) {
    const v = raw.buffer_size;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_BUFFER) throw new SubscriptionError('buffer_size', `Value must be an integer from 1 to ${MAX_BUFFER}`);
    t.bufferSize = v;
  }
  return t;
}

function defaults(eventType: EventType, quality: 'low' | 'high'): { filters: Filters; throttle: Throttle } {
  const filters: Filters = { minConfidence: 0, includeKeypoints: true, includeDensePose: false, includeVelocity: true };
  const pose = ['pose_data', 'tracking_update', 'pose_data_trajectory', 'occupancy_update', 'activity_event'].includes(eventType);
  const throttle: Throttle = pose
    ? (quality === 'high' ? { maxFps: 30, bufferSize: 1 } : { maxFps: 10, bufferSize: 5 })
    : eventType === 'system_event' || eventType === 'hardware_event' || eventType === 'config_update'
      ? { maxFps: MAX_FPS[eventType], bufferSize: 10 }
      : { maxFps: 1, bufferSize: 5 };
  return { filters, throttle };
}

const DENSE_POSE_NOTE = 'include_dense_pose acknowledged: dense UV maps are not produced (keypoints and boxes only); persons carry "dense_pose": null';

function notesOf(s: Subscription): string[] {
  const notes: string[] = [];
  if (s.filters.includeDensePose) notes.push(DENSE_POSE_NOTE);
  return notes;
}

/** One entry of a `subscribe` message. */
export function parseSubscription(raw: unknown, id: string, ctx: ValidationContext): Subscription {
  if (!isObject(raw)) throw new SubscriptionError('subscriptions', 'Each subscription must be an object');
  const eventType = raw.event_type;
  if (typeof eventType !== 'string' || !(EVENT_TYPES as readonly string[]).includes(eventType)) {
    throw new SubscriptionError('event_type', `Unknown event_type "${String(eventType).slice(0, 64)}"; expected one of ${EVENT_TYPES.join(', ')}`);
  }
  const type = eventType as EventType;
  const quality = raw.quality ?? 'low';
  if (quality !== 'low' && quality !== 'high') throw new SubscriptionError('quality', 'Value must be "low" or "high"');
  const d = defaults(type, quality);
  const filters = raw.filters ?? {};
  const throttle = raw.throttle ?? {};
  if (!isObject(filters)) throw new SubscriptionError('filters', 'Value must be an object');
  if (!isObject(throttle)) throw new SubscriptionError('throttle', 'Value must be an object');
  const unknownThrottle = Object.keys(throttle).find((k) => !['max_fps', 'buffer_size', 'compression'].includes(k));
  if (unknownThrottle !== undefined) throw new SubscriptionError(unknownThrottle.slice(0, 64), 'Unknown throttle option; expected max_fps, buffer_size, compression');
  const s: Subscription = {
    id, eventType: type, quality,
    filters: applyFilters(type, d.filters, filters, ctx),
    throttle: applyThrottle(type, applyThrottle(type, d.throttle, filters), throttle),
    notes: [],
  };
  s.notes = notesOf(s);
  if ('compression' in throttle) s.notes.push('per-message compression is negotiated by the WebSocket handshake (permessage-deflate), not per subscription');
  return s;
}

/** The body of an `update_subscription`: filters (max_fps / buffer_size may be given among them, as the document does) and throttle. */
export function updateSubscription(s: Subscription, data: Json, ctx: ValidationContext): Subscription {
  const filters = data.filters ?? {};
  const throttle = data.throttle ?? {};
  if (!isObject(filters)) throw new SubscriptionError('filters', 'Value must be an object', s.id);
  if (!isObject(throttle)) throw new SubscriptionError('throttle', 'Value must be an object', s.id);
  try {
    const next: Subscription = {
      ...s,
      filters: applyFilters(s.eventType, s.filters, filters, ctx),
      throttle: applyThrottle(s.eventType, applyThrottle(s.eventType, s.throttle, filters), throttle),
    };
    next.notes = notesOf(next);
    return next;
  } catch (err) {
    if (err instanceof SubscriptionError) throw new SubscriptionError(err.field, err.reason, s.id);
    throw err;
  }
}

/** How a subscription is described in an `ack`. */
export function describe(s: Subscription): Json {
  return {
    subscription_id: s.id, event_type: s.eventType, status: 'active',
    throttle: { max_fps: Math.round(s.throttle.maxFps * 1000) / 1000, buffer_size: s.throttle.bufferSize },
    ...(s.notes.length ? { notes: s.notes } : {}),
  };
}

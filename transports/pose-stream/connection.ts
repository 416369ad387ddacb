/**
 * One authenticated `/ws/v1` client: its envelope (client id + sequence), subscriptions with their
 * throttles, message rate limits, heartbeat, token expiry and bounded send buffer. Until its first `subscribe` a
 * connection gets the default stream (the document's clients send theirs before the socket opens, or after it
 * closed): pose data of every environment at the low-quality defaults, activity events and system events.
 */
import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { Cancel, Clock } from '../../core/clock.js';
import { RateGate } from '../../core/rate-gate.js';
import { parseMessage } from '../http/json-message.js';
import { Envelope } from './envelope.js';
import { inEnvironment, type Place } from './environments.js';
import { EventBudget, MESSAGE_LIMITS, WindowLimiter, type LimitRule } from './rate-limit.js';
import {
  describe, parseSubscription, SubscriptionError, updateSubscription, type EventType, type Subscription, type ValidationContext,
} from './subscriptions.js';

/** Close code after `token_expired` (application range; the document names the event, not the code). */
export const CLOSE_TOKEN_EXPIRED = 4001;
/** Close code for a client that stopped reading while its queue grew past the hard cap. */
export const CLOSE_NOT_READING = 1008;
/** A client closed for not reading gets this long to read its CONNECTION_ERROR before its socket is cut. */
const NOT_READING_GRACE_MS = 10_000;

/** What a connection gets before it subscribes to anything (each with its stream's defaults). */
export const DEFAULT_STREAM: readonly EventType[] = ['pose_data', 'activity_event', 'system_event'];

/** Streams sent per frame (throttled by max_fps, dropped per buffer_size) vs. discrete events (budget per minute). */
const FRAME_STREAMS: ReadonlySet<EventType> = new Set(['pose_data', 'pose_data_trajectory']);
const PERIODIC_STREAMS: ReadonlySet<EventType> = new Set(['performance_update', 'analytics_stream', 'analytics_update']);

export interface ConnectionHooks {
  clock: Clock;
  validation: ValidationContext;
  /** Data of a periodic stream (performance / analytics) for one subscription. */
  periodic(sub: Subscription): { type: string; data: unknown };
  onSent(n: number): void;
  onDropped(n: number): void;
  onError(kind: string): void;
  onClose(c: Connection): void;
  log(message: string): void;
  /** After the ack of a new subscription: e.g. the current state for a status stream. */
  onSubscribed(c: Connection, sub: Subscription): void;
  /** Bytes queued on the socket beyond which the client is cut off: memory per client stays bounded. */
  closeAboveBytes: number;
  heartbeatMs: number;
  maxSubscriptions: number;
}

interface Live { sub: Subscription; gate?: RateGate; budget?: EventBudget; stopTimer?: Cancel }

let nextSubscription = 1;

export class Connection {
  readonly envelope: Envelope;
  readonly sessionId = `session_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  readonly connectedMs: number;
  private readonly subs = new Map<string, Live>();
  /** The default stream, until the first subscribe that succeeds replaces it (null from then on). */
  private defaults: Map<string, Live> | null = new Map();
  private readonly limits = {
    subscription: new WindowLimiter(MESSAGE_LIMITS.subscription),
    heartbeat: new WindowLimiter(MESSAGE_LIMITS.heartbeat),
    general: new WindowLimiter(MESSAGE_LIMITS.general),
  };
  private lastClientMessageMs: number | null = null;
  private received = 0;
  private readonly timers: Cancel[] = [];
  /** Running mean size of droppable messages, to turn a frame count (buffer_size) into queued bytes. */
  private frameBytes = 4096;
  private closed = false;
  /** Set once the client was found not reading: nothing more is queued while its close is under way. */
  private cutOff = false;

  /** `token`: when the client's token expires, and whether it had expired by the handshake already. */
  constructor(readonly ws: WebSocket, clientId: string, private readonly hooks: ConnectionHooks, token: { expiresAtMs?: number; expired?: boolean } = {}) {
    this.connectedMs = hooks.clock.now();
    this.envelope = new Envelope(clientId, ws.extensions.includes('permessage-deflate') ? 'deflate' : undefined);
    ws.on('message', (raw, isBinary) => this.onMessage(isBinary ? null : raw.toString()));
    ws.on('close', () => this.dispose());
    // ws reports protocol violations (e.g. a message above maxPayload) here and closes with 1009/1002.
    ws.on('error', () => hooks.onError('protocol_error'));
    // A token already expired gets what a token expiring later gets: the event, then the close.
    if (token.expired) {
      this.expire();
      return;
    }
    this.timers.push(hooks.clock.interval(() => this.send('heartbeat', this.heartbeatData(), { droppable: false }), hooks.heartbeatMs));
    if (token.expiresAtMs !== undefined) this.expireAt(token.expiresAtMs);
    for (const type of DEFAULT_STREAM) {
      const sub = parseSubscription({ event_type: type }, `default_${type}`, hooks.validation);
      this.defaults!.set(sub.id, this.live(sub));
    }
    this.send('connection_status', this.status(), { droppable: false });
    for (const live of this.defaults!.values()) hooks.onSubscribed(this, live.sub);
  }

  get clientId(): string {
    return this.envelope.clientId;
  }

  /** The subscriptions in force: the client's, or the default stream until it subscribes. */
  private active(): IterableIterator<Live> {
    return (this.defaults ?? this.subs).values();
  }

  /**
   * Subscriptions of a type that take what comes from `place` (none: not tied to a place), with a gate check for
   * frame streams and a budget check for events.
   */
  *wants(type: EventType | EventType[], place: Place | undefined, nowMs: number, accept?: (s: Subscription) => boolean): Generator<Subscription> {
    const types = Array.isArray(type) ? type : [type];
    for (const live of this.active()) {
      const s = live.sub;
      if (!types.includes(s.eventType)) continue;
      if (!inEnvironment(s.filters.environmentId, place)) continue;
      if (accept && !accept(s)) continue;
      if (live.gate && !live.gate.allow(nowMs)) continue;
      if (live.budget && !live.budget.allow(nowMs)) { this.hooks.onDropped(1); continue; }
      yield s;
    }
  }

  /** Whether any subscription of these types exists (cheap check before building messages). */
  has(types: EventType[]): boolean {
    for (const live of this.active()) if (types.includes(live.sub.eventType)) return true;
    return false;
  }

  /**
   * Sends one enveloped message. Droppable stream messages are skipped while more than `bufferSize`
   * messages' worth of bytes wait on the socket; past the hard cap the client is disconnected.
   */
  send(type: string, data: unknown, opts: { droppable: boolean; bufferSize?: number; extra?: Record<string, unknown> }): boolean {
    const ws = this.ws;
    if (this.closed || this.cutOff || ws.readyState !== ws.OPEN) return false;
    if (ws.bufferedAmount > this.hooks.closeAboveBytes) {
      this.fellBehind(ws.bufferedAmount);
      return false;
    }
    if (opts.droppable && ws.bufferedAmount > (opts.bufferSize ?? 1) * this.frameBytes) {
      this.hooks.onDropped(1);
      return false;
    }
    const text = this.envelope.wrap(type, data, this.hooks.clock.now(), opts.extra);
    if (opts.droppable) this.frameBytes = 0.9 * this.frameBytes + 0.1 * Buffer.byteLength(text);
    ws.send(text);
    this.hooks.onSent(1);
    return true;
  }

  /**
   * A client whose queue passed the hard cap: the document's CONNECTION_ERROR goes last in its queue, then the close
   * (1008); nothing more is queued, and a client that does not read even that is cut off after a grace period.
   */
  private fellBehind(queuedBytes: number): void {
    this.cutOff = true;
    this.hooks.onError('not_reading');
    this.ws.send(this.envelope.wrap('error', {
      error_code: 'CONNECTION_ERROR', message: 'Client is not reading its messages; the connection is closed',
      details: { reason: 'client_too_slow', queued_bytes: queuedBytes, limit_bytes: this.hooks.closeAboveBytes, retry_after: 5, max_retries: 3 },
    }, this.hooks.clock.now()));
    this.hooks.onSent(1);
    this.ws.close(CLOSE_NOT_READING, 'client is not reading');
    this.timers.push(this.hooks.clock.timeout(() => this.ws.terminate(), NOT_READING_GRACE_MS));
  }

  error(code: string, message: string, details: Record<string, unknown>, kind: string): void {
    this.hooks.onError(kind);
    this.send('error', { error_code: code, message, details }, { droppable: false });
  }

  status() {
    return {
      status: 'connected', client_id: this.clientId, session_id: this.sessionId,
      connected_since: new Date(this.connectedMs).toISOString(), active_subscriptions: this.subs.size,
      message_count: this.envelope.sent + this.received,
      // Beyond the document: what the connection receives while it has not subscribed.
      default_stream: this.defaults ? [...DEFAULT_STREAM] : [],
    };
  }

  private heartbeatData() {
    return {
      client_id: this.clientId, uptime: Math.round((this.hooks.clock.now() - this.connectedMs) / 1000),
      last_message: this.lastClientMessageMs ? new Date(this.lastClientMessageMs).toISOString() : null,
    };
  }

  private expireAt(atMs: number): void {
    // A timer holds at most ~24.8 days; longer tokens re-arm.
    const wait = Math.min(atMs - this.hooks.clock.now(), 2 ** 31 - 1);
    this.timers.push(this.hooks.clock.timeout(() => {
      if (this.hooks.clock.now() < atMs) { this.expireAt(atMs); return; }
      this.expire();
    }, Math.max(0, wait)));
  }

  private expire(): void {
    const message = 'JWT token has expired. Please refresh and reconnect.';
    this.hooks.onError('token_expired');
    // The document shows `message` at the top level; it is also in `data` so envelope readers find it.
    this.send('token_expired', { message }, { droppable: false, extra: { message } });
    this.ws.close(CLOSE_TOKEN_EXPIRED, 'token_expired');
  }

  /** Sends a disconnect and closes (server shutdown, transport removed). */
  shutdown(reason: string, message: string, code = 1001): void {
    this.send('disconnect', { reason, message }, { droppable: false });
    this.ws.close(code, reason);
  }

  private limited(rule: keyof typeof this.limits): boolean {
    const v = this.limits[rule].hit(this.hooks.clock.now());
    if (v.ok) return false;
    const r: LimitRule = this.limits[rule].rule;
    this.error('RATE_LIMIT_EXCEEDED', `${rule === 'general' ? 'Message' : rule === 'heartbeat' ? 'Heartbeat' : 'Subscription'} rate limit exceeded`,
      { current_rate: v.currentRate, limit: r.limit, window: r.window, retry_after: v.retryAfterS }, 'rate_limited');
    return true;
  }

  private onMessage(text: string | null): void {
    this.received++;
    this.lastClientMessageMs = this.hooks.clock.now();
    // Bounded before it is parsed: subscriptions nest 4 levels at most.
    const parsed = text === null ? null : parseMessage(text, false, { maxBytes: 1024 * 1024, maxDepth: 12 });
    const msg = parsed?.ok ? parsed.value : undefined;
    const type = typeof msg === 'object' && msg !== null && !Array.isArray(msg) ? (msg as { type?: unknown }).type : undefined;
    const data = (msg as { data?: unknown } | undefined)?.data;
    const category = type === 'subscribe' || type === 'unsubscribe' || type === 'update_subscription' ? 'subscription'
      : type === 'heartbeat' ? 'heartbeat' : 'general';
    if (this.limited(category)) return;
    if (typeof type !== 'string') {
      this.error('INVALID_MESSAGE', text === null ? 'Messages must be JSON text' : 'Message is not a JSON object with a "type"',
        { reason: text === null ? 'binary_frame' : 'invalid_json' }, text === null ? 'bad_format' : 'invalid_json');
      return;
    }
    try {
      switch (type) {
        case 'subscribe': this.subscribe(data); break;
        case 'unsubscribe': this.unsubscribe(data); break;
        case 'update_subscription': this.update(data); break;
        case 'heartbeat': this.send('heartbeat', this.heartbeatData(), { droppable: false }); break;
        case 'connection_status': case 'get_status': this.send('connection_status', this.status(), { droppable: false }); break;
        case 'disconnect': this.shutdown('client_requested', 'Graceful disconnect initiated by client', 1000); break;
        default:
          this.error('INVALID_MESSAGE', `Unknown message type "${type.slice(0, 64)}"`,
            { reason: 'unknown_type', supported: ['subscribe', 'unsubscribe', 'update_subscription', 'heartbeat', 'connection_status', 'disconnect'] }, 'unknown_type');
      }
    } catch (err) {
      if (err instanceof SubscriptionError) {
        this.error('SUBSCRIPTION_ERROR', 'Invalid subscription filter',
          { subscription_id: err.subscriptionId ?? null, field: err.field, reason: err.reason }, 'subscription');
      } else {
        // A bug must cost this one request, never the process.
        this.hooks.log(`pose-stream: ${type} from ${this.clientId} failed: ${(err as Error).stack ?? String(err)}`);
        // The document's codes have no internal error: a failed message is a connection-level error to retry.
        this.error('CONNECTION_ERROR', 'The server could not process the message', { reason: 'server_error', message_type: type.slice(0, 64), retry_after: 1 }, 'internal');
      }
    }
  }

  private subscribe(data: unknown): void {
    const list = (data as { subscriptions?: unknown } | undefined)?.subscriptions;
    if (!Array.isArray(list) || list.length === 0) throw new SubscriptionError('subscriptions', 'Value must be a non-empty list of subscriptions');
    if (this.subs.size + list.length > this.hooks.maxSubscriptions) {
      throw new SubscriptionError('subscriptions', `At most ${this.hooks.maxSubscriptions} subscriptions per connection`);
    }
    // All or nothing: an invalid entry leaves the connection's subscriptions as they were.
    const parsed = list.map((raw, i) => {
      try {
        return parseSubscription(raw, `sub_${nextSubscription + i}`, this.hooks.validation);
      } catch (err) {
        if (err instanceof SubscriptionError) throw new SubscriptionError(err.field, `${err.reason} (subscriptions[${i}])`);
        throw err;
      }
    });
    nextSubscription += list.length;
    // The first subscription replaces the default stream.
    for (const live of this.defaults?.values() ?? []) live.stopTimer?.();
    this.defaults = null;
    for (const s of parsed) this.activate(s);
    this.send('ack', { message_type: 'subscribe', status: 'success', active_subscriptions: parsed.map(describe) }, { droppable: false });
    for (const s of parsed) this.hooks.onSubscribed(this, s);
  }

  private unsubscribe(data: unknown): void {
    const ids = (data as { subscription_ids?: unknown } | undefined)?.subscription_ids;
    if (!Array.isArray(ids) || ids.length === 0 || ids.some((i) => typeof i !== 'string')) {
      throw new SubscriptionError('subscription_ids', 'Value must be a non-empty list of subscription ids');
    }
    const unknown = (ids as string[]).find((i) => !this.subs.has(i));
    if (unknown !== undefined) throw new SubscriptionError('subscription_ids', `Unknown subscription "${unknown.slice(0, 64)}"`, unknown.slice(0, 64));
    for (const id of ids as string[]) this.deactivate(id);
    this.send('ack', {
      message_type: 'unsubscribe', status: 'success', removed_subscriptions: ids,
      active_subscriptions: [...this.subs.values()].map((l) => describe(l.sub)),
    }, { droppable: false });
  }

  private update(data: unknown): void {
    if (typeof data !== 'object' || data === null) throw new SubscriptionError('data', 'Value must be an object');
    const id = (data as { subscription_id?: unknown }).subscription_id;
    const live = typeof id === 'string' ? this.subs.get(id) : undefined;
    if (!live) throw new SubscriptionError('subscription_id', 'Unknown subscription', typeof id === 'string' ? id.slice(0, 64) : undefined);
    const next = updateSubscription(live.sub, data as Record<string, unknown>, this.hooks.validation);
    this.deactivate(live.sub.id);
    this.activate(next);
    this.send('ack', { message_type: 'update_subscription', status: 'success', active_subscriptions: [describe(next)] }, { droppable: false });
  }

  private activate(sub: Subscription): void {
    this.subs.set(sub.id, this.live(sub));
  }

  /** A subscription with what enforces its throttle: a gate per frame, a timer for periodic figures, a budget for events. */
  private live(sub: Subscription): Live {
    const live: Live = { sub };
    if (FRAME_STREAMS.has(sub.eventType)) live.gate = new RateGate(sub.throttle.maxFps);
    else if (PERIODIC_STREAMS.has(sub.eventType)) {
      live.stopTimer = this.hooks.clock.interval(() => {
        const m = this.hooks.periodic(sub);
        this.send(m.type, m.data, { droppable: true, bufferSize: sub.throttle.bufferSize });
      }, 1000 / sub.throttle.maxFps);
    } else live.budget = new EventBudget(Math.max(1, Math.round(sub.throttle.maxFps * 60)), 60_000);
    return live;
  }

  private deactivate(id: string): void {
    const live = this.subs.get(id);
    live?.stopTimer?.();
    this.subs.delete(id);
  }

  private dispose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const cancel of this.timers) cancel();
    for (const id of [...this.subs.keys()]) this.deactivate(id);
    this.defaults = null;
    this.hooks.onClose(this);
  }
}

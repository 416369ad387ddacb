/**
 * Pose stream v1 (pose-stream-v1.md): the authenticated `/ws/v1` WebSocket API. Cameras play the role the
 * document gives to WiFi routers: `environment_id` is a source id, `hardware_event` a camera going down or
 * coming back, `csi_quality` the share of a source's frames that made it through the pipeline.
 * Knows stages only through the packet and the bus events.
 */
import { randomUUID } from 'node:crypto';
import type { Subscription as RxSubscription } from 'rxjs';
import { WebSocketServer } from 'ws';
import type { TransportSpec } from '../../config/graph.js';
import type { BusEvents } from '../../core/events.js';
import { modelsOf } from '../../pipeline/graph-diff.js';
import type { TrackedObject } from '../../core/types.js';
import { AuthError, TokenVerifier, type AuthOptions } from './auth.js';
import { Connection, type ConnectionHooks } from './connection.js';
import * as M from './messages.js';
import { analyticsStream, CpuSampler, performanceUpdate } from './figures.js';
import { SourceStats } from './source-stats.js';
import type { Subscription } from './subscriptions.js';
import type { MountedTransport, TransportContext } from '../contract.js';

const PROTOCOL = 'pose-stream-v1';
export const POSE_STREAM_PATH = '/ws/v1';
export const SUBPROTOCOL = 'wifi-densepose-v1';
const CLIENT_ID = /^[\w.:@-]{1,128}$/;

export interface PoseStreamSpec extends TransportSpec {
  port: number;
  auth: AuthOptions;
  /** Seconds between server heartbeats (the document: periodic; its clients send every 30 s). */
  heartbeatSeconds?: number;
  maxMessageBytes?: number;
  maxConnections?: number;
  maxSubscriptions?: number;
  /** performance_update raises a high_latency alert above this average capture-to-sink latency. */
  latencyAlertMs?: number;
}

export const POSE_STREAM_SCHEMA = {
  type: 'object', additionalProperties: false, required: ['auth'],
  properties: {
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    auth: {
      type: 'object', additionalProperties: false,
      properties: {
        secret: { type: 'string', minLength: 32 }, secretEnv: { type: 'string', minLength: 1 }, secretFile: { type: 'string', minLength: 1 },
        publicKey: { type: 'string', minLength: 1 }, publicKeyFile: { type: 'string', minLength: 1 },
        algorithms: { type: 'array', minItems: 1, items: { enum: ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] } },
        issuer: { type: 'string' }, audience: { type: 'string' }, clockTolerance: { type: 'number', minimum: 0, maximum: 300 },
        requireExpiry: { type: 'boolean' },
      },
      oneOf: [{ required: ['secret'] }, { required: ['secretEnv'] }, { required: ['secretFile'] }, { required: ['publicKey'] }, { required: ['publicKeyFile'] }],
    },
    heartbeatSeconds: { type: 'number', minimum: 1, maximum: 3600 },
    maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 1048576 },
    maxConnections: { type: 'integer', minimum: 1, maximum: 100000 },
    maxSubscriptions: { type: 'integer', minimum: 1, maximum: 1000 },
    latencyAlertMs: { type: 'number', minimum: 1 },
  },
};

export function mountPoseStream(spec: PoseStreamSpec, ctx: TransportContext): MountedTransport {
  const { hub, bus, metrics, log, pool } = ctx;
  // A key that cannot be loaded (unset env var, bad PEM) must not take the server down, on start or on a
  // reload: it is logged and every handshake is refused with 503 until the graph is fixed.
  let verifier: TokenVerifier | null = null;
  let authProblem = '';
  try {
    verifier = new TokenVerifier(spec.auth, process.env, ctx.settings.dataDir);
  } catch (err) {
    authProblem = (err as Error).message;
    log.error(`${authProblem}; every /ws/v1 handshake will be refused`);
  }
  const sessionId = `session_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  const dropped = metrics.wsDropped.labels(PROTOCOL);
  const clientsGauge = metrics.wsClients.labels(PROTOCOL);
  for (const kind of ['auth_missing_token', 'auth_invalid_token', 'auth_expired_token', 'token_expired', 'subscription', 'rate_limited', 'not_reading', 'protocol_error']) {
    metrics.wsErrors.inc({ protocol: PROTOCOL, kind }, 0);
  }
  const connections = new Set<Connection>();
  const stats = new Map<string, SourceStats>();
  const lastFrameMs = new Map<string, number>();
  const occupancy = new Map<string, number>();
  // Kept per pipeline (track ids are a pipeline's own); a subscription's environment selects by source.
  const statsOf = (pipeline: string, source: string): SourceStats => {
    let s = stats.get(pipeline);
    if (!s || s.source !== source) stats.set(pipeline, (s = new SourceStats(source)));
    return s;
  };
  const environments = (): string[] => Object.keys(ctx.graph().sources);

  // Model files a pipeline runs, reported as the document's model_version.
  const modelVersions = new Map<string, string>();
  const modelVersion = (pipeline: string): string => {
    let v = modelVersions.get(pipeline);
    if (v === undefined) {
      const graph = ctx.graph();
      v = graph.pipelines[pipeline] ? modelsOf(graph, pipeline).map((m) => graph.models[m]?.file ?? m).join('+') || 'none' : 'none';
      modelVersions.set(pipeline, v);
    }
    return v;
  };

  // ---- periodic streams -------------------------------------------------------------------------
  const selected = (s: Subscription): SourceStats[] =>
    [...stats.values()].filter((x) => !s.filters.environmentId || x.source === s.filters.environmentId);
  const cpu = new CpuSampler();
  const latencyAlertMs = spec.latencyAlertMs ?? 250;

  const hooks: ConnectionHooks = {
    validation: { environments },
    periodic: (s) => (s.eventType === 'performance_update'
      ? { type: 'performance_update', data: performanceUpdate(selected(s), s.filters.environmentId, pool.queueSize, cpu.percent(), latencyAlertMs) }
      // The document names the stream analytics_stream and also lists analytics_update: each subscriber gets the name it asked for.
      : { type: s.eventType === 'analytics_update' ? 'analytics_update' : 'analytics_stream', data: analyticsStream(selected(s), s.filters.environmentId) }),
    onSent: (n) => out.inc(n),
    onDropped: (n) => dropped.inc(n),
    onError: (kind) => metrics.wsErrors.inc({ protocol: PROTOCOL, kind }),
    onClose: (c) => { connections.delete(c); clientsGauge.dec(); },
    log: (message) => log.error(message),
    onSubscribed: (c, sub) => {
      if (sub.eventType !== 'system_event') return;
      // The state of each pipeline now, so a new subscriber need not wait for the next change.
      // (Wherever it runs: on a cluster gateway, the states the workers reported.)
      for (const [pipeline, { source }] of Object.entries(ctx.graph().pipelines)) {
        const now = ctx.states.pipeline(pipeline);
        if (!now) continue;
        if (sub.filters.environmentId && sub.filters.environmentId !== source) continue;
        const data = M.systemEvent({ pipeline, state: now.state, reason: now.reason, atMs: Date.now() }, source, sessionId, components(pipeline, source), true);
        if (sub.filters.severity && !sub.filters.severity.includes(data.severity as never)) continue;
        c.send('system_event', data, { droppable: false });
      }
    },
    closeAboveBytes: 8 * 1024 * 1024,
    heartbeatMs: (spec.heartbeatSeconds ?? 30) * 1000,
    maxSubscriptions: spec.maxSubscriptions ?? 32,
  };

  // ---- bus → subscriptions ----------------------------------------------------------------------
  const subs: RxSubscription[] = [];
  // An exception in a bus handler would surface as an uncaught error; log it and keep serving.
  const guard = <T>(name: string, fn: (e: T) => void) => (e: T): void => {
    try { fn(e); } catch (err) { log.error(`pose-stream: ${name} handler failed: ${(err as Error).stack ?? String(err)}`); }
  };
  const emit = (type: Parameters<Connection['wants']>[0], environment: string | undefined, message: string,
    data: (s: Subscription) => unknown, accept?: (s: Subscription) => boolean, droppable = false): void => {
    const now = Date.now();
    for (const c of connections) {
      for (const s of c.wants(type, environment, now, accept)) c.send(message, data(s), { droppable, bufferSize: s.throttle.bufferSize });
    }
  };

  subs.push(bus.on('packet').subscribe(guard('packet', (p) => {
    const now = Date.now();
    const source = p.frame.source;
    const st = statsOf(p.pipeline, source);
    const before = new Map<number, TrackedObject>(st.tracks.map((t) => [t.id, t]));
    const firstSeen = new Map(st.firstSeenMs);
    st.add(p, now);
    lastFrameMs.set(source, now);
    if (connections.size === 0) { occupancy.set(p.pipeline, p.occupancy ?? st.tracks.length); return; }

    const fps = st.fps(now);
    const meta = { fps, quality: st.quality(), modelVersion: modelVersion(p.pipeline) };
    for (const c of connections) {
      for (const s of c.wants('pose_data', source, now)) {
        c.send('pose_data', M.poseData(p, s.filters, meta, Date.now()), { droppable: true, bufferSize: s.throttle.bufferSize });
      }
      if (p.activities?.length && c.has(['pose_data_trajectory'])) {
        for (const s of c.wants('pose_data_trajectory', source, now)) {
          for (const a of p.activities) {
            const t = st.tracks.find((x) => x.id === a.trackId);
            if (!t || t.score < s.filters.minConfidence) continue;
            c.send('pose_data_trajectory', M.trajectory(source, a, t.score), { droppable: true, bufferSize: s.throttle.bufferSize });
          }
        }
      }
    }
    // Track starts and ends, from consecutive frames of the source.
    const started = st.tracks.filter((t) => !before.has(t.id));
    const lost = [...before.values()].filter((t) => !st.tracks.some((x) => x.id === t.id));
    for (const [t, event] of [...started.map((t) => [t, 'track_started'] as const), ...lost.map((t) => [t, 'track_lost'] as const)]) {
      emit('tracking_update', source, 'tracking_update', () => M.trackingUpdate(source, t, event, firstSeen.get(t.id) ?? st.firstSeenMs.get(t.id) ?? now),
        (s) => t.score >= s.filters.minConfidence);
    }
    // Occupancy: the activity stage's count when it runs, else the confirmed person tracks.
    const count = p.occupancy ?? st.tracks.length;
    const previous = occupancy.get(p.pipeline);
    occupancy.set(p.pipeline, count);
    if (previous !== undefined && previous !== count) {
      const e: BusEvents['occupancy'] = { pipeline: p.pipeline, source, count, previous, changeType: count > previous ? 'increase' : 'decrease', atMs: now };
      emit('occupancy_update', source, 'occupancy_update', () => M.occupancyUpdate(e, st.tracks, new Set(before.keys())));
    }
  })));

  const activityAccepts = (type: string) => (s: Subscription): boolean =>
    !s.filters.activityTypes || s.filters.activityTypes.includes(type) || (type === 'fall_detected' && s.filters.activityTypes.includes('alert_triggered'));
  subs.push(bus.on('activity.fall').subscribe(guard('activity.fall', (e) => emit('activity_event', e.source, 'activity_event', () => M.fallEvent(e), activityAccepts('fall_detected')))));
  subs.push(bus.on('activity.recovered').subscribe(guard('activity.recovered', (e) => emit('activity_event', e.source, 'activity_event', () => M.recoveryEvent(e), activityAccepts('recovery_detected')))));

  const severityAccepts = (severity: string) => (s: Subscription): boolean => !s.filters.severity || s.filters.severity.includes(severity as never);
  // Sources seen going down, so their return is reported as a reconnection (retries pass through `starting`).
  const down = new Set<string>();
  subs.push(bus.on('source.state').subscribe(guard('source.state', (e) => {
    if (e.state === 'starting' || (e.state === 'stopped' && e.previous === 'starting')) return;
    const wasDown = down.has(e.source);
    if (e.state === 'running') down.delete(e.source);
    else if (wasDown && e.state === 'stopped') return;
    else down.add(e.source);
    const data = M.hardwareEvent(e, wasDown, lastFrameMs.get(e.source));
    emit('hardware_event', e.source, 'hardware_event', () => data, severityAccepts(data.severity));
  })));
  const components = (pipeline: string, source: string | undefined): Record<string, string> => {
    const state = source ? ctx.states.source(source)?.state : undefined;
    const spec_ = ctx.graph().pipelines[pipeline];
    const runner = ctx.states.pipeline(pipeline)?.state;
    return {
      // The pipeline's stages (the models run there): failed when the pipeline failed (e.g. a model did not load).
      neural_network: runner === 'running' ? 'healthy' : (runner ?? 'absent'),
      csi_processor: state === 'running' ? 'healthy' : state === 'retrying' ? 'degraded' : state === 'failed' ? 'failed' : (state ?? 'unknown'),
      tracker: spec_?.stages.some((s) => s.use === 'track') ? 'healthy' : 'absent',
    };
  };
  subs.push(bus.on('pipeline.state').subscribe(guard('pipeline.state', (e) => {
    const source = ctx.graph().pipelines[e.pipeline]?.source;
    const data = M.systemEvent(e, source, sessionId, components(e.pipeline, source));
    emit('system_event', source, 'system_event', () => data, severityAccepts(data.severity));
  })));
  subs.push(bus.on('config').subscribe(guard('config', (e) => {
    modelVersions.clear();
    for (const id of e.changes?.sources.removed ?? []) { lastFrameMs.delete(id); down.delete(id); }
    for (const id of e.changes?.pipelines.removed ?? []) { stats.delete(id); occupancy.delete(id); }
    if (e.result === 'applied' && e.changes) {
      const data = M.configUpdate(e, e.changes, ctx.graph() as unknown as Record<string, Record<string, unknown>>);
      emit('config_update', undefined, 'config_update', () => data);
    } else if (e.result === 'invalid') {
      const data = { event: 'config_rejected', status: 'running', severity: 'error', session_id: sessionId, message: e.summary, errors: e.errors ?? [] };
      emit('system_event', undefined, 'system_event', () => data, severityAccepts('error'));
    }
  })));

  // ---- handshake --------------------------------------------------------------------------------
  const options = {
    noServer: true, maxPayload: spec.maxMessageBytes ?? 64 * 1024,
    handleProtocols: (offered: Set<string>) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  };
  const wss = new WebSocketServer({ ...options, perMessageDeflate: false });
  // `?compression=deflate|gzip` (the document's URL parameter): permessage-deflate, when the client offers it.
  const wssDeflate = new WebSocketServer({ ...options, perMessageDeflate: { threshold: 256 } });
  const refuse = (socket: import('node:stream').Duplex, status: number, error: string, description: string): void => {
    const body = JSON.stringify({ error, message: description });
    const reason = status === 401 ? 'Unauthorized' : status === 503 ? 'Service Unavailable' : 'Bad Request';
    const auth = status === 401 ? `WWW-Authenticate: Bearer error="${error === 'missing_token' ? 'invalid_request' : 'invalid_token'}"\r\n` : '';
    socket.end(`HTTP/1.1 ${status} ${reason}\r\n${auth}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  };

  hub.upgrade(spec.id, spec.port, POSE_STREAM_PATH, (req, socket, head, url) => {
    socket.on('error', () => undefined);
    const clientId = url.searchParams.get('client_id') ?? `client_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    if (!CLIENT_ID.test(clientId)) {
      metrics.wsErrors.inc({ protocol: PROTOCOL, kind: 'bad_format' });
      refuse(socket, 400, 'invalid_client_id', 'client_id must be 1-128 letters, digits or . : @ _ -');
      return;
    }
    const compression = url.searchParams.get('compression');
    if (compression !== null && compression !== 'gzip' && compression !== 'deflate') {
      metrics.wsErrors.inc({ protocol: PROTOCOL, kind: 'bad_format' });
      refuse(socket, 400, 'invalid_compression', 'compression must be gzip or deflate (both negotiate permessage-deflate)');
      return;
    }
    if (!verifier) {
      refuse(socket, 503, 'auth_not_configured', authProblem);
      return;
    }
    if (connections.size >= (spec.maxConnections ?? 1000)) {
      refuse(socket, 503, 'too_many_connections', 'The server is at its connection limit; retry later');
      return;
    }
    verifier.verify(TokenVerifier.tokenOf(req, url)).then((who) => {
      if (socket.destroyed) return;
      (compression ? wssDeflate : wss).handleUpgrade(req, socket, head, (ws) => {
        const c = new Connection(ws, clientId, hooks, who.expiresAtMs);
        connections.add(c);
        clientsGauge.inc();
        ws.on('message', () => inbound.inc());
        log.debug(`pose-stream: ${clientId} connected (sub ${who.subject ?? '-'})`);
      });
    }, (err: unknown) => {
      const reason = err instanceof AuthError ? err.reason : 'invalid_token';
      metrics.wsErrors.inc({ protocol: PROTOCOL, kind: `auth_${reason}` });
      log.debug(`pose-stream: refused ${clientId}: ${(err as Error).message}`);
      refuse(socket, 401, reason, (err as Error).message);
    }).catch((err: Error) => {
      log.error(`pose-stream: handshake of ${clientId} failed: ${err.stack ?? err.message}`);
      socket.destroy();
    });
  });

  return {
    close: async () => {
      subs.forEach((s) => s.unsubscribe());
      for (const c of [...connections]) c.shutdown('server_shutdown', 'The server is shutting down or the pose stream was reconfigured');
      // Give the close frames a moment, then make sure nothing is left open.
      await new Promise((r) => setTimeout(r, connections.size ? 100 : 0));
      for (const server of [wss, wssDeflate]) {
        for (const ws of server.clients) ws.terminate();
        await new Promise<void>((r) => server.close(() => r()));
      }
    },
  };
}

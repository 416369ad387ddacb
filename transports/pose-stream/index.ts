/**
 * Pose stream v1 (pose-stream-v1.md): the authenticated `/ws/v1` WebSocket API. Cameras play the role the document
 * gives to WiFi routers: `environment_id` is a source's `environment` (else the source id; environments.ts),
 * `hardware_event` a camera going down or coming back, `csi_quality` the share of a source's frames that made it
 * through the pipeline. The handshake (handshake.ts) admits a client, a Connection (connection.ts) holds its
 * subscriptions (or the default stream until it subscribes), and the streams (streams.ts) turn bus events into the
 * document's messages. Knows stages only through the packet and the bus events.
 *
 * ```yaml
 * transports:
 *   pose-stream-v1: { port: 8000, auth: { secretEnv: POSE_STREAM_JWT_SECRET } }
 * ```
 */
import { randomUUID } from 'node:crypto';
import type { TransportSpec } from '../../config/graph.js';
import { defineTransport, PORT_SCHEMA, type MountedTransport, type TransportContext } from '../contract.js';
import { TokenVerifier, type AuthOptions } from './auth.js';
import { Connection, type ConnectionHooks } from './connection.js';
import { environmentNames } from './environments.js';
import { ERROR_MESSAGE } from '../http/errors.js';
import { handshakeRoutes, POSE_STREAM_PATH } from './handshake.js';
import { PoseStreams } from './streams.js';

export { POSE_STREAM_PATH, SUBPROTOCOL } from './handshake.js';

const PROTOCOL = 'pose-stream-v1';

export interface PoseStreamOptions extends TransportSpec {
  auth: AuthOptions;
  /** Seconds between server heartbeats (the document: periodic; its clients send every 30 s). */
  heartbeatSeconds: number;
  maxMessageBytes: number;
  maxConnections: number;
  maxSubscriptions: number;
  /** performance_update raises a high_latency alert above this average capture-to-sink latency. */
  latencyAlertMs: number;
}

export const POSE_STREAM_SCHEMA = {
  type: 'object', additionalProperties: false, required: ['auth'],
  properties: {
    port: PORT_SCHEMA,
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
    heartbeatSeconds: { type: 'number', minimum: 1, maximum: 3600, default: 30 },
    maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 1048576, default: 64 * 1024 },
    maxConnections: { type: 'integer', minimum: 1, maximum: 100000, default: 1000 },
    maxSubscriptions: { type: 'integer', minimum: 1, maximum: 1000, default: 32 },
    latencyAlertMs: { type: 'number', minimum: 1, default: 250 },
  },
};

export const poseStreamTransport = defineTransport<PoseStreamOptions>({
  name: 'pose-stream-v1',
  schema: POSE_STREAM_SCHEMA,
  defaultPort: () => 8000,
  mount: mountPoseStream,
});

function mountPoseStream(spec: PoseStreamOptions & { port: number }, ctx: TransportContext): MountedTransport {
  const { hub, bus, metrics, log, pool, clock } = ctx;
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
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  const dropped = metrics.wsDropped.labels(PROTOCOL);
  const clientsGauge = metrics.wsClients.labels(PROTOCOL);
  const countError = (kind: string): void => metrics.wsErrors.inc({ protocol: PROTOCOL, kind });
  for (const kind of ['auth_missing_token', 'auth_invalid_token', 'token_expired', 'subscription', 'rate_limited', 'not_reading', 'protocol_error']) {
    metrics.wsErrors.inc({ protocol: PROTOCOL, kind }, 0);
  }
  const connections = new Set<Connection>();
  const streams = new PoseStreams({
    bus, clock, log, graph: ctx.graph, states: ctx.states, connections, queueSize: () => pool.queueSize,
    sessionId: `session_${randomUUID().replaceAll('-', '').slice(0, 12)}`, latencyAlertMs: spec.latencyAlertMs,
  });

  const hooks: ConnectionHooks = {
    clock,
    validation: { environments: () => environmentNames(ctx.graph()) },
    periodic: (s) => streams.periodic(s),
    onSent: (n) => out.inc(n),
    onDropped: (n) => dropped.inc(n),
    onError: countError,
    onClose: (c) => { connections.delete(c); clientsGauge.dec(); },
    log: (message) => log.error(message),
    onSubscribed: (c, sub) => streams.onSubscribed(c, sub),
    closeAboveBytes: 8 * 1024 * 1024,
    heartbeatMs: spec.heartbeatSeconds * 1000,
    maxSubscriptions: spec.maxSubscriptions,
  };

  const { routes, servers } = handshakeRoutes({
    verifier, authProblem, maxMessageBytes: spec.maxMessageBytes, maxConnections: spec.maxConnections,
    connectionCount: () => connections.size, log, countError,
    accept: (ws, clientId, who) => {
      const c = new Connection(ws, clientId, hooks, who);
      connections.add(c);
      clientsGauge.inc();
      ws.on('message', () => inbound.inc());
      log.debug(`pose-stream: ${clientId} connected (sub ${who.subject ?? '-'})`);
    },
  });
  hub.mount(spec.port, { owner: spec.id, prefixes: [POSE_STREAM_PATH], shape: ERROR_MESSAGE, routes });

  let closing: Promise<void> | null = null;
  return {
    close: () => (closing ??= (async () => {
      streams.close();
      for (const c of [...connections]) c.shutdown('server_shutdown', 'The server is shutting down or the pose stream was reconfigured');
      // Give the close frames a moment, then make sure nothing is left open.
      await new Promise((r) => setTimeout(r, connections.size ? 100 : 0));
      for (const server of servers) {
        for (const ws of server.clients) ws.terminate();
        await new Promise<void>((r) => server.close(() => r()));
      }
    })()),
  };
}

/** Mounting the pose-stream protocol (its definition and options schema: index.ts, which loads this file only when a graph serves it). */
import { randomUUID } from 'node:crypto';
import type { TransportSpec } from '../../config/graph.js';
import type { MountedTransport, TransportContext } from '../contract.js';
import { TokenVerifier, type AuthOptions } from './auth.js';
import { Connection, type ConnectionHooks } from './connection.js';
import { environmentNames } from './environments.js';
import { ERROR_MESSAGE } from '../http/errors.js';
import { handshakeRoutes, POSE_STREAM_PATH } from './handshake.js';
import { PoseStreams } from './streams.js';

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

export function mount(spec: PoseStreamOptions & { port: number }, ctx: TransportContext): MountedTransport {
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

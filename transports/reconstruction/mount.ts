/** Mounting the reconstruction protocol (its definition and options schema: index.ts, which loads this file only when a graph serves it). */
import type { WebSocket } from 'ws';
import type { TransportSpec } from '../../config/graph.js';
import type { MountedTransport, TransportContext } from '../contract.js';
import { ModelBuilder } from './builder.js';
import { DETAIL_422 } from '../http/errors.js';
import { dashboardRoutes } from './dashboard.js';
import { LiveSessions } from './live.js';
import { restRoutes } from './rest.js';
import { socketsEndpoint } from './sockets.js';

const PROTOCOL = 'reconstruction';

export interface ReconstructionOptions extends TransportSpec {
  /** A depth model (kind fastdepth, midas or depth-anything). */
  model: string;
  /** Horizontal field of view assumed for every image, degrees. */
  fov: number;
  /** Seconds a session may stay idle before it and its files are removed. */
  sessionTtl: number;
  maxImageBytes: number;
  /** Points in an incremental `delta` preview, at most. */
  previewPoints: number;
  /** Relative-depth models: far/near ratio the first view is mapped to. */
  relativeRange: number;
  /**
   * Largest `complete`/`delta` message, in bytes (0: no limit). A model larger than that is sent as a subset of its
   * points that fits; the whole model is kept and served at `metadata.full_model.url`. The default is the websockets
   * library's max_size, which the document's Python client keeps.
   */
  maxMessageBytes: number;
  /** Sessions at once (each holds files and, while connected, decoded views); more are refused. */
  maxSessions: number;
  /** Bytes of stored (scaled) images per session; more are refused. */
  maxSessionBytes: number;
  /** Connections at once; more are refused at the handshake. */
  maxConnections: number;
  /** A connection that sends nothing for this long is closed. */
  idleSeconds: number;
}

export function mount(spec: ReconstructionOptions & { port: number }, ctx: TransportContext): MountedTransport {
  const { hub, metrics, log, pool, inference, clock } = ctx;
  const graph = ctx.graph();
  const model = { path: ctx.modelPath(spec.model), kind: graph.models[spec.model].kind };
  const ttlMs = spec.sessionTtl * 1000;
  const sessions = ctx.reconstructionSessions;
  const writer = ctx.sessionsWriter;
  /** Activity is recorded at least this often (a cluster shares it this coarsely; see SessionsWriter.touch). */
  const touch = (id: string): void => writer.touch(id, ttlMs / 4);
  inference.preload(model).catch((err: Error) => log.error(`reconstruction: ${err.message}`));
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const countError = (kind: string): void => metrics.wsErrors.inc({ protocol: PROTOCOL, kind });
  const send = (ws: WebSocket, msg: object): void => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(msg));
    out.inc();
  };

  const builder = new ModelBuilder(inference, pool, metrics, {
    model, modelId: spec.model, fovDeg: spec.fov, relativeRange: spec.relativeRange, maxMessageBytes: spec.maxMessageBytes,
  });
  const live = new LiveSessions({
    sessions, writer, builder, log, maxImageBytes: spec.maxImageBytes, maxSessionBytes: spec.maxSessionBytes, previewPoints: spec.previewPoints,
    dataDir: ctx.settings.dataDir, send, countError,
  });
  const sockets = socketsEndpoint({
    clock, sessions, live, metrics, maxImageBytes: spec.maxImageBytes, maxConnections: spec.maxConnections, idleMs: spec.idleSeconds * 1000,
    send, touch, countError,
  });
  hub.mount(spec.port, {
    owner: spec.id, prefixes: ['/ws/session', '/ws/sessions', '/ws/reconstruct', '/dashboard'], shape: DETAIL_422,
    countError: (status) => countError(`http_${status}`),
    routes: (app) => {
      restRoutes(app, { sessions, writer, ttlMs, maxSessions: spec.maxSessions, log });
      sockets.routes(app);
      dashboardRoutes(app, sessions);
    },
  });
  const stopForgetting = sessions.onDeleted((id) => live.forget(id));

  // Expiry: idle sessions (no message, no open socket) and their files go after sessionTtl.
  let sweeping = false;
  const sweep = async (): Promise<void> => {
    if (sweeping) return;
    sweeping = true;
    try {
      const connected = live.connected();
      for (const id of connected) touch(id);
      for (const id of await writer.expire(clock.now() - ttlMs, connected)) log.info(`reconstruction: session ${id} expired`);
    } catch (err) {
      log.error(`reconstruction: expiry failed: ${(err as Error).message}`);
    } finally {
      sweeping = false;
    }
  };
  void sweep();
  const stopSweeping = clock.interval(() => void sweep(), Math.max(200, Math.min(60_000, ttlMs / 4)));

  let closing: Promise<void> | null = null;
  return {
    close: () => (closing ??= (async () => {
      stopSweeping();
      stopForgetting();
      await sockets.close();
      await live.drain();
    })()),
  };
}

/** Mounting the watchme protocol (its definition and options schema: index.ts, which loads this file only when a graph serves it). */
import { WebSocketServer, type WebSocket } from 'ws';
import type { TransportSpec } from '../../config/graph.js';
import { loadOrCreateKey } from '../../services/looks/embedding-token.js';
import { looksKey, type LooksModels } from '../../services/looks/person-looks.js';
import type { MountedTransport, TransportContext } from '../contract.js';
import { LiveFeeds } from './feeds.js';
import { imageDescriber } from './images.js';
import { LIMITS } from './limits.js';
import { statusMessage } from './messages.js';
import { Session } from './session.js';
import { Sessions } from './sessions.js';
import { uploadRoutes } from './upload.js';
import { DETAIL } from '../http/errors.js';
import { WsGuard, wsRoute } from '../http/ws.js';

const PROTOCOL = 'watchme';

export interface WatchmeOptions extends TransportSpec {
  /** yolox model: persons in photos and client frames. */
  detector: string;
  /** reid model (person-reidentification-retail-0287). */
  reid: string;
  /** Optional yunet + mobilefacenet models: face similarity is fused in when both are given. */
  faceDetector?: string;
  faceEmbedder?: string;
  /** Largest cosine distance (1 − similarity) that is a match. */
  threshold: number;
  /** Weight of the face similarity when a face is visible on both sides (0 = body only). */
  faceWeight: number;
  personScore: number;
  faceScore: number;
  /** Frames between two ReID embeddings of the same track. */
  refreshFrames: number;
  maxSessions: number;
  /** Messages a session may send per second (bursts up to the same number). */
  maxMessagesPerSecond: number;
  /** Upper bound of a session's `fps_limit`. */
  maxFps: number;
  /** Largest photo or frame, in decoded bytes. */
  maxImageBytes: number;
  /** Page origins allowed to call `POST /upload-embedding` from a browser (CORS); default any. */
  corsOrigins: string[];
  /** Token key as 64 hex characters; by default one is generated and kept in the data directory. */
  key?: string;
}

export function mount(spec: WatchmeOptions & { port: number }, ctx: TransportContext): MountedTransport {
  const { hub, metrics, log, inference, looks, settings, bus, clock } = ctx;
  // A key in the graph wins; else the node's (in a cluster, shared by every node, so tokens open on any gateway).
  const key = spec.key ? loadOrCreateKey(settings.dataDir, spec.key) : ctx.embeddingKey();
  const model = (id: string, kind: string) => ({ path: ctx.modelPath(id), kind });
  const detector = model(spec.detector, 'yolox');
  const reid = model(spec.reid, 'reid');
  const face = spec.faceDetector && spec.faceEmbedder
    ? { detector: model(spec.faceDetector, 'yunet'), embedder: model(spec.faceEmbedder, 'mobilefacenet'), scoreThreshold: spec.faceScore }
    : undefined;
  // Load the models now, so a missing or corrupt file is reported at start, not on the first request
  // (where the models run: the local pool, or the workers of a cluster, which load them on first use).
  for (const m of [detector, reid, ...(face ? [face.detector, face.embedder] : [])]) {
    inference.preload(m).catch((err: Error) => log.error(`watchme: ${err.message}`));
  }
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  const dropped = metrics.wsDropped.labels(PROTOCOL);
  const countError = (kind: string): void => metrics.wsErrors.inc({ protocol: PROTOCOL, kind });
  const describe = imageDescriber(inference, { detector, reid, face, personScore: spec.personScore });

  const looksModels: LooksModels = {
    reid: spec.reid, faceDetector: spec.faceDetector, faceEmbedder: spec.faceEmbedder, faceScore: spec.faceScore, refreshFrames: spec.refreshFrames,
  };
  const feeds = new LiveFeeds(looksKey(looksModels), bus, clock);
  const sessionDeps = {
    clock, log, key, threshold: spec.threshold, faceWeight: spec.faceWeight, rate: spec.maxMessagesPerSecond, maxFps: spec.maxFps,
    maxImageBytes: spec.maxImageBytes, describe, feeds, looks, looksModels, graph: ctx.graph,
    sent: () => out.inc(), dropped: () => dropped.inc(), countError,
  };

  // ---- WS /video-stream/{session_id} ----------------------------------------------------------------
  const sessions = new Sessions({ clock, probeMs: LIMITS.takeoverProbeMs, orphanMs: LIMITS.orphanMs });
  const wss = new WebSocketServer({ noServer: true, maxPayload: Math.ceil(spec.maxImageBytes / 3) * 4 + 64 * 1024 });

  /** Refusals go over the socket, so that the client reads the reason as the protocol's status message. */
  const turnAway = (ws: WebSocket, kind: string, message: string, code: number): void => {
    countError(kind);
    ws.send(JSON.stringify(statusMessage('error', message, clock.now())));
    out.inc();
    ws.close(code, message.slice(0, 120));
  };

  // Dead sockets (no pong) are dropped; a live one may stay silent while it watches.
  const guard = new WsGuard({ clock, maxConnections: spec.maxSessions * 4, pingMs: LIMITS.heartbeatMs, idleMs: 0, onError: countError });
  const accept = (ws: WebSocket, id: string): void => {
    ws.on('error', () => undefined);
    if (!LIMITS.sessionId.test(id)) { turnAway(ws, 'bad_session_id', 'session id must be 1-128 characters of A-Z, a-z, 0-9, "_" and "-"', 1008); return; }
    const full = sessions.size >= spec.maxSessions;
    const claim = sessions.claim(id, ws, () => new Session(id, ws, sessionDeps), full);
    if (claim === 'taken') { turnAway(ws, 'bad_session_id', `session "${id}" is already connected`, 1008); return; }
    if (claim === 'full') { turnAway(ws, 'session_limit', `too many sessions (at most ${spec.maxSessions}); try again later`, 1013); return; }
    const { session: s, resumed } = claim;
    if (resumed) log.info(`watchme: session ${id} taken over by a new connection (its socket was dead)`);
    guard.watch(ws);
    metrics.wsClients.inc({ protocol: PROTOCOL });
    ws.on('message', (raw, isBinary) => { inbound.inc(); s.onMessage(raw, isBinary); });
    ws.on('close', () => {
      sessions.released(id, ws);
      metrics.wsClients.dec({ protocol: PROTOCOL });
    });
  };

  hub.mount(spec.port, {
    owner: spec.id, prefixes: ['/upload-embedding', '/video-stream'], shape: DETAIL,
    countError: (status, code) => countError(code && code !== 'INTERNAL' ? code.toLowerCase() : status >= 500 ? 'internal' : `http_${status}`),
    routes: (app) => {
      uploadRoutes(app, { key, describe, maxImageBytes: spec.maxImageBytes, corsOrigins: spec.corsOrigins });
      // The session id is checked once the socket is open, so the client reads the refusal as a status message.
      wsRoute(app, '/video-stream/:session_id', {
        shape: DETAIL,
        refuse: async (req) => {
          if (!guard.admits()) return { status: 503, body: { detail: 'too many connections; try again later' } };
          // A reconnection after an unclean drop finds its session's socket still open here: probe it first.
          const id = (req.params as { session_id: string }).session_id;
          if (LIMITS.sessionId.test(id)) await sessions.vacateIfDead(id);
          return null;
        },
        server: () => wss,
        accept: (ws, req) => accept(ws, (req.params as { session_id: string }).session_id),
      });
    },
  });

  let closing: Promise<void> | null = null;
  return {
    close: () => (closing ??= (async () => {
      guard.close();
      sessions.close();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    })()),
  };
}

/**
 * WS `/ws/reconstruct/{session_id}`: `connected` first (or an error for an unknown session, the socket left open so
 * the client reads it), then `image`, `generate` and `finalize` messages handled in order, one after the other.
 * Messages are bounded in size and depth before they are parsed.
 */
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Clock } from '../../core/clock.js';
import { coded } from '../../core/errors.js';
import type { Metrics } from '../../core/metrics.js';
import type { ReconstructionSessions } from '../../services/reconstruction/sessions.js';
import { DETAIL } from '../http/errors.js';
import { isObject, parseMessage, preview } from '../http/json-message.js';
import { WsGuard, wsRoute } from '../http/ws.js';
import type { LiveSessions } from './live.js';

const PROTOCOL = 'reconstruction';

export interface SocketsDeps {
  clock: Clock;
  sessions: ReconstructionSessions;
  live: LiveSessions;
  metrics: Metrics;
  maxImageBytes: number;
  maxConnections: number;
  /** A socket that sends nothing for this long is closed. */
  idleMs: number;
  send(ws: WebSocket, message: object): void;
  /** Records activity on a session (shared coarsely in a cluster). */
  touch(id: string): void;
  countError(kind: string): void;
}

export function socketsEndpoint(d: SocketsDeps): { routes(app: FastifyInstance): void; close(): Promise<void> } {
  const { sessions, live, metrics, send } = d;
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  // Room for the base64 of twice the largest image plus 1 MiB, so a larger image gets a clear error on an open socket.
  const maxPayload = Math.ceil((d.maxImageBytes * 2 * 4) / 3) + 1024 * 1024;

  const onMessage = async (id: string, ws: WebSocket, raw: Buffer, isBinary: boolean): Promise<void> => {
    const parsed = parseMessage(raw, isBinary, { maxBytes: maxPayload, maxDepth: 8 });
    if (!parsed.ok) {
      if (parsed.reason === 'binary') throw coded('BAD_FORMAT', 'send JSON text messages: {"type": "image", "data": "<base64>", "filename": "..."}');
      if (parsed.reason === 'invalid_json') throw coded('INVALID_JSON', 'message is not valid JSON');
      throw coded('BAD_FORMAT', 'message nests too deep');
    }
    if (!isObject(parsed.value)) throw coded('BAD_FORMAT', 'message must be a JSON object with a "type"');
    const m = parsed.value;
    if (!sessions.get(id)) throw coded('UNKNOWN_SESSION', `Session ${id} not found`);
    d.touch(id);
    switch (m.type) {
      case 'image': return live.image(id, ws, m);
      case 'generate': return live.generate(id, ws, m.incremental === true);
      case 'finalize': return live.finalize(id, ws);
      default: throw coded('UNKNOWN_TYPE', `unknown message type ${preview(m.type ?? null)}; expected image, generate or finalize`);
    }
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload });
  const guard = new WsGuard({ clock: d.clock, maxConnections: d.maxConnections, pingMs: 30_000, idleMs: d.idleMs, onError: d.countError });
  const accept = (ws: WebSocket, id: string): void => {
    guard.watch(ws);
    metrics.wsClients.inc({ protocol: PROTOCOL });
    const s = sessions.get(id);
    if (s) {
      live.attach(id, ws);
      d.touch(id);
      send(ws, { type: 'connected', session_id: id, message: 'Connected to reconstruction session', num_images: s.images.length, max_images: s.maxImages, status: s.status });
    } else {
      // The socket stays open: the client reads the error, and every message gets the same answer.
      live.sendError(ws, coded('UNKNOWN_SESSION', `Session ${preview(id, 64)} not found; create one with POST /ws/session/create`));
    }
    // Messages of one connection are handled in order.
    let chain = Promise.resolve();
    ws.on('message', (raw, isBinary) => {
      inbound.inc();
      chain = chain.then(() => onMessage(id, ws, raw as Buffer, isBinary)).catch((err: unknown) => live.sendError(ws, err, `session ${id}: `));
    });
    ws.on('close', () => {
      metrics.wsClients.dec({ protocol: PROTOCOL });
      live.detach(id, ws);
    });
    // A message over maxPayload: ws closes the socket with 1009 (it cannot be read to answer it); count it.
    ws.on('error', (err: Error & { code?: string }) => { if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') d.countError('too_large'); });
  };
  return {
    routes: (app) => wsRoute(app, '/ws/reconstruct/:session_id', {
      shape: DETAIL,
      refuse: () => (guard.admits() ? null : { status: 503, body: { detail: 'too many connections; try again later' } }),
      server: () => wss,
      accept: (ws, req) => accept(ws, (req.params as { session_id: string }).session_id),
    }),
    close: async () => {
      guard.close();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

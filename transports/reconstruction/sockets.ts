/**
 * WS `/ws/reconstruct/{session_id}`: `connected` first (or an error for an unknown session, the socket left open so
 * the client reads it), then `image`, `generate` and `finalize` messages handled in order, one after the other.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { coded } from '../../core/errors.js';
import type { Metrics } from '../../core/metrics.js';
import type { ReconstructionSessions } from '../../services/reconstruction/sessions.js';
import type { HttpHub } from '../http/hub.js';
import type { LiveSessions } from './live.js';

const PROTOCOL = 'reconstruction';
const WS_PATH = /^\/ws\/reconstruct\/([^/]{1,200})$/;

export interface SocketsDeps {
  hub: HttpHub;
  owner: string;
  port: number;
  sessions: ReconstructionSessions;
  live: LiveSessions;
  metrics: Metrics;
  maxImageBytes: number;
  send(ws: WebSocket, message: object): void;
  /** Records activity on a session (shared coarsely in a cluster). */
  touch(id: string): void;
  countError(kind: string): void;
}

export function mountSockets(d: SocketsDeps): WebSocketServer {
  const { sessions, live, metrics, send } = d;
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');

  const onMessage = async (id: string, ws: WebSocket, raw: Buffer, isBinary: boolean): Promise<void> => {
    if (isBinary) throw coded('BAD_FORMAT', 'send JSON text messages: {"type": "image", "data": "<base64>", "filename": "..."}');
    let msg: unknown;
    try { msg = JSON.parse(raw.toString()); } catch { throw coded('INVALID_JSON', 'message is not valid JSON'); }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw coded('BAD_FORMAT', 'message must be a JSON object with a "type"');
    const m = msg as Record<string, unknown>;
    if (!sessions.get(id)) throw coded('UNKNOWN_SESSION', `Session ${id} not found`);
    d.touch(id);
    switch (m.type) {
      case 'image': return live.image(id, ws, m);
      case 'generate': return live.generate(id, ws, m.incremental === true);
      case 'finalize': return live.finalize(id, ws);
      default: throw coded('UNKNOWN_TYPE', `unknown message type ${JSON.stringify(m.type ?? null).slice(0, 64)}; expected image, generate or finalize`);
    }
  };

  // Room for the base64 of twice the largest image plus 1 MiB, so a larger image gets a clear error on an open socket.
  const wss = new WebSocketServer({ noServer: true, maxPayload: Math.ceil((d.maxImageBytes * 2 * 4) / 3) + 1024 * 1024 });
  wss.on('connection', (ws: WebSocket, id: string) => {
    metrics.wsClients.inc({ protocol: PROTOCOL });
    const s = sessions.get(id);
    if (s) {
      live.attach(id, ws);
      d.touch(id);
      send(ws, { type: 'connected', session_id: id, message: 'Connected to reconstruction session', num_images: s.images.length, max_images: s.maxImages, status: s.status });
    } else {
      // The socket stays open: the client reads the error, and every message gets the same answer.
      live.sendError(ws, coded('UNKNOWN_SESSION', `Session ${id} not found; create one with POST /ws/session/create`));
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
  });
  d.hub.upgrade(d.owner, d.port, (p) => WS_PATH.test(p), (req, socket, head, url) => {
    const id = decodeURIComponent(WS_PATH.exec(url.pathname)![1]);
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, id));
  });
  return wss;
}

/**
 * The `/ws/v1` handshake: a client id from the URL (or a generated one), `?compression=deflate|gzip` for
 * permessage-deflate, the connection limit, and a JWT from `?token=` or `Authorization: Bearer`. A refusal is
 * an HTTP answer with `{"error", "message"}`: 400 (bad parameter), 401 (token), 503 (limit, auth not configured).
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../core/log.js';
import type { HttpHub } from '../http/hub.js';
import { AuthError, TokenVerifier, type Verified } from './auth.js';

export const POSE_STREAM_PATH = '/ws/v1';
export const SUBPROTOCOL = 'wifi-densepose-v1';
const CLIENT_ID = /^[\w.:@-]{1,128}$/;

export interface HandshakeDeps {
  hub: HttpHub;
  owner: string;
  port: number;
  /** Null when the key could not be loaded: every handshake is refused with 503 and `authProblem`. */
  verifier: TokenVerifier | null;
  authProblem: string;
  maxMessageBytes: number;
  maxConnections: number;
  connectionCount(): number;
  log: Logger;
  countError(kind: string): void;
  /** A client that passed: its socket, id and who its token says it is. */
  accept(ws: WebSocket, clientId: string, who: Verified): void;
}

function refuse(socket: Duplex, status: number, error: string, description: string): void {
  const body = JSON.stringify({ error, message: description });
  const reason = status === 401 ? 'Unauthorized' : status === 503 ? 'Service Unavailable' : 'Bad Request';
  const auth = status === 401 ? `WWW-Authenticate: Bearer error="${error === 'missing_token' ? 'invalid_request' : 'invalid_token'}"\r\n` : '';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\n${auth}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** Mounts the upgrade route; answers the two WebSocket servers (plain and deflate) to close on unmount. */
export function mountHandshake(d: HandshakeDeps): WebSocketServer[] {
  const options = {
    noServer: true, maxPayload: d.maxMessageBytes,
    handleProtocols: (offered: Set<string>) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  };
  const wss = new WebSocketServer({ ...options, perMessageDeflate: false });
  // `?compression=deflate|gzip` (the document's URL parameter): permessage-deflate, when the client offers it.
  const wssDeflate = new WebSocketServer({ ...options, perMessageDeflate: { threshold: 256 } });

  d.hub.upgrade(d.owner, d.port, POSE_STREAM_PATH, (req, socket, head, url) => {
    socket.on('error', () => undefined);
    const clientId = url.searchParams.get('client_id') ?? `client_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    if (!CLIENT_ID.test(clientId)) {
      d.countError('bad_format');
      refuse(socket, 400, 'invalid_client_id', 'client_id must be 1-128 letters, digits or . : @ _ -');
      return;
    }
    const compression = url.searchParams.get('compression');
    if (compression !== null && compression !== 'gzip' && compression !== 'deflate') {
      d.countError('bad_format');
      refuse(socket, 400, 'invalid_compression', 'compression must be gzip or deflate (both negotiate permessage-deflate)');
      return;
    }
    const verifier = d.verifier;
    if (!verifier) {
      refuse(socket, 503, 'auth_not_configured', d.authProblem);
      return;
    }
    if (d.connectionCount() >= d.maxConnections) {
      refuse(socket, 503, 'too_many_connections', 'The server is at its connection limit; retry later');
      return;
    }
    verifier.verify(TokenVerifier.tokenOf(req, url)).then((who) => {
      if (socket.destroyed) return;
      (compression ? wssDeflate : wss).handleUpgrade(req, socket, head, (ws) => d.accept(ws, clientId, who));
    }, (err: unknown) => {
      const reason = err instanceof AuthError ? err.reason : 'invalid_token';
      d.countError(`auth_${reason}`);
      d.log.debug(`pose-stream: refused ${clientId}: ${(err as Error).message}`);
      refuse(socket, 401, reason, (err as Error).message);
    }).catch((err: Error) => {
      d.log.error(`pose-stream: handshake of ${clientId} failed: ${err.stack ?? err.message}`);
      socket.destroy();
    });
  });
  return [wss, wssDeflate];
}

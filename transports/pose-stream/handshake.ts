/**
 * The `/ws/v1` handshake: a client id from the URL (or a generated one), `?compression=deflate|gzip` for
 * permessage-deflate, the connection limit, and a JWT from `?token=` or `Authorization: Bearer`. A refusal is an HTTP
 * answer with `{"error", "message"}`: 400 (bad parameter), 401 (token), 503 (limit, auth not configured). A valid
 * token past its expiry is admitted, to be told `token_expired` on the socket (the document's way) and closed.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../core/log.js';
import { ERROR_MESSAGE } from '../http/errors.js';
import { wsRoute } from '../http/ws.js';
import { AuthError, TokenVerifier, type Verified } from './auth.js';

export const POSE_STREAM_PATH = '/ws/v1';
export const SUBPROTOCOL = 'wifi-densepose-v1';
const CLIENT_ID = /^[\w.:@-]{1,128}$/;
/** A JWT is a few hundred bytes; a query or header far longer than this is not one. */
const MAX_TOKEN = 8192;

export interface HandshakeDeps {
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

type Refusal = { status: number; body: unknown; headers?: Record<string, string> };

const refusal = (status: number, error: string, message: string): Refusal => ({
  status, body: { error, message },
  headers: status === 401 ? { 'www-authenticate': `Bearer error="${error === 'missing_token' ? 'invalid_request' : 'invalid_token'}"` } : undefined,
});

/** What a handshake carries once its query is read: the client id and the compression asked for. */
interface Admitted { clientId: string; compression: boolean; who: Verified }
const admitted = new WeakMap<FastifyRequest, Admitted>();

/** The `/ws/v1` route: answers it and the two WebSocket servers (plain and deflate) to close on unmount. */
export function handshakeRoutes(d: HandshakeDeps): { routes(app: FastifyInstance): void; servers: WebSocketServer[] } {
  const options = {
    noServer: true, maxPayload: d.maxMessageBytes,
    handleProtocols: (offered: Set<string>) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  };
  const wss = new WebSocketServer({ ...options, perMessageDeflate: false });
  // `?compression=deflate|gzip` (the document's URL parameter): permessage-deflate, when the client offers it.
  const wssDeflate = new WebSocketServer({ ...options, perMessageDeflate: { threshold: 256 } });

  const refuse = async (req: FastifyRequest): Promise<Refusal | null> => {
    const q = (req.query ?? {}) as Record<string, unknown>;
    const rawId = q.client_id ?? `client_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    if (typeof rawId !== 'string' || !CLIENT_ID.test(rawId)) {
      d.countError('bad_format');
      return refusal(400, 'invalid_client_id', 'client_id must be 1-128 letters, digits or . : @ _ -');
    }
    const compression = q.compression;
    if (compression !== undefined && compression !== 'gzip' && compression !== 'deflate') {
      d.countError('bad_format');
      return refusal(400, 'invalid_compression', 'compression must be gzip or deflate (both negotiate permessage-deflate)');
    }
    if (!d.verifier) return refusal(503, 'auth_not_configured', d.authProblem);
    if (d.connectionCount() >= d.maxConnections) return refusal(503, 'too_many_connections', 'The server is at its connection limit; retry later');
    const token = TokenVerifier.tokenOf(req.raw, q);
    try {
      if (token !== undefined && token.length > MAX_TOKEN) throw new AuthError('invalid_token', 'Invalid JWT (too long)');
      const who = await d.verifier.verify(token);
      admitted.set(req, { clientId: rawId, compression: compression !== undefined, who });
      return null;
    } catch (err) {
      const reason = err instanceof AuthError ? err.reason : 'invalid_token';
      d.countError(`auth_${reason}`);
      d.log.debug(`pose-stream: refused ${rawId}: ${(err as Error).message}`);
      return refusal(401, reason, err instanceof AuthError ? err.message : 'Invalid JWT');
    }
  };

  return {
    routes: (app) => wsRoute(app, POSE_STREAM_PATH, {
      shape: ERROR_MESSAGE,
      refuse,
      server: (req) => (admitted.get(req)?.compression ? wssDeflate : wss),
      accept: (ws, req) => {
        const a = admitted.get(req)!;
        d.accept(ws, a.clientId, a.who);
      },
    }),
    servers: [wss, wssDeflate],
  };
}

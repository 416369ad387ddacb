/**
 * WebSocket endpoints on the Fastify router: a GET route (its params and query validated like any route) whose
 * upgrade is handed to the transport's own `ws` server, and a guard per transport that caps its connections and
 * drops sockets that stop answering pings or stay silent too long.
 */
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Cancel, Clock } from '../../core/clock.js';
import type { ErrorShape } from './errors.js';
import { upgradeOf } from './hub.js';

export interface WsRouteOptions {
  schema?: FastifySchema;
  shape: ErrorShape;
  /** A refusal before the handshake (status and body), or null to go on. May be async (token checks). */
  refuse?(req: FastifyRequest): { status: number; body: unknown; headers?: Record<string, string> } | null
    | Promise<{ status: number; body: unknown; headers?: Record<string, string> } | null>;
  /** The server that completes the handshake (chosen per request: e.g. with or without compression). */
  server(req: FastifyRequest): WebSocketServer;
  /** A socket that completed its handshake. */
  accept(ws: WebSocket, req: FastifyRequest): void;
}

/** Registers `path` as a WebSocket endpoint; a plain GET on it answers 426 in the protocol's shape. */
export function wsRoute(app: FastifyInstance, path: string, o: WsRouteOptions): void {
  app.get(path, { schema: o.schema }, async (req, reply) => {
    const up = upgradeOf(req);
    if (!up) {
      reply.code(426).header('upgrade', 'websocket').send(o.shape.body(426, 'this path takes WebSocket connections only', 'upgrade_required'));
      return reply;
    }
    const refusal = await o.refuse?.(req);
    if (refusal) {
      reply.code(refusal.status).headers({ connection: 'close', ...refusal.headers }).send(refusal.body);
      return reply;
    }
    if (up.socket.destroyed) return reply.hijack();
    reply.hijack();
    const wss = o.server(req);
    wss.handleUpgrade(req.raw, up.socket, up.head, (ws) => o.accept(ws, req));
    return reply;
  });
}

/**
 * Whether a socket shows life within `withinMs`: a pong to a ping sent now, or any message. A socket that is closed,
 * whose peer is gone without a word (a dropped network), or that is stalled does not.
 */
export function answersPing(ws: WebSocket, withinMs: number, clock: Clock): Promise<boolean> {
  if (ws.readyState !== ws.OPEN) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (alive: boolean): void => {
      cancel();
      ws.off('pong', yes).off('message', yes).off('close', no);
      resolve(alive);
    };
    const yes = (): void => done(true);
    const no = (): void => done(false);
    ws.on('pong', yes).on('message', yes).on('close', no);
    const cancel = clock.timeout(no, withinMs);
    ws.ping();
  });
}

export interface GuardOptions {
  clock: Clock;
  /** Connections of this transport at once; more are refused at the handshake. */
  maxConnections: number;
  /** Pings go out this often; a socket that did not answer the previous one is dropped. */
  pingMs: number;
  /** A socket that sent nothing for this long is closed (0: never; for protocols whose clients only listen). */
  idleMs: number;
  /** Counts why a socket was refused or dropped (`connection_limit`, `dead`, `idle`). */
  onError(kind: string): void;
}

/** Caps and reaps a transport's sockets. */
export class WsGuard {
  private readonly sockets = new Map<WebSocket, { alive: boolean; lastMs: number }>();
  private readonly stop: Cancel;

  constructor(private readonly o: GuardOptions) {
    this.stop = o.clock.interval(() => this.sweep(), o.pingMs);
  }

  get size(): number {
    return this.sockets.size;
  }

  /** False when the transport is full (the caller refuses the handshake). */
  admits(): boolean {
    if (this.sockets.size < this.o.maxConnections) return true;
    this.o.onError('connection_limit');
    return false;
  }

  watch(ws: WebSocket): void {
    const state = { alive: true, lastMs: this.o.clock.now() };
    this.sockets.set(ws, state);
    ws.on('pong', () => { state.alive = true; });
    ws.on('message', () => { state.alive = true; state.lastMs = this.o.clock.now(); });
    ws.on('close', () => this.sockets.delete(ws));
  }

  private sweep(): void {
    const now = this.o.clock.now();
    for (const [ws, s] of this.sockets) {
      if (!s.alive) { this.o.onError('dead'); ws.terminate(); continue; }
      if (this.o.idleMs > 0 && now - s.lastMs > this.o.idleMs) { this.o.onError('idle'); ws.close(1001, 'idle'); continue; }
      s.alive = false;
      if (ws.readyState === ws.OPEN) ws.ping();
    }
  }

  close(): void {
    this.stop();
    this.sockets.clear();
  }
}

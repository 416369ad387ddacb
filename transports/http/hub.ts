/**
 * HTTP and WebSocket serving on Fastify: one listening `http.Server` per port, and one Fastify app per port built
 * from the plugins of the transports that share it (DDFR, the pose stream and reconstruction share :8000). Each
 * transport is an encapsulated plugin with its own routes, schemas, body limits and error handler.
 *
 * Fastify cannot remove routes once it is ready, and a live reload may change one transport of a port: the port's
 * app is then rebuilt from its plugins and swapped in, while the listening socket and every open connection stay
 * (transports keep their state outside the app). Upgrade requests go through the same router, so a WebSocket path
 * is an ordinary route with its params and query validated; its handler hands the socket to the transport's own
 * `ws` server (each protocol keeps its own payload limit, which @fastify/websocket's single server per app cannot).
 *
 * Nothing a client sends reaches a handler unparsed: malformed request lines and headers are answered 400 by
 * Node's parser (`clientError`), odd targets by the router, and an error in a handler by its transport's handler.
 */
import { EventEmitter } from 'node:events';
import http, { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../../core/log.js';
import type { Metrics } from '../../core/metrics.js';
import { errorStatus, type ErrorShape, httpErrorBody, mountedShape } from './errors.js';

/** What a transport puts on a port: routes (registered again whenever the port's app is rebuilt) and error shapes. */
export interface HttpMount {
  /** The transport's id (one mount per transport). */
  owner: string;
  /** Paths this transport answers (prefixes), so a 404 or 405 under them takes its shape. */
  prefixes: string[];
  /** The body of an error answer in this protocol's documented shape. */
  shape: ErrorShape;
  /** Registers the transport's routes on an encapsulated context of the port's app. */
  routes(app: FastifyInstance): void;
  /** Counts an error answered on one of its routes (besides sightline_http_errors_total). */
  countError?(status: number, code: string | undefined): void;
}

/** Server timeouts: a slow or silent client cannot hold a connection for long. */
export const SERVER_LIMITS = {
  /** Time to send the request line and headers (slowloris). */
  headersTimeoutMs: 10_000,
  /** Time to send a whole request, body included (a 20 MiB upload on a slow link fits). */
  requestTimeoutMs: 120_000,
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: 5_000,
  /** Request line and headers together. */
  maxHeaderBytes: 16 * 1024,
  /** Connections a port accepts at once (HTTP and WebSocket together). */
  maxConnections: 10_000,
} as const;

const kUpgrade = Symbol('sightline.upgrade');

/** The raw socket and head of a WebSocket handshake, when the request is one. */
export function upgradeOf(req: FastifyRequest): { socket: Duplex; head: Buffer } | null {
  return (req.raw as http.IncomingMessage & { [kUpgrade]?: { socket: Duplex; head: Buffer } })[kUpgrade] ?? null;
}

class PortServer {
  readonly server: http.Server;
  readonly mounts = new Map<string, HttpMount>();
  private app: FastifyInstance | null = null;
  private handler: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | null = null;
  listening = false;
  /** The mounts changed since the app was built. */
  dirty = true;
  private rebuilding: Promise<void> = Promise.resolve();

  constructor(private readonly port: number, private readonly log: Logger, private readonly metrics: Metrics | undefined) {
    this.server = http.createServer({
      maxHeaderSize: SERVER_LIMITS.maxHeaderBytes,
      headersTimeout: SERVER_LIMITS.headersTimeoutMs,
      requestTimeout: SERVER_LIMITS.requestTimeoutMs,
      keepAliveTimeout: SERVER_LIMITS.keepAliveTimeoutMs,
    }, (req, res) => this.onRequest(req, res));
    this.server.maxConnections = SERVER_LIMITS.maxConnections;
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    // A request Node's parser refuses (bad request line, header overflow, timeout): 400 or nothing, never a crash.
    this.server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      this.count(400);
      if (socket.writable && err.code !== 'ECONNRESET') {
        const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      }
      socket.destroy();
    });
  }

  private count(status: number): void {
    this.metrics?.httpErrors.inc({ port: String(this.port), status: String(status) });
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    try {
      if (this.handler) this.handler(req, res);
      else { res.statusCode = 503; res.end(); }
    } catch (err) {
      // Fastify answers its own errors; this is the last guard, so that nothing thrown here ends the process.
      this.log.error(`request to ${pathOf(req.url).slice(0, 100)} failed outside its route: ${(err as Error).message}`);
      this.count(500);
      if (!res.headersSent) { res.statusCode = 500; res.end(); } else res.destroy();
    }
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const refuse = (): void => {
      this.count(400);
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      socket.destroy();
    };
    // Only WebSocket upgrades are routed (h2c and the like are not spoken here), and only on a socket that is not
    // still answering an earlier request (an upgrade pipelined behind a request in progress).
    const busy = (socket as Duplex & { _httpMessage?: unknown })._httpMessage;
    if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket' || !this.handler || busy) { refuse(); return; }
    (req as http.IncomingMessage & { [kUpgrade]?: unknown })[kUpgrade] = { socket, head };
    try {
      // The route answers over this response when it refuses the handshake, or hijacks it to hand the socket over.
      const res = new ServerResponse(req);
      res.assignSocket(socket as import('node:net').Socket);
      res.on('finish', () => socket.destroy());
      this.handler(req, res);
    } catch (err) {
      this.log.warn(`upgrade of ${pathOf(req.url).slice(0, 100)} refused: ${(err as Error).message}`);
      refuse();
    }
  }

  /** Builds a Fastify app from the current mounts and swaps it in; the old one is closed once unused. */
  rebuild(): Promise<void> {
    const next = this.rebuilding.then(() => this.build());
    this.rebuilding = next.catch(() => undefined);
    return next;
  }

  private async build(): Promise<void> {
    this.dirty = false;
    let handler: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | null = null;
    const mounts = [...this.mounts.values()];
    const app = Fastify({
      // The listening server is this class's: Fastify gets a stand-in and hands back its request handler.
      serverFactory: (h) => { handler = h; return new EventEmitter() as unknown as http.Server; },
      logger: false,
      // A bad URL, a too-long parameter or a malformed body never throws out of the router.
      routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 256 },
      bodyLimit: 64 * 1024,
      return503OnClosing: false,
      // Errors before routing (a bad percent-encoding in the path) are answered in the owner's shape too.
      frameworkErrors: (err, req, reply) => this.failed(mounts, err, req, reply),
    });
    app.setNotFoundHandler((req, reply) => this.notFound(app, mounts, req, reply));
    app.setErrorHandler((err, req, reply) => this.failed(mounts, err, req, reply));
    for (const m of mounts) {
      await app.register(async (scope) => {
        scope.setErrorHandler((err, req, reply) => this.failed([m], err, req, reply));
        m.routes(scope);
      });
    }
    await app.ready();
    const old = this.app;
    this.app = app;
    this.handler = handler;
    // Requests in flight on the old app finish on it; its routes are gone from now on.
    if (old) await old.close().catch(() => undefined);
  }

  /** 404, or 405 with Allow when the path exists with other methods; in the shape of the transport that owns it. */
  private notFound(app: FastifyInstance, mounts: HttpMount[], req: FastifyRequest, reply: FastifyReply): void {
    const path = pathOf(req.raw.url);
    const allowed = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']
      .filter((method) => method !== req.method && app.hasRoute({ method: method as 'GET', url: path }));
    const status = allowed.length ? 405 : 404;
    this.count(status);
    if (allowed.length) reply.header('allow', allowed.join(', '));
    const shape = mountedShape(mounts, path);
    reply.code(status).send(httpErrorBody(shape, status, status === 405 ? 'Method Not Allowed' : 'Not Found'));
  }

  private failed(mounts: HttpMount[], err: unknown, req: FastifyRequest, reply: FastifyReply): void {
    const f = errorStatus(err);
    const shape = mountedShape(mounts, pathOf(req.raw.url));
    // FastAPI-style APIs answer 422 for a request whose parameters or body fail validation.
    const status = (f.validation || f.code === 'BAD_REQUEST') && shape.validationStatus ? shape.validationStatus : f.status;
    this.count(status);
    if (mounts.length === 1) mounts[0].countError?.(status, f.code);
    if (f.internal) this.log.error(`HTTP ${req.method} ${pathOf(req.raw.url).slice(0, 200)} failed: ${(err as Error)?.stack ?? String(err)}`);
    if (reply.sent || reply.raw.headersSent) { reply.raw.destroy(); return; }
    reply.code(status).send(httpErrorBody(shape, status, f.message, f.code?.toLowerCase(), f.details));
  }

  async close(): Promise<void> {
    await this.rebuilding;
    await this.app?.close().catch(() => undefined);
    this.app = null;
    this.handler = null;
    if (!this.listening) return;
    this.listening = false;
    await new Promise<void>((r) => {
      this.server.close(() => r());
      this.server.closeAllConnections();
    });
  }
}

/** The path of a request target, without its query; '' when it has none (never throws). */
export function pathOf(url: string | undefined): string {
  const s = url ?? '';
  const q = s.indexOf('?');
  return q < 0 ? s : s.slice(0, q);
}

export class HttpHub {
  private readonly ports = new Map<number, PortServer>();
  /** Graph port → bound port (they differ when port 0 asked for a free one). */
  readonly bound = new Map<number, number>();
  private closing: Promise<void> | null = null;

  constructor(private readonly host: string, private readonly log: Logger, private readonly metrics?: Metrics) {}

  /** Puts a transport's routes on `port` (served from the next `listen`). */
  mount(port: number, m: HttpMount): void {
    let s = this.ports.get(port);
    if (!s) this.ports.set(port, (s = new PortServer(port, this.log, this.metrics)));
    s.mounts.set(m.owner, m);
    s.dirty = true;
  }

  /** Removes a transport's routes; a port left without any is closed. */
  async unmount(owner: string): Promise<void> {
    for (const [port, s] of this.ports) {
      if (!s.mounts.delete(owner)) continue;
      if (s.mounts.size === 0) {
        this.ports.delete(port);
        this.bound.delete(port);
        await s.close();
      } else {
        await s.rebuild();
      }
    }
  }

  /** Builds every port's app from its mounts and listens on the ports not listening yet. */
  async listen(): Promise<Map<number, number>> {
    for (const [port, s] of this.ports) {
      if (s.dirty) await s.rebuild();
      if (s.listening) continue;
      await new Promise<void>((resolve, reject) => {
        s.server.once('error', reject);
        s.server.listen(port, this.host, () => { s.server.off('error', reject); resolve(); });
      });
      s.listening = true;
      const addr = s.server.address();
      this.bound.set(port, typeof addr === 'object' && addr ? addr.port : port);
      this.log.info(`listening on ${this.host}:${this.bound.get(port)}`);
    }
    return this.bound;
  }

  /** Closes every port (idempotent). */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      await Promise.all([...this.ports.values()].map((s) => s.close()));
      this.ports.clear();
    })());
  }
}

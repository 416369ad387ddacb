/**
 * One HTTP server per port; transports that share a port register their routes on the same server
 * and are told apart by path. WebSocket upgrades are routed the same way.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';

export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void | Promise<void>;
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL) => void;

interface Route<H> { owner: string; method?: string; match: (pathname: string) => boolean; handler: H }

class PortServer {
  readonly server: http.Server;
  listening = false;
  readonly routes: Route<HttpHandler>[] = [];
  readonly upgrades: Route<UpgradeHandler>[] = [];

  constructor(private readonly log: Logger) {
    this.server = http.createServer((req, res) => void this.onRequest(req, res));
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const candidates = this.routes.filter((r) => r.match(url.pathname));
    const route = candidates.find((r) => !r.method || r.method === req.method);
    if (!route) {
      sendJson(res, candidates.length ? 405 : 404, { error: candidates.length ? 'method not allowed' : 'not found' });
      return;
    }
    try {
      await route.handler(req, res, url);
    } catch (err) {
      this.log.error(`HTTP ${req.method} ${url.pathname} failed: ${(err as Error).message}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.end();
    }
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = this.upgrades.find((r) => r.match(url.pathname));
    if (!route) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    route.handler(req, socket, head, url);
  }
}

export class HttpHub {
  private readonly ports = new Map<number, PortServer>();
  /** Graph port → bound port (they differ when port 0 asked for a free one). */
  readonly bound = new Map<number, number>();

  constructor(private readonly host: string, private readonly log: Logger) {}

  /** Adds an HTTP route on `port`; `owner` (a transport id) lets a reload remove it again. */
  route(owner: string, port: number, method: string | undefined, match: string | ((p: string) => boolean), handler: HttpHandler): void {
    this.at(port).routes.push({ owner, method, match: matcher(match), handler });
  }

  upgrade(owner: string, port: number, match: string | ((p: string) => boolean), handler: UpgradeHandler): void {
    this.at(port).upgrades.push({ owner, match: matcher(match), handler });
  }

  /** Removes every route of `owner`; a port left without routes is closed. */
  async unmount(owner: string): Promise<void> {
    for (const [port, s] of this.ports) {
      s.routes.splice(0, s.routes.length, ...s.routes.filter((r) => r.owner !== owner));
      s.upgrades.splice(0, s.upgrades.length, ...s.upgrades.filter((r) => r.owner !== owner));
      if (s.routes.length === 0 && s.upgrades.length === 0) {
        this.ports.delete(port);
        this.bound.delete(port);
        await closeServer(s);
      }
    }
  }

  /** Starts listening on every port that has routes and is not listening yet. */
  async listen(): Promise<Map<number, number>> {
    for (const [port, s] of this.ports) {
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
      await Promise.all([...this.ports.values()].map(closeServer));
      this.ports.clear();
    })());
  }

  private closing: Promise<void> | null = null;

  private at(port: number): PortServer {
    let s = this.ports.get(port);
    if (!s) this.ports.set(port, (s = new PortServer(this.log)));
    return s;
  }
}

function closeServer(s: PortServer): Promise<void> {
  if (!s.listening) return Promise.resolve();
  s.listening = false;
  return new Promise<void>((r) => {
    s.server.close(() => r());
    s.server.closeAllConnections();
  });
}

function matcher(m: string | ((p: string) => boolean)): (p: string) => boolean {
  return typeof m === 'string' ? (p) => p === m : m;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

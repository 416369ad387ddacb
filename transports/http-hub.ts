/**
 * One HTTP server per port; transports that share a port register their routes on the same server
 * and are told apart by path. WebSocket upgrades are routed the same way.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../pipeline/log.js';

export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void | Promise<void>;
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL) => void;

interface Route<H> { method?: string; match: (pathname: string) => boolean; handler: H }

class PortServer {
  readonly server: http.Server;
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

  constructor(private readonly host: string, private readonly log: Logger) {}

  route(port: number, method: string | undefined, match: string | ((p: string) => boolean), handler: HttpHandler): void {
    this.at(port).routes.push({ method, match: matcher(match), handler });
  }

  upgrade(port: number, match: string | ((p: string) => boolean), handler: UpgradeHandler): void {
    this.at(port).upgrades.push({ match: matcher(match), handler });
  }

  /** Starts listening on every registered port; resolves with the bound ports (port 0 picks a free one). */
  async listen(): Promise<Map<number, number>> {
    const bound = new Map<number, number>();
    for (const [port, s] of this.ports) {
      await new Promise<void>((resolve, reject) => {
        s.server.once('error', reject);
        s.server.listen(port, this.host, () => { s.server.off('error', reject); resolve(); });
      });
      const addr = s.server.address();
      bound.set(port, typeof addr === 'object' && addr ? addr.port : port);
      this.log.info(`listening on ${this.host}:${bound.get(port)}`);
    }
    return bound;
  }

  async close(): Promise<void> {
    await Promise.all([...this.ports.values()].map((s) => new Promise<void>((r) => {
      s.server.close(() => r());
      s.server.closeAllConnections();
    })));
  }

  private at(port: number): PortServer {
    let s = this.ports.get(port);
    if (!s) this.ports.set(port, (s = new PortServer(this.log)));
    return s;
  }
}

function matcher(m: string | ((p: string) => boolean)): (p: string) => boolean {
  return typeof m === 'string' ? (p) => p === m : m;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * A TCP proxy that drops its connections the way a network does: `cut()` closes the client's side (the client sees
 * its socket drop) and leaves the server's side open and silent, nothing read from it or written to it, like a peer
 * that vanished without a FIN (a Wi-Fi change, a NAT timeout). The server learns of it only by a ping left unanswered.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

interface Pair { client: net.Socket; upstream: net.Socket }

export class CuttingProxy {
  private readonly pairs = new Set<Pair>();
  private readonly frozen: net.Socket[] = [];

  private constructor(private readonly server: net.Server) {}

  static async start(targetPort: number, host = '127.0.0.1'): Promise<CuttingProxy> {
    const server = net.createServer();
    const proxy = new CuttingProxy(server);
    server.on('connection', (client) => {
      const upstream = net.connect(targetPort, host);
      const pair = { client, upstream };
      proxy.pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const done = (): void => {
        if (!proxy.pairs.delete(pair)) return;
        client.destroy();
        upstream.destroy();
      };
      for (const s of [client, upstream]) { s.on('error', done); s.on('close', done); }
    });
    await new Promise<void>((r) => server.listen(0, host, r));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Drops every connection open now: the clients see them close; the server sees nothing. */
  cut(): number {
    const n = this.pairs.size;
    for (const pair of [...this.pairs]) {
      this.pairs.delete(pair);
      pair.client.unpipe(pair.upstream);
      pair.upstream.unpipe(pair.client);
      pair.upstream.pause();
      pair.upstream.removeAllListeners('data');
      this.frozen.push(pair.upstream);
      pair.client.destroy();
    }
    return n;
  }

  async close(): Promise<void> {
    for (const s of this.frozen) s.destroy();
    for (const { client, upstream } of this.pairs) { client.destroy(); upstream.destroy(); }
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

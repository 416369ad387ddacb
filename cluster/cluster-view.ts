/**
 * What a page shows of this node's cluster: the NATS connection, which worker holds each source's lease
 * (`sightline-leases`) and which workers are present (`sightline-workers`). Read-only: the buckets are opened as the
 * workers open them (an absent one is created with the same settings) and only their keys and values are read.
 */
import type { KV, NatsConnection } from 'nats';
import type { ResolvedSettings } from '../config/settings.js';
import type { ClusterConnection, ClusterLeases, ClusterView } from '../pipeline/states.js';

const dec = new TextDecoder();
/** A read that NATS does not answer within this long fails (a page must not hang on a reconnecting server). */
const READ_TIMEOUT_MS = 2000;

export class NatsClusterView implements ClusterView {
  private state: ClusterConnection;
  private buckets: Promise<{ leases: KV; workers: KV }> | null = null;

  constructor(private readonly nc: NatsConnection, readonly nodeId: string, readonly role: ClusterView['role'],
    private readonly settings: ResolvedSettings) {
    this.state = { connected: true, server: nc.getServer(), reconnects: 0 };
  }

  /** Called by the node as NATS reports its status. */
  disconnected(): void {
    this.state = { ...this.state, connected: false };
  }

  reconnected(): void {
    this.state = { connected: true, server: this.nc.getServer(), reconnects: this.state.reconnects + 1 };
  }

  closed(): void {
    this.state = { ...this.state, connected: false };
  }

  connection(): ClusterConnection {
    return this.state;
  }

  leases(): Promise<ClusterLeases> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('NATS did not answer in time')), READ_TIMEOUT_MS);
    });
    return Promise.race([this.read(), timeout]).finally(() => clearTimeout(timer));
  }

  private async read(): Promise<ClusterLeases> {
    const { leases, workers } = await this.open();
    const holders: Record<string, string> = {};
    for await (const source of await leases.keys()) {
      const e = await leases.get(source);
      if (e && e.operation === 'PUT') holders[source] = dec.decode(e.value);
    }
    const present: string[] = [];
    for await (const id of await workers.keys()) present.push(id);
    return { holders, workers: present.sort(), readAtMs: Date.now() };
  }

  private open(): Promise<{ leases: KV; workers: KV }> {
    if (!this.buckets) {
      const js = this.nc.jetstream();
      const ttl = Math.max(1, this.settings.leaseSeconds) * 1000;
      const replicas = Math.max(1, this.settings.clusterReplicas);
      this.buckets = Promise.all([
        js.views.kv('sightline-leases', { ttl, history: 1, replicas }),
        js.views.kv('sightline-workers', { ttl, history: 1, replicas }),
      ]).then(([leases, workers]) => ({ leases, workers }));
      // A failed open (NATS away) is tried again on the next read.
      this.buckets.catch(() => { this.buckets = null; });
    }
    return this.buckets;
  }
}

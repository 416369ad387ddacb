/**
 * Source leases in a JetStream KV bucket whose entries expire (the bucket's TTL): a worker runs a source only
 * while it holds that source's key. Claiming is create-if-absent and renewing is an update at the revision
 * last written, so two workers can never both hold a key: the loser of a race gets "wrong last sequence".
 * A worker that dies stops renewing, its keys expire, and the others claim them on their next round.
 *
 * A worker that cannot renew (NATS unreachable) stops its sources before their leases can expire, so a
 * partitioned worker never runs a source that another has meanwhile claimed.
 */
import type { KV } from 'nats';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';

export interface LeaseOptions {
  nodeId: string;
  /** Lease lifetime; renewals happen five times per lifetime. */
  ttlMs: number;
  leases: KV;
  /** Presence of the workers (same TTL), to share the sources out evenly. */
  workers: KV;
  /** The sources the graph declares that some pipeline reads. */
  sources: () => string[];
  /** Called (never concurrently) with the sources this node now holds; resolves once they run or stopped. */
  apply: (held: ReadonlySet<string>) => Promise<void>;
  log: Logger;
  metrics: Metrics;
}

interface Held { revision: number; renewedAt: number }

const enc = new TextEncoder();
const dec = new TextDecoder();

export class LeaseKeeper {
  private readonly held = new Map<string, Held>();
  private timer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private stopped = false;
  private rounds = 0;
  private running: Promise<void> = Promise.resolve();
  private applying: Promise<void> = Promise.resolve();
  private applied = '';

  constructor(private readonly o: LeaseOptions) {}

  get heldSources(): string[] {
    return [...this.held.keys()].sort();
  }

  get intervalMs(): number {
    return Math.max(200, Math.floor(this.o.ttlMs / 5));
  }

  start(): void {
    const loop = (): void => {
      if (this.stopped) return;
      this.running = this.round().catch((err: Error) => this.o.log.warn(`lease round failed: ${err.message}`))
        .finally(() => { if (!this.stopped) this.timer = setTimeout(loop, this.intervalMs); });
    };
    loop();
    // Apart from the rounds: a round can hang on NATS calls that time out (a server restarting), and a source
    // must stop here before its lease can expire and another worker start it.
    this.watchdog = setInterval(() => this.stopUnrenewed(), this.intervalMs);
    this.watchdog.unref();
  }

  /** Stops the sources whose lease has not been renewed for a lease time minus a round. */
  private stopUnrenewed(): void {
    if (this.stopped) return;
    const now = Date.now();
    let lost = false;
    for (const [source, h] of [...this.held]) {
      if (now - h.renewedAt <= this.o.ttlMs - this.intervalMs) continue;
      this.held.delete(source);
      lost = true;
      this.o.metrics.clusterLeaseChanges.inc({ event: 'lost' });
      this.o.log.warn(`lease on ${source} lost (not renewed in time); stopping it`);
    }
    if (lost) void this.sync();
  }

  /** Stops the sources held, then gives their leases back so other workers take them at once. */
  stop(): Promise<void> {
    return (this.stopping ??= this.stopNow());
  }

  private stopping: Promise<void> | null = null;

  private async stopNow(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearInterval(this.watchdog);
    await this.running;
    // A fresh lease lifetime for the pipelines' drain (up to 5 s of in-flight frames): nobody else starts
    // a source while its last frames are still being counted here. A renewal that fails changes nothing:
    // the give-back below finds the key's current revision.
    for (const [source, h] of this.held) {
      try {
        this.held.set(source, { revision: await this.o.leases.update(source, enc.encode(this.o.nodeId), h.revision), renewedAt: Date.now() });
      } catch { /* given back (or expiring) below */ }
    }
    const given = [...this.held];
    this.held.clear();
    await this.sync();
    await Promise.all(given.map(async ([source, h]) => {
      // Not given back (expired, taken, or NATS unreachable): the TTL ends it.
      if (await this.giveBack(source, h.revision)) {
        this.o.metrics.clusterLeaseChanges.inc({ event: 'released' });
        this.o.log.info(`released source ${source}`);
      }
    }));
    await this.o.workers.delete(this.o.nodeId).catch(() => undefined);
  }

  private async round(): Promise<void> {
    this.rounds++;
    const now = Date.now();
    await this.o.workers.put(this.o.nodeId, enc.encode(String(now))).catch(() => undefined);
    await this.renew(now);
    // Workers started together see each other before claiming, so they share the sources from the start.
    // A node told to stop during the round claims nothing more, and starts nothing (stop() syncs).
    if (this.rounds > 1 && !this.stopped) await this.claimOrRelease();
    // Starting pipelines may take a while (models load): renewals go on meanwhile.
    if (!this.stopped) void this.sync();
  }

  private async renew(now: number): Promise<void> {
    for (const [source, h] of [...this.held]) {
      try {
        const revision = await this.o.leases.update(source, enc.encode(this.o.nodeId), h.revision);
        // Given up meanwhile (the watchdog): the key lapses and is claimed again in a later round.
        if (this.held.has(source)) this.held.set(source, { revision, renewedAt: now });
      } catch (err) {
        if (!this.held.has(source)) continue;
        let taken = /wrong last sequence/i.test((err as Error).message);
        if (taken) {
          // The key moved on without us: expired while NATS was away (or restarted). Still ours or free: keep it.
          const revision = await this.claim(source).catch(() => undefined);
          if (typeof revision === 'number') { if (this.held.has(source)) this.held.set(source, { revision, renewedAt: now }); continue; }
          // Whose it is now could not be read (NATS just back and slow): treated as unreachable, below.
          if (revision === undefined) taken = false;
        }
        // Unreachable: keep running until the lease could have expired; then stop, someone else may have it.
        if (taken || now - h.renewedAt > this.o.ttlMs - this.intervalMs) {
          this.held.delete(source);
          this.o.metrics.clusterLeaseChanges.inc({ event: 'lost' });
          this.o.log.warn(`lease on ${source} lost (${taken ? 'taken by another worker' : 'not renewed in time'}); stopping it`);
        }
      }
    }
  }

  private async claimOrRelease(): Promise<void> {
    const sources = this.o.sources();
    const wanted = new Set(sources);
    for (const source of this.heldSources) {
      if (!wanted.has(source)) await this.release(source);
    }
    let workers = 0;
    for await (const _ of await this.o.workers.keys()) workers++;
    const target = Math.ceil(sources.length / Math.max(1, workers));
    if (this.held.size > target) {
      // A worker joined: give one source back per round; it stops here before anyone else can claim it.
      await this.release(this.heldSources[this.held.size - 1]);
      return;
    }
    // Start the scan at a place of our own, so workers do not all race for the same key first.
    const offset = hash(this.o.nodeId) % Math.max(1, sources.length);
    for (let i = 0; i < sources.length && this.held.size < target && !this.stopped; i++) {
      const source = sources[(offset + i) % sources.length];
      if (this.held.has(source)) continue;
      const revision = await this.claim(source);
      if (revision === null) continue;
      this.held.set(source, { revision, renewedAt: Date.now() });
      this.o.metrics.clusterLeaseChanges.inc({ event: 'claimed' });
      this.o.log.info(`claimed source ${source}`);
    }
  }

  private async claim(source: string): Promise<number | null> {
    const entry = await this.o.leases.get(source);
    const owner = entry && entry.operation === 'PUT' ? dec.decode(entry.value) : '';
    try {
      // Our own key (e.g. after a reconnect during which we stopped): take it up again at its revision.
      if (owner === this.o.nodeId) return await this.o.leases.update(source, enc.encode(this.o.nodeId), entry!.revision);
      if (owner) return null;
      return await this.o.leases.create(source, enc.encode(this.o.nodeId));
    } catch {
      return null; // another worker was faster
    }
  }

  /**
   * Deletes our lease key. Right after a NATS restart (JetStream recovering, a loaded machine) attempts can
   * time out for a while, or the key may have moved to a newer revision of ours (re-claimed by a renewal):
   * retry until the lease would have expired anyway, deleting only while the key is still ours, so a clean
   * stop hands the source over at once instead of after the TTL.
   */
  private async giveBack(source: string, revision: number): Promise<boolean> {
    const deadline = Date.now() + this.o.ttlMs;
    let last: string | undefined;
    for (;;) {
      try {
        await this.o.leases.delete(source, { previousSeq: revision });
        return true;
      } catch (err) {
        last = (err as Error).message;
        const entry = await this.o.leases.get(source).catch(() => undefined);
        if (entry === null || (entry && entry.operation !== 'PUT')) return true; // already gone
        if (entry && dec.decode(entry.value) !== this.o.nodeId) return false; // another worker's now
        if (entry) revision = entry.revision;
      }
      if (Date.now() + 250 > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    this.o.log.warn(`lease on ${source} not given back (${last}); it expires within ${this.o.ttlMs / 1000} s`);
    return false;
  }

  private async release(source: string): Promise<void> {
    const h = this.held.get(source);
    if (!h) return;
    this.held.delete(source);
    await this.sync();
    await this.giveBack(source, h.revision);
    this.o.metrics.clusterLeaseChanges.inc({ event: 'released' });
    this.o.log.info(`released source ${source}`);
  }

  /** Runs exactly the sources held; resolves once that is done (one change at a time, in order). */
  private sync(): Promise<void> {
    this.o.metrics.clusterLeasesHeld.set(this.held.size);
    const held = new Set(this.held.keys());
    this.applying = this.applying.then(async () => {
      const key = [...held].sort().join('\n');
      if (key === this.applied) return;
      this.applied = key;
      await this.o.apply(held);
    }).catch((err: Error) => this.o.log.error(`applying the held sources failed: ${err.message}`));
    return this.applying;
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

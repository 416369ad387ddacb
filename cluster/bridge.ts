/**
 * Results bridge: a worker forwards every event of its bus to NATS on `sightline.<topic>.<source>`; a
 * gateway subscribes to them all and publishes them on its own bus, so every transport serves every
 * source's results without knowing where the pipeline runs. Topics are not listed here: whatever a stage
 * publishes (including topics added later) crosses, except node-local ones.
 */
import type { NatsConnection, Subscription } from 'nats';
import type { EventBus, Topic } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { Packet } from '../core/types.js';
import { coded } from '../core/errors.js';
import { decode, encode } from './codec.js';

/** Events about this node alone (its graph reloads), never forwarded. */
const LOCAL_TOPICS = new Set<string>(['config']);
const EMPTY = new ArrayBuffer(0);

/** NATS subject tokens cannot hold '.', '*', '>' or white space. */
const token = (s: string): string => s.replace(/[.*>\s]/g, '_') || '_';

function sourceOf(topic: string, event: unknown): string {
  const e = event as { source?: unknown; pipeline?: unknown; frame?: { source?: unknown } };
  const s = e.source ?? e.frame?.source ?? e.pipeline;
  return typeof s === 'string' ? s : '_';
}

export function subjectOf(topic: string, event: unknown): string {
  return `sightline.${token(topic)}.${token(sourceOf(topic, event))}`;
}

/** Every result subject (two tokens after the prefix; `sightline.infer` is not one of them). */
export const RESULTS = 'sightline.*.*';

interface Wire { t: string; e: unknown }

export class ClusterBridge {
  private untap: (() => void) | null = null;
  private sub: Subscription | null = null;
  // True while an event from the cluster is being published here, so it is not sent back out.
  private republishing = false;

  constructor(private readonly nc: NatsConnection, private readonly bus: EventBus,
    private readonly metrics: Metrics, private readonly log: Logger) {}

  /** Worker side: this node's events go out. */
  private unwant: (() => void) | null = null;

  forward(): void {
    const bytesOut = this.metrics.clusterBridgeBytes.labels('out');
    // Gateways may have viewers of annotated frames this node cannot see: keep encoding them while forwarding.
    this.unwant = this.bus.want('jpeg', '*');
    this.untap = this.bus.tap((topic, event) => {
      if (this.republishing || LOCAL_TOPICS.has(topic) || this.nc.isClosed()) return;
      // Raw pixels stay on the worker; the annotated JPEG (if any) travels.
      const wire = topic === 'packet' ? { ...(event as Packet), frame: { ...(event as Packet).frame, data: EMPTY, view: undefined } } : event;
      const bytes = encode({ t: topic, e: wire } satisfies Wire);
      this.nc.publish(subjectOf(topic, event), bytes);
      this.metrics.clusterBridgeMessages.inc({ direction: 'out', topic });
      bytesOut.inc(bytes.byteLength);
    });
  }

  /** Gateway side: every node's events come in. */
  receive(): void {
    const bytesIn = this.metrics.clusterBridgeBytes.labels('in');
    // When each source was last heard of: a source no worker runs shows as a growing age.
    const lastSeen = new Map<string, number>();
    this.metrics.onScrape(() => {
      const now = Date.now();
      for (const [source, at] of lastSeen) this.metrics.clusterResultAge.set({ source }, (now - at) / 1000);
    });
    this.sub = this.nc.subscribe(RESULTS, {
      callback: (err, msg) => {
        if (err) { this.log.warn(`results subscription: ${err.message}`); return; }
        let w: Wire;
        try {
          w = decode<Wire>(msg.data);
          if (typeof w?.t !== 'string' || typeof w.e !== 'object' || w.e === null) throw coded('CODEC', 'not a bus event');
        } catch (e) {
          this.metrics.clusterBridgeMessages.inc({ direction: 'in', topic: 'invalid' });
          this.log.warn(`dropped a malformed result on ${msg.subject}: ${(e as Error).message}`);
          return;
        }
        if (LOCAL_TOPICS.has(w.t)) return;
        lastSeen.set(sourceOf(w.t, w.e), Date.now());
        this.metrics.clusterBridgeMessages.inc({ direction: 'in', topic: w.t });
        bytesIn.inc(msg.data.byteLength);
        this.republishing = true;
        try {
          this.bus.publish(w.t as Topic, w.e as never);
        } catch (e) {
          this.log.error(`a transport failed on a ${w.t} event from the cluster: ${(e as Error).message}`);
        } finally {
          this.republishing = false;
        }
      },
    });
  }

  close(): void {
    this.unwant?.();
    this.untap?.();
    this.sub?.unsubscribe();
  }
}

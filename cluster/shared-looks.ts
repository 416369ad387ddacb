/**
 * Live watches across the cluster. A gateway (where WatchMe runs) has no pixels of a worker's pipeline, so it
 * cannot describe its persons; it announces each watch on `sightline.watch` every second while the watch
 * lasts, and every node that runs pipelines keeps it for a few seconds after the last announcement. The node
 * holding the pipeline's source computes the looks (other nodes' watches see no pixels and cost nothing) and
 * its `person.looks` events come back through the results bridge. When a source fails over, the next worker
 * already holds the watch. A gateway that dies stops announcing, and its watches lapse on their own.
 */
import { randomUUID } from 'node:crypto';
import type { NatsConnection, Subscription } from 'nats';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { LooksDemand, LooksModels, LooksWatch, PersonLooks } from '../services/looks/person-looks.js';

export const WATCH_SUBJECT = 'sightline.watch';
const ANNOUNCE_MS = 1000;
/** Three missed announcements end a watch. */
const LAPSE_MS = 3500;

/** An announcement: `stop` ends the watch at once (a session that stopped tracking). */
interface Announcement { id: string; watch?: LooksWatch; stop?: true }

/** Gateway side: watches are announced to the workers (and, on a node that also runs pipelines, kept locally). */
export class RemoteLooks implements LooksDemand {
  private readonly releases = new Set<() => void>();

  constructor(private readonly nc: NatsConnection, private readonly local: LooksDemand | null) {}

  watch(w: LooksWatch): () => void {
    const id = randomUUID();
    const releaseLocal = this.local?.watch(w);
    const announce = (a: Announcement): void => { if (!this.nc.isClosed()) this.nc.publish(WATCH_SUBJECT, JSON.stringify(a)); };
    announce({ id, watch: w });
    const timer = setInterval(() => announce({ id, watch: w }), ANNOUNCE_MS);
    timer.unref();
    const release = (): void => {
      if (!this.releases.delete(release)) return;
      clearInterval(timer);
      releaseLocal?.();
      announce({ id, stop: true });
    };
    this.releases.add(release);
    return release;
  }

  /** Ends every watch (workers are told at once, while the connection is still open). */
  close(): void {
    for (const release of [...this.releases]) release();
  }
}

/** Worker side: holds every announced watch on the node's own looks while it is announced. */
export function serveLooks(nc: NatsConnection, looks: PersonLooks, metrics: Metrics, log: Logger): { close(): void } {
  const held = new Map<string, { release: () => void; lapse: NodeJS.Timeout }>();
  const end = (id: string): void => {
    const h = held.get(id);
    if (!h) return;
    clearTimeout(h.lapse);
    h.release();
    held.delete(id);
  };
  const sub: Subscription = nc.subscribe(WATCH_SUBJECT, {
    callback: (err, msg) => {
      if (err) { log.warn(`watch subscription: ${err.message}`); return; }
      let a: Announcement;
      try {
        a = JSON.parse(msg.string()) as Announcement;
        if (typeof a?.id !== 'string' || a.id.length > 64) throw new Error('no watch id');
        if (!a.stop && !validWatch(a.watch)) throw new Error('not a watch');
      } catch (e) {
        metrics.clusterBridgeMessages.inc({ direction: 'in', topic: 'invalid' });
        log.warn(`dropped a malformed watch announcement: ${(e as Error).message}`);
        return;
      }
      if (a.stop) { end(a.id); return; }
      const lapse = setTimeout(() => end(a.id), LAPSE_MS);
      lapse.unref();
      const h = held.get(a.id);
      if (h) { clearTimeout(h.lapse); h.lapse = lapse; return; }
      let release = (): void => undefined;
      try {
        release = looks.watch(a.watch!);
        log.debug(`watching ${a.watch!.pipeline} at ${a.watch!.fps} fps for a gateway`);
      } catch (e) {
        // Held anyway (as a no-op) until it lapses: warned once, not at every announcement.
        log.warn(`cannot watch ${a.watch!.pipeline}: ${(e as Error).message}`);
      }
      held.set(a.id, { release, lapse });
    },
  });
  return {
    close: () => {
      sub.unsubscribe();
      for (const id of [...held.keys()]) end(id);
    },
  };
}

function validWatch(w: unknown): w is LooksWatch {
  const v = w as LooksWatch | undefined;
  if (typeof v !== 'object' || v === null || typeof v.pipeline !== 'string' || !v.pipeline) return false;
  if (typeof v.fps !== 'number' || !(v.fps > 0 && v.fps <= 240)) return false;
  const m = v.models as LooksModels | undefined;
  const optional = (x: unknown): boolean => x === undefined || x === null || typeof x === 'string';
  return typeof m === 'object' && m !== null && typeof m.reid === 'string' && optional(m.faceDetector) && optional(m.faceEmbedder)
    && (m.faceScore === undefined || m.faceScore === null || typeof m.faceScore === 'number')
    && Number.isInteger(m.refreshFrames) && m.refreshFrames >= 1;
}

/**
 * Counting state that outlives a worker: the lease holder of a source writes each of its pipelines' day
 * totals, open traffic event and sliding window of `in` crossings to a JetStream KV bucket whenever they
 * change; a worker that claims the source raises its own store's totals to those values and takes over
 * the event and the window before the pipeline starts, so counts continue from where they were and an
 * event open on a worker that died stays the same open event.
 *
 * Each source's next block of track ids is shared the same way (key `track-ids/<source>`, never a pipeline
 * id): face ids are track ids, so a worker taking a source over must not hand out ids again whose faces
 * the cluster already holds.
 */
import type { KV } from 'nats';
import type { Subscription } from 'rxjs';
import type { Graph } from '../config/graph.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { CountsTable, InCrossing } from '../services/counting/counts.js';
import { dayKey } from '../services/counting/day.js';

interface SharedDay {
  day: string; countIn: number; countOut: number; faceCount: number; eventCount: number; atMs: number;
  /** The open traffic event, if any (absent in values written before events were shared). */
  event?: { startMs: number; countIn: number } | null;
  /** The `in` crossings still inside the event window. */
  ins?: InCrossing[];
}

/** The day reset time and event window of a pipeline's count stage, or null when it does not count. */
function countingOf(graph: Graph, pipeline: string): { resetAt: string; windowMs: number } | null {
  const stage = graph.pipelines[pipeline]?.stages.find((s) => s.use === 'count');
  if (!stage) return null;
  const o = stage.with as { resetAt?: string; event?: { windowSeconds?: number } } | undefined;
  return { resetAt: o?.resetAt ?? '00:00', windowMs: (o?.event?.windowSeconds ?? 60) * 1000 };
}

/** `in` crossings of an event window shared at most (about 40 bytes each). */
const MAX_SHARED_INS = 10_000;

export class SharedCounts {
  private sub: Subscription | null = null;
  private readonly last = new Map<string, string>();
  private readonly lastTrackIds = new Map<string, number>();
  private writing: Promise<unknown> = Promise.resolve();

  constructor(private readonly kv: KV, private readonly store: CountsTable, private readonly graph: () => Graph,
    private readonly holds: (source: string) => boolean, private readonly log: Logger) {}

  /** Writes the totals of the pipelines this node holds, when they change (in order, one write at a time). */
  start(bus: EventBus): void {
    this.sub = bus.on('face.saved').subscribe((f) => { if (this.holds(f.source)) this.shareTrackIds(f.source); });
    this.sub.add(bus.on('count.stats').subscribe((s) => {
      if (!this.holds(s.source)) return;
      this.shareTrackIds(s.source);
      const counting = countingOf(this.graph(), s.pipeline);
      if (counting === null) return;
      const day = dayKey(s.atMs, counting.resetAt);
      // Every `in` crossing changes countIn, so the window is written whenever it gains one.
      const key = `${day} ${s.countIn} ${s.countOut} ${s.faceCount} ${s.dailyEventCount} ${s.eventActive} ${s.currentEventCountIn}`;
      if (this.last.get(s.pipeline) === key) return;
      this.last.set(s.pipeline, key);
      const open = s.eventActive ? this.store.openEvent(s.pipeline) : undefined;
      const value: SharedDay = {
        day, countIn: s.countIn, countOut: s.countOut, faceCount: s.faceCount, eventCount: s.dailyEventCount, atMs: s.atMs,
        event: open ? { startMs: open.startMs, countIn: open.countIn } : null,
        // The newest ones decide whether the window is busy (it takes `minIn` of them); the cap keeps a
        // day-long window of a busy entrance well under NATS' 1 MB message limit.
        ins: this.store.recentInCrossings(s.pipeline, s.atMs - counting.windowMs).slice(-MAX_SHARED_INS),
      };
      this.writing = this.writing.then(() => this.kv.put(s.pipeline, JSON.stringify(value)))
        .catch((err: Error) => { this.last.delete(s.pipeline); this.log.warn(`could not share the counts of ${s.pipeline}: ${err.message}`); });
    }));
  }

  private shareTrackIds(source: string): void {
    const next = this.store.nextTrackIds(source);
    if (this.lastTrackIds.get(source) === next) return;
    this.lastTrackIds.set(source, next);
    this.writing = this.writing.then(() => this.kv.put(trackIdsKey(source), String(next)))
      .catch((err: Error) => { this.lastTrackIds.delete(source); this.log.warn(`could not share the track ids of ${source}: ${err.message}`); });
  }

  /** Before `sources` start here: takes over the day totals and traffic state their pipelines reached elsewhere. */
  async restore(sources: Iterable<string>): Promise<void> {
    const graph = this.graph();
    const wanted = new Set(sources);
    for (const source of wanted) {
      try {
        const entry = await this.kv.get(trackIdsKey(source));
        const next = entry && entry.operation === 'PUT' ? Number(entry.string()) : 0;
        if (Number.isSafeInteger(next) && next > 1) this.store.raiseTrackIds(source, next);
        this.lastTrackIds.delete(source);
      } catch (err) {
        this.log.warn(`could not read the shared track ids of ${source}: ${(err as Error).message}`);
      }
    }
    for (const [id, p] of Object.entries(graph.pipelines)) {
      const counting = countingOf(graph, id);
      if (!wanted.has(p.source) || counting === null) continue;
      try {
        const entry = await this.kv.get(id);
        if (!entry || entry.operation !== 'PUT') continue;
        const v = entry.json<SharedDay>();
        // Yesterday's totals stay yesterday's: the counter starts the new day from zero as it would anyway.
        if (v.day !== dayKey(Date.now(), counting.resetAt)) continue;
        this.store.raiseDayCounters(id, v.day, v);
        if (v.event !== undefined) this.store.adoptTraffic(id, v.day, sharedIns(v.ins), sharedEvent(v.event), v.atMs);
        this.last.delete(id);
        const event = v.event ? `, event open since ${new Date(v.event.startMs).toISOString()} with ${v.event.countIn} in` : '';
        this.log.info(`pipeline ${id} resumes counting from in=${v.countIn} out=${v.countOut}${event}`);
      } catch (err) {
        this.log.warn(`could not read the shared counts of ${id}: ${(err as Error).message}`);
      }
    }
  }

  async close(): Promise<void> {
    this.sub?.unsubscribe();
    this.sub = null;
    await this.writing;
  }
}

const trackIdsKey = (source: string): string => `track-ids/${source}`;

const isTime = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

function sharedIns(ins: unknown): InCrossing[] {
  if (!Array.isArray(ins)) return [];
  return ins.filter((c: Partial<InCrossing> | null) => isTime(c?.atMs) && Number.isSafeInteger(c?.trackId)) as InCrossing[];
}

function sharedEvent(e: SharedDay['event']): { startMs: number; countIn: number } | null {
  if (!e) return null;
  if (!isTime(e.startMs) || !isTime(e.countIn)) throw new Error('the shared open event is malformed');
  return { startMs: e.startMs, countIn: e.countIn };
}

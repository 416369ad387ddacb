/**
 * Counting and events as the console shows them: per pipeline the day's in/out totals, crossings per minute, traffic
 * events and occupancy; falls and recoveries with a snapshot of the camera; and a feed of everything that happened
 * (source and pipeline states, graph reloads, traffic, falls, occupancy, new faces). Built from the bus, so it is the
 * same on a cluster gateway, and seeded from the store for what happened today before the console started.
 */
import type { Subscription } from 'rxjs';
import type { Graph } from '../config/graph.js';
import type { Clock } from '../core/clock.js';
import type { BusEvents, EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { CountsTable, MinuteCrossings } from '../services/counting/counts.js';
import { dayKey, resetAtOf } from '../services/counting/day.js';
import type { LiveFrames, LiveImage } from './live.js';

export interface FeedEvent {
  id: number;
  kind: 'source' | 'pipeline' | 'config' | 'traffic' | 'fall' | 'recovered' | 'occupancy' | 'face';
  atMs: number;
  pipeline?: string;
  source?: string;
  text: string;
  /** A fall's id, for its snapshot. */
  fall?: number;
}

export interface Fall {
  id: number;
  pipeline: string;
  source: string;
  trackId: number;
  atMs: number;
  box: [number, number, number, number];
  confidence: number;
  impactSeverity: number;
  recovered?: { atMs: number; lyingSeconds: number };
  /** Source size the box is in, and the snapshot (when one could be taken). */
  width?: number;
  height?: number;
  snapshot?: LiveImage;
}

interface Counting {
  day: string;
  /** Crossings with a time up to this were read from the store; the bus adds the later ones. */
  seededToMs: number;
  minutes: Map<number, MinuteCrossings>;
  traffic: Map<number, { startMs: number; endMs: number | null; countIn: number }>;
  totals?: BusEvents['count.stats'];
}

const FEED_SIZE = 500;
const FALLS_KEPT = 50;

export class Timeline {
  private readonly feed: FeedEvent[] = [];
  private nextId = 1;
  private readonly counting = new Map<string, Counting>();
  private readonly occupancy = new Map<string, { count: number; atMs: number }>();
  private readonly falls: Fall[] = [];
  private nextFall = 1;
  private readonly sub: Subscription;

  constructor(private readonly o: { bus: EventBus; counts: CountsTable; clock: Clock; log: Logger; graph: () => Graph; live: LiveFrames }) {
    const { bus } = o;
    this.sub = bus.on('source.state').subscribe((e) => e.state !== e.previous && this.push({
      kind: 'source', atMs: e.atMs, source: e.source,
      text: `source ${e.source}: ${e.previous} → ${e.state}${e.reason ? ` (${e.reason}${e.attempt ? `, attempt ${e.attempt}` : ''})` : ''}`,
    }));
    this.sub.add(bus.on('pipeline.state').subscribe((e) => this.push({
      kind: 'pipeline', atMs: e.atMs, pipeline: e.pipeline, text: `pipeline ${e.pipeline}: ${e.state}${e.reason ? ` (${e.reason})` : ''}`,
    })));
    // A save that changed nothing (the editor's own write seen again by the file watcher) is no news.
    this.sub.add(bus.on('config').subscribe((e) => e.result !== 'unchanged' && this.push({ kind: 'config', atMs: e.atMs, text: `graph reload ${e.result}: ${e.summary}` })));
    this.sub.add(bus.on('count.crossed').subscribe((e) => this.crossed(e)));
    this.sub.add(bus.on('count.stats').subscribe((e) => { const c = this.countingOf(e.pipeline, e.atMs); if (c) c.totals = e; }));
    this.sub.add(bus.on('traffic.event').subscribe((e) => this.traffic(e)));
    this.sub.add(bus.on('occupancy').subscribe((e) => {
      this.occupancy.set(e.pipeline, { count: e.count, atMs: e.atMs });
      this.push({ kind: 'occupancy', atMs: e.atMs, pipeline: e.pipeline, source: e.source, text: `${e.pipeline}: ${e.count} present (was ${e.previous})` });
    }));
    this.sub.add(bus.on('face.saved').subscribe((e) => this.push({
      kind: 'face', atMs: e.atMs, pipeline: e.pipeline, source: e.source, text: `${e.pipeline}: face of track ${e.faceId} saved (score ${e.score.toFixed(2)})`,
    })));
    this.sub.add(bus.on('activity.fall').subscribe((e) => void this.fell(e)));
    this.sub.add(bus.on('activity.recovered').subscribe((e) => {
      const fall = [...this.falls].reverse().find((f) => f.pipeline === e.pipeline && f.trackId === e.trackId && !f.recovered);
      if (fall) fall.recovered = { atMs: e.atMs, lyingSeconds: e.lyingSeconds };
      this.push({ kind: 'recovered', atMs: e.atMs, pipeline: e.pipeline, source: e.source, fall: fall?.id,
        text: `${e.pipeline}: track ${e.trackId} got up after ${e.lyingSeconds.toFixed(1)} s` });
    }));
  }

  private push(e: Omit<FeedEvent, 'id'>): void {
    this.feed.push({ id: this.nextId++, ...e });
    if (this.feed.length > FEED_SIZE) this.feed.splice(0, this.feed.length - FEED_SIZE);
  }

  /** Events after `after` (an id), oldest first. */
  events(after: number, kinds?: ReadonlySet<string>): FeedEvent[] {
    return this.feed.filter((e) => e.id > after && (!kinds || kinds.has(e.kind)));
  }

  /** The pipeline's counting of the current day, seeded from the store when it is first asked for (or the day turns). */
  private countingOf(pipeline: string, nowMs: number): Counting | undefined {
    const graph = this.o.graph();
    if (!graph.pipelines[pipeline]?.stages.some((s) => s.use === 'count')) return undefined;
    const day = dayKey(nowMs, resetAtOf(graph, pipeline));
    let c = this.counting.get(pipeline);
    if (c && c.day === day) return c;
    c = { day, seededToMs: this.o.clock.now(), minutes: new Map(), traffic: new Map() };
    try {
      for (const m of this.o.counts.crossingsPerMinute(pipeline, day)) c.minutes.set(m.minuteMs, { ...m });
      for (const e of this.o.counts.dayEvents(pipeline, day)) c.traffic.set(e.startMs, { startMs: e.startMs, endMs: e.endMs, countIn: e.countIn });
      const d = this.o.counts.dayCounters(pipeline, day);
      const open = c.traffic.size ? [...c.traffic.values()].find((e) => e.endMs === null) : undefined;
      c.totals = {
        pipeline, source: graph.pipelines[pipeline].source, countIn: d.countIn, countOut: d.countOut, faceCount: d.faceCount,
        dailyEventCount: d.eventCount, eventActive: open !== undefined, currentEventCountIn: open?.countIn ?? 0, atMs: c.seededToMs,
      };
    } catch (err) {
      this.o.log.warn(`console: reading today's counts of ${pipeline} failed: ${(err as Error).message}`);
    }
    this.counting.set(pipeline, c);
    return c;
  }

  private crossed(e: BusEvents['count.crossed']): void {
    const c = this.countingOf(e.pipeline, e.atMs);
    // A crossing is in the store before it is published: the seed has it already.
    if (!c || e.atMs <= c.seededToMs) return;
    const minuteMs = Math.floor(e.atMs / 60000) * 60000;
    const m = c.minutes.get(minuteMs) ?? { minuteMs, in: 0, out: 0 };
    m[e.direction]++;
    c.minutes.set(minuteMs, m);
  }

  private traffic(e: BusEvents['traffic.event']): void {
    const c = this.countingOf(e.pipeline, e.endMs ?? e.startMs);
    if (c) c.traffic.set(e.startMs, { startMs: e.startMs, endMs: e.endMs ?? null, countIn: e.countIn });
    const what = e.status === 'started' ? `started with ${e.countIn} in` : `ended after ${Math.round(((e.endMs ?? e.startMs) - e.startMs) / 1000)} s, ${e.countIn} in`;
    this.push({ kind: 'traffic', atMs: e.endMs ?? e.startMs, pipeline: e.pipeline, source: e.source, text: `${e.pipeline}: traffic event ${what}` });
  }

  private async fell(e: BusEvents['activity.fall']): Promise<void> {
    const fall: Fall = {
      id: this.nextFall++, pipeline: e.pipeline, source: e.source, trackId: e.trackId, atMs: e.atMs, box: e.box,
      confidence: e.confidence, impactSeverity: e.impactSeverity,
    };
    this.falls.push(fall);
    if (this.falls.length > FALLS_KEPT) this.falls.splice(0, this.falls.length - FALLS_KEPT);
    this.push({ kind: 'fall', atMs: e.atMs, pipeline: e.pipeline, source: e.source, fall: fall.id, text: `${e.pipeline}: track ${e.trackId} fell` });
    // The packet that showed the fall is still in its stages: the next frame at the sink is the snapshot.
    const shot = await this.o.live.snapshot(e.pipeline).catch(() => null);
    if (shot) Object.assign(fall, { snapshot: shot.image, width: shot.results.width, height: shot.results.height });
  }

  fall(id: number): Fall | undefined {
    return this.falls.find((f) => f.id === id);
  }

  /** Counting of every pipeline that counts: totals, crossings per minute, traffic events, occupancy. */
  counts(): object[] {
    const now = this.o.clock.now();
    const graph = this.o.graph();
    return Object.keys(graph.pipelines).map((id) => {
      const c = this.countingOf(id, now);
      const occupancy = this.occupancy.get(id) ?? null;
      if (!c) return occupancy ? { pipeline: id, counts: false, occupancy } : null;
      const t = c.totals;
      // The open event's count grows with every crossing; only the totals say so.
      const open = [...c.traffic.values()].find((e) => e.endMs === null);
      if (open && t?.eventActive) open.countIn = Math.max(open.countIn, t.currentEventCountIn);
      return {
        pipeline: id, counts: true, day: c.day, occupancy,
        in: t?.countIn ?? 0, out: t?.countOut ?? 0, faces: t?.faceCount ?? 0, events: t?.dailyEventCount ?? 0,
        eventActive: t?.eventActive ?? false, currentEventIn: t?.currentEventCountIn ?? 0,
        perMinute: [...c.minutes.values()].sort((a, b) => a.minuteMs - b.minuteMs),
        traffic: [...c.traffic.values()].sort((a, b) => b.startMs - a.startMs),
      };
    }).filter((x) => x !== null);
  }

  /** Falls, newest first, without their snapshot bytes. */
  fallList(): object[] {
    return [...this.falls].reverse().map(({ snapshot, ...f }) => ({ ...f, snapshot: snapshot ? `/api/falls/${f.id}.jpg` : null }));
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

/**
 * People counting for one pipeline: line crossings (LineCounter) → day totals in the store, daily reset
 * at a local time, and high-traffic events from the in-rate over a sliding window. The store is the
 * single source of truth, so counts survive a restart or a crash.
 */
import type { Store } from '../store/store.js';
import type { LineCrossing, TrackedObject } from '../../core/types.js';
import { LineCounter, type Anchor, type InDirection, type Point } from '../../stages/count/line-counter.js';

export interface TrafficEventOptions {
  /** Sliding window over which "in" crossings are counted. */
  windowSeconds: number;
  /** An event starts when at least this many people came in within the window. */
  minIn: number;
  /** It ends once the window count has stayed below `minIn` this long. */
  holdSeconds: number;
}

export interface PeopleCounterOptions {
  line: [Point, Point];
  in: InDirection;
  anchor?: Anchor;
  hysteresis?: number;
  /** Local time (HH:MM) at which the day's counts start again from zero. */
  resetAt: string;
  event: TrafficEventOptions;
}

export interface CounterStats {
  countIn: number;
  countOut: number;
  faceCount: number;
  dailyEventCount: number;
  eventActive: boolean;
  currentEventCountIn: number;
}

export type TrafficChange =
  | { status: 'started'; startMs: number; countIn: number }
  | { status: 'ended'; startMs: number; endMs: number; countIn: number };

/** The "day" a moment belongs to: its local date, shifted so that a day starts at `resetAt`. */
export function dayKey(ms: number, resetAt: string): string {
  const [h, m] = resetAt.split(':').map(Number);
  const d = new Date(ms);
  d.setHours(d.getHours() - h, d.getMinutes() - m);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

const pad = (n: number): string => String(n).padStart(2, '0');

export class PeopleCounter {
  private readonly line: LineCounter;
  private day: string;
  private insInWindow: number[];
  private openEventId: number | null;
  private belowSince: number | null = null;

  constructor(readonly pipeline: string, private readonly store: Store, private readonly opts: PeopleCounterOptions, nowMs: number) {
    this.line = new LineCounter({ line: opts.line, inDirection: opts.in, anchor: opts.anchor, hysteresis: opts.hysteresis });
    this.day = dayKey(nowMs, opts.resetAt);
    // Resume where the last run stopped: the open event and the crossings still inside the window.
    this.insInWindow = store.recentIns(pipeline, nowMs - opts.event.windowSeconds * 1000);
    this.openEventId = store.openEvent(pipeline)?.id ?? null;
  }

  get eventActive(): boolean {
    return this.openEventId !== null;
  }

  /** Counts this frame's tracks; every crossing is committed to the store before it is reported. */
  update(tracks: readonly TrackedObject[], width: number, height: number, nowMs: number): { crossings: LineCrossing[]; traffic: TrafficChange[] } {
    const traffic = this.rollDay(nowMs);
    const crossings: LineCrossing[] = [];
    for (const c of this.line.update(tracks, width, height, nowMs)) {
      this.store.recordCrossing(this.pipeline, this.day, c.trackId, c.direction, nowMs, this.openEventId);
      if (c.direction === 'in') this.insInWindow.push(nowMs);
      crossings.push({ trackId: c.trackId, direction: c.direction, atMs: nowMs });
    }
    traffic.push(...this.updateTraffic(nowMs));
    return { crossings, traffic };
  }

  /** Time passing without frames can still end an event or the day. */
  tick(nowMs: number): TrafficChange[] {
    return [...this.rollDay(nowMs), ...this.updateTraffic(nowMs)];
  }

  stats(): CounterStats {
    const c = this.store.dayCounters(this.pipeline, this.day);
    const open = this.openEventId !== null ? this.store.event(this.openEventId) : undefined;
    return {
      countIn: c.countIn, countOut: c.countOut, faceCount: c.faceCount, dailyEventCount: c.eventCount,
      eventActive: open !== undefined, currentEventCountIn: open?.countIn ?? 0,
    };
  }

  get currentDay(): string {
    return this.day;
  }

  private rollDay(nowMs: number): TrafficChange[] {
    const day = dayKey(nowMs, this.opts.resetAt);
    if (day === this.day) return [];
    // A new day: totals start from zero (they are per-day rows); an event running over midnight ends.
    const ended = this.endEvent(nowMs);
    this.day = day;
    this.line.reset();
    this.insInWindow = [];
    return ended;
  }

  private updateTraffic(nowMs: number): TrafficChange[] {
    const { windowSeconds, minIn, holdSeconds } = this.opts.event;
    const since = nowMs - windowSeconds * 1000;
    while (this.insInWindow.length && this.insInWindow[0] < since) this.insInWindow.shift();
    const busy = this.insInWindow.length >= minIn;
    if (this.openEventId === null) {
      if (!busy) return [];
      // The crossings that made the window busy belong to the event.
      const countIn = this.insInWindow.length;
      this.openEventId = this.store.startEvent(this.pipeline, this.day, nowMs, countIn);
      this.belowSince = null;
      return [{ status: 'started', startMs: nowMs, countIn }];
    }
    if (busy) { this.belowSince = null; return []; }
    this.belowSince ??= nowMs;
    return nowMs - this.belowSince >= holdSeconds * 1000 ? this.endEvent(nowMs) : [];
  }

  private endEvent(nowMs: number): TrafficChange[] {
    if (this.openEventId === null) return [];
    const row = this.store.endEvent(this.openEventId, nowMs);
    this.openEventId = null;
    this.belowSince = null;
    return row ? [{ status: 'ended', startMs: row.startMs, endMs: nowMs, countIn: row.countIn }] : [];
  }
}

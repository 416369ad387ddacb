/**
 * People counting policy for one pipeline: the crossings a line counter found → day totals in the store, a daily
 * reset at a local time, and high-traffic events from the in-rate over a sliding window. The store is the single
 * source of truth, so counts survive a restart or a crash. Geometry (which track crossed) is the count stage's.
 */
import type { LineCrossing } from '../../core/types.js';
import type { CountsTable } from './counts.js';
import { dayKey } from './day.js';

export interface TrafficEventOptions {
  /** Sliding window over which "in" crossings are counted. */
  windowSeconds: number;
  /** An event starts when at least this many people came in within the window. */
  minIn: number;
  /** It ends once the window count has stayed below `minIn` this long. */
  holdSeconds: number;
}

export interface PeopleCounterOptions {
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

export { dayKey };

export class PeopleCounter {
  private day: string;
  private insInWindow: number[];
  private openEventId: number | null;
  private belowSince: number | null = null;

  constructor(readonly pipeline: string, private readonly store: CountsTable, private readonly opts: PeopleCounterOptions, nowMs: number) {
    this.day = dayKey(nowMs, opts.resetAt);
    // Resume where the last run stopped: the open event and the crossings still inside the window.
    this.insInWindow = store.recentIns(pipeline, nowMs - opts.event.windowSeconds * 1000);
    this.openEventId = store.openEvent(pipeline)?.id ?? null;
  }

  get eventActive(): boolean {
    return this.openEventId !== null;
  }

  /**
   * Starts a new day when `nowMs` belongs to one: totals start from zero (they are per-day rows) and an event
   * running over the reset ends. `newDay` tells the caller to forget which side of the line tracks were on.
   */
  rollDay(nowMs: number): { newDay: boolean; traffic: TrafficChange[] } {
    const day = dayKey(nowMs, this.opts.resetAt);
    if (day === this.day) return { newDay: false, traffic: [] };
    const traffic = this.endEvent(nowMs);
    this.day = day;
    this.insInWindow = [];
    return { newDay: true, traffic };
  }

  /** Commits a frame's crossings (each before it is reported), then updates the traffic event. */
  record(found: readonly { trackId: number; direction: 'in' | 'out' }[], nowMs: number): { crossings: LineCrossing[]; traffic: TrafficChange[] } {
    const crossings: LineCrossing[] = [];
    for (const c of found) {
      this.store.recordCrossing(this.pipeline, this.day, c.trackId, c.direction, nowMs, this.openEventId);
      if (c.direction === 'in') this.insInWindow.push(nowMs);
      crossings.push({ trackId: c.trackId, direction: c.direction, atMs: nowMs });
    }
    return { crossings, traffic: this.updateTraffic(nowMs) };
  }

  /** Time passing without frames can still end an event or the day. */
  tick(nowMs: number): TrafficChange[] {
    return [...this.rollDay(nowMs).traffic, ...this.updateTraffic(nowMs)];
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

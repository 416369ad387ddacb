/**
 * Time, injected (as RxJS schedulers are): stages and transports read `ctx.clock` instead of Date.now() and
 * setInterval, so their timing is tested in virtual time (VirtualClock) rather than with wall-clock tolerances.
 */

/** Cancels a timer; calling it twice is harmless. */
export type Cancel = () => void;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms`; the process does not wait for it. */
  timeout(fn: () => void, ms: number): Cancel;
  /** Runs `fn` every `ms`; the process does not wait for it. */
  interval(fn: () => void, ms: number): Cancel;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  timeout(fn, ms) {
    const t = setTimeout(fn, Math.min(Number.isFinite(ms) ? ms : 2 ** 31 - 1, 2 ** 31 - 1));
    t.unref();
    return () => clearTimeout(t);
  },
  interval(fn, ms) {
    // Node runs a timer of more than 2^31-1 ms (or of NaN) after 1 ms: clamp, so a huge period never becomes a flood.
    const t = setInterval(fn, Math.min(Math.max(1, Number.isFinite(ms) ? ms : 2 ** 31 - 1), 2 ** 31 - 1));
    t.unref();
    return () => clearInterval(t);
  },
};

interface Pending { at: number; every: number; fn: () => void; id: number }

/** A clock that moves only when told to: `advance(ms)` runs every timer that falls due, in time order. */
export class VirtualClock implements Clock {
  private t: number;
  private readonly timers = new Map<number, Pending>();
  private nextId = 1;

  constructor(startMs = Date.UTC(2026, 0, 1, 12)) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  timeout(fn: () => void, ms: number): Cancel {
    return this.add(fn, ms, 0);
  }

  interval(fn: () => void, ms: number): Cancel {
    return this.add(fn, ms, Math.max(1, ms));
  }

  /** Moves time forward by `ms`, running due timers (an interval as often as it falls due). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers.values()].filter((p) => p.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.at);
      if (due.every) due.at += due.every;
      else this.timers.delete(due.id);
      due.fn();
    }
    this.t = end;
  }

  /** Sets the time (forward only), running what falls due on the way. */
  set(ms: number): void {
    if (ms > this.t) this.advance(ms - this.t);
  }

  private add(fn: () => void, ms: number, every: number): Cancel {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), every, fn, id });
    return () => { this.timers.delete(id); };
  }
}

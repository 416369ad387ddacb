/**
 * Admission of live frames to the shared inference pool. Every live pipeline (a camera) holds at most one frame
 * waiting — the newest: a newer one replaces it (`stale`). A waiting frame is admitted when the pool has a free slot
 * and its pipeline is under its own in-flight cap; among the cameras waiting, the one with the fewest frames in flight
 * per unit of weight goes first, then the one served least recently (weighted round robin). A frame that waited past
 * its pipeline's budget is dropped (`late`) instead of being run late. So the work queued on the pool never grows
 * with the number of cameras: past capacity, every camera drops frames at admission, fairly, and latency stays bounded.
 *
 * Slots bound the frames inside the stages of all live pipelines together; a frame holds one from admission to its
 * pipeline's sink. The pool itself runs older frames' tasks first (inference/pool.ts), so admitted work goes before
 * new work.
 */
import type { Clock } from '../core/clock.js';
import type { Frame } from '../core/types.js';

export interface AdmissionOptions {
  /** Frames of this pipeline inside its stages at once. */
  maxInFlight: number;
  /** Share of the slots relative to other pipelines (1 = equal). */
  weight: number;
  /** A frame older than this (ms since capture) when its turn comes is dropped as late; 0: no budget. */
  budgetMs: number;
  /** Runs an admitted frame through the pipeline. */
  dispatch(frame: Frame): void;
  /** Counts a frame not run: `stale` (a newer one replaced it), `late` (past its budget). */
  drop(frame: Frame, reason: 'stale' | 'late'): void;
}

/** One pipeline's place in the scheduler. */
export class Admission {
  inFlight = 0;
  waiting: Frame | null = null;
  servedAt = -Infinity;
  closed = false;

  constructor(private readonly scheduler: FrameScheduler, readonly o: AdmissionOptions) {}

  /** A new frame: it waits (replacing an older one), and is run as soon as the scheduler admits it. */
  offer(frame: Frame): void {
    if (this.closed) return;
    if (this.waiting) this.o.drop(this.waiting, 'stale');
    this.waiting = frame;
    this.scheduler.pump();
  }

  /** A frame of this pipeline reached its sink (or failed): its slot is free. */
  done(): void {
    if (this.inFlight > 0) this.inFlight--;
    this.scheduler.release();
  }

  /** The waiting frame, if any, taken back (a source that went down; the pipeline stopping). */
  discard(reason: 'stale' | 'late' = 'stale'): Frame | null {
    const f = this.waiting;
    this.waiting = null;
    if (f) this.o.drop(f, reason);
    return f;
  }

  /** Leaves the scheduler; a waiting frame is handed back to the caller (to drop or to run). */
  close(): Frame | null {
    this.closed = true;
    const f = this.waiting;
    this.waiting = null;
    this.scheduler.remove(this);
    return f;
  }

  get hasRoom(): boolean {
    return this.inFlight < this.o.maxInFlight;
  }
}

export interface SchedulerOptions {
  /** Frames of all live pipelines inside their stages at once (about 1.5 per inference worker keeps them busy). */
  slots: number;
  clock: Clock;
}

export class FrameScheduler {
  private readonly admissions = new Set<Admission>();
  private used = 0;
  private pumping = false;

  constructor(private readonly o: SchedulerOptions) {}

  get slots(): number {
    return this.o.slots;
  }

  get inFlight(): number {
    return this.used;
  }

  register(o: AdmissionOptions): Admission {
    const a = new Admission(this, o);
    this.admissions.add(a);
    return a;
  }

  remove(a: Admission): void {
    if (!this.admissions.delete(a)) return;
    this.used -= a.inFlight;
    a.inFlight = 0;
    this.pump();
  }

  release(): void {
    if (this.used > 0) this.used--;
    this.pump();
  }

  /** Admits waiting frames while slots are free: fewest in flight per weight first, then least recently served. */
  pump(): void {
    if (this.pumping) return; // dispatching a frame can finish synchronously and call back in here
    this.pumping = true;
    try {
      while (this.used < this.o.slots) {
        let best: Admission | null = null;
        for (const a of this.admissions) {
          if (!a.waiting || !a.hasRoom) continue;
          if (!best) { best = a; continue; }
          const load = a.inFlight / a.o.weight - best.inFlight / best.o.weight;
          if (load < 0 || (load === 0 && a.servedAt < best.servedAt)) best = a;
        }
        if (!best) break;
        const frame = best.waiting!;
        best.waiting = null;
        const now = this.o.clock.now();
        if (best.o.budgetMs > 0 && now - frame.capturedAtMs > best.o.budgetMs) {
          best.o.drop(frame, 'late');
          continue;
        }
        best.inFlight++;
        best.servedAt = now;
        this.used++;
        best.o.dispatch(frame);
      }
    } finally {
      this.pumping = false;
    }
  }
}

/**
 * The last minutes of figures, for the overview's plots: a reading of the process's own figures every few seconds,
 * and a ring of what happened between consecutive readings. Plots get it column by column (times, then one array per
 * series), as uPlot draws it.
 */
import type { Subscription } from 'rxjs';
import type { Cancel, Clock } from '../core/clock.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { InferencePool } from '../inference/pool.js';
import { readFigures, sampleBetween, type Reading, type Sample } from './figures.js';

/** Plot columns: `t` in seconds since the epoch, then each series aligned with it (null where it had no value). */
export interface Columns { stepSeconds: number; t: number[]; series: Record<string, (number | null)[]> }

/**
 * Packets that reached this node's bus since the last sample, per pipeline: the figures of pipelines another node runs
 * (a cluster gateway sees their packets, not their counters), with the latency from capture to arrival here.
 */
class Arrivals {
  private packets = new Map<string, number[]>();
  private readonly sub: Subscription;

  constructor(bus: EventBus, clock: Clock) {
    this.sub = bus.on('packet').subscribe((p) => {
      const list = this.packets.get(p.pipeline) ?? [];
      if (list.length < 10_000) list.push(clock.now() - p.frame.capturedAtMs);
      this.packets.set(p.pipeline, list);
    });
  }

  /** Frames per second and p95 latency (ms) of each pipeline since the last call. */
  take(seconds: number): Map<string, { fps: number; p95Ms: number | null }> {
    const out = new Map<string, { fps: number; p95Ms: number | null }>();
    for (const [id, lat] of this.packets) {
      lat.sort((a, b) => a - b);
      const p95Ms = lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.95))] : null;
      out.set(id, { fps: Math.round((lat.length / seconds) * 100) / 100, p95Ms });
    }
    this.packets = new Map();
    return out;
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

export class History {
  private readonly ring: Sample[] = [];
  private last: Reading | null = null;
  private readonly stop: Cancel;
  private busy = false;
  private readonly arrivals: Arrivals;

  constructor(private readonly o: {
    metrics: Metrics; pool: InferencePool; bus: EventBus; clock: Clock; log: Logger; stepMs: number; keepMs: number;
    /** Called after each sample (e.g. to refresh what the cluster says). */
    onSample?: () => void;
  }) {
    this.arrivals = new Arrivals(o.bus, o.clock);
    void this.take();
    this.stop = o.clock.interval(() => void this.take(), o.stepMs);
  }

  /** The newest sample (figures over the last step), if one was taken yet. */
  get latest(): Sample | undefined {
    return this.ring[this.ring.length - 1];
  }

  /** The newest reading: totals since the process started. */
  get reading(): Reading | null {
    return this.last;
  }

  get size(): number {
    return this.ring.length;
  }

  private async take(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const cur = await readFigures(this.o.metrics, this.o.pool, this.o.clock.now());
      if (this.last) {
        const sample = sampleBetween(this.last, cur);
        // Pipelines that run elsewhere have no counters here: what arrived from them stands in.
        for (const [id, a] of this.arrivals.take((cur.atMs - this.last.atMs) / 1000)) {
          sample.pipelines[id] ??= { fps: a.fps, p95Ms: a.p95Ms, dropsPerS: {}, stages: {}, remote: true };
        }
        this.ring.push(sample);
        const capacity = Math.ceil(this.o.keepMs / this.o.stepMs);
        if (this.ring.length > capacity) this.ring.splice(0, this.ring.length - capacity);
      }
      this.last = cur;
      this.o.onSample?.();
    } catch (err) {
      this.o.log.warn(`console: reading the figures failed: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  columns(): Columns {
    const t = this.ring.map((s) => Math.round(s.atMs / 1000));
    const series: Record<string, (number | null)[]> = {};
    const put = (key: string, i: number, v: number | null): void => {
      (series[key] ??= new Array<number | null>(this.ring.length).fill(null))[i] = v;
    };
    this.ring.forEach((s, i) => {
      for (const [id, f] of Object.entries(s.sources)) put(`in/${id}`, i, f.fpsIn);
      for (const [id, p] of Object.entries(s.pipelines)) {
        put(`fps/${id}`, i, p.fps);
        put(`p95/${id}`, i, p.p95Ms);
        put(`drops/${id}`, i, Math.round(Object.values(p.dropsPerS).reduce((a, b) => a + b, 0) * 100) / 100);
      }
      put('pool/utilization', i, Math.round(s.pool.utilization * 1000) / 10);
      put('pool/queue', i, s.pool.queue);
    });
    return { stepSeconds: this.o.stepMs / 1000, t, series };
  }

  close(): void {
    this.stop();
    this.arrivals.close();
  }
}

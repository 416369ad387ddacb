/**
 * Counting state that outlives a worker: the lease holder of a source writes each of its pipelines' day
 * totals to a JetStream KV bucket whenever they change; a worker that claims the source raises its own
 * store's totals to those values before the pipeline starts, so counts continue from where they were.
 */
import type { KV } from 'nats';
import type { Subscription } from 'rxjs';
import type { Graph } from '../config/graph.js';
import type { EventBus } from '../pipeline/event-bus.js';
import type { Logger } from '../pipeline/log.js';
import type { Store } from '../pipeline/store.js';
import { dayKey } from '../stages/count/people-counter.js';

interface SharedDay { day: string; countIn: number; countOut: number; faceCount: number; eventCount: number; atMs: number }

/** The `resetAt` of a pipeline's count stage, or null when it does not count. */
function resetAtOf(graph: Graph, pipeline: string): string | null {
  const stage = graph.pipelines[pipeline]?.stages.find((s) => s.use === 'count');
  if (!stage) return null;
  return ((stage.with as { resetAt?: string } | undefined)?.resetAt) ?? '00:00';
}

export class SharedCounts {
  private sub: Subscription | null = null;
  private readonly last = new Map<string, string>();
  private writing: Promise<unknown> = Promise.resolve();

  constructor(private readonly kv: KV, private readonly store: Store, private readonly graph: () => Graph,
    private readonly holds: (source: string) => boolean, private readonly log: Logger) {}

  /** Writes the totals of the pipelines this node holds, when they change (in order, one write at a time). */
  start(bus: EventBus): void {
    this.sub = bus.on('count.stats').subscribe((s) => {
      if (!this.holds(s.source)) return;
      const resetAt = resetAtOf(this.graph(), s.pipeline);
      if (resetAt === null) return;
      const day = dayKey(s.atMs, resetAt);
      const key = `${day} ${s.countIn} ${s.countOut} ${s.faceCount} ${s.dailyEventCount}`;
      if (this.last.get(s.pipeline) === key) return;
      this.last.set(s.pipeline, key);
      const value: SharedDay = { day, countIn: s.countIn, countOut: s.countOut, faceCount: s.faceCount, eventCount: s.dailyEventCount, atMs: s.atMs };
      this.writing = this.writing.then(() => this.kv.put(s.pipeline, JSON.stringify(value)))
        .catch((err: Error) => { this.last.delete(s.pipeline); this.log.warn(`could not share the counts of ${s.pipeline}: ${err.message}`); });
    });
  }

  /** Before `sources` start here: takes over the day totals their pipelines reached elsewhere. */
  async restore(sources: Iterable<string>): Promise<void> {
    const graph = this.graph();
    const wanted = new Set(sources);
    for (const [id, p] of Object.entries(graph.pipelines)) {
      const resetAt = resetAtOf(graph, id);
      if (!wanted.has(p.source) || resetAt === null) continue;
      try {
        const entry = await this.kv.get(id);
        if (!entry || entry.operation !== 'PUT') continue;
        const v = entry.json<SharedDay>();
        // Yesterday's totals stay yesterday's: the counter starts the new day from zero as it would anyway.
        if (v.day !== dayKey(Date.now(), resetAt)) continue;
        this.store.raiseDayCounters(id, v.day, v);
        this.last.delete(id);
        this.log.info(`pipeline ${id} resumes counting from in=${v.countIn} out=${v.countOut}`);
      } catch (err) {
        this.log.warn(`could not read the shared counts of ${id}: ${(err as Error).message}`);
      }
    }
  }

  async close(): Promise<void> {
    this.sub?.unsubscribe();
    await this.writing;
  }
}

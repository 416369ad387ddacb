/** What a stage is: a named factory of an RxJS operator over packets, with a schema for its options. */
import { type OperatorFunction, type Observable, defer, from, mergeMap, map, catchError, of } from 'rxjs';
import type { Graph } from '../config/graph.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { Packet } from '../core/types.js';
import type { InferencePool } from '../inference/pool.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { Store } from '../services/store/store.js';

export interface StageContext {
  pipeline: string;
  /** The source this pipeline reads. */
  source: string;
  stageId: string;
  graph: Graph;
  settings: ResolvedSettings;
  pool: InferencePool;
  bus: EventBus;
  metrics: Metrics;
  log: Logger;
  store: Store;
  /** Absolute path of a model declared in the graph's `models` section. */
  modelPath(modelId: string): string;
}

export type PacketField = 'detections' | 'tracks' | 'crossings' | 'faces' | 'poses' | 'activities' | 'jpeg' | 'depth';

export interface OptionProblem { path: (string | number)[]; message: string }

export interface StageDefinition<O = Record<string, unknown>> {
  name: string;
  /** JSON schema of the stage's `with:` options (defaults applied by `create`). */
  optionsSchema: object;
  /** Checks that need the whole graph (e.g. that a named model exists and has the right kind). */
  check?(options: O, graph: Graph): OptionProblem[];
  /** Packet fields this stage reads, which an upstream stage must provide (checked when the graph loads). */
  needs?: PacketField[];
  /** Packet fields this stage adds. */
  provides?: PacketField[];
  /** Models this stage needs loaded before the pipeline starts. */
  models?(options: O): string[];
  create(options: O, ctx: StageContext): OperatorFunction<Packet, Packet>;
}

/**
 * Runs `work` on up to `concurrency` packets at once and emits results in input order, so per-source
 * order holds even when several workers finish out of order. A failure on one packet is recorded on
 * the packet and counted; the packet continues so nothing is silently lost.
 */
export function orderedAsyncStage(ctx: StageContext, concurrency: number,
  work: (p: Packet) => Promise<Packet>): OperatorFunction<Packet, Packet> {
  const latency = ctx.metrics.stageLatency.labels(ctx.pipeline, ctx.stageId);
  const errors = ctx.metrics.stageErrors.labels(ctx.pipeline, ctx.stageId);
  // A stage that fails on every frame must not flood the log: the first failure, then one line per 100.
  let failures = 0;
  const logFailure = (seq: number, message: string): void => {
    if (failures++ % 100 === 0) ctx.log.warn(`stage failed on frame ${seq} (${failures} failures so far): ${message}`);
  };
  const timed = (p: Packet): Observable<Packet> => defer(() => {
    const t0 = performance.now();
    return from(work(p)).pipe(
      map((out) => { latency.observe((performance.now() - t0) / 1000); return out; }),
      catchError((err: Error) => {
        errors.inc();
        logFailure(p.frame.seq, err.message);
        return of({ ...p, errors: [...(p.errors ?? []), { stage: ctx.stageId, message: err.message }] });
      }),
    );
  });
  return (input) => inOrder(input, concurrency, timed);
}

/** mergeMap with bounded concurrency whose output keeps the input order. */
function inOrder<T, R>(input: Observable<T>, concurrency: number, fn: (v: T) => Observable<R>): Observable<R> {
  return defer(() => {
    let next = 0;
    let emit = 0;
    const ready = new Map<number, R>();
    return input.pipe(
      map((v) => [next++, v] as const),
      mergeMap(([i, v]) => fn(v).pipe(map((r) => [i, r] as const)), concurrency),
      mergeMap(([i, r]) => {
        ready.set(i, r);
        const out: R[] = [];
        while (ready.has(emit)) { out.push(ready.get(emit)!); ready.delete(emit); emit++; }
        return from(out);
      }),
    );
  });
}

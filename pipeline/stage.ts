/**
 * The stage contract: a named factory of an RxJS operator over packets, with a schema for its options (defaults
 * included, so `create` gets complete options), what it reads and adds, and the models it loads. The engine is
 * handed the stages (app/catalog.ts) and never names one.
 */
import { type OperatorFunction, type Observable, defer, from, mergeMap, map, catchError, of } from 'rxjs';
import type { Graph, OptionProblem, StageSchema } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { Clock } from '../core/clock.js';
import { publicMessage } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { Packet, PacketField } from '../core/types.js';
import type { InferencePool } from '../inference/pool.js';
import type { CountsTable } from '../services/counting/counts.js';
import type { FaceCrops } from '../services/faces/face-crops.js';

export type { PacketField };

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
  /** Counting's tables: day totals, crossings, events, track id blocks. */
  counts: CountsTable;
  /** Saved face crops. */
  faces: FaceCrops;
  /** Time: stages read it here, never from Date.now() or setInterval, so tests can run them in virtual time. */
  clock: Clock;
  /** Absolute path of a model declared in the graph's `models` section. */
  modelPath(modelId: string): string;
}

export interface StageDefinition<O = Record<string, unknown>> extends StageSchema<O> {
  /** Packet fields this stage reads, which an upstream stage must provide (checked when the graph loads). */
  needs?: readonly PacketField[];
  /** Packet fields this stage adds. */
  provides?: readonly PacketField[];
  /**
   * The pixels this stage reads: the frame's (`frame.data`, the default); `{ view: side }`, the detector view
   * (`Frame.view`, made by the sources of its pipelines to fit side × side, in GStreamer), falling back to the frame
   * when a frame has none; or `none` (it works on what other stages found). A file run whose stages read no full
   * frame gets views only (see `RuntimeDeps.fileRun`).
   */
  pixels?: 'frame' | 'none' | { view: number };
  /** Builds the stage's operator; `options` are complete (the schema's defaults filled in). */
  create(options: O, ctx: StageContext): OperatorFunction<Packet, Packet>;
}

/** The problem with a stage option that names a graph model, if any: unknown, or of another kind. */
export function checkModel(graph: Graph, id: string, kinds: readonly string[], stage: string): OptionProblem[] {
  const model = graph.models[id];
  if (!model) return [{ path: ['model'], message: `unknown model "${id}"; declare it under models: (defined: ${Object.keys(graph.models).join(', ') || 'none'})` }];
  if (!kinds.includes(model.kind)) {
    const wanted = kinds.length === 1 ? `kind "${kinds[0]}"` : `one of ${kinds.join(', ')}`;
    return [{ path: ['model'], message: `model "${id}" is of kind "${model.kind}"; ${stage} needs ${wanted}` }];
  }
  return [];
}

/** Looks a stage up by name (the catalog's list, handed to the engine). */
export type StageLookup = (name: string) => StageDefinition | undefined;

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
        return of({ ...p, errors: [...(p.errors ?? []), { stage: ctx.stageId, message: publicMessage(err, err.message) }] });
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

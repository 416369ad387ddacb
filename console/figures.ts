/**
 * The process's own figures, read from its metrics registry (the same counters and histograms Prometheus scrapes, read
 * in-process: no Prometheus needed), and what two readings say about the time between them: frame rates, drops per
 * second, latency quantiles from the histograms' bucket deltas, the worker pool's load.
 */
import type client from 'prom-client';
import type { Metrics } from '../core/metrics.js';
import type { InferencePool } from '../inference/pool.js';

/** Cumulative counts per bucket upper bound (seconds), as a Prometheus histogram keeps them. */
export interface Buckets { le: number[]; counts: number[] }

export interface Reading {
  atMs: number;
  busySeconds: number;
  threads: number;
  queue: number;
  framesIn: Record<string, number>;
  processed: Record<string, number>;
  /** pipeline → reason → frames. */
  dropped: Record<string, Record<string, number>>;
  /** pipeline → stage → packets. */
  stageErrors: Record<string, Record<string, number>>;
  stageLatency: Record<string, Record<string, Buckets>>;
  pipelineLatency: Record<string, Buckets>;
}

type Values = { value: number; labels: Record<string, string | number>; metricName?: string }[];

const valuesOf = async (m: client.Metric): Promise<Values> => (await m.get()).values as Values;

/** Sums a counter's samples by one or two labels. */
function byLabels(values: Values, a: string): Record<string, number>;
function byLabels(values: Values, a: string, b: string): Record<string, Record<string, number>>;
function byLabels(values: Values, a: string, b?: string): Record<string, number> | Record<string, Record<string, number>> {
  const out: Record<string, number> & Record<string, Record<string, number>> = {};
  for (const v of values) {
    const ka = String(v.labels[a]);
    if (b === undefined) (out as Record<string, number>)[ka] = ((out as Record<string, number>)[ka] ?? 0) + v.value;
    else {
      const inner = ((out as Record<string, Record<string, number>>)[ka] ??= {});
      const kb = String(v.labels[b]);
      inner[kb] = (inner[kb] ?? 0) + v.value;
    }
  }
  return out;
}

/** A histogram's buckets per label value(s). */
function bucketsBy(values: Values, key: (labels: Record<string, string | number>) => string): Map<string, Buckets> {
  const out = new Map<string, Buckets>();
  for (const v of values) {
    if (!v.metricName?.endsWith('_bucket')) continue;
    const k = key(v.labels);
    const b = out.get(k) ?? { le: [], counts: [] };
    b.le.push(v.labels.le === '+Inf' ? Infinity : Number(v.labels.le));
    b.counts.push(v.value);
    out.set(k, b);
  }
  return out;
}

export async function readFigures(metrics: Metrics, pool: InferencePool, atMs: number): Promise<Reading> {
  const [framesIn, processed, dropped, stageErrors, stageLatency, pipelineLatency] = await Promise.all([
    valuesOf(metrics.framesIn), valuesOf(metrics.framesProcessed), valuesOf(metrics.framesDropped),
    valuesOf(metrics.stageErrors), valuesOf(metrics.stageLatency), valuesOf(metrics.pipelineLatency),
  ]);
  const stages: Record<string, Record<string, Buckets>> = {};
  for (const [k, b] of bucketsBy(stageLatency, (l) => `${l.pipeline}\n${l.stage}`)) {
    const [p, s] = k.split('\n');
    (stages[p] ??= {})[s] = b;
  }
  return {
    atMs, busySeconds: pool.busySeconds(), threads: pool.workers, queue: pool.queueSize,
    framesIn: byLabels(framesIn, 'source'),
    processed: byLabels(processed, 'pipeline'),
    dropped: byLabels(dropped, 'pipeline', 'reason'),
    stageErrors: byLabels(stageErrors, 'pipeline', 'stage'),
    stageLatency: stages,
    pipelineLatency: Object.fromEntries(bucketsBy(pipelineLatency, (l) => String(l.pipeline))),
  };
}

/**
 * The q-quantile (seconds) of what a histogram observed between two readings, interpolated linearly inside its
 * bucket as Prometheus's histogram_quantile does; null when nothing was observed.
 */
export function quantile(q: number, cur: Buckets | undefined, prev?: Buckets): number | null {
  if (!cur) return null;
  const counts = cur.counts.map((c, i) => c - (prev?.le[i] === cur.le[i] ? prev.counts[i] : 0));
  const total = counts[counts.length - 1];
  if (!(total > 0)) return null;
  const rank = q * total;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] < rank) continue;
    const upper = cur.le[i];
    const lower = i === 0 ? 0 : cur.le[i - 1];
    // Past the last finite bound nothing is known but that bound.
    if (!Number.isFinite(upper)) return lower;
    const below = i === 0 ? 0 : counts[i - 1];
    const inBucket = counts[i] - below;
    return inBucket > 0 ? lower + (upper - lower) * ((rank - below) / inBucket) : upper;
  }
  return null;
}

export interface StageFigures { p50Ms: number | null; p95Ms: number | null; errorsPerS: number }
export interface PipelineFigures {
  fps: number;
  /** Frames dropped per second, by reason. */
  dropsPerS: Record<string, number>;
  /** Capture (appsink) to sink. */
  p95Ms: number | null;
  stages: Record<string, StageFigures>;
  /** Figures of a pipeline another node runs, from the packets that arrived here (latency: capture to arrival here). */
  remote?: boolean;
}

/** What happened between two readings. */
export interface Sample {
  atMs: number;
  sources: Record<string, { fpsIn: number }>;
  pipelines: Record<string, PipelineFigures>;
  pool: { utilization: number; queue: number; threads: number };
}

const ms = (s: number | null): number | null => (s === null ? null : Math.round(s * 10000) / 10);
const perSecond = (cur: number, prev: number | undefined, seconds: number): number =>
  Math.max(0, Math.round(((cur - (prev ?? 0)) / seconds) * 100) / 100);

export function sampleBetween(prev: Reading, cur: Reading): Sample {
  const seconds = Math.max(0.001, (cur.atMs - prev.atMs) / 1000);
  const pipelines: Record<string, PipelineFigures> = {};
  const ids = new Set([...Object.keys(cur.processed), ...Object.keys(cur.dropped), ...Object.keys(cur.pipelineLatency)]);
  for (const id of ids) {
    const stages: Record<string, StageFigures> = {};
    for (const [stage, b] of Object.entries(cur.stageLatency[id] ?? {})) {
      const before = prev.stageLatency[id]?.[stage];
      stages[stage] = {
        p50Ms: ms(quantile(0.5, b, before)), p95Ms: ms(quantile(0.95, b, before)),
        errorsPerS: perSecond(cur.stageErrors[id]?.[stage] ?? 0, prev.stageErrors[id]?.[stage], seconds),
      };
    }
    for (const [stage, n] of Object.entries(cur.stageErrors[id] ?? {})) {
      stages[stage] ??= { p50Ms: null, p95Ms: null, errorsPerS: perSecond(n, prev.stageErrors[id]?.[stage], seconds) };
    }
    pipelines[id] = {
      fps: perSecond(cur.processed[id] ?? 0, prev.processed[id], seconds),
      dropsPerS: Object.fromEntries(Object.entries(cur.dropped[id] ?? {}).map(([r, n]) => [r, perSecond(n, prev.dropped[id]?.[r], seconds)])),
      p95Ms: ms(quantile(0.95, cur.pipelineLatency[id], prev.pipelineLatency[id])),
      stages,
    };
  }
  const busy = Math.max(0, cur.busySeconds - prev.busySeconds);
  return {
    atMs: cur.atMs,
    sources: Object.fromEntries(Object.keys(cur.framesIn).map((id) => [id, { fpsIn: perSecond(cur.framesIn[id], prev.framesIn[id], seconds) }])),
    pipelines,
    pool: { utilization: Math.min(1, Math.round((busy / (seconds * Math.max(1, cur.threads))) * 1000) / 1000), queue: cur.queue, threads: cur.threads },
  };
}

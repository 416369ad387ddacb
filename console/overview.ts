/**
 * The overview page's figures: every source and pipeline of the graph with its state (wherever it runs), the latest
 * rates from the process's own figures, totals since start, the worker pool's load, and on a cluster the NATS
 * connection and who holds each source's lease.
 */
import type { ClusterLeases } from '../pipeline/states.js';
import type { ConsoleContext } from './context.js';
import type { Reading, Sample } from './figures.js';

/** A URI as it may be shown: credentials of an RTSP camera never leave the server. */
export function shownUri(uri: string): string {
  return uri.replace(/^([a-z]+:\/\/)[^/@]*@/i, '$1***@');
}

export function overview(ctx: ConsoleContext, latest: Sample | undefined, reading: Reading | null, leases: ClusterLeases | null, leasesError: string | null) {
  const graph = ctx.graph();
  const rt = ctx.runtime();
  const now = ctx.clock.now();
  const sources = Object.values(graph.sources).map((spec) => {
    const status = ctx.states.source(spec.id);
    const local = rt.sources.get(spec.id);
    return {
      id: spec.id, uri: shownUri(spec.uri), live: local?.live ?? (!spec.uri.startsWith('file://') || spec.realtime),
      state: status?.state ?? 'unknown', reason: status?.reason ?? null, attempt: status?.attempt ?? null,
      fpsIn: latest?.sources[spec.id]?.fpsIn ?? null,
      framesIn: reading?.framesIn[spec.id] ?? null,
      lastFrameAgeS: local?.lastFrameAt ? Math.round((now - local.lastFrameAt) / 100) / 10 : null,
      runsHere: local !== undefined,
      holder: leases?.holders[spec.id] ?? null,
    };
  });
  const pipelines = Object.values(graph.pipelines).map((spec) => {
    const status = ctx.states.pipeline(spec.id);
    const f = latest?.pipelines[spec.id];
    return {
      id: spec.id, source: spec.source,
      state: status?.state ?? 'unknown', reason: status?.reason ?? null,
      fps: f?.fps ?? null, p95Ms: f?.p95Ms ?? null, dropsPerS: f?.dropsPerS ?? {}, measuredHere: f ? !f.remote : null,
      processed: reading?.processed[spec.id] ?? null, dropped: reading?.dropped[spec.id] ?? {},
      stages: spec.stages.map((s) => ({
        id: s.id, use: s.use,
        p50Ms: f?.stages[s.id]?.p50Ms ?? null, p95Ms: f?.stages[s.id]?.p95Ms ?? null,
        errorsPerS: f?.stages[s.id]?.errorsPerS ?? 0, errors: reading?.stageErrors[spec.id]?.[s.id] ?? 0,
      })),
      runsHere: rt.pipelines.has(spec.id),
      holder: leases?.holders[spec.source] ?? null,
    };
  });
  const cluster = ctx.cluster && {
    nodeId: ctx.cluster.nodeId, role: ctx.cluster.role, nats: ctx.cluster.connection(),
    workers: leases?.workers ?? [], leasesReadAtMs: leases?.readAtMs ?? null, leasesError,
  };
  return {
    atMs: now, sampledAtMs: latest?.atMs ?? null,
    node: { role: ctx.cluster?.role ?? 'single', id: ctx.cluster?.nodeId ?? null },
    sources, pipelines,
    pool: latest?.pool ?? (reading ? { utilization: null, queue: reading.queue, threads: reading.threads } : null),
    cluster: cluster ?? null,
  };
}

/**
 * The state of every source and pipeline of the graph, wherever it runs: on one node, its runtime's; in a
 * cluster, what the state events on the bus said last (they cross the results bridge), seeded when the node
 * starts by asking every node for its states (cluster/shared-states.ts). Transports that report states (the
 * pose stream's `system_event`) read this instead of the local runtime, so they answer the same on any
 * gateway.
 */
import type { Subscription } from 'rxjs';
import type { Clock } from '../core/clock.js';
import type { EventBus, PipelineState, SourceState } from '../core/events.js';
import type { Runtime } from './runtime.js';

/** A state, why (a retrying source's reason), and for a retrying source its attempt. */
export interface Status<S> { state: S; reason?: string; attempt?: number; atMs: number }

export interface StatesView {
  source(id: string): Status<SourceState> | undefined;
  pipeline(id: string): Status<PipelineState> | undefined;
}

/** A node's own runtime: the states it runs. */
export class RuntimeStates implements StatesView {
  constructor(private readonly runtime: () => Runtime, private readonly clock: Clock) {}

  source(id: string): Status<SourceState> | undefined {
    const s = this.runtime().sources.get(id)?.state.value;
    return s && { state: s.state, reason: s.reason, attempt: s.attempt, atMs: this.clock.now() };
  }

  pipeline(id: string): Status<PipelineState> | undefined {
    const p = this.runtime().pipelines.get(id);
    return p && { state: p.state, reason: p.reason, atMs: this.clock.now() };
  }

  /** Every state this runtime holds (what a node answers when the cluster asks). */
  snapshot(): StatesSnapshot {
    const rt = this.runtime();
    return {
      sources: Object.fromEntries([...rt.sources.keys()].map((id) => [id, this.source(id)!])),
      pipelines: Object.fromEntries([...rt.pipelines].map(([id, p]) => [id, { state: p.state, reason: p.reason, atMs: this.clock.now() }])),
    };
  }
}

export interface StatesSnapshot {
  sources: Record<string, Status<SourceState>>;
  pipelines: Record<string, Status<PipelineState>>;
}

/** States as the bus reports them, from every node: the latest report of each source and pipeline wins. */
export class BusStates implements StatesView {
  private readonly sources = new Map<string, Status<SourceState>>();
  private readonly pipelines = new Map<string, Status<PipelineState>>();
  private readonly sub: Subscription;

  constructor(bus: EventBus) {
    this.sub = bus.on('source.state').subscribe((e) => this.put(this.sources, e.source, { state: e.state, reason: e.reason, attempt: e.attempt, atMs: e.atMs }));
    this.sub.add(bus.on('pipeline.state').subscribe((e) => this.put(this.pipelines, e.pipeline, { state: e.state, reason: e.reason, atMs: e.atMs })));
  }

  /** Takes in a node's snapshot; a report newer than it (an event already received) is kept. */
  merge(s: StatesSnapshot): void {
    for (const [id, v] of Object.entries(s.sources)) this.put(this.sources, id, v);
    for (const [id, v] of Object.entries(s.pipelines)) this.put(this.pipelines, id, v);
  }

  private put<S>(map: Map<string, Status<S>>, id: string, v: Status<S>): void {
    const have = map.get(id);
    // A stopped report from a node giving a source up must not hide the running one of the node taking it:
    // the newer report wins, and at the same moment a running one does.
    if (have && (have.atMs > v.atMs || (have.atMs === v.atMs && have.state === 'running'))) return;
    map.set(id, v);
  }

  source(id: string): Status<SourceState> | undefined { return this.sources.get(id); }
  pipeline(id: string): Status<PipelineState> | undefined { return this.pipelines.get(id); }
  /** Every pipeline reported so far. */
  pipelineIds(): string[] { return [...this.pipelines.keys()]; }

  close(): void { this.sub.unsubscribe(); }
}

/** A cluster node's connection to NATS, as pages show it. */
export interface ClusterConnection { connected: boolean; server: string; reconnects: number }

/** Who holds each source's lease, and which workers are present, as last read from the cluster. */
export interface ClusterLeases { holders: Record<string, string>; workers: string[]; readAtMs: number }

/** This node's place in a cluster, for pages that show it (a single node has none). */
export interface ClusterView {
  nodeId: string;
  role: 'worker' | 'gateway' | 'all';
  connection(): ClusterConnection;
  /** Read from the cluster's lease and presence buckets; rejects when NATS does not answer in time. */
  leases(): Promise<ClusterLeases>;
}

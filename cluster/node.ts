/**
 * A Sightline node in a NATS cluster. By role:
 * - worker: holds leases on sources and runs only their pipelines, forwards its bus events, answers
 *   inference requests, shares its counting state; serves no protocol but metrics.
 * - gateway: runs no pipeline; republishes every worker's events on its bus (so every transport serves
 *   every source) and sends client-sent images to the workers.
 * - all: both, with inference on its own pool.
 */
import os from 'node:os';
import { connect, type ConnectionOptions, type KV, type NatsConnection, type Subscription } from 'nats';
import type { Graph } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { EventBus } from '../core/events.js';
import { diffGraphs, type GraphChanges } from '../pipeline/graph-diff.js';
import { LocalInference, type InferenceClient } from '../inference/client.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { Store } from '../services/store/store.js';
import type { InferencePool } from '../inference/pool.js';
import { ClusterBridge } from './bridge.js';
import { LeaseKeeper } from './leases.js';
import { RemoteInference, serveInference } from './remote-inference.js';
import { SharedCounts } from './shared-counts.js';
import { SharedFaces } from './shared-faces.js';
import { sharedEmbeddingKey } from './shared-key.js';
import { SharedPersons } from './shared-persons.js';
import { SharedReconstruction } from './shared-reconstruction.js';
import { ReconstructionSessions } from '../services/reconstruction/sessions.js';
import type { KnownPersons } from '../services/persons/known-persons.js';
import type { LooksDemand, PersonLooks } from '../services/looks/person-looks.js';
import { RemoteLooks, serveLooks } from './shared-looks.js';
import { askStates, serveStates } from './shared-states.js';
import { BusStates, type RuntimeStates, type StatesView } from '../pipeline/states.js';

export type Role = ResolvedSettings['role'];

export interface ClusterDeps {
  settings: ResolvedSettings;
  bus: EventBus;
  metrics: Metrics;
  pool: InferencePool;
  store: Store;
  log: Logger;
  /** The node's own live looks (WatchMe): served for gateways on nodes that run pipelines. */
  looks: PersonLooks;
  /** The node's own runtime states: answered to nodes that ask (a gateway starting). */
  runtimeStates: RuntimeStates;
}

/** Only the held sources, and the pipelines that read them (models and transports stay). */
export function graphFor(graph: Graph, held: ReadonlySet<string>): Graph {
  return {
    ...graph,
    sources: Object.fromEntries(Object.entries(graph.sources).filter(([id]) => held.has(id))),
    pipelines: Object.fromEntries(Object.entries(graph.pipelines).filter(([, p]) => held.has(p.source))),
  };
}

/** Sources some pipeline reads: the ones worth a lease. */
const leasedSources = (graph: Graph): string[] =>
  [...new Set(Object.values(graph.pipelines).map((p) => p.source))].filter((s) => s in graph.sources).sort();

export class ClusterNode {
  readonly nodeId: string;
  readonly role: Role;
  /** For transports on a gateway: inference on the workers. Null where the local pool serves. */
  readonly remoteInference: InferenceClient | null;
  /** For transports: live looks from the node that runs each pipeline (announced to the cluster's workers). */
  readonly looks: LooksDemand;
  private readonly remoteLooks: RemoteLooks | null;
  private looksServer: { close(): void } | null = null;
  /** For transports on a node that serves protocols: every node's states, as reported on the bus. */
  readonly states: StatesView;
  private readonly busStates: BusStates | null;
  private statesSub: Subscription | null = null;
  private graph!: Graph;
  private runtime!: Runtime;
  private leases: LeaseKeeper | null = null;
  private counts: SharedCounts | null = null;
  private readonly bridge: ClusterBridge;
  private inferSub: Subscription | null = null;
  private applying: Promise<unknown> = Promise.resolve();
  private held: ReadonlySet<string> = new Set();
  private sharedPersons: SharedPersons | null = null;
  private sharedFaces: SharedFaces | null = null;
  /** The WatchMe token key every node uses (set by shareState on nodes that serve protocols). */
  embeddingKey: Buffer | undefined;
  /** Reconstruction sessions every gateway shares (set by shareState on nodes that serve protocols). */
  reconstructionSessions: ReconstructionSessions | undefined;
  private sharedReconstruction: SharedReconstruction | null = null;

  private constructor(readonly nc: NatsConnection, private readonly d: ClusterDeps) {
    this.role = d.settings.role;
    this.nodeId = d.settings.nodeId || `${os.hostname()}-${process.pid}`;
    this.bridge = new ClusterBridge(nc, d.bus, d.metrics, d.log.child('bridge'));
    this.remoteInference = this.role === 'gateway' ? new RemoteInference(nc, d.metrics, new LocalInference(d.pool)) : null;
    this.remoteLooks = this.servesProtocols ? new RemoteLooks(nc, this.runsPipelines ? d.looks : null) : null;
    this.looks = this.remoteLooks ?? d.looks;
    this.busStates = this.servesProtocols ? new BusStates(d.bus) : null;
    this.states = this.busStates ?? d.runtimeStates;
  }

  static async join(d: ClusterDeps): Promise<ClusterNode> {
    const log = d.log.child('cluster');
    const opts: ConnectionOptions = {
      servers: d.settings.cluster.split(',').map((s) => s.trim()).filter(Boolean),
      name: `sightline-${d.settings.role}-${d.settings.nodeId || `${os.hostname()}-${process.pid}`}`,
      // Keep trying for ever: a NATS restart must not end the node; the client buffers publishes meanwhile.
      reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500, waitOnFirstConnect: true,
      // A dead server is noticed within a few seconds, well inside a lease's lifetime.
      pingInterval: 2000, maxPingOut: 2,
      // A node does not receive its own results back (role all serves them from its bus already).
      noEcho: true,
    };
    const nc = await connect(opts);
    const node = new ClusterNode(nc, d);
    d.metrics.clusterConnected.set(1);
    log.info(`joined ${nc.getServer()} as ${node.role} ${node.nodeId}`);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') { d.metrics.clusterConnected.set(0); log.warn(`disconnected from ${String(s.data)}`); }
        if (s.type === 'reconnect') { d.metrics.clusterConnected.set(1); d.metrics.clusterReconnects.inc(); log.info(`reconnected to ${String(s.data)}`); }
      }
    })();
    return node;
  }

  /** The graph as configured: every source, including those other nodes run. */
  get configured(): Graph {
    return this.graph;
  }

  get runsPipelines(): boolean {
    return this.role !== 'gateway';
  }

  get servesProtocols(): boolean {
    return this.role !== 'worker';
  }

  /**
   * Before the transports mount, on a node that serves them: the known persons and the reconstruction
   * sessions follow the cluster's streams of changes (caught up first) and the token key comes from the cluster.
   */
  async shareState(persons: KnownPersons): Promise<void> {
    if (!this.servesProtocols) return;
    const { settings, store, log, metrics } = this.d;
    const replicas = Math.max(1, settings.clusterReplicas);
    this.embeddingKey = await sharedEmbeddingKey(this.nc, settings.dataDir, replicas);
    const nodes = await askStates(this.nc, this.busStates!, log.child('states'));
    log.info(`states of ${nodes} node(s) that run pipelines received`);
    this.sharedPersons = await SharedPersons.start(this.nc, persons, store, log.child('persons'), metrics, replicas);
    this.reconstructionSessions = new ReconstructionSessions(store, settings.dataDir);
    this.sharedReconstruction = await SharedReconstruction.start(this.nc, this.reconstructionSessions, store, log.child('reconstruction'), metrics, replicas);
    (await this.faces()).follow();
  }

  /** The faces bucket, opened once for both roles of a node (saving on a worker, copying on a gateway). */
  private async faces(): Promise<SharedFaces> {
    const { settings, store, log, metrics } = this.d;
    this.sharedFaces ??= await SharedFaces.open(this.nc, store, settings.dataDir, log.child('faces'), metrics, Math.max(1, settings.clusterReplicas));
    return this.sharedFaces;
  }

  /** The graph the local runtime starts with: none of the sources until leases are held. */
  initialGraph(graph: Graph): Graph {
    this.graph = graph;
    return this.runsPipelines ? graphFor(graph, new Set()) : graph;
  }

  async start(graph: Graph, runtime: Runtime): Promise<void> {
    this.graph = graph;
    this.runtime = runtime;
    if (this.servesProtocols) this.bridge.receive();
    if (!this.runsPipelines) return;
    const { settings, metrics, log, pool, store, bus } = this.d;
    const js = this.nc.jetstream();
    const ttl = Math.max(1, settings.leaseSeconds) * 1000;
    // Created by the first node that needs them; an existing bucket is used as it is (its TTL included).
    const replicas = Math.max(1, settings.clusterReplicas);
    const [leases, workers, counts] = await Promise.all([
      js.views.kv('sightline-leases', { ttl, history: 1, replicas }),
      js.views.kv('sightline-workers', { ttl, history: 1, replicas }),
      js.views.kv('sightline-counts', { history: 1, replicas }),
    ]) as [KV, KV, KV];
    this.counts = new SharedCounts(counts, store, () => this.graph, (s) => this.held.has(s), log.child('counts'));
    this.counts.start(bus);
    (await this.faces()).share(bus, () => this.graph, (s) => this.held.has(s));
    this.bridge.forward();
    this.inferSub = serveInference(this.nc, pool, settings.modelDir, this.nodeId, metrics, log.child('infer'));
    this.looksServer = serveLooks(this.nc, this.d.looks, metrics, log.child('looks'));
    this.statesSub = serveStates(this.nc, this.d.runtimeStates, log.child('states'));
    this.leases = new LeaseKeeper({
      nodeId: this.nodeId, ttlMs: ttl, leases, workers, log: log.child('leases'), metrics,
      sources: () => leasedSources(this.graph),
      apply: (held) => this.runHeld(held),
    });
    this.leases.start();
  }

  /** A graph reload: a worker re-derives what it runs; a gateway only takes the new graph. */
  async apply(next: Graph): Promise<GraphChanges> {
    const before = this.graph;
    this.graph = next;
    if (!this.runsPipelines) {
      this.runtime.graph = next;
      return diffGraphs(before, next);
    }
    return this.serial(() => this.runtime.apply(graphFor(next, this.held)));
  }

  private async runHeld(held: ReadonlySet<string>): Promise<void> {
    const added = [...held].filter((s) => !this.held.has(s));
    await this.serial(async () => {
      // Counts first, so the pipelines start from the totals reached on the node that ran them before.
      await this.counts?.restore(added);
      this.held = held;
      await this.runtime.apply(graphFor(this.graph, held));
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.applying.then(fn, fn);
    this.applying = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    await this.leases?.stop();
    await this.counts?.close();
    await this.sharedPersons?.close();
    await this.sharedReconstruction?.close();
    await this.sharedFaces?.close();
    this.bridge.close();
    this.remoteLooks?.close();
    this.looksServer?.close();
    this.statesSub?.unsubscribe();
    this.busStates?.close();
    this.inferSub?.unsubscribe();
    await this.nc.drain().catch(() => this.nc.close());
    this.d.metrics.clusterConnected.set(0);
  }
}

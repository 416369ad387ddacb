/**
 * A Sightline node in a NATS cluster. By role:
 * - worker: holds leases on sources and runs only their pipelines, forwards its bus events, answers
 *   inference requests, shares its counting state; serves no protocol but metrics.
 * - gateway: runs no pipeline; republishes every worker's events on its bus (so every transport serves
 *   every source) and sends client-sent images to the workers.
 * - all: both, with inference on its own pool.
 * The node builds the seams the app hands to transports (inference client, persons and sessions writers, looks,
 * states, the token key) from their NATS implementations; nothing is assigned into a service afterwards.
 */
import os from 'node:os';
import { connect, type ConnectionOptions, type KV, type NatsConnection, type Subscription } from 'nats';
import type { Graph } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { EventBus, GraphChanges } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import { LocalInference, type InferenceClient } from '../inference/client.js';
import type { InferencePool } from '../inference/pool.js';
import { diffGraphs } from '../pipeline/graph-diff.js';
import type { Runtime } from '../pipeline/runtime.js';
import { BusStates, type RuntimeStates, type StatesView } from '../pipeline/states.js';
import type { CountsTable } from '../services/counting/counts.js';
import type { FaceCrops } from '../services/faces/face-crops.js';
import type { LooksDemand, PersonLooks } from '../services/looks/person-looks.js';
import type { KnownPersons, PersonsWriter } from '../services/persons/known-persons.js';
import type { ReconstructionSessions, SessionsWriter } from '../services/reconstruction/sessions.js';
import type { Store } from '../services/store/store.js';
import { ClusterBridge } from './bridge.js';
import { NatsClusterView } from './cluster-view.js';
import { LeaseKeeper } from './leases.js';
import { RemoteInference, serveInference } from './remote-inference.js';
import { SharedCounts } from './shared-counts.js';
import { SharedFaces } from './shared-faces.js';
import { sharedEmbeddingKey } from './shared-key.js';
import { RemoteLooks, serveLooks } from './shared-looks.js';
import { SharedPersons } from './shared-persons.js';
import { SharedReconstruction } from './shared-reconstruction.js';
import { askStates, serveStates } from './shared-states.js';

export type Role = ResolvedSettings['role'];

export interface ClusterDeps {
  settings: ResolvedSettings;
  bus: EventBus;
  metrics: Metrics;
  pool: InferencePool;
  store: Store;
  counts: CountsTable;
  faces: FaceCrops;
  log: Logger;
  /** The node's own live looks (WatchMe): served for gateways on nodes that run pipelines. */
  looks: PersonLooks;
  /** The node's own runtime states: answered to nodes that ask (a gateway starting). */
  runtimeStates: RuntimeStates;
  /** This node's copies of the shared state, which the cluster's logs keep up to date. */
  persons: KnownPersons;
  sessions: ReconstructionSessions;
  /** The writers a node that serves no protocol keeps (it never writes through them). */
  localPersonsWriter: PersonsWriter;
  localSessionsWriter: SessionsWriter;
  localEmbeddingKey(): Buffer;
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
  /** For transports: model work on client images (on a gateway, the workers'; else the local pool). */
  readonly inference: InferenceClient;
  /** For transports: live looks from the node that runs each pipeline (announced to the cluster's workers). */
  readonly looks: LooksDemand;
  /** For transports on a node that serves protocols: every node's states, as reported on the bus. */
  readonly states: StatesView;
  /** For pages: the NATS connection, lease holders and workers present. */
  readonly view: NatsClusterView;
  personsWriter: PersonsWriter;
  sessionsWriter: SessionsWriter;
  embeddingKey: () => Buffer;
  private readonly remoteLooks: RemoteLooks | null;
  private looksServer: { close(): void } | null = null;
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
  private sharedReconstruction: SharedReconstruction | null = null;
  private closing: Promise<void> | null = null;

  private constructor(readonly nc: NatsConnection, private readonly d: ClusterDeps) {
    this.role = d.settings.role;
    this.nodeId = d.settings.nodeId || `${os.hostname()}-${process.pid}`;
    this.bridge = new ClusterBridge(nc, d.bus, d.metrics, d.log.child('bridge'));
    this.view = new NatsClusterView(nc, this.nodeId, this.role, d.settings);
    const local = new LocalInference(d.pool);
    this.inference = this.role === 'gateway' ? new RemoteInference(nc, d.metrics, local) : local;
    this.remoteLooks = this.servesProtocols ? new RemoteLooks(nc, this.runsPipelines ? d.looks : null) : null;
    this.looks = this.remoteLooks ?? d.looks;
    this.busStates = this.servesProtocols ? new BusStates(d.bus) : null;
    this.states = this.busStates ?? d.runtimeStates;
    this.personsWriter = d.localPersonsWriter;
    this.sessionsWriter = d.localSessionsWriter;
    this.embeddingKey = d.localEmbeddingKey;
  }

  /**
   * Connects and, on a node that serves protocols, follows the shared state before anything answers: the known
   * persons and reconstruction sessions (their logs caught up), saved faces, every node's states and the token key.
   */
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
        if (s.type === 'disconnect') { d.metrics.clusterConnected.set(0); node.view.disconnected(); log.warn(`disconnected from ${String(s.data)}`); }
        if (s.type === 'reconnect') {
          d.metrics.clusterConnected.set(1);
          d.metrics.clusterReconnects.inc();
          node.view.reconnected();
          log.info(`reconnected to ${String(s.data)}`);
        }
      }
    })();
    if (node.servesProtocols) await node.shareState();
    return node;
  }

  get runsPipelines(): boolean {
    return this.role !== 'gateway';
  }

  get servesProtocols(): boolean {
    return this.role !== 'worker';
  }

  /** The graph as configured: every source, including those other nodes run. */
  get configured(): Graph {
    return this.graph;
  }

  private async shareState(): Promise<void> {
    const { settings, store, log, metrics, persons, sessions } = this.d;
    const replicas = Math.max(1, settings.clusterReplicas);
    const key = await sharedEmbeddingKey(this.nc, settings.dataDir, replicas);
    this.embeddingKey = () => key;
    // Events first, then the snapshot: a state a worker reports between the two would otherwise be lost until
    // its next change (the snapshot predates it and the event came before anyone listened). The view keeps
    // the newer of an event and a snapshot entry.
    this.bridge.receive();
    const nodes = await askStates(this.nc, this.busStates!, log.child('states'));
    log.info(`states of ${nodes} node(s) that run pipelines received`);
    this.sharedPersons = await SharedPersons.start(this.nc, persons, store, log.child('persons'), metrics, replicas);
    this.personsWriter = this.sharedPersons;
    this.sharedReconstruction = await SharedReconstruction.start(this.nc, sessions, store, log.child('reconstruction'), metrics, replicas);
    this.sessionsWriter = this.sharedReconstruction;
    (await this.faces()).follow();
  }

  /** The faces bucket, opened once for both roles of a node (saving on a worker, copying on a gateway). */
  private async faces(): Promise<SharedFaces> {
    const { settings, faces, log, metrics } = this.d;
    this.sharedFaces ??= await SharedFaces.open(this.nc, faces, log.child('faces'), metrics, Math.max(1, settings.clusterReplicas));
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
    if (!this.runsPipelines) return;
    const { settings, metrics, log, pool, counts, bus } = this.d;
    const js = this.nc.jetstream();
    const ttl = Math.max(1, settings.leaseSeconds) * 1000;
    // Created by the first node that needs them; an existing bucket is used as it is (its TTL included).
    const replicas = Math.max(1, settings.clusterReplicas);
    const [leases, workers, countsKv] = await Promise.all([
      js.views.kv('sightline-leases', { ttl, history: 1, replicas }),
      js.views.kv('sightline-workers', { ttl, history: 1, replicas }),
      js.views.kv('sightline-counts', { history: 1, replicas }),
    ]) as [KV, KV, KV];
    this.counts = new SharedCounts(countsKv, counts, () => this.graph, (s) => this.held.has(s), log.child('counts'));
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

  /** Gives the leases back (the pipelines of this node stop first, so others take over at once), then leaves. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
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
      this.view.closed();
    })());
  }
}

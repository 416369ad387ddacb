/**
 * What a node is made of beyond its own engine: the seams its transports are handed (model work on client images,
 * the writers of shared state, live looks, states, the token key) and how its runtime is driven. A single node
 * builds them from local parts (here); a node of a cluster from their NATS implementations (app/cluster.ts). The
 * app takes either and never asks which.
 */
import type { Graph } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { EventBus, GraphChanges } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import { LocalInference, type InferenceClient } from '../inference/client.js';
import type { InferencePool } from '../inference/pool.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { ClusterView, RuntimeStates, StatesView } from '../pipeline/states.js';
import type { CountsTable } from '../services/counting/counts.js';
import type { FaceCrops } from '../services/faces/face-crops.js';
import { loadOrCreateKey } from '../services/looks/embedding-token.js';
import type { LooksDemand, PersonLooks } from '../services/looks/person-looks.js';
import { localPersonsWriter, type KnownPersons, type PersonsWriter } from '../services/persons/known-persons.js';
import { localSessionsWriter, type ReconstructionSessions, type SessionsWriter } from '../services/reconstruction/sessions.js';
import type { Store } from '../services/store/store.js';

/** The parts every node has, made by the app before it asks for its seams. */
export interface BaseParts {
  settings: ResolvedSettings;
  bus: EventBus;
  metrics: Metrics;
  log: Logger;
  pool: InferencePool;
  store: Store;
  counts: CountsTable;
  faces: FaceCrops;
  persons: KnownPersons;
  sessions: ReconstructionSessions;
  looks: PersonLooks;
  runtimeStates: RuntimeStates;
}

export interface NodeParts {
  /** Model work on client-sent images. */
  inference: InferenceClient;
  personsWriter: PersonsWriter;
  sessionsWriter: SessionsWriter;
  looks: LooksDemand;
  states: StatesView;
  /** The node's place in a cluster (connection, lease holders); none on a single node. */
  cluster?: ClusterView;
  /** The WatchMe token key (made on first use). */
  embeddingKey(): Buffer;
  /** Whether this node serves the graph's protocols (a cluster worker serves its metrics only). */
  servesProtocols: boolean;
  /** The graph as configured (all of it, also the sources other nodes run). */
  configured(runtime: Runtime): Graph;
  /** The graph the local runtime starts with. */
  initialGraph(graph: Graph): Graph;
  /** Starts running the graph (a cluster worker: the sources it gets leases on). */
  start(graph: Graph, runtime: Runtime): Promise<void>;
  /** Applies a reloaded graph. */
  apply(next: Graph, runtime: Runtime): Promise<GraphChanges>;
  /** Leaves (gives leases back after the pipelines stopped); idempotent. */
  close(): Promise<void>;
}

/** How a kind of node is made: how many inference threads it wants, and its parts. */
export interface NodeKind {
  poolThreads(settings: ResolvedSettings): number;
  join(base: BaseParts): Promise<NodeParts>;
}

/** Memoises a function of no arguments. */
const once = <T>(fn: () => T): (() => T) => {
  let v: { value: T } | null = null;
  return () => (v ??= { value: fn() }).value;
};

/** One process, no NATS: everything is local. */
export const singleNode: NodeKind = {
  poolThreads: (settings) => settings.workers,
  join: async (b) => ({
    inference: new LocalInference(b.pool),
    personsWriter: localPersonsWriter(b.persons),
    sessionsWriter: localSessionsWriter(b.sessions),
    looks: b.looks,
    states: b.runtimeStates,
    embeddingKey: once(() => loadOrCreateKey(b.settings.dataDir)),
    servesProtocols: true,
    configured: (runtime) => runtime.graph,
    initialGraph: (graph) => graph,
    start: (_graph, runtime) => runtime.start(),
    apply: (next, runtime) => runtime.apply(next),
    close: async () => undefined,
  }),
};

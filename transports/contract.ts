/**
 * The transport contract: what a protocol declares (its options' schema, the kinds of the models it names, its
 * default port) and what it is handed when mounted. Each protocol's folder exports one definition; the catalog
 * (app/catalog.ts) lists them. Transports ask for capabilities (packet fields, bus topics, services), never for
 * stage names.
 */
import type { Graph, TransportSchema, TransportSpec } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { Clock } from '../core/clock.js';
import type { ConfigEvent, EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { InferenceClient } from '../inference/client.js';
import type { InferencePool } from '../inference/pool.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { ClusterView, StatesView } from '../pipeline/states.js';
import type { CountsTable } from '../services/counting/counts.js';
import type { LooksDemand } from '../services/looks/person-looks.js';
import type { KnownPersons, PersonsWriter } from '../services/persons/known-persons.js';
import type { ReconstructionSessions, SessionsWriter } from '../services/reconstruction/sessions.js';
import type { FaceCrops } from '../services/faces/face-crops.js';
import type { HttpHub } from './http/hub.js';

/** The port number schema every transport's `port` option uses. */
export const PORT_SCHEMA = { type: 'integer', minimum: 0, maximum: 65535 };

export interface TransportContext {
  hub: HttpHub;
  bus: EventBus;
  metrics: Metrics;
  settings: ResolvedSettings;
  log: Logger;
  clock: Clock;
  /** Saved face crops. */
  faces: FaceCrops;
  /** This node's own pool (work that never leaves the node, e.g. fusing a point cloud). */
  pool: InferencePool;
  /** Model work on client-sent images: the local pool, or the cluster's workers on a gateway. */
  inference: InferenceClient;
  /** Known persons as this node holds them (reads). */
  persons: KnownPersons;
  /** Where changes to known persons go: this node's store, or a cluster's log that every node applies. */
  personsWriter: PersonsWriter;
  /** Live persons' looks of a pipeline, computed where it runs (this node or a cluster's workers). */
  looks: LooksDemand;
  /** The graph as configured (in a cluster, all of it, not only the sources this node runs). */
  graph: () => Graph;
  /** States of every source and pipeline of the graph, wherever they run. */
  states: StatesView;
  /** This node's running sources and pipelines. */
  runtime: () => Runtime;
  /** The WatchMe embedding-token key (in a cluster, the one every node shares), made on first use. */
  embeddingKey(): Buffer;
  /** Reconstruction sessions as this node holds them (reads). */
  reconstructionSessions: ReconstructionSessions;
  /** Where changes to reconstruction sessions go (in a cluster, a log every gateway applies). */
  sessionsWriter: SessionsWriter;
  /** Absolute path of a graph model's file. */
  modelPath(modelId: string): string;
  /** Counting's tables: day totals, crossings, traffic events. */
  counts: CountsTable;
  /** The node's place in a cluster (NATS connection, lease holders); none on a single node. */
  cluster?: ClusterView;
  /** The file the graph was loaded from, when there is one: the only file a graph editor may write. */
  graphFile?: string;
  /** Graph text validated against this build's catalog; throws GraphError listing every issue. */
  parseGraph(text: string, file: string): Graph;
  /** Re-reads the graph file and applies what changed (as a save does); rejects when there is no graph file. */
  reload(): Promise<ConfigEvent>;
  /** The port a mounted transport is bound to, by transport id. */
  portOf(transport: string): number | undefined;
}

/** What a mounted transport holds besides its routes (sockets, timers), released on unmount. */
export interface MountedTransport { close(): Promise<void> }

export interface TransportDefinition<S extends TransportSpec = TransportSpec> extends TransportSchema {
  defaultPort(settings: ResolvedSettings): number;
  /** `spec` holds complete options (schema defaults filled in) and the port to serve on. */
  mount(spec: S & { port: number }, ctx: TransportContext): MountedTransport | Promise<MountedTransport>;
}

/** Declares a transport with its options type checked (the catalog holds them untyped). */
export function defineTransport<S extends TransportSpec>(def: TransportDefinition<S>): TransportDefinition {
  return def as unknown as TransportDefinition;
}

/**
 * A mount whose code (the protocol's handlers, `ws`, its services) is imported when a graph first serves the
 * protocol: validating a graph or running `sightline process` reads only the definitions, and starts that much sooner.
 */
export function mountFrom<S extends TransportSpec>(load: () => Promise<{ mount(spec: S & { port: number }, ctx: TransportContext): MountedTransport }>):
  (spec: S & { port: number }, ctx: TransportContext) => Promise<MountedTransport> {
  return async (spec, ctx) => (await load()).mount(spec, ctx);
}

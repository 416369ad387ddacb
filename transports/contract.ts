/** Every transport a graph's `transports` section may configure, by name. */
import type { Graph, TransportSpec } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { Store } from '../services/store/store.js';
import type { KnownPersons } from '../services/persons/known-persons.js';
import type { ReconstructionSessions } from '../services/reconstruction/sessions.js';
import type { InferencePool } from '../inference/pool.js';
import { DEPTH_MODEL_KINDS } from '../inference/models/depth.js';
import type { InferenceClient } from '../inference/client.js';
import type { LooksDemand } from '../services/looks/person-looks.js';
import type { StatesView } from '../pipeline/states.js';
import type { HttpHub } from './http/hub.js';
import { mountDdfr, type DdfrSpec } from './ddfr/index.js';
import { mountMetrics } from './metrics/index.js';
import { mountPeopleCounter, type PeopleCounterSpec } from './people-counter/index.js';
import { mountPoseStream, POSE_STREAM_SCHEMA, type PoseStreamSpec } from './pose-stream/index.js';
import { mountReconstruction, type ReconstructionSpec } from './reconstruction/index.js';
import { mountWatchme, type WatchmeSpec } from './watchme/index.js';

export const TRANSPORT_NAMES = ['metrics', 'people-counter', 'ddfr', 'pose-stream-v1', 'reconstruction', 'watchme'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

const port = { type: 'integer', minimum: 0, maximum: 65535 };

/** JSON schema of each transport's options in the graph. */
export const TRANSPORT_SCHEMAS: Record<TransportName, object> = {
  metrics: { type: 'object', additionalProperties: false, properties: { port } },
  'people-counter': {
    type: 'object', additionalProperties: false, required: ['pipeline'],
    properties: {
      port, pipeline: { type: 'string' },
      fps: { type: 'number', minimum: 1, maximum: 60 },
      maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 16777216 },
    },
  },
  ddfr: {
    type: 'object', additionalProperties: false, required: ['detector', 'embedder'],
    properties: {
      port, detector: { type: 'string' }, embedder: { type: 'string' },
      threshold: { type: 'number', minimum: -1, maximum: 1 },
      faceScore: { type: 'number', minimum: 0, maximum: 1 },
      maxImageBytes: { type: 'integer', minimum: 1024, maximum: 104857600 },
    },
  },
  'pose-stream-v1': POSE_STREAM_SCHEMA,
  reconstruction: {
    type: 'object', additionalProperties: false, required: ['model'],
    properties: {
      port, model: { type: 'string' },
      fov: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 180 },
      sessionTtl: { type: 'number', exclusiveMinimum: 0 },
      maxImageBytes: { type: 'integer', minimum: 1024, maximum: 104857600 },
      previewPoints: { type: 'integer', minimum: 1, maximum: 10000000 },
      relativeRange: { type: 'number', exclusiveMinimum: 1 },
      maxMessageBytes: { type: 'integer', minimum: 0, maximum: 1073741824 },
    },
  },
  watchme: {
    type: 'object', additionalProperties: false, required: ['detector', 'reid'],
    dependencies: { faceDetector: ['faceEmbedder'], faceEmbedder: ['faceDetector'] },
    properties: {
      port, detector: { type: 'string' }, reid: { type: 'string' },
      faceDetector: { type: 'string' }, faceEmbedder: { type: 'string' },
      threshold: { type: 'number', exclusiveMinimum: 0, maximum: 2 },
      faceWeight: { type: 'number', minimum: 0, maximum: 1 },
      personScore: { type: 'number', minimum: 0, maximum: 1 },
      faceScore: { type: 'number', minimum: 0, maximum: 1 },
      refreshFrames: { type: 'integer', minimum: 1, maximum: 10000 },
      maxSessions: { type: 'integer', minimum: 1, maximum: 100000 },
      maxMessagesPerSecond: { type: 'number', minimum: 1, maximum: 10000 },
      maxFps: { type: 'number', minimum: 1, maximum: 240 },
      maxImageBytes: { type: 'integer', minimum: 1024, maximum: 104857600 },
      key: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
      corsOrigins: { type: 'array', items: { type: 'string', minLength: 1 } },
    },
  },
};

/** Graph models a transport uses, with the kind each must have. */
export const TRANSPORT_MODELS: Partial<Record<TransportName, Record<string, string | readonly string[]>>> = {
  ddfr: { detector: 'yunet', embedder: 'mobilefacenet' },
  reconstruction: { model: DEPTH_MODEL_KINDS },
  watchme: { detector: 'yolox', reid: 'reid', faceDetector: 'yunet', faceEmbedder: 'mobilefacenet' },
};

export interface TransportContext {
  hub: HttpHub;
  bus: EventBus;
  metrics: Metrics;
  settings: ResolvedSettings;
  log: Logger;
  store: Store;
  pool: InferencePool;
  /** Model work on client-sent images: the local pool, or the cluster's workers on a gateway. */
  inference: InferenceClient;
  persons: KnownPersons;
  /** Live persons' looks of a pipeline, computed where it runs (this node or a cluster's workers). */
  looks: LooksDemand;
  /** The graph as configured (in a cluster, all of it, not only the sources this node runs). */
  graph: () => Graph;
  /** States of every source and pipeline of the graph, wherever they run. */
  states: StatesView;
  /** This node's running sources and pipelines. */
  runtime: () => Runtime;
  /** The cluster's embedding-token key (WatchMe), shared by every node; unset on a single node. */
  embeddingKey?: Buffer;
  /** Reconstruction sessions shared by a cluster's gateways; unset on a single node (the transport keeps its own). */
  reconstructionSessions?: ReconstructionSessions;
}

/** What a mounted transport holds besides its routes (sockets, timers), released on unmount. */
export interface MountedTransport { close(): Promise<void> }

export interface TransportDefinition {
  name: TransportName;
  defaultPort(settings: ResolvedSettings): number;
  mount(spec: TransportSpec, port: number, ctx: TransportContext): MountedTransport;
}

const definitions: TransportDefinition[] = [
  {
    name: 'metrics',
    defaultPort: (s) => s.metricsPort,
    mount: (_spec, port, ctx) => {
      mountMetrics(ctx.hub, port, ctx.metrics, ctx.runtime);
      return { close: async () => undefined };
    },
  },
  {
    name: 'ddfr',
    defaultPort: () => 8000,
    mount: (spec, port, ctx) => mountDdfr({ ...spec, port } as DdfrSpec, ctx),
  },
  {
    name: 'reconstruction',
    defaultPort: () => 8000,
    mount: (spec, port, ctx) => mountReconstruction({ ...spec, port } as ReconstructionSpec, ctx),
  },
  {
    name: 'watchme',
    defaultPort: () => 5000,
    mount: (spec, port, ctx) => mountWatchme({ ...spec, port } as WatchmeSpec, ctx),
  },
  {
    name: 'people-counter',
    defaultPort: () => 8765,
    mount: (spec, port, ctx) => mountPeopleCounter({ ...spec, port } as PeopleCounterSpec, ctx),
  },
  {
    name: 'pose-stream-v1',
    defaultPort: () => 8000,
    mount: (spec, port, ctx) => mountPoseStream({ ...spec, port } as PoseStreamSpec, ctx),
  },
];

export function transportDefinition(name: string): TransportDefinition | undefined {
  return definitions.find((d) => d.name === name);
}

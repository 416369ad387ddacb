/**
 * What the console is handed (by app/, which mounts it like a transport) and its options. The console reads the
 * process's own figures and states, the bus, and the services; it changes things only through the graph file and its
 * reload, and through the persons API it forwards to. It never imports a protocol, a stage or the cluster.
 *
 * ```yaml
 * transports:
 *   console: { port: 8080 }                              # token secret: console.secret in the data directory
 *   console: { port: 8080, auth: { secretEnv: SIGHTLINE_CONSOLE_SECRET } }
 * ```
 */
import type { Graph, TransportSpec } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { Clock } from '../core/clock.js';
import type { ConfigEvent, EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { SecretSource } from '../core/secret-file.js';
import type { InferencePool } from '../inference/pool.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { ClusterView, StatesView } from '../pipeline/states.js';
import type { CountsTable } from '../services/counting/counts.js';
import type { FaceCrops } from '../services/faces/face-crops.js';

export interface ConsoleContext {
  bus: EventBus;
  metrics: Metrics;
  settings: ResolvedSettings;
  log: Logger;
  clock: Clock;
  /** This node's pool: encodes live frames for the browser. */
  pool: InferencePool;
  faces: FaceCrops;
  counts: CountsTable;
  /** The graph as configured (in a cluster, every node's sources). */
  graph(): Graph;
  /** States of every source and pipeline, wherever they run. */
  states: StatesView;
  /** This node's runtime (last-frame ages of the sources it runs). */
  runtime(): Runtime;
  cluster?: ClusterView;
  /** The only file the graph editor writes; without one the graph is shown read-only. */
  graphFile?: string;
  parseGraph(text: string, file: string): Graph;
  reload(): Promise<ConfigEvent>;
  /** Bound port of another transport (the persons API's), by id. */
  portOf(transport: string): number | undefined;
}

export interface ConsoleOptions extends TransportSpec {
  /** Where the secret that signs (or is) the token for changes comes from. */
  auth: SecretSource;
  /** Seconds between two samples of the figures (plots and rates). */
  sampleSeconds: number;
  /** Minutes of samples kept for the plots. */
  historyMinutes: number;
  /** Most live frames per second encoded for the browser, per pipeline. */
  liveFps: number;
  /** Width of the live frames sent to the browser (never enlarged). */
  liveWidth: number;
  liveQuality: number;
  /** Largest graph file the editor takes, in bytes. */
  maxGraphBytes: number;
  /** The persons API the persons page forwards to: a transport id of the graph. */
  personsApi: string;
}

const SECRET = {
  type: 'object', additionalProperties: false, maxProperties: 1, minProperties: 1,
  properties: { secret: { type: 'string', minLength: 32 }, secretEnv: { type: 'string', minLength: 1 }, secretFile: { type: 'string', minLength: 1 } },
};

export const CONSOLE_SCHEMA = {
  type: 'object', additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    auth: { ...SECRET, default: { secretFile: 'console.secret' } },
    sampleSeconds: { type: 'number', minimum: 0.5, maximum: 60, default: 5 },
    historyMinutes: { type: 'number', minimum: 1, maximum: 240, default: 15 },
    liveFps: { type: 'number', exclusiveMinimum: 0, maximum: 60, default: 15 },
    liveWidth: { type: 'integer', minimum: 64, maximum: 3840, default: 960 },
    liveQuality: { type: 'integer', minimum: 1, maximum: 100, default: 75 },
    maxGraphBytes: { type: 'integer', minimum: 1024, maximum: 16777216, default: 1024 * 1024 },
    personsApi: { type: 'string', default: 'ddfr' },
  },
};

export const CONSOLE_DEFAULT_PORT = 8080;

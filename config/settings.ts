/**
 * Process settings (not the graph): ports, directories, logging, worker layout.
 * Precedence: defaults < SIGHTLINE_* environment < command-line flags.
 */
import convict from 'convict';
import os from 'node:os';

const cores = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);

const schema = {
  metricsPort: {
    doc: 'Port of the Prometheus /metrics endpoint (the graph may override it in transports.metrics.port).',
    format: 'port', default: 9464, env: 'SIGHTLINE_METRICS_PORT', arg: 'metrics-port',
  },
  host: {
    doc: 'Address every listener binds to.',
    format: String, default: '0.0.0.0', env: 'SIGHTLINE_HOST', arg: 'host',
  },
  dataDir: {
    doc: 'Directory for everything Sightline writes (databases, face crops, models it produces).',
    format: String, default: 'data', env: 'SIGHTLINE_DATA_DIR', arg: 'data-dir',
  },
  modelDir: {
    doc: 'Directory holding the ONNX model files named in graphs.',
    format: String, default: 'models', env: 'SIGHTLINE_MODEL_DIR', arg: 'model-dir',
  },
  logLevel: {
    doc: 'Log level.',
    format: ['error', 'warn', 'info', 'debug'], default: 'info' as Settings['logLevel'], env: 'SIGHTLINE_LOG_LEVEL', arg: 'log-level',
  },
  workers: {
    doc: 'Worker threads in the inference pool (0 = one per core).',
    format: 'nat', default: 0, env: 'SIGHTLINE_WORKERS', arg: 'workers',
  },
  ortThreads: {
    doc: 'ONNX Runtime intra-op threads per worker (0 = cores / workers, at least 1).',
    format: 'nat', default: 0, env: 'SIGHTLINE_ORT_THREADS', arg: 'ort-threads',
  },
  maxInFlight: {
    doc: 'Frames a pipeline may have in its stages at once; live sources drop the stale ones beyond it.',
    format: 'nat', default: 2, env: 'SIGHTLINE_MAX_IN_FLIGHT', arg: 'max-in-flight',
  },
  budgetMs: {
    doc: 'Live sources: a frame that waited this long (ms since capture) for the inference pool is dropped as late (0 = no budget).',
    format: 'nat', default: 250, env: 'SIGHTLINE_BUDGET_MS', arg: 'budget-ms',
  },
  schedulerSlots: {
    doc: 'Frames of all live pipelines inside their stages at once (0 = 1.5 per inference worker).',
    format: 'nat', default: 0, env: 'SIGHTLINE_SCHEDULER_SLOTS', arg: 'scheduler-slots',
  },
  faceIndexExactBelow: {
    doc: 'Known-face embeddings below which 1:N search scans them all (exact); an HNSW index answers from here up.',
    format: 'nat', default: 10_000, env: 'SIGHTLINE_FACE_INDEX_EXACT_BELOW', arg: 'face-index-exact-below',
  },
  faceIndexEf: {
    doc: 'HNSW search breadth (efSearch) for 1:N face search: higher is slower and closer to the exact answer.',
    format: 'nat', default: 400, env: 'SIGHTLINE_FACE_INDEX_EF', arg: 'face-index-ef',
  },
  faceIndexM: {
    doc: 'HNSW graph degree (M) of the face index; a change rebuilds the persisted index.',
    format: 'nat', default: 32, env: 'SIGHTLINE_FACE_INDEX_M', arg: 'face-index-m',
  },
  faceIndexEfConstruction: {
    doc: 'HNSW build breadth (efConstruction) of the face index; a change rebuilds the persisted index.',
    format: 'nat', default: 120, env: 'SIGHTLINE_FACE_INDEX_EF_CONSTRUCTION', arg: 'face-index-ef-construction',
  },
  cluster: {
    doc: 'NATS URL(s) of a cluster to join, comma-separated (empty = single node, no NATS).',
    format: String, default: '', env: 'SIGHTLINE_CLUSTER', arg: 'cluster',
  },
  role: {
    doc: 'Role in a cluster: worker (leases sources, runs pipelines), gateway (serves the protocols), or all.',
    format: ['worker', 'gateway', 'all'], default: 'all' as Settings['role'], env: 'SIGHTLINE_ROLE', arg: 'role',
  },
  nodeId: {
    doc: 'Name of this node in the cluster (empty = host name and process id).',
    format: String, default: '', env: 'SIGHTLINE_NODE_ID', arg: 'node-id',
  },
  leaseSeconds: {
    doc: 'Cluster source lease time: a dead worker\'s sources are taken over after at most this long (plus a claim round).',
    format: 'nat', default: 5, env: 'SIGHTLINE_LEASE_SECONDS', arg: 'lease-seconds',
  },
  clusterReplicas: {
    doc: 'JetStream replicas of the cluster\'s KV buckets when a node creates them (3 on a 3-server NATS cluster).',
    format: 'nat', default: 1, env: 'SIGHTLINE_CLUSTER_REPLICAS', arg: 'cluster-replicas',
  },
};

export interface Settings {
  metricsPort: number;
  host: string;
  dataDir: string;
  modelDir: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  workers: number;
  ortThreads: number;
  maxInFlight: number;
  budgetMs: number;
  schedulerSlots: number;
  faceIndexExactBelow: number;
  faceIndexEf: number;
  faceIndexM: number;
  faceIndexEfConstruction: number;
  cluster: string;
  role: 'worker' | 'gateway' | 'all';
  nodeId: string;
  leaseSeconds: number;
  clusterReplicas: number;
}

/** Settings with the derived worker layout filled in (workers × ortThreads ≤ cores). */
export interface ResolvedSettings extends Settings {
  workers: number;
  ortThreads: number;
}

export function loadSettings(args: string[] = [], env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<Settings> = {}): ResolvedSettings {
  const config = convict<Settings>(schema, { args, env });
  config.load(overrides);
  config.validate({ allowed: 'strict' });
  const s = config.getProperties();
  const workers = s.workers > 0 ? s.workers : cores;
  const ortThreads = s.ortThreads > 0 ? s.ortThreads : Math.max(1, Math.floor(cores / workers));
  const schedulerSlots = s.schedulerSlots > 0 ? s.schedulerSlots : Math.max(2, Math.ceil(workers * 1.5));
  return { ...s, workers, ortThreads, maxInFlight: Math.max(1, s.maxInFlight), schedulerSlots };
}

/** Flags understood by loadSettings, for the CLI's help text. */
export function settingsHelp(): string {
  return Object.entries(schema)
    .map(([, v]) => `  --${v.arg.padEnd(14)} ${v.doc} [env ${v.env}, default ${JSON.stringify(v.default)}]`)
    .join('\n');
}

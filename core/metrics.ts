/** Every Prometheus series Sightline exports, in one registry per process. */
import client from 'prom-client';
import type { SourceState } from './events.js';

const SEARCH_BUCKETS = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
/** What the known-faces search reports of its index (services/persons). */
export interface FaceIndexStatus {
  size: number;
  hnsw: 'none' | 'building' | 'loading' | 'ready';
  /** Share of the running build done (0-1); 1 when ready. */
  progress: number;
  /** Rows marked deleted in the HNSW graph but still in it. */
  deleted: number;
}
const HNSW_STATES: FaceIndexStatus['hnsw'][] = ['none', 'building', 'loading', 'ready'];
const LATENCY_BUCKETS = [0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.4, 0.6, 1, 2, 5];
export const SOURCE_STATES: SourceState[] = ['starting', 'running', 'retrying', 'stopped', 'failed'];

/** Wire protocols served over WebSockets, pre-declared so dashboards show 0 rather than nothing. */
export const WS_PROTOCOLS = ['people-counter', 'ddfr', 'watchme', 'pose-stream-v1', 'reconstruction'] as const;

export class Metrics {
  readonly registry = new client.Registry();
  private readonly scrapeHooks: (() => void)[] = [];

  readonly framesIn = this.counter('sightline_frames_in_total', 'Frames decoded and delivered by a source.', ['source']);
  readonly framesProcessed = this.counter('sightline_frames_processed_total', 'Frames that passed every stage of a pipeline.', ['pipeline', 'source']);
  readonly framesDropped = this.counter('sightline_frames_dropped_total',
    'Frames skipped instead of processed, by reason (stale: a newer live frame replaced it; late: it waited past its budget for the inference pool; stage_error: a stage failed on it; shutdown: in flight when the pipeline stopped).',
    ['pipeline', 'source', 'reason']);
  readonly stageLatency = this.histogram('sightline_stage_latency_seconds', 'Time a packet spends in one stage (includes the wait for a worker).', ['pipeline', 'stage'], LATENCY_BUCKETS);
  readonly detectSkipped = this.counter('sightline_detect_skipped_total',
    'Frames the detect stage did not run on (every: detection every Nth frame; no_motion: too little changed), the tracker predicting instead.',
    ['pipeline', 'reason']);
  readonly stageErrors = this.counter('sightline_stage_errors_total', 'Packets on which a stage failed.', ['pipeline', 'stage']);
  readonly pipelineLatency = this.histogram('sightline_pipeline_latency_seconds', 'Capture (appsink) to sink latency of a packet.', ['pipeline'], LATENCY_BUCKETS);
  readonly inferenceSeconds = this.histogram('sightline_inference_seconds', 'ONNX Runtime session.run time per call, measured in the worker.', ['model'], LATENCY_BUCKETS);
  readonly workerQueue = this.gauge('sightline_worker_queue_size', 'Tasks waiting for a free worker.', []);
  readonly workerUtilization = this.gauge('sightline_worker_utilization', 'Share of worker time spent running tasks since the previous scrape (0-1).', []);
  readonly workerBusySeconds = this.counter('sightline_worker_busy_seconds_total', 'Time the workers spent running tasks (rate / threads = utilisation).', []);
  readonly workerThreads = this.gauge('sightline_worker_threads', 'Worker threads in the inference pool.', []);
  readonly inFlight = this.gauge('sightline_pipeline_in_flight', 'Packets currently inside a pipeline\'s stages.', ['pipeline']);
  readonly sourceState = this.gauge('sightline_source_state', '1 for the state a source is in, 0 for the others.', ['source', 'state']);
  readonly pipelineUp = this.gauge('sightline_pipeline_up', '1 while a pipeline is running, 0 when stopped or failed.', ['pipeline']);
  readonly sourceReconnects = this.counter('sightline_source_reconnects_total', 'Times a live source went to retrying, by reason (error, eos, watchdog).', ['source', 'reason']);
  readonly sourceLastFrameAge = this.gauge('sightline_source_last_frame_age_seconds', 'Seconds since a source delivered its last frame.', ['source']);
  readonly configReloads = this.counter('sightline_config_reloads_total', 'Graph reloads, by result (applied, invalid, unchanged).', ['result']);
  readonly falls = this.counter('sightline_falls_total', 'Falls detected by the activity stage.', ['pipeline', 'source']);
  readonly wsClients = this.gauge('sightline_ws_clients', 'Connected WebSocket clients per protocol.', ['protocol']);
  readonly wsMessages = this.counter('sightline_ws_messages_total', 'WebSocket messages per protocol and direction (in, out).', ['protocol', 'direction']);
  readonly wsDropped = this.counter('sightline_ws_dropped_total', 'Messages not sent to a slow WebSocket client, per protocol.', ['protocol']);
  readonly wsErrors = this.counter('sightline_ws_errors_total', 'Bad client input answered with a protocol error, per protocol and kind.', ['protocol', 'kind']);
  readonly httpErrors = this.counter('sightline_http_errors_total',
    'HTTP requests answered with an error status (bad requests, unknown paths, refused uploads, bugs as 500), per port and status.', ['port', 'status']);
  readonly clusterConnected = this.gauge('sightline_cluster_connected', '1 while connected to the NATS cluster, 0 while reconnecting (cluster mode only).', []);
  readonly clusterReconnects = this.counter('sightline_cluster_reconnects_total', 'Times the NATS connection was re-established.', []);
  readonly clusterLeasesHeld = this.gauge('sightline_cluster_leases_held', 'Sources this node holds a lease on (and runs).', []);
  readonly clusterLeaseChanges = this.counter('sightline_cluster_lease_changes_total', 'Source leases claimed, lost (not renewed in time or taken), or released (rebalance, shutdown).', ['event']);
  readonly clusterBridgeMessages = this.counter('sightline_cluster_bridge_messages_total', 'Bus events sent to (out) or received from (in) the cluster, by topic.', ['direction', 'topic']);
  readonly clusterBridgeBytes = this.counter('sightline_cluster_bridge_bytes_total', 'Bytes of bus events sent to (out) or received from (in) the cluster.', ['direction']);
  readonly clusterResultAge = this.gauge('sightline_cluster_result_age_seconds', 'Seconds since a gateway last received an event of a source (or pipeline) from the cluster.', ['source']);
  readonly clusterSharedChanges = this.counter('sightline_cluster_shared_changes_total', 'Changes to state shared by the cluster (known persons, reconstruction sessions, saved faces), by result: published by this node, applied to its store, failed to publish, skipped (unreadable), compacted (removed from the stream once deleted).', ['state', 'result']);
  readonly clusterInference = this.counter('sightline_cluster_inference_total', 'Inference requests sent to workers (sent) or answered for gateways (served), by result.', ['side', 'result']);
  readonly clusterInferenceOps = this.counter('sightline_cluster_inference_ops_total', 'Inference requests sent to workers or served for gateways, by worker task (op).', ['side', 'op']);

  readonly consoleErrors = this.counter('sightline_console_errors_total',
    'Console requests refused or failed, by error code (unauthorized, forbidden, graph_invalid, not_found, too_large, unsupported_media_type, …).', ['code']);
  readonly consoleGraphApplies = this.counter('sightline_console_graph_applies_total', 'Graph edits applied from the console, by reload result.', ['result']);

  readonly personLooks = this.counter('sightline_person_looks_frames_total', 'Frames whose persons were described for live matching (WatchMe), by pipeline.', ['pipeline']);

  readonly faceIndexSize = this.gauge('sightline_face_index_embeddings', 'Known-person face embeddings in the 1:N search index.', []);
  readonly faceIndexDeleted = this.gauge('sightline_face_index_deleted', 'Embeddings deleted but still in the HNSW graph (a rebuild drops them).', []);
  readonly faceIndexState = this.gauge('sightline_face_index_hnsw_state', '1 for the state the HNSW graph is in (none, building, loading, ready), 0 for the others.', ['state']);
  readonly faceIndexProgress = this.gauge('sightline_face_index_build_progress', 'Share of the running HNSW build done (0-1; 1 when ready).', []);
  readonly faceIndexBuilds = this.counter('sightline_face_index_builds_total', 'HNSW graphs put in service, by how (built, loaded from the data directory).', ['how']);
  readonly faceSearchSeconds = this.histogram('sightline_face_search_seconds',
    'Round trip of one 1:N search request (a frame\'s faces) to the face search worker, by engine (exact, hnsw).', ['engine'], SEARCH_BUCKETS);

  constructor() {
    client.collectDefaultMetrics({ register: this.registry });
    for (const protocol of WS_PROTOCOLS) {
      this.wsClients.set({ protocol }, 0);
      for (const direction of ['in', 'out']) this.wsMessages.inc({ protocol, direction }, 0);
      this.wsDropped.inc({ protocol }, 0);
    }
    for (const result of ['applied', 'invalid', 'unchanged']) this.configReloads.inc({ result }, 0);
    this.setFaceIndexStatus({ size: 0, hnsw: 'none', progress: 0, deleted: 0 });
    for (const how of ['built', 'loaded']) this.faceIndexBuilds.inc({ how }, 0);
    for (const protocol of WS_PROTOCOLS) {
      for (const kind of ['invalid_json', 'bad_format', 'unknown_type', 'internal']) this.wsErrors.inc({ protocol, kind }, 0);
    }
  }

  setSourceState(source: string, state: SourceState): void {
    for (const s of SOURCE_STATES) this.sourceState.set({ source, state: s }, s === state ? 1 : 0);
  }

  setFaceIndexStatus(s: FaceIndexStatus): void {
    this.faceIndexSize.set(s.size);
    this.faceIndexDeleted.set(s.deleted);
    this.faceIndexProgress.set(s.progress);
    for (const state of HNSW_STATES) this.faceIndexState.set({ state }, state === s.hnsw ? 1 : 0);
  }

  /** Creates a live source's per-reason series at 0, so dashboards show 0 rather than nothing. */
  declareSource(source: string): void {
    for (const reason of ['error', 'eos', 'watchdog']) this.sourceReconnects.inc({ source, reason }, 0);
  }

  /** Creates a pipeline's per-reason drop and error series at 0. */
  declarePipeline(pipeline: string, source: string, stages: string[]): void {
    for (const reason of ['stale', 'late', 'stage_error', 'shutdown']) this.framesDropped.inc({ pipeline, source, reason }, 0);
    for (const stage of stages) this.stageErrors.inc({ pipeline, stage }, 0);
  }

  /** Removes the per-source series of a source that no longer exists. */
  forgetSource(source: string): void {
    for (const state of SOURCE_STATES) this.sourceState.remove({ source, state });
    for (const reason of ['error', 'eos', 'watchdog']) this.sourceReconnects.remove({ source, reason });
    this.sourceLastFrameAge.remove({ source });
  }

  /** Registers a callback run just before each scrape (e.g. to sample pool gauges). */
  onScrape(fn: () => void): void {
    this.scrapeHooks.push(fn);
  }

  async render(): Promise<string> {
    for (const fn of this.scrapeHooks) fn();
    return this.registry.metrics();
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[]) {
    return new client.Counter<L>({ name, help, labelNames, registers: [this.registry] });
  }

  private gauge<L extends string>(name: string, help: string, labelNames: L[]) {
    return new client.Gauge<L>({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram<L extends string>(name: string, help: string, labelNames: L[], buckets: number[]) {
    return new client.Histogram<L>({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}

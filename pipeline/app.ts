/** Composition root: settings + graph → worker pool, runtime, transports. Used by the CLI and the tests. */
import type { Graph } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import { HttpHub } from '../transports/http-hub.js';
import { mountMetrics } from '../transports/metrics.js';
import { EventBus } from './event-bus.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { Runtime } from './runtime.js';
import { InferencePool } from './worker-pool.js';

export interface App {
  graph: Graph;
  settings: ResolvedSettings;
  bus: EventBus;
  metrics: Metrics;
  pool: InferencePool;
  runtime: Runtime;
  hub: HttpHub;
  log: Logger;
  /** Graph port → bound port (differs when a port of 0 asked for a free one). */
  ports: Map<number, number>;
  stop(): Promise<void>;
}

export interface AppOptions {
  /** Serve HTTP/WebSocket transports (false for offline `process` runs). */
  serve?: boolean;
  log?: Logger;
}

export async function startApp(graph: Graph, settings: ResolvedSettings, opts: AppOptions = {}): Promise<App> {
  const log = opts.log ?? createLogger(settings.logLevel);
  const bus = new EventBus();
  const metrics = new Metrics();
  const pool = new InferencePool(settings.workers, settings.ortThreads, metrics);
  const runtime = new Runtime(graph, { settings, pool, bus, metrics, log });
  const hub = new HttpHub(settings.host, log.child('http'));
  let ports = new Map<number, number>();
  if (opts.serve !== false) {
    const metricsPort = graph.transports.metrics?.port ?? settings.metricsPort;
    mountMetrics(hub, metricsPort, metrics, () => runtime);
    ports = await hub.listen();
  }
  await runtime.start();
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopping ??= (async () => {
    await runtime.stop();
    await hub.close();
    await pool.close();
    bus.complete();
  })());
  return { graph, settings, bus, metrics, pool, runtime, hub, log, ports, stop };
}

/** Composition root: settings + graph → worker pool, runtime, transports. Used by the CLI and the tests. */
import { isDeepStrictEqual } from 'node:util';
import { GraphError, loadGraph, type Graph, type TransportSpec } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import { watchFile } from '../config/watch.js';
import { HttpHub } from '../transports/http/hub.js';
import { transportDefinition, type MountedTransport, type TransportContext } from '../transports/contract.js';
import { EventBus } from '../core/events.js';
import { describeChanges, hasChanges } from '../pipeline/graph-diff.js';
import { createLogger, type Logger } from '../core/log.js';
import { Metrics } from '../core/metrics.js';
import { modelPath, Runtime } from '../pipeline/runtime.js';
import { Store } from '../services/store/store.js';
import { KnownPersons } from '../services/persons/known-persons.js';
import { InferencePool } from '../inference/pool.js';
import { LocalInference } from '../inference/client.js';
import { PersonLooks } from '../services/looks/person-looks.js';
import { RuntimeStates } from '../pipeline/states.js';
import type { ModelRef } from '../inference/protocol.js';
import { ClusterNode } from '../cluster/node.js';

export type ReloadResult = 'applied' | 'invalid' | 'unchanged';

export interface App {
  readonly graph: Graph;
  settings: ResolvedSettings;
  bus: EventBus;
  metrics: Metrics;
  pool: InferencePool;
  store: Store;
  persons: KnownPersons;
  runtime: Runtime;
  /** Set when the settings name a cluster to join. */
  cluster: ClusterNode | null;
  hub: HttpHub;
  log: Logger;
  /** Graph port → bound port (differs when a port of 0 asked for a free one). */
  ports: Map<number, number>;
  /** Bound port of a transport, by transport id. */
  portOf(transport: string): number | undefined;
  /** Re-reads the graph file and applies what changed; an invalid file leaves the running graph alone. */
  reload(): Promise<ReloadResult>;
  stop(): Promise<void>;
}

export interface AppOptions {
  /** Serve HTTP/WebSocket transports (false for offline `process` runs). */
  serve?: boolean;
  log?: Logger;
  /** The file the graph came from: enables reload(), and watching it when `watch` is set. */
  graphFile?: string;
  watch?: boolean;
}

/** The transports to run: the graph's, plus metrics on its default port when the graph does not say. */
function transportsOf(graph: Graph, settings: ResolvedSettings): Map<string, TransportSpec & { port: number }> {
  const specs: Record<string, TransportSpec> = { metrics: { id: 'metrics' }, ...graph.transports };
  return new Map(Object.entries(specs).map(([id, spec]) =>
    [id, { ...spec, port: spec.port ?? transportDefinition(id)!.defaultPort(settings) }]));
}

export async function startApp(initial: Graph, settings: ResolvedSettings, opts: AppOptions = {}): Promise<App> {
  const log = opts.log ?? createLogger(settings.logLevel);
  const bus = new EventBus();
  const metrics = new Metrics();
  // A cluster gateway sends model work to the workers: one idle thread is all its pool needs.
  const gatewayOnly = Boolean(settings.cluster) && settings.role === 'gateway';
  const pool = new InferencePool(gatewayOnly ? 1 : settings.workers, settings.ortThreads, metrics);
  const store = Store.open(settings.dataDir);
  // In a cluster a worker runs only the sources it holds leases on, and a gateway none.
  // Live looks (WatchMe) are described on the node that runs the pipeline, with the models of its graph.
  const looks: PersonLooks = new PersonLooks({
    bus, pool, log: log.child('looks'),
    model: (id: string, kind: string): ModelRef => ({ path: modelPath(runtime.graph, settings, id), kind }),
    described: (pipeline) => metrics.personLooks.inc({ pipeline }),
  });
  const runtimeStates: RuntimeStates = new RuntimeStates((): Runtime => runtime);
  const cluster = settings.cluster ? await ClusterNode.join({ settings, bus, metrics, pool, store, log, looks, runtimeStates }) : null;
  const runtime = new Runtime(cluster ? cluster.initialGraph(initial) : initial, { settings, store, pool, bus, metrics, log });
  const hub = new HttpHub(settings.host, log.child('http'));
  const persons = new KnownPersons(store, settings, log, metrics);
  // Known persons and the token key of a cluster are shared: caught up before any transport answers.
  await cluster?.shareState(persons);
  const inference = cluster?.remoteInference ?? new LocalInference(pool);
  const ctx: TransportContext = {
    hub, bus, metrics, settings, log, store, pool, inference, persons, looks: cluster?.looks ?? looks,
    graph: () => cluster?.configured ?? runtime.graph, states: cluster?.states ?? runtimeStates, runtime: () => runtime, embeddingKey: cluster?.embeddingKey,
    reconstructionSessions: cluster?.reconstructionSessions,
  };
  const wantedTransports = (graph: Graph): Map<string, TransportSpec & { port: number }> => {
    const wanted = transportsOf(graph, settings);
    // A cluster worker serves its metrics only; clients connect to gateways.
    if (cluster && !cluster.servesProtocols) for (const id of [...wanted.keys()]) if (id !== 'metrics') wanted.delete(id);
    return wanted;
  };
  const mounted = new Map<string, { spec: TransportSpec & { port: number }; handle: MountedTransport }>();
  const serve = opts.serve !== false;

  const syncTransports = async (graph: Graph): Promise<void> => {
    if (!serve) return;
    const wanted = wantedTransports(graph);
    for (const [id, m] of mounted) {
      if (isDeepStrictEqual(wanted.get(id), m.spec)) continue;
      await m.handle.close();
      await hub.unmount(id);
      mounted.delete(id);
    }
    for (const [id, spec] of wanted) {
      if (mounted.has(id)) continue;
      mounted.set(id, { spec, handle: transportDefinition(id)!.mount(spec, spec.port, ctx) });
    }
    await hub.listen();
  };

  await syncTransports(initial);
  if (cluster) await cluster.start(initial, runtime);
  else await runtime.start();

  // Reloads run one at a time, in the order they were asked for.
  let reloading: Promise<ReloadResult> = Promise.resolve('unchanged');
  const reloadOnce = async (): Promise<ReloadResult> => {
    const file = opts.graphFile!;
    let next: Graph;
    try {
      next = loadGraph(file);
    } catch (err) {
      const errors = err instanceof GraphError ? err.message.split('\n') : [(err as Error).message];
      log.error(`graph reload rejected, keeping the running graph:\n${errors.join('\n')}`);
      metrics.configReloads.inc({ result: 'invalid' });
      bus.publish('config', { result: 'invalid', file, summary: 'invalid graph; running graph kept', errors, atMs: Date.now() });
      return 'invalid';
    }
    const changes = cluster ? await cluster.apply(next) : await runtime.apply(next);
    const transportsChanged = !isDeepStrictEqual(wantedTransports(next), new Map([...mounted].map(([id, m]) => [id, m.spec])));
    if (transportsChanged) await syncTransports(next);
    const result: ReloadResult = hasChanges(changes) || transportsChanged ? 'applied' : 'unchanged';
    const summary = describeChanges(changes);
    metrics.configReloads.inc({ result });
    log.info(`graph reload ${result}: ${summary}`);
    bus.publish('config', { result, file, summary, changes, atMs: Date.now() });
    return result;
  };
  const reload = (): Promise<ReloadResult> => {
    if (!opts.graphFile) return Promise.reject(new Error('reload needs the graph file the app was started from'));
    reloading = reloading.then(reloadOnce, reloadOnce);
    return reloading;
  };
  const watcher = opts.watch && opts.graphFile ? watchFile(opts.graphFile, () => void reload()) : null;

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopping ??= (async () => {
    watcher?.close();
    await reloading.catch(() => undefined);
    // Gives the leases back once this node's pipelines stopped, so other workers take over at once.
    await cluster?.close();
    await runtime.stop();
    for (const m of mounted.values()) await m.handle.close();
    looks.close();
    await hub.close();
    await pool.close();
    await persons.close();
    store.close();
    bus.complete();
  })());
  return {
    get graph() { return runtime.graph; },
    settings, bus, metrics, pool, store, persons, runtime, cluster, hub, log, ports: hub.bound,
    portOf: (id) => { const m = mounted.get(id); return m ? hub.bound.get(m.spec.port) : undefined; },
    reload, stop,
  };
}

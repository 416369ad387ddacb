/**
 * Composition root: settings + graph → the engine, the services and the transports of one node. The node's seams
 * (single process or NATS cluster, app/node.ts and app/cluster.ts) are built first and handed in; this file never
 * asks which kind of node it is. Stopping the app is closing the root: every part closes once, newest first.
 */
import { isDeepStrictEqual } from 'node:util';
import { config as rxConfig } from 'rxjs';
import { GraphError, modelPath, type Graph, type TransportSpec } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import { watchFile } from '../config/watch.js';
import { systemClock, type Clock } from '../core/clock.js';
import { EventBus, type ConfigEvent } from '../core/events.js';
import { Closer } from '../core/lifecycle.js';
import { createLogger, type Logger } from '../core/log.js';
import { Metrics } from '../core/metrics.js';
import { InferencePool } from '../inference/pool.js';
import { describeChanges, hasChanges } from '../pipeline/graph-diff.js';
import { Runtime } from '../pipeline/runtime.js';
import { FrameScheduler } from '../pipeline/scheduler.js';
import { RuntimeStates } from '../pipeline/states.js';
import { CountsTable } from '../services/counting/counts.js';
import { FaceCrops } from '../services/faces/face-crops.js';
import { PersonLooks } from '../services/looks/person-looks.js';
import { KnownPersons } from '../services/persons/known-persons.js';
import { ReconstructionSessions } from '../services/reconstruction/sessions.js';
import { Store } from '../services/store/store.js';
import type { MountedTransport, TransportContext } from '../transports/contract.js';
import type { HttpHub } from '../transports/http/hub.js';
import { loadGraph, parseGraph, stageDefinition, transportDefinition, WORKER_OPS } from './catalog.js';
import { nodeKindFor } from './cluster.js';
import type { NodeKind, NodeParts } from './node.js';

export type ReloadResult = 'applied' | 'invalid' | 'unchanged';

export interface App {
  readonly graph: Graph;
  settings: ResolvedSettings;
  bus: EventBus;
  metrics: Metrics;
  pool: InferencePool;
  store: Store;
  counts: CountsTable;
  persons: KnownPersons;
  runtime: Runtime;
  /** The node's seams (what a single node or a cluster node hands the transports). */
  node: NodeParts;
  /** The HTTP hub serving the transports (none when the app does not serve). */
  hub: HttpHub | null;
  log: Logger;
  /** Graph port → bound port (differs when a port of 0 asked for a free one). */
  ports: Map<number, number>;
  /** Bound port of a transport, by transport id. */
  portOf(transport: string): number | undefined;
  /** Re-reads the graph file and applies what changed; an invalid file leaves the running graph alone. */
  reload(): Promise<ReloadResult>;
  /** The same, answering what the reload did (the `config` event it published). */
  reloadReport(): Promise<ConfigEvent>;
  /** Closes everything, once (later calls share the first). */
  stop(): Promise<void>;
}

export interface AppOptions {
  /** Serve HTTP/WebSocket transports (false for offline `process` runs). */
  serve?: boolean;
  log?: Logger;
  /** The file the graph came from: enables reload(), and watching it when `watch` is set. */
  graphFile?: string;
  watch?: boolean;
  /** The kind of node (default: from the settings, a single process or a cluster node). */
  node?: NodeKind;
  /** A file run, whose results go to a file (`RuntimeDeps.fileRun`); only with `serve: false`. */
  fileRun?: boolean;
  clock?: Clock;
}

type WantedTransport = TransportSpec & { port: number };

/** The transports to run: the graph's, plus metrics on its default port when the graph does not say. */
function transportsOf(graph: Graph, settings: ResolvedSettings, servesProtocols: boolean): Map<string, WantedTransport> {
  const specs: Record<string, TransportSpec> = { metrics: { id: 'metrics' }, ...graph.transports };
  return new Map(Object.entries(specs)
    // A cluster worker serves its metrics only; clients connect to gateways.
    .filter(([id]) => servesProtocols || id === 'metrics')
    .map(([id, spec]) => [id, { ...spec, port: spec.port ?? transportDefinition(id)!.defaultPort(settings) }]));
}

export async function startApp(initial: Graph, settings: ResolvedSettings, opts: AppOptions = {}): Promise<App> {
  const log = opts.log ?? createLogger(settings.logLevel);
  const clock = opts.clock ?? systemClock;
  const kind = opts.node ?? nodeKindFor(settings);
  const root = new Closer((err) => log.error(`while stopping: ${err.message}`));
  // A bus subscriber that throws must cost its one event, never the process (RxJS would rethrow it on a timer).
  rxConfig.onUnhandledError = (err: unknown) => log.error(`an event handler failed: ${(err as Error)?.stack ?? String(err)}`);
  const bus = root.add(new EventBus());
  const metrics = new Metrics();
  const pool = root.add(new InferencePool({
    workers: kind.poolThreads(settings), ortThreads: settings.ortThreads, ops: WORKER_OPS, metrics, smallNursery: opts.fileRun === true,
  }));
  const store = root.add(Store.open(settings.dataDir));
  const counts = new CountsTable(store);
  const faces = new FaceCrops(store, counts, settings.dataDir);
  const persons = root.add(new KnownPersons(store, settings, log, metrics));
  const sessions = new ReconstructionSessions(store, settings.dataDir);
  // Live looks (WatchMe) are described on the node that runs the pipeline, with the models of its graph.
  const holder: { runtime?: Runtime } = {};
  const looks = root.add(new PersonLooks({
    bus, pool, log: log.child('looks'), clock,
    model: (id, kind) => ({ path: modelPath(holder.runtime!.graph, settings.modelDir, id), kind }),
    described: (pipeline) => metrics.personLooks.inc({ pipeline }),
  }));
  const runtimeStates = new RuntimeStates(() => holder.runtime!, clock);
  const serve = opts.serve !== false;
  // Only an app that serves loads the HTTP hub (Fastify) and, when mounting them, the transports' code.
  const hub = serve ? root.add(new (await import('../transports/http/hub.js')).HttpHub(settings.host, log.child('http'), metrics)) : null;
  // Shared state of a cluster (known persons, sessions, the token key) is caught up before any transport answers.
  const node = await kind.join({ settings, bus, metrics, log, pool, store, counts, faces, persons, sessions, looks, runtimeStates });
  const scheduler = new FrameScheduler({ slots: settings.schedulerSlots, clock });
  const runtime = holder.runtime = new Runtime(node.initialGraph(initial),
    { settings, stages: stageDefinition, clock, counts, faces, pool, scheduler, bus, metrics, log, fileRun: opts.fileRun === true && !serve });
  const ctx: TransportContext | null = hub && {
    hub, bus, metrics, settings, log, clock, faces, pool, persons, inference: node.inference, personsWriter: node.personsWriter,
    looks: node.looks, graph: () => node.configured(runtime), states: node.states, runtime: () => runtime,
    embeddingKey: node.embeddingKey, reconstructionSessions: sessions, sessionsWriter: node.sessionsWriter,
    modelPath: (id) => modelPath(node.configured(runtime), settings.modelDir, id),
    counts, cluster: node.cluster, graphFile: opts.graphFile, parseGraph,
    reload: () => reloadReport(),
    portOf: (id) => portOf(id),
  };

  const mounted = new Map<string, { spec: WantedTransport; handle: MountedTransport }>();
  const wanted = (graph: Graph) => transportsOf(graph, settings, node.servesProtocols);
  const syncTransports = async (graph: Graph): Promise<void> => {
    if (!ctx) return;
    const want = wanted(graph);
    for (const [id, m] of mounted) {
      if (isDeepStrictEqual(want.get(id), m.spec)) continue;
      await m.handle.close();
      await ctx.hub.unmount(id);
      mounted.delete(id);
    }
    for (const [id, spec] of want) {
      if (!mounted.has(id)) mounted.set(id, { spec, handle: await transportDefinition(id)!.mount(spec, ctx) });
    }
    await ctx.hub.listen();
  };
  // Closed before the hub (their sockets first), after the node (whose leases go back once pipelines stopped).
  root.add(async () => { for (const m of mounted.values()) await m.handle.close(); });
  root.add(() => runtime.stop());
  root.add(node);

  await syncTransports(initial);
  await node.start(initial, runtime);

  // Reloads run one at a time, in the order they were asked for.
  let reloading: Promise<ConfigEvent> = Promise.resolve({ result: 'unchanged', file: '', summary: 'no changes', atMs: 0 });
  const reloadOnce = async (): Promise<ConfigEvent> => {
    const file = opts.graphFile!;
    let next: Graph;
    try {
      const loaded = loadGraph(file);
      for (const w of loaded.warnings) log.warn(`graph: ${w}`);
      next = loaded;
    } catch (err) {
      const errors = err instanceof GraphError ? err.message.split('\n') : [(err as Error).message];
      log.error(`graph reload rejected, keeping the running graph:\n${errors.join('\n')}`);
      metrics.configReloads.inc({ result: 'invalid' });
      const event: ConfigEvent = { result: 'invalid', file, summary: 'invalid graph; running graph kept', errors, atMs: clock.now() };
      bus.publish('config', event);
      return event;
    }
    const changes = await node.apply(next, runtime);
    const transportsChanged = !isDeepStrictEqual(wanted(next), new Map([...mounted].map(([id, m]) => [id, m.spec])));
    if (transportsChanged) await syncTransports(next);
    const result: ReloadResult = hasChanges(changes) || transportsChanged ? 'applied' : 'unchanged';
    const summary = describeChanges(changes);
    metrics.configReloads.inc({ result });
    log.info(`graph reload ${result}: ${summary}`);
    const event: ConfigEvent = { result, file, summary, changes, atMs: clock.now() };
    bus.publish('config', event);
    return event;
  };
  const reloadReport = (): Promise<ConfigEvent> => {
    if (!opts.graphFile) return Promise.reject(new Error('reload needs the graph file the app was started from'));
    reloading = reloading.then(reloadOnce, reloadOnce);
    return reloading;
  };
  const reload = (): Promise<ReloadResult> => reloadReport().then((e) => e.result);
  const portOf = (id: string): number | undefined => { const m = mounted.get(id); return m ? hub?.bound.get(m.spec.port) : undefined; };
  const watcher = opts.watch && opts.graphFile ? watchFile(opts.graphFile, () => void reload()) : null;
  root.add(async () => { await reloading.catch(() => undefined); });
  if (watcher) root.add(() => watcher.close());

  return {
    get graph() { return runtime.graph; },
    settings, bus, metrics, pool, store, counts, persons, runtime, node, hub, log, ports: hub?.bound ?? new Map<number, number>(),
    portOf,
    reload, reloadReport, stop: () => root.close(),
  };
}

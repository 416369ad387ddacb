/**
 * Runs a validated graph: one GStreamer source per declared source (shared by the pipelines that read
 * it), one RxJS chain per pipeline, one worker pool for the process. The stages come from the lookup it is
 * handed (the catalog); the engine names none.
 */
import { Subject, type Subscription } from 'rxjs';
import { modelPath, type Graph, type PipelineSpec, type SourceSpec, type StageSpec } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import type { Clock } from '../core/clock.js';
import { buildDag } from './dag.js';
import { diffGraphs, type GraphChanges } from './graph-diff.js';
import type { EventBus, PipelineState } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import { copyFrame } from './sources/frame-pool.js';
import { GstSource, type SourceOptions } from './sources/gst-source.js';
import { sourcesThePoolServes } from './sources/gstreamer.js';
import type { Admission, FrameScheduler } from './scheduler.js';
import type { StageContext, StageLookup } from './stage.js';
import type { Frame, Packet } from '../core/types.js';
import type { InferencePool } from '../inference/pool.js';
import type { CountsTable } from '../services/counting/counts.js';
import type { FaceCrops } from '../services/faces/face-crops.js';

export interface RuntimeDeps {
  settings: ResolvedSettings;
  /** The stages a graph may use (the catalog's). */
  stages: StageLookup;
  clock: Clock;
  counts: CountsTable;
  faces: FaceCrops;
  pool: InferencePool;
  /** Admission of live frames to the pool (fair across cameras, bounded latency). */
  scheduler: FrameScheduler;
  bus: EventBus;
  metrics: Metrics;
  log: Logger;
  /**
   * A file run (`sightline process`): nothing but the stages reads pixels (no console, no transports) and no one
   * watches the sources start. A source whose stages read only the detector view then makes views alone (no
   * full-size frame converted, copied or kept), and files are opened while the models load.
   */
  fileRun?: boolean;
}

/** Fans one source's frames out to the pipelines that read it. */
class SourceFeed {
  readonly consumers: PipelineRunner[] = [];
  started = false;
  private sub: Subscription | null = null;

  constructor(readonly source: GstSource, private readonly deps: RuntimeDeps) {
    // Offline: pull only when every consumer has room, so no pipeline has to queue or drop.
    source.setDemand(() => this.consumers.length > 0 && this.consumers.every((c) => c.hasRoom()));
  }

  attach(c: PipelineRunner): void {
    this.consumers.push(c);
    if (!this.sub) {
      const framesIn = this.deps.metrics.framesIn.labels(this.source.id);
      this.sub = this.source.frames.subscribe({
        next: (frame) => {
          framesIn.inc();
          // The first consumer takes the frame; the others get their own copy (pixels are transferred, not shared),
          // made before the first consumer can dispatch, and so transfer, the original.
          const frames = this.consumers.map((_, i) => (i === 0 ? frame : copyFrame(frame)));
          this.consumers.forEach((c, i) => c.deliver(frames[i]));
        },
        complete: () => this.consumers.forEach((c) => c.sourceEnded()),
      });
    }
  }

  detach(c: PipelineRunner): void {
    const i = this.consumers.indexOf(c);
    if (i >= 0) this.consumers.splice(i, 1);
  }
}

export class PipelineRunner {
  state: PipelineState = 'starting';
  reason?: string;
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly input = new Subject<Packet>();
  private inFlight = 0;
  private pending: Frame | null = null;
  private sub: Subscription | null = null;
  private inputClosed = false;
  private superseded = false;
  private readonly maxInFlight: number;
  /** A live pipeline's place in the scheduler (offline pipelines pull at their own pace instead). */
  private admission: Admission | null = null;
  private readonly log: Logger;

  constructor(readonly spec: PipelineSpec, private feed: SourceFeed, private readonly graph: Graph,
    private readonly deps: RuntimeDeps) {
    // Offline, one frame more than there are workers keeps every worker busy while a result travels back
    // to the sink (costs no latency that matters); live sources keep the setting, which bounds latency.
    this.maxInFlight = spec.maxInFlight
      ?? (feed.source.live ? deps.settings.maxInFlight : Math.max(deps.settings.maxInFlight, deps.settings.workers + 1));
    this.log = deps.log.child(spec.id);
    this.done = new Promise((r) => { this.resolveDone = r; });
  }

  get source(): GstSource {
    return this.feed.source;
  }

  hasRoom(): boolean {
    return this.inFlight < this.maxInFlight;
  }

  /** Loads the models, builds the chain and attaches to the source; a failure marks only this pipeline failed. */
  async start(): Promise<void> {
    if (await this.prepare()) this.go();
  }

  /** Loads the models and builds the chain, without taking frames yet. False if the pipeline failed. */
  async prepare(): Promise<boolean> {
    try {
      await this.preloadModels();
      const chain = buildDag(this.spec.stages, (s) => this.operatorFor(s));
      this.sub = this.input.pipe(chain).subscribe({
        next: (p) => this.onSink(p),
        error: (err: Error) => this.finish('failed', `pipeline error: ${err.message}`),
        complete: () => this.finish(this.source.current === 'failed' ? 'failed' : 'stopped', this.source.state.value.reason),
      });
      return true;
    } catch (err) {
      this.finish('failed', (err as Error).message);
      return false;
    }
  }

  /** Starts taking frames. */
  go(): void {
    this.setState('running');
    if (this.feed.source.live) this.admit();
    this.feed.attach(this);
  }

  private admit(): void {
    this.admission ??= this.deps.scheduler.register({
      maxInFlight: this.maxInFlight,
      weight: this.spec.weight ?? 1,
      budgetMs: this.spec.budgetMs ?? this.deps.settings.budgetMs,
      dispatch: (frame) => this.dispatch(frame),
      drop: (frame, reason) => this.discard(frame, reason),
    });
  }

  /** A replacement runner took over this pipeline's name: stop reporting its state and gauges. */
  supersede(): void {
    this.superseded = true;
  }

  /** Stops taking frames from the current source (the chain and its state stay). */
  detach(): void {
    this.feed.detach(this);
    this.discardPending();
  }

  /** Takes frames from `feed` from now on (after a reload replaced the source). */
  attach(feed: SourceFeed): void {
    this.feed = feed;
    if (this.state === 'running') {
      if (feed.source.live) this.admit();
      feed.attach(this);
    }
  }

  /** Drops the frame waiting for a free slot, e.g. when its source went down. */
  discardPending(): void {
    this.admission?.discard('stale');
    if (this.pending) this.discard(this.pending, 'stale');
    this.pending = null;
  }

  deliver(frame: Frame): void {
    if (this.inputClosed) return;
    // Live: the scheduler admits the newest frame when a slot is free, fairly across cameras.
    if (this.admission) { this.admission.offer(frame); return; }
    if (this.inFlight < this.maxInFlight) { this.dispatch(frame); return; }
    if (this.pending) this.discard(this.pending, 'stale');
    this.pending = frame;
  }

  sourceEnded(): void {
    const waiting = this.admission?.close() ?? null;
    this.admission = null;
    if (waiting) this.dispatch(waiting);
    if (this.pending) { const f = this.pending; this.pending = null; this.dispatch(f); }
    this.closeInput();
  }

  async stop(drainMs = 5000): Promise<void> {
    this.feed.detach(this);
    const waiting = this.admission?.close() ?? null;
    this.admission = null;
    if (waiting) this.discard(waiting, 'shutdown');
    if (this.pending) { this.discard(this.pending, 'shutdown'); this.pending = null; }
    this.closeInput();
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), drainMs).unref());
    if (await Promise.race([this.done.then(() => 'done' as const), timeout]) === 'timeout') {
      const left = this.inFlight;
      this.sub?.unsubscribe();
      if (left > 0) this.deps.metrics.framesDropped.inc({ pipeline: this.spec.id, source: this.source.id, reason: 'shutdown' }, left);
      this.finish('stopped', 'stopped before in-flight frames finished');
    }
  }

  private closeInput(): void {
    if (this.inputClosed) return;
    this.inputClosed = true;
    this.input.complete();
  }

  private dispatch(frame: Frame): void {
    this.inFlight++;
    if (!this.superseded) this.deps.metrics.inFlight.set({ pipeline: this.spec.id }, this.inFlight);
    this.input.next({ frame, pipeline: this.spec.id });
  }

  private drop(frame: Frame, reason: string): void {
    this.deps.metrics.framesDropped.inc({ pipeline: this.spec.id, source: frame.source, reason });
  }

  /** Drops a frame that never entered the stages; nothing else holds its pixels. */
  private discard(frame: Frame, reason: string): void {
    this.drop(frame, reason);
    this.source.recycle(frame);
  }

  private onSink(p: Packet): void {
    this.inFlight--;
    this.admission?.done();
    const { metrics, bus } = this.deps;
    if (!this.superseded) metrics.inFlight.set({ pipeline: this.spec.id }, this.inFlight);
    if (p.errors?.length) this.drop(p.frame, 'stage_error');
    else metrics.framesProcessed.inc({ pipeline: this.spec.id, source: p.frame.source });
    metrics.pipelineLatency.observe({ pipeline: this.spec.id }, (this.deps.clock.now() - p.frame.capturedAtMs) / 1000);
    bus.publish('packet', p);
    if (p.detections) {
      const f = p.frame;
      bus.publish('detections', {
        pipeline: p.pipeline, source: f.source, seq: f.seq, ptsNs: f.ptsNs, capturedAtMs: f.capturedAtMs,
        width: f.width, height: f.height, detections: p.detections,
      });
    }
    // Published: the pixels are free for the next frame (subscribers that keep them have copied them).
    this.source.recycle(p.frame);
    if (this.pending && !this.inputClosed) { const f = this.pending; this.pending = null; this.dispatch(f); }
    this.source.wake();
  }

  private operatorFor(stage: StageSpec) {
    const def = this.deps.stages(stage.use);
    if (!def) throw new Error(`unknown stage "${stage.use}"`);
    return def.create(stage.with, this.stageContext(stage));
  }

  private stageContext(stage: StageSpec): StageContext {
    return {
      pipeline: this.spec.id, source: this.spec.source, stageId: stage.id, graph: this.graph, settings: this.deps.settings,
      counts: this.deps.counts, faces: this.deps.faces, clock: this.deps.clock,
      pool: this.deps.pool, bus: this.deps.bus, metrics: this.deps.metrics, log: this.log.child(stage.id),
      modelPath: (id) => modelPath(this.graph, this.deps.settings.modelDir, id),
    };
  }

  private async preloadModels(): Promise<void> {
    for (const stage of this.spec.stages) {
      const def = this.deps.stages(stage.use);
      for (const id of def?.models?.(stage.with) ?? []) {
        const model = this.graph.models[id];
        try {
          await this.deps.pool.loadEverywhere({ path: modelPath(this.graph, this.deps.settings.modelDir, id), kind: model.kind });
        } catch (err) {
          throw new Error(`stage "${stage.id}": model "${id}": ${(err as Error).message}`, { cause: err });
        }
      }
    }
  }

  private finish(state: 'stopped' | 'failed', reason?: string): void {
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.feed.detach(this);
    this.setState(state, reason);
    this.resolveDone();
  }

  private setState(state: PipelineState, reason?: string): void {
    this.state = state;
    this.reason = reason;
    if (!this.superseded) this.deps.metrics.pipelineUp.set({ pipeline: this.spec.id }, state === 'running' ? 1 : 0);
    this.deps.bus.publish('pipeline.state', { pipeline: this.spec.id, state, reason, atMs: this.deps.clock.now() });
    const msg = `pipeline ${this.spec.id} ${state}${reason ? `: ${reason}` : ''}`;
    if (state === 'failed') this.log.error(msg); else this.log.info(msg);
  }
}

export class Runtime {
  readonly sources = new Map<string, GstSource>();
  readonly pipelines = new Map<string, PipelineRunner>();
  private readonly feeds = new Map<string, SourceFeed>();

  constructor(public graph: Graph, private readonly deps: RuntimeDeps) {
    deps.metrics.onScrape(() => {
      const now = deps.clock.now();
      for (const [id, s] of this.sources) {
        if (s.lastFrameAt) deps.metrics.sourceLastFrameAge.set({ source: id }, (now - s.lastFrameAt) / 1000);
      }
    });
  }

  async start(): Promise<void> {
    for (const spec of Object.values(this.graph.sources)) this.addSource(spec);
    if (this.deps.fileRun) this.openFilesEarly();
    await this.startPipelines(Object.keys(this.graph.pipelines));
    // A file opened early for pipelines that all failed to start is closed again.
    this.stopUnreadSources();
    this.startAttachedSources();
  }

  /**
   * Files are opened while the models load (typefinding, demuxing and the first frames decoded: 0.1–0.2 s of a run
   * on the sample video); they hand out no frame before a pipeline has room for it. Live sources start with their
   * pipelines, so no frame arrives with nobody to take it.
   */
  private openFilesEarly(): void {
    const read = new Set(Object.values(this.graph.pipelines).map((p) => p.source));
    for (const [id, feed] of this.feeds) {
      if (feed.source.live || !read.has(id) || feed.started) continue;
      feed.started = true;
      feed.source.start();
    }
  }

  /**
   * Applies a new graph by difference: removed and changed pipelines and sources are stopped, new
   * ones started; pipelines that did not change keep running with their state, and are moved to
   * the new instance of their source when only the source changed.
   */
  async apply(next: Graph): Promise<GraphChanges> {
    const changes = diffGraphs(this.graph, next);
    for (const [id, source] of this.sources) {
      if (source.fullFrames || !next.sources[id] || changes.sources.changed.includes(id)) continue;
      if (this.pixelsFor(id, next).fullFrames) changes.sources.changed.push(id);
    }
    const restartSources = new Set([...changes.sources.removed, ...changes.sources.changed]);
    // A changed pipeline on an unchanged source is swapped: its replacement is made ready first and takes
    // over in the same tick, so no frame of the source falls between the two runners.
    const swaps = changes.pipelines.changed.filter((id) =>
      next.pipelines[id].source === this.graph.pipelines[id].source && !restartSources.has(next.pipelines[id].source));
    for (const id of [...changes.pipelines.removed, ...changes.pipelines.changed.filter((c) => !swaps.includes(c))]) {
      await this.pipelines.get(id)?.stop();
      this.pipelines.delete(id);
    }
    // Detach the surviving pipelines before their source ends, so its end does not end them too.
    const movers = [...this.pipelines.values()].filter((p) => restartSources.has(p.spec.source));
    for (const p of movers) p.detach();
    for (const id of restartSources) {
      this.sources.get(id)?.stop('removed or changed by a graph reload');
      this.sources.delete(id);
      this.feeds.delete(id);
    }
    for (const id of changes.sources.removed) this.deps.metrics.forgetSource(id);
    this.graph = next;
    for (const id of [...changes.sources.added, ...changes.sources.changed]) this.addSource(next.sources[id]);
    for (const p of movers) p.attach(this.feeds.get(p.spec.source)!);
    await this.swapPipelines(swaps);
    await this.startPipelines([...changes.pipelines.added, ...changes.pipelines.changed.filter((c) => !swaps.includes(c))]);
    this.stopUnreadSources();
    this.startAttachedSources();
    return changes;
  }

  /** Resolves when every pipeline has stopped or failed (e.g. all file sources reached their end). */
  async whenDone(): Promise<void> {
    await Promise.all([...this.pipelines.values()].map((p) => p.done));
  }

  /** Stops every source and lets the pipelines drain (idempotent). */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      for (const s of this.sources.values()) s.stop();
      await Promise.all([...this.pipelines.values()].map((p) => p.stop()));
    })());
  }

  private stopping: Promise<void> | null = null;

  private addSource(spec: SourceSpec): void {
    const { metrics, bus, log } = this.deps;
    const source = new GstSource(spec, log.child(`source:${spec.id}`), this.pixelsFor(spec.id));
    const feed = new SourceFeed(source, this.deps);
    if (source.live) metrics.declareSource(spec.id);
    source.state.subscribe(({ state, previous, reason, attempt, retryReason }) => {
      metrics.setSourceState(spec.id, state);
      if (state === 'retrying') {
        metrics.sourceReconnects.inc({ source: spec.id, reason: retryReason ?? 'error' });
        // A frame held back from before the outage is stale by now.
        for (const c of feed.consumers) c.discardPending();
      }
      bus.publish('source.state', { source: spec.id, state, previous, reason, attempt, atMs: this.deps.clock.now() });
    });
    this.sources.set(spec.id, source);
    this.feeds.set(spec.id, feed);
    const room = sourcesThePoolServes();
    if (this.sources.size === room + 1) {
      log.warn(`${this.sources.size} sources, but libuv's thread pool (UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4}) serves ${room}: `
        + 'some will stall; start with a larger UV_THREADPOOL_SIZE (up to 1024)');
    }
  }

  /**
   * The pixels a source makes for the stages that read it: the largest detector view they ask for (0: none), and
   * full frames unless in a file run no stage reads them. A reload keeps what a source was started with (a stage
   * added later that wants a view falls back to the frame), except that a source without frames restarts with them
   * when a stage wants them.
   */
  private pixelsFor(source: string, graph = this.graph): SourceOptions {
    const pixels = Object.values(graph.pipelines).filter((p) => p.source === source)
      .flatMap((p) => p.stages.map((s) => this.deps.stages(s.use)?.pixels ?? 'frame'));
    const viewSide = Math.max(0, ...pixels.map((p) => (typeof p === 'object' ? p.view : 0)));
    return { viewSide, fullFrames: !(this.deps.fileRun && viewSide > 0 && !pixels.includes('frame')) };
  }

  private async swapPipelines(ids: string[]): Promise<void> {
    const fresh = ids.map((id) => this.newRunner(id));
    const ready = await Promise.all(fresh.map((r) => r.prepare()));
    const old = ids.map((id) => this.pipelines.get(id)!);
    ids.forEach((id, i) => {
      old[i].supersede();
      old[i].detach();
      this.pipelines.set(id, fresh[i]);
      if (ready[i]) fresh[i].go();
    });
    // The old runners finish the frames they already hold.
    await Promise.all(old.map((r) => r.stop()));
  }

  private newRunner(id: string): PipelineRunner {
    const spec = this.graph.pipelines[id];
    this.deps.metrics.declarePipeline(id, spec.source, spec.stages.map((s) => s.id));
    return new PipelineRunner(spec, this.feeds.get(spec.source)!, this.graph, this.deps);
  }

  private async startPipelines(ids: string[]): Promise<void> {
    const runners = ids.map((id) => {
      const runner = this.newRunner(id);
      this.pipelines.set(id, runner);
      return runner;
    });
    await Promise.all(runners.map((r) => r.start()));
  }

  /** A source no pipeline reads any more is stopped (and left ready to start again if one does). */
  private stopUnreadSources(): void {
    for (const [id, feed] of this.feeds) {
      if (feed.consumers.length || !feed.started) continue;
      feed.source.stop('no pipeline reads this source');
      this.addSource(this.graph.sources[id]);
    }
  }

  /** Starts the sources that some running pipeline reads (a source nobody reads stays idle). */
  private startAttachedSources(): void {
    for (const feed of this.feeds.values()) {
      if (feed.consumers.length && feed.source.current === 'stopped' && !feed.started) {
        feed.started = true;
        feed.source.start();
      }
      // A file opened early waits for demand until every pipeline reading it has attached.
      if (feed.consumers.length) feed.source.wake();
    }
  }
}

/**
 * Runs a validated graph: one GStreamer source per declared source (shared by the pipelines that read
 * it), one RxJS chain per pipeline, one worker pool for the process.
 */
import path from 'node:path';
import { Subject, type Subscription } from 'rxjs';
import type { Graph, PipelineSpec, StageSpec } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import { stageDefinition } from '../stages/registry.js';
import { buildDag } from './dag.js';
import type { EventBus, PipelineState } from './event-bus.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { GstSource } from './sources/gst-source.js';
import type { StageContext } from './stage.js';
import type { Frame, Packet } from './types.js';
import type { InferencePool } from './worker-pool.js';

export interface RuntimeDeps {
  settings: ResolvedSettings;
  pool: InferencePool;
  bus: EventBus;
  metrics: Metrics;
  log: Logger;
}

/** Fans one source's frames out to the pipelines that read it. */
class SourceFeed {
  readonly consumers: PipelineRunner[] = [];
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
          // The first consumer takes the frame; the others get their own copy (pixels are transferred, not shared).
          this.consumers.forEach((c, i) => c.deliver(i === 0 ? frame : { ...frame, data: frame.data.slice(0) }));
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
  private readonly maxInFlight: number;
  private readonly log: Logger;

  constructor(readonly spec: PipelineSpec, private readonly feed: SourceFeed, private readonly graph: Graph,
    private readonly deps: RuntimeDeps) {
    this.maxInFlight = spec.maxInFlight ?? deps.settings.maxInFlight;
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
    try {
      await this.preloadModels();
      const chain = buildDag(this.spec.stages, (s) => this.operatorFor(s));
      this.sub = this.input.pipe(chain).subscribe({
        next: (p) => this.onSink(p),
        error: (err: Error) => this.finish('failed', `pipeline error: ${err.message}`),
        complete: () => this.finish(this.source.current === 'failed' ? 'failed' : 'stopped', this.source.state.value.reason),
      });
    } catch (err) {
      this.finish('failed', (err as Error).message);
      return;
    }
    this.setState('running');
    this.feed.attach(this);
  }

  deliver(frame: Frame): void {
    if (this.inputClosed) return;
    if (this.inFlight < this.maxInFlight) { this.dispatch(frame); return; }
    // Live: the newest frame replaces the one waiting, which is counted as stale.
    if (this.pending) this.drop(this.pending, 'stale');
    this.pending = frame;
  }

  sourceEnded(): void {
    if (this.pending) { const f = this.pending; this.pending = null; this.dispatch(f); }
    this.closeInput();
  }

  async stop(drainMs = 5000): Promise<void> {
    this.feed.detach(this);
    if (this.pending) { this.drop(this.pending, 'shutdown'); this.pending = null; }
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
    this.deps.metrics.inFlight.set({ pipeline: this.spec.id }, this.inFlight);
    this.input.next({ frame, pipeline: this.spec.id });
  }

  private drop(frame: Frame, reason: string): void {
    this.deps.metrics.framesDropped.inc({ pipeline: this.spec.id, source: frame.source, reason });
  }

  private onSink(p: Packet): void {
    this.inFlight--;
    const { metrics, bus } = this.deps;
    metrics.inFlight.set({ pipeline: this.spec.id }, this.inFlight);
    if (p.errors?.length) this.drop(p.frame, 'stage_error');
    else metrics.framesProcessed.inc({ pipeline: this.spec.id, source: p.frame.source });
    metrics.pipelineLatency.observe({ pipeline: this.spec.id }, (Date.now() - p.frame.capturedAtMs) / 1000);
    bus.publish('packet', p);
    if (p.detections) {
      const f = p.frame;
      bus.publish('detections', {
        pipeline: p.pipeline, source: f.source, seq: f.seq, ptsNs: f.ptsNs, capturedAtMs: f.capturedAtMs,
        width: f.width, height: f.height, detections: p.detections,
      });
    }
    if (this.pending && !this.inputClosed) { const f = this.pending; this.pending = null; this.dispatch(f); }
    this.source.wake();
  }

  private operatorFor(stage: StageSpec) {
    const def = stageDefinition(stage.use);
    if (!def) throw new Error(`unknown stage "${stage.use}"`);
    return def.create(stage.with, this.stageContext(stage));
  }

  private stageContext(stage: StageSpec): StageContext {
    return {
      pipeline: this.spec.id, stageId: stage.id, graph: this.graph, settings: this.deps.settings,
      pool: this.deps.pool, bus: this.deps.bus, metrics: this.deps.metrics, log: this.log.child(stage.id),
      modelPath: (id) => modelPath(this.graph, this.deps.settings, id),
    };
  }

  private async preloadModels(): Promise<void> {
    for (const stage of this.spec.stages) {
      const def = stageDefinition(stage.use);
      for (const id of def?.models?.(stage.with) ?? []) {
        const model = this.graph.models[id];
        try {
          await this.deps.pool.run({ op: 'load', model: { path: modelPath(this.graph, this.deps.settings, id), kind: model.kind } });
        } catch (err) {
          throw new Error(`stage "${stage.id}": model "${id}": ${(err as Error).message}`);
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
    this.deps.metrics.pipelineUp.set({ pipeline: this.spec.id }, state === 'running' ? 1 : 0);
    this.deps.bus.publish('pipeline.state', { pipeline: this.spec.id, state, reason, atMs: Date.now() });
    const msg = `pipeline ${this.spec.id} ${state}${reason ? `: ${reason}` : ''}`;
    if (state === 'failed') this.log.error(msg); else this.log.info(msg);
  }
}

export function modelPath(graph: Graph, settings: ResolvedSettings, id: string): string {
  return path.resolve(settings.modelDir, graph.models[id].file);
}

export class Runtime {
  readonly sources = new Map<string, GstSource>();
  readonly pipelines = new Map<string, PipelineRunner>();
  private readonly feeds = new Map<string, SourceFeed>();

  constructor(readonly graph: Graph, private readonly deps: RuntimeDeps) {}

  async start(): Promise<void> {
    const { metrics, bus, log } = this.deps;
    for (const spec of Object.values(this.graph.sources)) {
      const source = new GstSource(spec, log.child(`source:${spec.id}`));
      source.state.subscribe(({ state, previous, reason, attempt }) => {
        metrics.setSourceState(spec.id, state);
        bus.publish('source.state', { source: spec.id, state, previous, reason, attempt, atMs: Date.now() });
      });
      this.sources.set(spec.id, source);
      this.feeds.set(spec.id, new SourceFeed(source, this.deps));
    }
    for (const spec of Object.values(this.graph.pipelines)) {
      this.pipelines.set(spec.id, new PipelineRunner(spec, this.feeds.get(spec.source)!, this.graph, this.deps));
    }
    await Promise.all([...this.pipelines.values()].map((p) => p.start()));
    // Start only the sources some running pipeline reads.
    for (const feed of this.feeds.values()) if (feed.consumers.length) feed.source.start();
  }

  /** Resolves when every pipeline has stopped or failed (e.g. all file sources reached their end). */
  async whenDone(): Promise<void> {
    await Promise.all([...this.pipelines.values()].map((p) => p.done));
  }

  async stop(): Promise<void> {
    for (const s of this.sources.values()) s.stop();
    await Promise.all([...this.pipelines.values()].map((p) => p.stop()));
  }
}

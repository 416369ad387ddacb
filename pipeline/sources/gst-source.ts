/**
 * A GStreamer-backed frame source with an explicit state machine driven by bus messages:
 * starting → running → (retrying → running)* → stopped | failed.
 *
 * Flow control: offline sources (files) pull the next sample only while the consumer has room,
 * so every frame is processed and nothing queues in JavaScript. Live sources always keep a
 * pull outstanding and leave the "latest frame wins" decision to the consumer.
 *
 * Every (re)connection builds a fresh GStreamer pipeline: dynamic pads (rtspsrc, decodebin) are linked
 * only once by gst_parse_launch, so a pipeline cannot be restarted reliably. The old one is stopped and
 * dropped; the patched binding (patches/) frees it when it is collected, so reconnects do not accumulate.
 */
import type { AppSink, BusMessage, Caps, Pipeline } from 'gstreamer-superficial';
import { BehaviorSubject, Subject } from 'rxjs';
import type { SourceSpec } from '../../config/graph.js';
import type { SourceState } from '../../core/events.js';
import type { Logger } from '../../core/log.js';
import type { Frame, FrameView } from '../../core/types.js';
import { FramePool } from './frame-pool.js';
import { gstreamer } from './gstreamer.js';
import { isLive, launchDescription, sourceKind } from './launch.js';

/** GStreamer pipelines built and freed in this process (freed = collected and released by the binding). */
export const gstPipelines = { built: 0, freed: 0 };
const collected = new FinalizationRegistry<null>(() => { gstPipelines.freed++; });

export type RetryReason = 'error' | 'eos' | 'watchdog';

export interface StateChange {
  state: SourceState;
  previous: SourceState;
  reason?: string;
  /** Why a live source went to `retrying`. */
  retryReason?: RetryReason;
  attempt?: number;
}

export interface RetryPolicy { initialMs: number; maxMs: number; maxAttempts: number }

export interface SourceOptions {
  retry?: RetryPolicy;
  /** Also deliver each frame scaled to fit viewSide × viewSide (`Frame.view`), for a detector; 0: no view. */
  viewSide?: number;
  /**
   * false (with a view): views alone. Frames then keep their full size but carry no pixels (`data` is empty): no
   * full-size picture is converted to RGB, copied out of GStreamer or kept, for stages that read only the view.
   */
  fullFrames?: boolean;
}

/** A view pulled ahead of its frame (live sinks drop on their own), kept for the frame of the same time. */
interface HeldView { pts: number; view: FrameView }
// The cap keeps recovery within a few seconds of a camera's return, however long it was away.
const DEFAULT_RETRY: RetryPolicy = { initialMs: 250, maxMs: 3_000, maxAttempts: Infinity };

export class GstSource {
  readonly id: string;
  readonly live: boolean;
  readonly frames = new Subject<Frame>();
  readonly state = new BehaviorSubject<StateChange>({ state: 'stopped', previous: 'stopped' });
  /** Wall-clock ms of the last frame (0 before the first). */
  lastFrameAt = 0;
  /** GStreamer pipelines this source has built (one per connection attempt). */
  pipelinesBuilt = 0;
  /** Frames pulled into the buffer of a frame that was done (frame-pool.ts). */
  framesReused = 0;

  private readonly isFile: boolean;
  private pipeline: Pipeline | null = null;
  private sink: AppSink | null = null;
  private viewSink: AppSink | null = null;
  private heldView: HeldView | null = null;
  /** Views alone: the sink the frame's size is read from, and the size read for views of a size. */
  private sizeSink: AppSink | null = null;
  private frameSize: { viewWidth: number; viewHeight: number; width: number; height: number } | null = null;
  /** Bumped on every close, so callbacks of an earlier run of the pipeline are ignored. */
  private generation = 0;
  private playing = false;
  private pulling = false;
  /** Offline flow control: asked before each pull; the consumer says whether it can take a frame. */
  private demand: () => boolean = () => true;
  private seq = 0;
  private started = false;
  /** PTS of the current connection that maps to `ptsOffset`; stream time = pts − ptsBase. */
  private ptsBase: number | null = null;
  /** Stream time the next connection continues from. */
  private ptsOffset = 0;
  private frameNs = 0;
  private attempt = 0;
  private openedAt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private readonly pool = new FramePool();
  private readonly viewPool = new FramePool();
  private readonly retry: RetryPolicy;
  private readonly viewSide: number;
  /** false: frames carry no pixels of their own, only their view (`SourceOptions.fullFrames`). */
  readonly fullFrames: boolean;

  constructor(readonly spec: SourceSpec, private readonly log: Logger, options: SourceOptions = {}) {
    this.id = spec.id;
    this.retry = options.retry ?? DEFAULT_RETRY;
    const side = options.viewSide ?? 0;
    // A source configured at the detector's size or below already is its view.
    const fits = spec.width !== undefined && spec.height !== undefined && Math.max(spec.width, spec.height) <= side;
    this.viewSide = Number.isInteger(side) && side > 0 && (!fits || options.fullFrames === false) ? side : 0;
    this.fullFrames = options.fullFrames !== false || this.viewSide === 0;
    this.live = isLive(spec);
    this.isFile = sourceKind(spec.uri) === 'file';
  }

  get current(): SourceState {
    return this.state.value.state;
  }

  /** Length of a file source in seconds, or -1 when unknown (live, or not yet prerolled). */
  durationSeconds(): number {
    return this.pipeline && this.playing ? this.pipeline.queryDuration() : -1;
  }

  /** Nominal frame rate from the negotiated caps (0 until the first frame). */
  get fps(): number {
    return this.frameNs > 0 ? 1e9 / this.frameNs : 0;
  }

  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    this.transition('starting');
    if (this.live && this.spec.watchdog > 0) {
      this.watchdogTimer = setInterval(() => this.checkWatchdog(), Math.min(1000, this.spec.watchdog * 250));
      this.watchdogTimer.unref();
    }
    this.open();
  }

  /** Offline flow control: frames are pulled only while `demand()` is true. Live sources ignore it. */
  setDemand(demand: () => boolean): void {
    this.demand = demand;
  }

  /** Tells an offline source that demand may have returned. */
  wake(): void {
    this.pump();
  }

  stop(reason = 'stopped by request'): void {
    if (this.stopping) return;
    this.stopping = true;
    this.clearTimers();
    this.close();
    if (this.current !== 'failed' && this.current !== 'stopped') this.transition('stopped', reason);
    this.frames.complete();
    this.state.complete();
  }

  private open(): void {
    let p: Pipeline;
    try {
      p = new gstreamer.Pipeline(launchDescription(this.spec, this.viewSide, this.fullFrames));
    } catch (err) {
      this.fail(`cannot build GStreamer pipeline: ${(err as Error).message}`);
      return;
    }
    this.pipelinesBuilt++;
    gstPipelines.built++;
    collected.register(p, null);
    // Views alone: the view is the sink pulled, and `size` tells the frame's size.
    const sink = p.findChild(this.fullFrames ? 'sink' : 'view');
    const viewSink = this.viewSide && this.fullFrames ? p.findChild('view') ?? null : null;
    const sizeSink = this.fullFrames ? null : p.findChild('size') ?? null;
    if (!sink || (this.viewSide && this.fullFrames && !viewSink) || (!this.fullFrames && !sizeSink)) {
      p.stop();
      this.fail('GStreamer pipeline has no appsink');
      return;
    }
    this.pipeline = p;
    this.sink = sink;
    this.viewSink = viewSink;
    this.sizeSink = sizeSink;
    const gen = this.generation;
    this.ptsBase = null;
    this.openedAt = Date.now();
    // Play first: an appsink pulled before it runs answers null at once.
    p.play();
    this.playing = true;
    p.pollBus((msg) => { if (gen === this.generation) this.onBus(msg); });
    this.pump();
  }

  private close(): void {
    if (!this.playing) return;
    this.generation++;
    this.playing = false;
    this.pulling = false;
    // NULL unblocks a pending pull (it answers null) and ends the bus poll; the pipeline is then dropped.
    this.pipeline?.stop();
    this.pipeline = null;
    this.sink = null;
    this.viewSink = null;
    this.heldView = null;
    this.sizeSink = null;
    this.frameSize = null;
  }

  private pump(): void {
    if (!this.sink || !this.playing || this.pulling) return;
    if (!this.live && !this.demand()) return;
    this.pulling = true;
    const gen = this.generation;
    const into = (this.fullFrames ? this.pool : this.viewPool).take();
    this.sink.pull((buf, caps) => {
      if (gen !== this.generation) return; // a run closed meanwhile
      if (!buf) {
        this.pulling = false;
        // For files, a null sample is the end of the file *after* every queued frame was pulled
        // (the bus EOS can arrive while frames still wait in the appsink). Live EOS is handled on the bus.
        if (this.isFile) this.endOfFile();
        return;
      }
      if (into && buf.buffer === into) this.framesReused++;
      const data = ownBuffer(buf);
      if (!this.fullFrames) {
        const view: FrameView = { width: Number(caps.width), height: Number(caps.height), data };
        this.withFrameSize(gen, view, (size) => this.deliver(new ArrayBuffer(0), size, caps, view));
        return;
      }
      const size = { width: Number(caps.width), height: Number(caps.height) };
      if (!this.viewSink) { this.deliver(data, size, caps); return; }
      this.withView(gen, ptsOf(caps), (view) => this.deliver(data, size, caps, view));
    }, into);
  }

  /**
   * Finds the view of the frame at `pts`. Offline the two sinks hold the same frames in step. Live, each sink keeps
   * only its newest buffer, so the view can be a frame behind (pulled again: the tee hands it over at once) or ahead
   * (held for its frame); a frame whose view is not there goes without one, and the detector scales it itself.
   */
  private withView(gen: number, pts: number | null, then: (view?: FrameView) => void): void {
    const held = this.heldView;
    if (held && pts !== null && held.pts >= pts) {
      if (held.pts > pts) { then(); return; }
      this.heldView = null;
      then(held.view);
      return;
    }
    if (held) { this.viewPool.give(held.view.data); this.heldView = null; }
    const into = this.viewPool.take();
    this.viewSink!.pull((buf, caps) => {
      if (gen !== this.generation) return;
      if (!buf) { then(); return; }
      const view: FrameView = { width: Number(caps.width), height: Number(caps.height), data: ownBuffer(buf) };
      const viewPts = ptsOf(caps);
      if (pts === null || viewPts === null || viewPts === pts) { then(view); return; }
      if (viewPts > pts) { this.heldView = { pts: viewPts, view }; then(); return; }
      this.viewPool.give(view.data);
      this.withView(gen, pts, then);
    }, into);
  }

  /**
   * Views alone: the size of the frames a view was scaled from, read from the `size` sink when the view's size is new
   * (its newest picture, of the same size save while the size changes: the next new view size reads it again).
   */
  private withFrameSize(gen: number, view: FrameView, then: (size: { width: number; height: number }) => void): void {
    const known = this.frameSize;
    if (known && known.viewWidth === view.width && known.viewHeight === view.height) { then(known); return; }
    this.sizeSink!.pull((buf, caps) => {
      if (gen !== this.generation) return;
      // Nothing left to read it from (the end of the stream): the view's own size, not remembered.
      if (!buf) { then(view); return; }
      this.frameSize = { viewWidth: view.width, viewHeight: view.height, width: Number(caps.width), height: Number(caps.height) };
      then(this.frameSize);
    });
  }

  private deliver(data: ArrayBuffer, size: { width: number; height: number }, caps: Caps, view?: FrameView): void {
    this.pulling = false;
    this.emit(data, size, caps, view);
    this.pump();
  }

  /** Takes back the buffers of a frame that is done (see frame-pool.ts for when that is). */
  recycle(frame: Frame): void {
    this.pool.give(frame.data);
    if (frame.view) this.viewPool.give(frame.view.data);
  }

  private emit(data: ArrayBuffer, { width, height }: { width: number; height: number }, caps: Caps, view?: FrameView): void {
    if (!this.frameNs) this.frameNs = frameDurationNs(caps.framerate);
    // Stream time from the buffer's own PTS, continuing across reconnects and loops.
    const pts = ptsOf(caps);
    if (pts !== null && this.ptsBase === null) this.ptsBase = pts - this.ptsOffset;
    const ptsNs = pts !== null ? pts - this.ptsBase! : this.ptsOffset;
    this.ptsOffset = ptsNs + (this.frameNs || 0);
    this.lastFrameAt = Date.now();
    if (this.current !== 'running') {
      this.attempt = 0;
      this.transition('running');
    }
    const seq = this.seq++;
    const frame: Frame = { source: this.id, seq, ptsNs: Math.round(ptsNs), capturedAtMs: this.lastFrameAt, width, height, format: 'RGB', data };
    // A view no smaller than the frame (a source already at the detector's size) would only be a second copy.
    if (view && (view.width < width || !this.fullFrames)) frame.view = view;
    else if (view) this.viewPool.give(view.data);
    this.frames.next(frame);
  }

  private onBus(msg: BusMessage): void {
    switch (msg.type) {
      case 'eos':
        if (!this.isFile) this.scheduleRetry('eos', 'end of stream on a live source');
        break;
      case 'error': {
        const reason = `${msg.message ?? 'GStreamer error'}${msg._src_element_name ? ` (element ${msg._src_element_name})` : ''}`;
        if (this.live) this.scheduleRetry('error', reason);
        else this.fail(reason);
        break;
      }
      case 'warning':
        this.log.warn(`GStreamer warning: ${String(msg.message ?? msg.type)}`);
        break;
      default:
        break;
    }
  }

  /** A live source that is "connected" but silent is as dead as one that errored. */
  private checkWatchdog(): void {
    if (!this.playing) return;
    const since = Math.max(this.lastFrameAt, this.openedAt);
    if (Date.now() - since > this.spec.watchdog * 1000) {
      this.scheduleRetry('watchdog', `no frame for ${this.spec.watchdog} s`);
    }
  }

  private endOfFile(): void {
    this.close();
    if (this.spec.loop && !this.stopping) { this.open(); return; }
    this.transition('stopped', 'end of stream');
    this.frames.complete();
  }

  private scheduleRetry(kind: RetryReason, reason: string): void {
    this.close();
    if (this.stopping || this.retryTimer) return;
    this.attempt++;
    if (this.attempt > this.retry.maxAttempts) {
      this.fail(`${reason}; gave up after ${this.retry.maxAttempts} attempts`);
      return;
    }
    // Capped exponential backoff with jitter (50-100 % of the step), so many cameras do not reconnect in lockstep.
    const ceiling = Math.min(this.retry.maxMs, this.retry.initialMs * 2 ** (this.attempt - 1));
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    this.transition('retrying', reason, this.attempt, kind);
    this.log.warn(`source ${this.id}: ${reason}; retry ${this.attempt} in ${delay} ms`);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopping) this.open();
    }, delay);
  }

  private fail(reason: string): void {
    this.clearTimers();
    this.close();
    this.log.error(`source ${this.id} failed: ${reason}`);
    this.transition('failed', reason);
    this.frames.complete();
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.retryTimer = null;
    this.watchdogTimer = null;
  }

  private transition(state: SourceState, reason?: string, attempt?: number, retryReason?: RetryReason): void {
    const previous = this.current;
    if (previous === state && state !== 'retrying') return;
    this.state.next({ state, previous, reason, attempt, retryReason });
  }
}

function ptsOf(caps: Caps): number | null {
  return typeof caps.pts === 'number' ? caps.pts : null;
}

/** The binding copies each sample into a recycled frame or a fresh Buffer; either way its ArrayBuffer is ours. */
function ownBuffer(buf: Buffer): ArrayBuffer {
  return buf.byteOffset === 0 && buf.buffer.byteLength === buf.length
    ? buf.buffer as ArrayBuffer
    : buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer;
}

function frameDurationNs(framerate: string | undefined): number {
  const m = /^(\d+)\/(\d+)$/.exec(framerate ?? '');
  if (!m || Number(m[1]) === 0) return 0;
  return (1e9 * Number(m[2])) / Number(m[1]);
}

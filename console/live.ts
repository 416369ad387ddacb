/**
 * Live view: the newest frame of each pipeline and what the stages found in it, handed to a browser when it asks
 * for one newer than the last it drew (pull: a slow tab simply asks less often and never holds up the server). The
 * frame is encoded on request from the pixels the packet reached its sink with, without any drawing, so the browser
 * draws boxes, ids, lines, keypoints and falls itself and can switch them off; at most `fps` encodes per pipeline a
 * second, each shared by every tab that asks. Where the pixels are not here (a cluster gateway gets packets without
 * them) the annotate stage's JPEG is sent instead, its drawings burned in (`drawn`).
 */
import type { Subscription } from 'rxjs';
import type { Clock } from '../core/clock.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Box, Packet } from '../core/types.js';
import type { AnnotateResult, AnnotateTask } from '../inference/ops/annotate.protocol.js';
import type { InferencePool } from '../inference/pool.js';

const r1 = (v: number): number => Math.round(v * 10) / 10;
const box = (b: Box): Box => [r1(b[0]), r1(b[1]), r1(b[2]), r1(b[3])];

/** What the browser draws over a frame; coordinates in source pixels (`width` × `height`). */
export interface LiveResults {
  /** Packets of this pipeline seen so far: the browser asks for one newer than the last it drew. */
  n: number;
  pipeline: string;
  source: string;
  seq: number;
  capturedAtMs: number;
  width: number;
  height: number;
  tracks?: { id: number; box: Box; label: string }[];
  detections?: { box: Box; label: string; score: number }[];
  faces?: { box: Box; trackId?: number }[];
  /** Keypoints as [x, y, confidence], in COCO order. */
  poses?: { trackId?: number; keypoints: [number, number, number][] }[];
  activities?: { trackId: number; posture: string; fallen: boolean }[];
  counting?: { line: [[number, number], [number, number]]; in: number; out: number };
  occupancy?: number;
  errors?: string[];
}

/** A frame as the browser gets it: JPEG bytes and their size; `drawn` when overlays are burned in. */
export interface LiveImage { jpeg: Uint8Array; width: number; height: number; drawn: boolean }

export function resultsOf(p: Packet, n: number): LiveResults {
  const f = p.frame;
  return {
    n, pipeline: p.pipeline, source: f.source, seq: f.seq, capturedAtMs: f.capturedAtMs, width: f.width, height: f.height,
    tracks: p.tracks?.map((t) => ({ id: t.id, box: box(t.box), label: t.label })),
    detections: p.tracks ? undefined : p.detections?.map((d) => ({ box: box(d.box), label: d.label, score: Math.round(d.score * 100) / 100 })),
    faces: p.faces?.map((x) => ({ box: box(x.box), trackId: x.trackId })),
    poses: p.poses?.map((x) => ({ trackId: x.trackId, keypoints: x.keypoints.map((k) => [r1(k.x), r1(k.y), Math.round(k.confidence * 100) / 100]) })),
    activities: p.activities?.map((a) => ({ trackId: a.trackId, posture: a.posture, fallen: a.fallen })),
    counting: p.counting && { line: p.counting.line, in: p.counting.countIn, out: p.counting.countOut },
    occupancy: p.occupancy,
    errors: p.errors?.map((e) => `${e.stage}: ${e.message}`),
  };
}

interface Held {
  /** The packet as it reached its sink, and its number among its pipeline's packets. */
  packet: Packet;
  n: number;
  /** Its results for the browser, made when a browser first asks (most packets are never asked for). */
  results?: LiveResults;
  /** A copy of the packet's RGB pixels, made while a browser watches (the packet's own buffer is recycled). */
  pixels?: ArrayBuffer;
  /** The annotate stage's JPEG, when the packet had one. */
  drawn?: { data: ArrayBuffer; width: number; height: number };
  image?: Promise<LiveImage | null>;
  atMs: number;
}

const resultsOfHeld = (h: Held): LiveResults => (h.results ??= resultsOf(h.packet, h.n));

/** How long after a browser's last request a pipeline's packets keep a copy of their pixels. */
const WATCHED_MS = 5_000;

export interface LiveOptions { fps: number; width: number; quality: number }

export class LiveFrames {
  private readonly newest = new Map<string, Held>();
  /** The newest packet that came with the annotate stage's JPEG (used where pixels are not here). */
  private readonly newestDrawn = new Map<string, Held>();
  private readonly counts = new Map<string, number>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly lastEncodeMs = new Map<string, number>();
  /** When a browser last asked for each pipeline's frames: pixels are copied only while someone watches. */
  private readonly askedMs = new Map<string, number>();
  private readonly sub: Subscription;
  private warned = false;

  constructor(bus: EventBus, private readonly pool: InferencePool, private readonly clock: Clock, private readonly log: Logger,
    private readonly o: LiveOptions) {
    this.sub = bus.on('packet').subscribe((p) => this.take(p));
  }

  /** Pipelines that sent a frame in the last minute, with the size of their frames. */
  pipelines(): { pipeline: string; source: string; width: number; height: number; n: number; ageMs: number }[] {
    const now = this.clock.now();
    return [...this.newest.values()].filter((h) => now - h.atMs < 60_000)
      .map((h) => {
        const { pipeline, frame: { source, width, height } } = h.packet;
        return { pipeline, source, width, height, n: h.n, ageMs: now - h.atMs };
      });
  }

  private take(p: Packet): void {
    const n = (this.counts.get(p.pipeline) ?? 0) + 1;
    this.counts.set(p.pipeline, n);
    const f = p.frame;
    // The frame's buffer goes back to its source once this event is published (frame-pool.ts): keep a copy, and only
    // while a browser is waiting or asked lately (a tab asks again as soon as it has its frame).
    const watched = (this.waiters.get(p.pipeline)?.size ?? 0) > 0 || this.clock.now() - (this.askedMs.get(p.pipeline) ?? -Infinity) < WATCHED_MS;
    const pixels = watched && f.data.byteLength > 0 && f.data.byteLength === f.width * f.height * 3 ? f.data.slice(0) : undefined;
    const held: Held = { packet: p, n, pixels, drawn: p.jpeg, atMs: this.clock.now() };
    this.newest.set(p.pipeline, held);
    if (p.jpeg) this.newestDrawn.set(p.pipeline, held);
    const waiting = this.waiters.get(p.pipeline);
    if (waiting?.size) {
      this.waiters.delete(p.pipeline);
      for (const wake of waiting) wake();
    }
  }

  /** Resolves once a packet newer than `after` is here, or after `maxWaitMs` (false). */
  private waitFor(pipeline: string, after: number, maxWaitMs: number): Promise<boolean> {
    this.askedMs.set(pipeline, this.clock.now());
    const have = this.newest.get(pipeline)?.n;
    // Newer than the tab's, or a number this server never gave (the tab outlived a restart): the newest at once.
    if (have !== undefined && have !== after) return Promise.resolve(true);
    return new Promise((resolve) => {
      const set = this.waiters.get(pipeline) ?? new Set();
      this.waiters.set(pipeline, set);
      const wake = (): void => { cancel(); resolve(true); };
      const cancel = this.clock.timeout(() => { set.delete(wake); resolve(false); }, maxWaitMs);
      set.add(wake);
    });
  }

  /**
   * The newest frame after packet `after` with its results, waiting up to `maxWaitMs` for one; null when none came.
   * Encodes are spaced by 1/fps per pipeline, so the server's cost does not grow with the number of tabs.
   */
  async next(pipeline: string, after: number, maxWaitMs: number): Promise<{ results: LiveResults; image: LiveImage | null } | null> {
    if (!(await this.waitFor(pipeline, after, maxWaitMs))) return null;
    const wait = (this.lastEncodeMs.get(pipeline) ?? -Infinity) + 1000 / this.o.fps - this.clock.now();
    if (wait > 0) await new Promise<void>((r) => this.clock.timeout(r, wait));
    const held = this.pick(pipeline);
    if (!held) return null;
    if (!held.image) {
      this.lastEncodeMs.set(pipeline, this.clock.now());
      held.image = this.encode(held);
    }
    return { results: resultsOfHeld(held), image: await held.image };
  }

  /** The next frame of a pipeline (within `maxWaitMs`), encoded: a snapshot of what its camera sees now. */
  async snapshot(pipeline: string, maxWaitMs = 3000): Promise<{ results: LiveResults; image: LiveImage } | null> {
    const after = this.newest.get(pipeline)?.n ?? 0;
    if (!(await this.waitFor(pipeline, after, maxWaitMs))) return null;
    const held = this.pick(pipeline);
    if (!held) return null;
    held.image ??= this.encode(held);
    const image = await held.image;
    return image ? { results: resultsOfHeld(held), image } : null;
  }

  /** The newest packet with pixels, else the newest with a drawn JPEG. */
  private pick(pipeline: string): Held | undefined {
    const newest = this.newest.get(pipeline);
    if (newest?.pixels) return newest;
    return this.newestDrawn.get(pipeline) ?? newest;
  }

  private async encode(h: Held): Promise<LiveImage | null> {
    if (!h.pixels) {
      return h.drawn ? { jpeg: new Uint8Array(h.drawn.data), width: h.drawn.width, height: h.drawn.height, drawn: true } : null;
    }
    const { width, height } = h.packet.frame;
    // Another copy for the worker: other tabs may still ask for this packet.
    const copy = h.pixels.slice(0);
    const task: AnnotateTask = {
      op: 'annotate', width, height, data: copy, quality: this.o.quality,
      outWidth: width > this.o.width ? this.o.width : undefined, boxes: [], lines: [], texts: [],
    };
    try {
      const r = await this.pool.run<AnnotateResult>(task, [copy]);
      return { jpeg: new Uint8Array(r.jpeg), width: r.width, height: r.height, drawn: false };
    } catch (err) {
      if (!this.warned) { this.warned = true; this.log.warn(`console: a live frame could not be encoded: ${(err as Error).message}`); }
      return null;
    }
  }

  close(): void {
    this.sub.unsubscribe();
    for (const set of this.waiters.values()) for (const wake of set) wake();
    this.waiters.clear();
    this.newest.clear();
    this.newestDrawn.clear();
  }
}

/** One answer to the browser: [u32 LE: JSON length][JSON results + image size][JPEG bytes]. */
export function liveMessage(results: LiveResults, image: LiveImage | null): Buffer {
  const head = Buffer.from(JSON.stringify({ ...results, image: image && { width: image.width, height: image.height, drawn: image.drawn } }));
  const out = Buffer.allocUnsafe(4 + head.length + (image?.jpeg.byteLength ?? 0));
  out.writeUInt32LE(head.length, 0);
  head.copy(out, 4);
  if (image) out.set(image.jpeg, 4 + head.length);
  return out;
}

/**
 * What the persons of a live pipeline look like ("looks": body and face embeddings per track), computed on the
 * node that runs the pipeline — the only one that has its pixels — and only while someone watches. WatchMe's
 * live tracking asks for a pipeline's looks at some rate and matches them against its references wherever it
 * runs: looks are published on the bus (`person.looks`), so in a cluster they reach the gateways through the
 * results bridge like any other result, and a watch made on a gateway is passed on to the workers
 * (cluster/shared-looks.ts).
 */
import type { Subscription } from 'rxjs';
import type { Clock } from '../../core/clock.js';
import type { EventBus, PersonLook, PersonLooksEvent } from '../../core/events.js';
import type { Logger } from '../../core/log.js';
import { TrackGallery } from './person-gallery.js';
import type { Packet } from '../../core/types.js';
import type { ModelRef } from '../../core/types.js';
import type { InferencePool } from '../../inference/pool.js';
import type { FaceModels, PersonEmbedResult, PersonEmbedTask } from '../../inference/ops/person-embed.protocol.js';

/** The models that describe persons, by graph model id, and how often a track is described again. */
export interface LooksModels {
  reid: string;
  /** Both or neither: the face embedding is added when a face shows inside the box. */
  faceDetector?: string;
  faceEmbedder?: string;
  faceScore?: number;
  /** Frames between two ReID embeddings of the same track. */
  refreshFrames: number;
}

export interface LooksWatch {
  pipeline: string;
  models: LooksModels;
  /** Looks per second wanted (the most any watcher of the same pipeline and models wants is computed). */
  fps: number;
}

/** Where a transport asks for looks: the node itself, or (on a cluster gateway) the workers as well. */
export interface LooksDemand {
  /** Looks of the pipeline are published until the returned function is called. */
  watch(w: LooksWatch): () => void;
}

export type { PersonLook, PersonLooksEvent };

export const looksKey = (m: LooksModels): string =>
  JSON.stringify([m.reid, m.faceDetector ?? null, m.faceEmbedder ?? null, m.faceScore ?? null, m.refreshFrames]);

export interface PersonLooksDeps {
  bus: EventBus;
  clock: Clock;
  pool: InferencePool;
  log: Logger;
  /** A graph model id as the worker tasks load it (resolved when a watch starts). */
  model: (id: string, kind: string) => ModelRef;
  /** Counts frames described, by pipeline. */
  described?: (pipeline: string) => void;
}

export class PersonLooks implements LooksDemand {
  private readonly feeds = new Map<string, LooksFeed>();

  constructor(private readonly d: PersonLooksDeps) {}

  watch(w: LooksWatch): () => void {
    const key = `${w.pipeline}\n${looksKey(w.models)}`;
    let feed = this.feeds.get(key);
    if (!feed) this.feeds.set(key, (feed = new LooksFeed(w.pipeline, w.models, this.d)));
    const want = { fps: w.fps };
    feed.wanted.add(want);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      feed.wanted.delete(want);
      if (feed.wanted.size === 0) { feed.close(); this.feeds.delete(key); }
    };
  }

  /** Pipelines being watched (for tests and health). */
  get watched(): string[] {
    return [...new Set([...this.feeds.values()].map((f) => f.pipeline))];
  }

  close(): void {
    for (const f of this.feeds.values()) f.close();
    this.feeds.clear();
  }
}

/** One watched pipeline with one set of models: its tracks' appearance is computed once for every watcher. */
class LooksFeed {
  readonly wanted = new Set<{ fps: number }>();
  private readonly gallery: TrackGallery;
  private readonly sub: Subscription;
  private readonly key: string;
  private readonly reid: ModelRef;
  private readonly face: FaceModels | undefined;
  private busy = false;
  private nextAt = 0;

  constructor(readonly pipeline: string, models: LooksModels, private readonly d: PersonLooksDeps) {
    this.key = looksKey(models);
    this.reid = d.model(models.reid, 'reid');
    this.face = models.faceDetector && models.faceEmbedder
      ? { detector: d.model(models.faceDetector, 'yunet'), embedder: d.model(models.faceEmbedder, 'mobilefacenet'), scoreThreshold: models.faceScore ?? 0.8 }
      : undefined;
    this.gallery = new TrackGallery({ refreshFrames: models.refreshFrames, history: 5, forgetFrames: 300, maxOccluded: 0.3 });
    this.sub = d.bus.on('packet').subscribe((p) => { if (p.pipeline === pipeline) this.onPacket(p); });
  }

  private onPacket(p: Packet): void {
    // Latest frame wins: while one frame is being described, newer ones pass by without costing anything.
    if (this.busy) return;
    // Only where the pipeline runs: packets from other nodes (a gateway's bus) carry no pixels. A frame a
    // stage failed on has no reliable persons either: wait for the next one.
    if (p.errors?.length || p.frame.data.byteLength !== p.frame.width * p.frame.height * 3) return;
    const t = this.d.clock.now();
    if (t < this.nextAt) return;
    const gapMs = 1000 / Math.max(...[...this.wanted].map((w) => w.fps));
    this.nextAt = Math.max(this.nextAt + gapMs, t + gapMs / 2);
    this.busy = true;
    this.describe(p)
      .then((persons) => {
        this.d.described?.(this.pipeline);
        const { frame } = p;
        this.d.bus.publish('person.looks', {
          pipeline: p.pipeline, source: frame.source, models: this.key,
          seq: frame.seq, width: frame.width, height: frame.height, capturedAtMs: frame.capturedAtMs, persons,
        });
      })
      .catch((err: Error) => this.d.log.warn(`looks of frame ${p.frame.seq} of ${this.pipeline} not computed: ${err.message}`))
      .finally(() => { this.busy = false; });
  }

  /** The persons of a packet with their looks: tracks from the gallery (refreshed when due), or detections. */
  private async describe(p: Packet): Promise<PersonLook[]> {
    const { frame } = p;
    const isPerson = (o: { label: string }): boolean => o.label === 'person';
    const tracks = p.tracks?.filter(isPerson);
    const dueTracks = tracks ? this.gallery.due(tracks, frame.seq) : null;
    const boxes = dueTracks ? dueTracks.map((t) => t.box) : (p.detections ?? []).filter(isPerson).map((d) => d.box);
    let described: PersonEmbedResult | null = null;
    if (boxes.length) {
      // A copy: the packet's buffer belongs to the pipeline and to the other subscribers.
      const data = frame.data.slice(0);
      const faces = p.faces?.map((f) => ({ box: f.box, score: f.score, landmarks: f.landmarks }));
      const task: PersonEmbedTask = { op: 'person-embed', reid: this.reid, face: this.face, width: frame.width, height: frame.height, data, boxes, faces };
      described = await this.d.pool.run<PersonEmbedResult>(task, [data]);
    }
    if (!tracks || !dueTracks) return described?.persons.map((d) => ({ box: d.box, body: d.body, ...(d.face ? { face: d.face } : {}) })) ?? [];
    dueTracks.forEach((t, i) => {
      const d = described!.persons[i];
      this.gallery.update(t.id, frame.seq, { body: d.body, face: d.face }, t.covered);
    });
    this.gallery.prune(frame.seq);
    return tracks.flatMap((t) => {
      const look = this.gallery.get(t.id);
      return look ? [{ box: t.box, trackId: t.id, body: look.body, ...(look.face ? { face: look.face } : {}) }] : [];
    });
  }

  close(): void {
    this.sub.unsubscribe();
    this.gallery.clear();
  }
}

/**
 * Typed in-process event bus. Stages and sources publish domain events; transports subscribe
 * and translate them into their wire protocol, so neither side knows about the other.
 */
import { Subject, type Observable } from 'rxjs';
import type { Box, Detection, Packet } from './types.js';

export interface SectionChanges { added: string[]; removed: string[]; changed: string[] }

/** What a graph reload changed, section by section. */
export interface GraphChanges {
  sources: SectionChanges;
  models: SectionChanges;
  /** A pipeline counts as changed when its own spec or a model it uses changed (not when only its source did). */
  pipelines: SectionChanges;
  transports: SectionChanges;
}

/** One person's looks: what a live watch (WatchMe) matches against its references. */
export interface PersonLook {
  box: Box;
  /** The tracker's id, when the pipeline tracks. */
  trackId?: number;
  /** Unit vectors: ReID body embedding, and the face embedding when a face showed. */
  body: Float32Array;
  face?: Float32Array;
}

/** One frame's looks (bus topic `person.looks`). */
export interface PersonLooksEvent {
  pipeline: string;
  source: string;
  /** `looksKey` of the models: watchers of the same pipeline with other models ignore these. */
  models: string;
  seq: number;
  width: number;
  height: number;
  capturedAtMs: number;
  persons: PersonLook[];
}

export type SourceState = 'starting' | 'running' | 'retrying' | 'stopped' | 'failed';
export type PipelineState = 'starting' | 'running' | 'stopped' | 'failed';

export interface BusEvents {
  /** A packet that has passed every stage of its pipeline. */
  packet: Packet;
  detections: {
    pipeline: string; source: string; seq: number; ptsNs: number; capturedAtMs: number;
    width: number; height: number; detections: Detection[];
  };
  'source.state': { source: string; state: SourceState; previous: SourceState; reason?: string; attempt?: number; atMs: number };
  'pipeline.state': { pipeline: string; state: PipelineState; reason?: string; atMs: number };
  'count.crossed': { pipeline: string; source: string; trackId: number; direction: 'in' | 'out'; atMs: number };
  'count.stats': {
    pipeline: string; source: string; countIn: number; countOut: number; faceCount: number;
    dailyEventCount: number; eventActive: boolean; currentEventCountIn: number; atMs: number;
  };
  'traffic.event': { pipeline: string; source: string; status: 'started' | 'ended'; startMs: number; endMs?: number; countIn: number };
  /** A track's best face so far was saved (face id = track id). */
  'face.saved': { pipeline: string; source: string; faceId: number; filename: string; score: number; atMs: number };
  /** A track fell: fast downward torso motion followed by lying for the configured time. */
  'activity.fall': {
    pipeline: string; source: string; trackId: number; box: [number, number, number, number];
    /** Seconds from the start of the fall to lying still. */
    fallDuration: number;
    /** 0..1 from the peak downward speed of the torso relative to body height. */
    impactSeverity: number;
    confidence: number; recoveryDetected: boolean; atMs: number;
  };
  /** A fallen track got up again. */
  'activity.recovered': { pipeline: string; source: string; trackId: number; lyingSeconds: number; atMs: number };
  /** Persons present in a source changed. */
  occupancy: { pipeline: string; source: string; count: number; previous: number; changeType: 'increase' | 'decrease'; atMs: number };
  /** The reconstruct stage wrote a new point cloud (GLB) of what a pipeline's camera sees. */
  'reconstruction.model': { pipeline: string; source: string; path: string; numPoints: number; numFrames: number; glbSizeBytes: number; atMs: number };
  /** What the persons of a watched pipeline look like, for live matching (WatchMe), computed where it runs. */
  'person.looks': PersonLooksEvent;
  /** A graph reload: applied (with what changed), invalid (old graph kept) or unchanged. */
  config: ConfigEvent;
}

/** What a graph reload did: applied (with what changed), invalid (old graph kept, with its errors) or unchanged. */
export interface ConfigEvent {
  result: 'applied' | 'invalid' | 'unchanged'; file: string; summary: string; changes?: GraphChanges; errors?: string[]; atMs: number;
}

export type Topic = keyof BusEvents;

/** What a stage makes only on demand. */
export type Product = 'jpeg';

export class EventBus {
  // One Subject per topic: a subscriber to rare events never pays for the per-frame ones.
  private readonly subjects = new Map<Topic, Subject<unknown>>();
  // Observers of every topic (e.g. a bridge forwarding events to other nodes), called before subscribers.
  private readonly taps: ((topic: Topic, event: unknown) => void)[] = [];
  // What consumers want produced, by product and pipeline ('*': every pipeline), with how many want it.
  private readonly wants = new Map<string, number>();

  /**
   * Announces that a consumer wants a product of a pipeline (`jpeg`: annotated frames), so the stage that makes it
   * works only while someone wants it; answers the function that withdraws the want (once).
   */
  want(product: Product, pipeline: string): () => void {
    const key = `${product}\n${pipeline}`;
    this.wants.set(key, (this.wants.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.wants.get(key) ?? 1) - 1;
      if (n > 0) this.wants.set(key, n); else this.wants.delete(key);
    };
  }

  /** Whether anyone wants `product` of `pipeline` now. */
  wanted(product: Product, pipeline: string): boolean {
    return this.wants.has(`${product}\n${pipeline}`) || this.wants.has(`${product}\n*`);
  }

  private subject<K extends Topic>(topic: K): Subject<BusEvents[K]> {
    let s = this.subjects.get(topic);
    if (!s) this.subjects.set(topic, (s = new Subject<unknown>()));
    return s as Subject<BusEvents[K]>;
  }

  publish<K extends Topic>(topic: K, event: BusEvents[K]): void {
    for (const tap of this.taps) tap(topic, event);
    this.subjects.get(topic)?.next(event);
  }

  on<K extends Topic>(topic: K): Observable<BusEvents[K]> {
    return this.subject(topic).asObservable();
  }

  /** Sees every event of every topic, including topics added later; returns the function that removes it. */
  tap(fn: (topic: Topic, event: unknown) => void): () => void {
    this.taps.push(fn);
    return () => { const i = this.taps.indexOf(fn); if (i >= 0) this.taps.splice(i, 1); };
  }

  /** Completes every topic: subscribers see the end. Idempotent. */
  close(): void {
    for (const s of this.subjects.values()) s.complete();
    this.subjects.clear();
    this.taps.length = 0;
  }
}

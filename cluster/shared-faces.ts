/**
 * Saved face crops across the cluster: the worker that saves a face (the faces stage writes the JPEG and
 * its row, then publishes `face.saved`) puts row fields and JPEG bytes under `<pipeline>/<faceId>` in the
 * JetStream KV bucket `sightline-faces`; every node that serves protocols watches the bucket (its current
 * values first, so a node started later catches up) and writes each face into its own store and faces
 * directory, exactly where the faces stage would have, so the People Counter transport answers
 * `get_face` / `get_all_faces` on a gateway as it does on a single node.
 *
 * As on a single node, faces outlive the day they were saved on (face ids are track ids, kept across
 * days), and a better crop of the same track replaces the earlier one. Entries expire from the bucket
 * after two days (a late node only catches up on those); a node keeps its copies as a single node keeps
 * its files. An explicit delete of a key (an operator's `nats kv del`) removes that face everywhere.
 */
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import type { Subscription } from 'rxjs';
import type { Graph } from '../config/graph.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import { dayKey, resetAtOf } from '../services/counting/day.js';
import { faceFilename, type FaceCrops } from '../services/faces/face-crops.js';
import { decode, encode } from './codec.js';

export const FACES_BUCKET = 'sightline-faces';
const MAX_AGE_MS = 2 * 24 * 3600 * 1000;
/** A crop is a few tens of KB; anything near NATS' 1 MB payload limit is not one of ours. */
const MAX_JPEG_BYTES = 900 * 1024;
/** A pipeline id as the graph allows it (so it is safe as a directory name). */
const PIPELINE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface SharedFace { pipeline: string; faceId: number; day: string; filename: string; score: number; createdMs: number; jpeg: Uint8Array }

export const faceKey = (pipeline: string, faceId: number): string => `${pipeline}/${faceId}`;

/** The face an entry holds, or an error saying why it is not one. */
export function readSharedFace(key: string, value: Uint8Array): SharedFace {
  const f = decode<SharedFace>(value);
  if (typeof f !== 'object' || f === null) throw new Error('not a face');
  if (typeof f.pipeline !== 'string' || !PIPELINE_ID.test(f.pipeline)) throw new Error('bad pipeline id');
  if (!Number.isInteger(f.faceId) || f.faceId < 0 || f.faceId > 2 ** 31) throw new Error('bad face id');
  if (key !== faceKey(f.pipeline, f.faceId)) throw new Error(`key ${key} does not name the face it holds`);
  if (f.filename !== faceFilename(f.faceId)) throw new Error('bad filename');
  if (typeof f.day !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(f.day)) throw new Error('bad day');
  if (typeof f.score !== 'number' || !Number.isFinite(f.score) || !Number.isSafeInteger(f.createdMs)) throw new Error('bad score or time');
  if (!(f.jpeg instanceof Uint8Array) || f.jpeg.length < 4 || f.jpeg.length > MAX_JPEG_BYTES || f.jpeg[0] !== 0xff || f.jpeg[1] !== 0xd8) {
    throw new Error('not a JPEG of a plausible size');
  }
  return f;
}

export class SharedFaces {
  private sub: Subscription | null = null;
  private putting: Promise<unknown> = Promise.resolve();
  private watcher: QueuedIterator<KvEntry> | null = null;
  private following: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(private readonly kv: KV, private readonly faces: FaceCrops,
    private readonly log: Logger, private readonly metrics: Metrics) {}

  static async open(nc: NatsConnection, faces: FaceCrops, log: Logger, metrics: Metrics, replicas: number): Promise<SharedFaces> {
    // An existing bucket is used as it is (its age included).
    const kv = await nc.jetstream().views.kv(FACES_BUCKET, { history: 1, ttl: MAX_AGE_MS, replicas }) as KV;
    return new SharedFaces(kv, faces, log, metrics);
  }

  /** On a worker: every face it saves for a source it holds goes to the bucket, one put at a time, in order. */
  share(bus: EventBus, graph: () => Graph, holds: (source: string) => boolean): void {
    this.sub = bus.on('face.saved').subscribe((e) => {
      if (!holds(e.source)) return;
      const resetAt = resetAtOf(graph(), e.pipeline);
      this.putting = this.putting.then(async () => {
        // The file as it is now: a better crop saved since is sent again by its own event.
        const jpeg = await this.faces.read(e.pipeline, e.faceId);
        if (!jpeg) throw new Error('its file is gone');
        const face: SharedFace = { pipeline: e.pipeline, faceId: e.faceId, day: dayKey(e.atMs, resetAt), filename: e.filename, score: e.score,
          createdMs: e.atMs, jpeg };
        await this.kv.put(faceKey(e.pipeline, e.faceId), encode(face));
        this.metrics.clusterSharedChanges.inc({ state: 'faces', result: 'published' });
      }).catch((err: Error) => {
        this.metrics.clusterSharedChanges.inc({ state: 'faces', result: 'failed' });
        this.log.warn(`face ${e.faceId} of ${e.pipeline} was not shared: ${err.message}`);
      });
    });
  }

  /** On a node that serves protocols: copies every face in the bucket, then each new one, into this node's store. */
  follow(): void {
    let revision = 0;
    this.following = (async () => {
      while (!this.closed) {
        try {
          let copied = 0;
          const initializedFn = (): void => this.log.info(`faces: caught up with ${FACES_BUCKET} (${copied} copied)`);
          // After a lost watch, on from where it stopped (a replay would be harmless, only slower).
          this.watcher = await this.kv.watch(revision ? { resumeFromRevision: revision + 1 } : { initializedFn });
          if (this.closed) break;
          for await (const entry of this.watcher) {
            revision = Math.max(revision, entry.revision);
            if (this.applyEntry(entry)) copied++;
          }
        } catch (err) {
          if (!this.closed) this.log.warn(`watching ${FACES_BUCKET}: ${(err as Error).message}; retrying`);
        }
        if (!this.closed) await new Promise((r) => setTimeout(r, 1000));
      }
    })();
  }

  /** Applies one entry; true when it changed this node's copy. Never throws: bad entries are counted and skipped. */
  private applyEntry(entry: KvEntry): boolean {
    try {
      if (entry.operation !== 'PUT') return this.remove(entry.key);
      const f = readSharedFace(entry.key, entry.value);
      const have = this.faces.get(f.pipeline, f.faceId);
      // Already here (the node saved it itself, or a replay after a reconnect), or here in a newer crop.
      if (have && (have.createdMs > f.createdMs || (have.createdMs === f.createdMs && this.faces.size(f.pipeline, f.faceId) === f.jpeg.length))) return false;
      this.faces.save({ pipeline: f.pipeline, day: f.day, faceId: f.faceId, filename: f.filename, score: f.score, createdMs: f.createdMs }, f.jpeg);
      this.metrics.clusterSharedChanges.inc({ state: 'faces', result: 'applied' });
      return true;
    } catch (err) {
      this.metrics.clusterSharedChanges.inc({ state: 'faces', result: 'skipped' });
      this.log.warn(`${FACES_BUCKET} entry ${entry.key.slice(0, 80)} skipped: ${(err as Error).message}`);
      return false;
    }
  }

  private remove(key: string): boolean {
    const m = /^([^/]+)\/(\d+)$/.exec(key);
    if (!m || !PIPELINE_ID.test(m[1])) throw new Error('not a face key');
    const [pipeline, faceId] = [m[1], Number(m[2])];
    if (!this.faces.delete(pipeline, faceId)) return false;
    this.metrics.clusterSharedChanges.inc({ state: 'faces', result: 'applied' });
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.sub?.unsubscribe();
    this.watcher?.stop();
    await Promise.all([this.putting, this.following]);
  }
}

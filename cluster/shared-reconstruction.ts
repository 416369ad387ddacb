/**
 * Reconstruction sessions across the cluster: every change asked for through any gateway (create, image
 * added, status, model, touch, delete, expiry) is a record on the JetStream stream `sightline-reconstruction`,
 * and every gateway applies the stream, in order, to its own store and files, so the transport keeps reading
 * its local copy synchronously and a session works the same from any gateway. Image bytes and GLB models go
 * in the JetStream Object Store `sightline-reconstruction` (a model can exceed a NATS message's 1 MB
 * max_payload) before the record that names them; each gateway copies them to its own files as it applies it.
 *
 * The stream decides: an image's index is its place among the session's images when its record applies, so
 * two gateways adding images to one session at once still agree. A writer answers once its own copy has
 * applied its record (with the outcome of that apply). A delete rolls up the session's subject (only the
 * tombstone stays in the stream) and removes its objects; a gateway started later replays what is left.
 *
 * Expiry does not fight across gateways: activity is shared coarsely (a `touch` record once a session's
 * shared activity is older than the transport's precision, a quarter of its TTL, and any other change
 * refreshes it too), so a session in use on one gateway never looks idle for a whole TTL to another. Any
 * gateway may then ask to expire a session it sees idle, but the expiry is conditional: it applies only if
 * the session's activity, where the record lands in the stream, is still the one the asker saw. A touch
 * that got there first wins, on every gateway alike.
 */
import { coded, isCode } from '../core/errors.js';
import { createHash, randomUUID } from 'node:crypto';
import { headers, type JetStreamClient, type NatsConnection, type ObjectStore } from 'nats';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import {
  type ReconstructionSession, type ReconstructionSessions, type SessionImage, type SessionOptions,
  type SessionStatus, type SessionsWriter,
} from '../services/reconstruction/sessions.js';
import type { Store } from '../services/store/store.js';
import { StreamReplica } from './stream-replica.js';

export const RECONSTRUCTION_STREAM = 'sightline-reconstruction';
const OBJECTS = 'sightline-reconstruction';
/** Four tokens: never mistaken for the bridge's results (`sightline.<topic>.<source>`). */
const SUBJECT = 'sightline.reconstruction.session';

const STATUSES: readonly SessionStatus[] = ['created', 'receiving', 'processing', 'completed', 'finalized', 'failed'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Change = { id: string; ref?: string } & (
  | { op: 'create'; maxImages: number; processRes: number; numMaxPoints: number; atMs: number }
  | { op: 'image'; filename: string; object: string; size: number; atMs: number }
  | { op: 'status'; status: SessionStatus; message: string | null; atMs: number }
  | { op: 'model'; object: string; sha256: string; numPoints: number; numFrames: number; status: SessionStatus; atMs: number }
  | { op: 'touch'; atMs: number }
  | { op: 'delete' }
  /** Deletes the session only if its activity is still `idleSince` (no touch came first). */
  | { op: 'expire'; idleSince: number });

/** A change this node published and waits to see applied (with the bytes it named, to skip a download). */
interface Pending { resolve: (v: unknown) => void; reject: (e: Error) => void; bytes?: Uint8Array }

/** A change that applies as a no-op with a reason (a full or deleted session): the same on every gateway. */
class Refused extends Error {}
/** The object store could not be read (NATS away): the record is applied again once it can, not skipped. */
class FetchFailed extends Error {}
/** Reads of a record's object retried (about a second apart) before the record is skipped. */
const MAX_FETCH_TRIES = 10;

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export class SharedReconstruction implements SessionsWriter {
  private readonly replica: StreamReplica;
  private readonly pending = new Map<string, Pending>();
  /**
   * The model object each session's copy holds here: the one a newer model replaces (and its writer removes).
   * Forgotten on a restart: such a leftover object goes with its session.
   */
  private readonly models = new Map<string, string>();
  private readonly touching = new Set<string>();
  private readonly expiring = new Set<string>();
  /** The object whose reads failed last, and how many times in a row. */
  private fetchFailures = { object: '', count: 0 };
  private readonly js: JetStreamClient;

  private constructor(nc: NatsConnection, private readonly objects: ObjectStore, private readonly sessions: ReconstructionSessions,
    private readonly store: Store, private readonly log: Logger, private readonly metrics: Metrics, private readonly waitMs: number) {
    this.js = nc.jetstream();
    this.replica = new StreamReplica(this.js, {
      stream: RECONSTRUCTION_STREAM, store, log,
      apply: (seq, data) => this.applyMessage(seq, data),
      clear: () => sessions.clear(),
      localOnly: () => (sessions.list().length ? 'reconstruction sessions created on this node before it joined the cluster stay on this node only' : null),
    });
  }

  /** Joins (or creates) the stream and object store, catches up, then keeps applying; the transport's writes go through it. */
  static async start(nc: NatsConnection, sessions: ReconstructionSessions, store: Store, log: Logger, metrics: Metrics,
    replicas: number, waitMs = 30_000): Promise<SharedReconstruction> {
    const jsm = await nc.jetstreamManager();
    // Kept until deleted: a delete rolls its session's records up into one tombstone.
    const info = await StreamReplica.ensure(jsm, { name: RECONSTRUCTION_STREAM, subjects: [`${SUBJECT}.*`], num_replicas: replicas, allow_rollup_hdrs: true });
    const objects = await nc.jetstream().views.os(OBJECTS, { replicas });
    const shared = new SharedReconstruction(nc, objects, sessions, store, log, metrics, waitMs);
    shared.replica.begin(info);
    const last = info.state.last_seq;
    shared.replica.consume();
    await shared.replica.until(last);
    log.info(`reconstruction sessions: ${sessions.list().length} from ${RECONSTRUCTION_STREAM} (sequence ${last})`);
    return shared;
  }

  private async applyMessage(seq: number, data: Uint8Array): Promise<void> {
    const mark = (): void => this.replica.mark(seq);
    let change: Change | null = null;
    let outcome: { value?: unknown; error?: Error } = {};
    try {
      change = parseChange(data);
    } catch (err) {
      // A record no gateway could have written (another publisher on the subject) is skipped, never retried.
      mark();
      this.log.warn(`${RECONSTRUCTION_STREAM} message ${seq} skipped: ${(err as Error).message}`);
      this.metrics.clusterSharedChanges.inc({ state: 'reconstruction', result: 'skipped' });
    }
    if (change) {
      const c = change;
      try {
        const bytes = await this.bytesFor(c);
        this.store.transaction(() => {
          outcome = { value: this.apply(c, bytes) };
          mark();
        });
      } catch (err) {
        if (err instanceof FetchFailed) throw err;
        mark();
        outcome = { error: err as Error };
        if (!(err instanceof Refused || isCode(err, 'TOO_MANY_IMAGES'))) this.log.warn(`${RECONSTRUCTION_STREAM} message ${seq} (${c.op} of session ${c.id}) not applied: ${(err as Error).message}`);
      }
      this.metrics.clusterSharedChanges.inc({ state: 'reconstruction', result: 'applied' });
      const waiting = c.ref ? this.pending.get(c.ref) : undefined;
      if (waiting) {
        this.pending.delete(c.ref!);
        if (outcome.error) waiting.reject(outcome.error); else waiting.resolve(outcome.value);
      }
    }
  }

  /** The bytes an image or model record names: this node's own, or from the object store (skipped for a session gone or full). */
  private async bytesFor(c: Change): Promise<Uint8Array | null> {
    if (c.op !== 'image' && c.op !== 'model') return null;
    const s = this.sessions.get(c.id);
    if (!s) throw new Refused(`session ${c.id} not found`);
    if (c.op === 'image' && s.images.length >= s.maxImages) throw coded('TOO_MANY_IMAGES', `session already has its maximum of ${s.maxImages} images`);
    const bytes = (c.ref && this.pending.get(c.ref)?.bytes)
      || await this.objects.getBlob(c.object).catch((err: Error) => {
        // Retried (NATS away for a moment), but not for ever: an object that cannot be read (damaged, a
        // replica lost) must not hold up every later record on every gateway.
        const tries = this.fetchFailures.object === c.object ? ++this.fetchFailures.count : (this.fetchFailures = { object: c.object, count: 1 }).count;
        if (tries <= MAX_FETCH_TRIES) throw new FetchFailed(`reading ${OBJECTS}/${c.object}: ${err.message}`);
        throw new Error(`${OBJECTS}/${c.object} could not be read after ${MAX_FETCH_TRIES} tries: ${err.message}`);
      });
    if (!bytes) throw new Error(`${OBJECTS}/${c.object} is gone`);
    if (c.op === 'image' && bytes.byteLength !== c.size) throw new Error(`${c.object} has ${bytes.byteLength} bytes, not ${c.size}`);
    if (c.op === 'model' && sha256(bytes) !== c.sha256) throw new Error(`${c.object} is not the model the record names`);
    return bytes;
  }

  private apply(c: Change, bytes: Uint8Array | null): unknown {
    const s = this.sessions;
    switch (c.op) {
      case 'create':
        if (s.get(c.id)) return s.get(c.id);
        return s.create({ maxImages: c.maxImages, processRes: c.processRes, numMaxPoints: c.numMaxPoints }, c.atMs, c.id);
      case 'image':
        return s.addImage(c.id, c.filename, bytes!, c.atMs);
      case 'status':
        s.setStatus(c.id, c.status, c.message, c.atMs);
        return undefined;
      case 'model': {
        s.saveModel(c.id, bytes!, c.numPoints, c.numFrames, c.status, c.atMs);
        const previous = this.models.get(c.id);
        this.models.set(c.id, c.object);
        return previous;
      }
      case 'touch':
        if (s.get(c.id)) s.touch(c.id, c.atMs);
        return undefined;
      case 'delete':
        this.models.delete(c.id);
        return s.delete(c.id);
      case 'expire': {
        const cur = s.get(c.id);
        if (!cur || cur.lastActivityMs > c.idleSince) return false;
        this.models.delete(c.id);
        return s.delete(c.id);
      }
    }
  }

  /** Publishes a change and answers the outcome of applying it here (or fails after `waitMs`). */
  private async publish(change: Change, opts: { bytes?: Uint8Array; rollup?: boolean } = {}): Promise<unknown> {
    const ref = randomUUID();
    // Registered before publishing: this node's consumer may apply the record before the publish is acknowledged.
    const applied = new Promise<unknown>((resolve, reject) => { this.pending.set(ref, { resolve, reject, bytes: opts.bytes }); });
    const h = headers();
    if (opts.rollup) h.set('Nats-Rollup', 'sub');
    try {
      await this.js.publish(`${SUBJECT}.${change.id}`, JSON.stringify({ ...change, ref }), { expect: { streamName: RECONSTRUCTION_STREAM }, timeout: this.waitMs, headers: h });
    } catch (err) {
      this.pending.delete(ref);
      this.metrics.clusterSharedChanges.inc({ state: 'reconstruction', result: 'failed' });
      this.log.warn(`a change of reconstruction session ${change.id} was not taken by ${RECONSTRUCTION_STREAM}: ${(err as Error).message}`);
      throw coded('UNAVAILABLE', `the cluster's store of reconstruction sessions did not confirm the change (${(err as Error).message}); it may still be applied once the cluster is reachable`);
    }
    this.metrics.clusterSharedChanges.inc({ state: 'reconstruction', result: 'published' });
    const timer = setTimeout(() => {
      const p = this.pending.get(ref);
      this.pending.delete(ref);
      p?.reject(coded('UNAVAILABLE', `the change was taken (${change.op} of session ${change.id}) but this node has not applied it within ${this.waitMs} ms; it will appear here once it has`));
    }, this.waitMs);
    try {
      return await applied;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Puts bytes in the object store under a name of the session's own. */
  private async putObject(id: string, kind: 'image' | 'model', bytes: Uint8Array): Promise<string> {
    const name = `${id}/${kind}-${randomUUID()}`;
    try {
      await this.objects.putBlob({ name }, bytes);
    } catch (err) {
      this.metrics.clusterSharedChanges.inc({ state: 'reconstruction', result: 'failed' });
      throw coded('UNAVAILABLE', `the cluster's object store did not take the ${kind} (${(err as Error).message}); try again`);
    }
    return name;
  }

  /** Removes a deleted session's objects (best effort: a leftover costs only disk). */
  private async removeObjects(id: string): Promise<void> {
    try {
      const names = (await this.objects.list()).map((o) => o.name).filter((n) => n.startsWith(`${id}/`));
      for (const name of names) await this.objects.delete(name);
    } catch (err) {
      this.log.warn(`reconstruction session ${id}: its images and models stay in ${OBJECTS}: ${(err as Error).message}`);
    }
  }

  async create(o: SessionOptions): Promise<ReconstructionSession> {
    const id = randomUUID();
    return await this.publish({ op: 'create', id, ...o, atMs: Date.now() }) as ReconstructionSession;
  }

  async addImage(id: string, filename: string, bytes: Uint8Array): Promise<SessionImage> {
    const object = await this.putObject(id, 'image', bytes);
    return await this.publish({ op: 'image', id, filename, object, size: bytes.byteLength, atMs: Date.now() }, { bytes }) as SessionImage;
  }

  async setStatus(id: string, status: SessionStatus, message: string | null = null): Promise<void> {
    await this.publish({ op: 'status', id, status, message, atMs: Date.now() });
  }

  async saveModel(id: string, glb: Uint8Array, numPoints: number, numFrames: number, status: SessionStatus = 'completed'): Promise<void> {
    const object = await this.putObject(id, 'model', glb);
    const previous = await this.publish({ op: 'model', id, object, sha256: sha256(glb), numPoints, numFrames, status, atMs: Date.now() }, { bytes: glb });
    // The model it replaced comes earlier in the stream: no later record names it.
    if (typeof previous === 'string') await this.objects.delete(previous).catch(() => undefined);
  }

  touch(id: string, precisionMs: number): void {
    const s = this.sessions.get(id);
    if (!s || this.touching.has(id) || Date.now() - s.lastActivityMs < precisionMs) return;
    this.touching.add(id);
    this.publish({ op: 'touch', id, atMs: Date.now() })
      .catch((err: Error) => this.log.warn(`reconstruction session ${id}: activity not shared: ${err.message}`))
      .finally(() => this.touching.delete(id));
  }

  async delete(id: string): Promise<boolean> {
    if (!this.sessions.get(id)) return false;
    // Rolls the session's records up into this tombstone: a gateway replaying the stream later skips them.
    const deleted = await this.publish({ op: 'delete', id }, { rollup: true }) as boolean;
    if (deleted) await this.removeObjects(id);
    return deleted;
  }

  async expire(cutoffMs: number, keep: Set<string>): Promise<string[]> {
    const due = this.sessions.idle(cutoffMs, keep).filter((s) => !this.expiring.has(s.id));
    const expired = await Promise.all(due.map(async (s) => {
      this.expiring.add(s.id);
      try {
        const deleted = await this.publish({ op: 'expire', id: s.id, idleSince: s.lastActivityMs }) as boolean;
        // An expiry may not roll up (it might not apply): once it has, a delete (a no-op by then) does.
        if (deleted) await this.publish({ op: 'delete', id: s.id }, { rollup: true }).then(() => this.removeObjects(s.id), () => undefined);
        return deleted ? s.id : null;
      } finally {
        this.expiring.delete(s.id);
      }
    }));
    return expired.filter((id): id is string => id !== null);
  }

  async close(): Promise<void> {
    await this.replica.close();
    for (const p of this.pending.values()) p.reject(coded('UNAVAILABLE', 'this node is shutting down'));
    this.pending.clear();
  }
}

/** A record as a gateway writes it, or an error saying what is wrong with it. */
function parseChange(data: Uint8Array): Change {
  const c = JSON.parse(Buffer.from(data).toString('utf8')) as Record<string, unknown> | null;
  if (typeof c !== 'object' || c === null) throw new Error('not a JSON object');
  // The id names a directory: only a UUID is taken.
  if (typeof c.id !== 'string' || !UUID.test(c.id)) throw new Error(`bad session id ${JSON.stringify(c.id ?? null)}`);
  const int = (k: string, min = 0) => { if (!Number.isSafeInteger(c[k]) || (c[k] as number) < min) throw new Error(`bad ${k} ${JSON.stringify(c[k] ?? null)}`); };
  const str = (k: string) => { if (typeof c[k] !== 'string') throw new Error(`bad ${k} ${JSON.stringify(c[k] ?? null)}`); };
  const object = () => { str('object'); if (!(c.object as string).startsWith(`${c.id as string}/`)) throw new Error('an object of another session'); };
  const status = () => { if (!STATUSES.includes(c.status as SessionStatus)) throw new Error(`bad status ${JSON.stringify(c.status ?? null)}`); };
  if (c.ref !== undefined) str('ref');
  switch (c.op) {
    case 'create': int('maxImages', 1); int('processRes', 1); int('numMaxPoints', 1); int('atMs'); break;
    case 'image': str('filename'); object(); int('size', 1); int('atMs'); break;
    case 'status': status(); if (c.message !== null) str('message'); int('atMs'); break;
    case 'model': object(); str('sha256'); int('numPoints'); int('numFrames'); status(); int('atMs'); break;
    case 'touch': int('atMs'); break;
    case 'delete': break;
    case 'expire': int('idleSince'); break;
    default: throw new Error(`unknown change ${JSON.stringify(c.op ?? null)}`);
  }
  return c as unknown as Change;
}

/**
 * Known persons across the cluster: every change asked for through any gateway's API is a message on the
 * JetStream stream `sightline-persons`, and every gateway applies the stream, in order, to its own store
 * (and so to its face search). The stream is the truth; each store is a copy that remembers how far it got.
 *
 * Ids are agreed without coordination: a new person's or photo's id is the stream sequence of the message
 * that created it (unique, increasing, an integer as the DDFR protocol wants). A writer answers only once
 * its own copy has applied its message, so the API answers from the same state the stream produced; a
 * node that starts late (or was offline) replays what it missed before it serves.
 *
 * The stream is compacted as it goes: once a delete is in it, the writer removes the messages that carried
 * what was deleted (a person's create, updates and photos: names, dates, embeddings). The small delete
 * messages stay, for copies that applied the create but not yet the delete; a copy replaying from the start
 * applies them as no-ops. A change racing the delete through another gateway may stay behind, equally a no-op.
 */
import { coded } from '../core/errors.js';
import type { JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import type { Logger } from '../core/log.js';
import { type KnownPersons, type Person, type PersonInput, type PersonsWriter, type Photo } from '../services/persons/known-persons.js';
import type { Metrics } from '../core/metrics.js';
import { ReplicaMarks } from '../services/store/replicas.js';
import type { Store } from '../services/store/store.js';
import { StreamReplica } from './stream-replica.js';

export const PERSONS_STREAM = 'sightline-persons';
const SUBJECT = 'sightline.persons';

type Change =
  /** Create (no id: the message's sequence is the id) or replace (with id). */
  | { op: 'person'; id?: number; name: string; surname: string | null; birthday: string | null; relationship: string | null; role: Person['role']; createdMs: number }
  | { op: 'delete-person'; id: number }
  /** A photo's embedding (float32, base64); its id is the message's sequence. */
  | { op: 'photo'; personId: number; sha256: string; createdMs: number; vector: string }
  | { op: 'delete-photo'; personId: number; id: number };


export class SharedPersons implements PersonsWriter {
  private readonly js: JetStreamClient;
  private readonly replica: StreamReplica;
  /** The update messages of each person (a delete removes them from the stream with the person). */
  private readonly marks: ReplicaMarks;

  private constructor(nc: NatsConnection, private readonly jsm: JetStreamManager, private readonly persons: KnownPersons,
    private readonly store: Store, private readonly log: Logger, private readonly metrics: Metrics, private readonly waitMs: number) {
    this.js = nc.jetstream();
    this.marks = new ReplicaMarks(store);
    this.replica = new StreamReplica(this.js, {
      stream: PERSONS_STREAM, store, log,
      apply: (seq, data) => this.applyMessage(seq, data),
      clear: () => { persons.clear(); this.marks.forgetPersonUpdates(); },
      localOnly: () => (persons.list().length
        ? `persons enrolled on this node before it joined the cluster are not shared; ids from ${PERSONS_STREAM} replace them where they collide`
        : null),
    });
  }

  /** Joins (or creates) the stream, catches up with it, then keeps applying it; API writes go through it. */
  static async start(nc: NatsConnection, persons: KnownPersons, store: Store, log: Logger, metrics: Metrics, replicas: number,
    waitMs = 15_000): Promise<SharedPersons> {
    const jsm = await nc.jetstreamManager();
    // Kept until compacted: the history is the persons (about 1 KB per photo).
    const info = await StreamReplica.ensure(jsm, { name: PERSONS_STREAM, subjects: [SUBJECT], num_replicas: replicas });
    const shared = new SharedPersons(nc, jsm, persons, store, log, metrics, waitMs);
    shared.replica.begin(info);
    const last = info.state.last_seq;
    shared.replica.consume();
    // Serve only what the cluster already agreed on: however long the replay of a large history takes.
    await shared.replica.until(last);
    log.info(`known persons: ${persons.list().length} from ${PERSONS_STREAM} (sequence ${last})`);
    return shared;
  }

  private applyMessage(seq: number, data: Uint8Array): void {
    let ok = true;
    try {
      // A message no gateway could have written (another publisher on the subject) is skipped, never retried
      // for ever: the mark moves past it either way (with the change, in one transaction, when it applies).
      this.store.transaction(() => {
        const change = JSON.parse(Buffer.from(data).toString('utf8')) as Change;
        this.apply(seq, change);
        this.replica.mark(seq);
      });
    } catch (err) {
      ok = false;
      this.replica.mark(seq);
      this.log.warn(`${PERSONS_STREAM} message ${seq} skipped: ${(err as Error).message}`);
    }
    this.metrics.clusterSharedChanges.inc({ state: 'persons', result: ok ? 'applied' : 'skipped' });
  }

  private apply(seq: number, c: Change): void {
    const id = (v: unknown): number => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new Error(`bad id ${JSON.stringify(v)}`);
      return v;
    };
    switch (c?.op) {
      case 'person': {
        const fields = { name: c.name, surname: c.surname, birthday: c.birthday, relationship: c.relationship, role: c.role };
        if (typeof c.name !== 'string' || (c.role !== 'user' && c.role !== 'guest')) throw new Error('not a person');
        // An update of a person deleted earlier in the stream stays deleted; only a create inserts.
        if (c.id === undefined) this.persons.put({ id: seq, ...fields, createdMs: Number(c.createdMs) || Date.now() });
        else if (this.persons.update(id(c.id), fields)) {
          // Remembered so that a delete can take this message out of the stream too.
          this.marks.notePersonUpdate(c.id, seq);
        }
        break;
      }
      case 'delete-person':
        this.persons.delete(id(c.id));
        this.marks.forgetPersonUpdates(c.id);
        break;
      case 'photo': {
        const bytes = Buffer.from(String(c.vector), 'base64');
        if (bytes.length !== this.persons.dim * 4) throw new Error(`an embedding of ${bytes.length} bytes, not ${this.persons.dim} floats`);
        const vector = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
        this.persons.putPhoto({ id: seq, personId: id(c.personId), sha256: String(c.sha256), createdMs: Number(c.createdMs) || Date.now() }, vector);
        break;
      }
      case 'delete-photo':
        this.persons.deletePhoto(id(c.personId), id(c.id));
        break;
      default:
        throw new Error(`unknown change ${JSON.stringify((c as { op?: unknown } | null)?.op ?? null)}`);
    }
  }

  /** Publishes a change and waits until this node applied it; answers its sequence. */
  private async publish(change: Change): Promise<number> {
    let seq: number;
    try {
      seq = (await this.js.publish(SUBJECT, JSON.stringify(change), { expect: { streamName: PERSONS_STREAM }, timeout: this.waitMs })).seq;
    } catch (err) {
      this.metrics.clusterSharedChanges.inc({ state: 'persons', result: 'failed' });
      this.log.warn(`a change of the known persons was not taken by ${PERSONS_STREAM}: ${(err as Error).message}`);
      // A publish buffered while NATS was away may still land once it is back: say so rather than "not changed".
      throw coded('UNAVAILABLE', `the cluster's store of known persons did not confirm the change (${(err as Error).message}); it may still be applied once the cluster is reachable: list the persons before trying again`);
    }
    this.metrics.clusterSharedChanges.inc({ state: 'persons', result: 'published' });
    await this.replica.until(seq, this.waitMs, () => coded('UNAVAILABLE', `the change was taken (sequence ${seq} of ${PERSONS_STREAM}) but this node has not applied it within ${this.waitMs} ms; it will appear here once it has`));
    return seq;
  }

  async create(p: PersonInput): Promise<Person> {
    const seq = await this.publish({
      op: 'person', name: p.name, surname: p.surname ?? null, birthday: p.birthday ?? null,
      relationship: p.relationship ?? null, role: p.role ?? 'guest', createdMs: Date.now(),
    });
    const person = this.persons.get(seq);
    if (!person) throw new Error(`person ${seq} was deleted as it was created`);
    return person;
  }

  async update(id: number, patch: Partial<PersonInput>): Promise<Person | undefined> {
    const current = this.persons.get(id);
    if (!current) return undefined;
    const next = { ...current, ...patch };
    await this.publish({
      op: 'person', id, name: next.name, surname: next.surname ?? null, birthday: next.birthday ?? null,
      relationship: next.relationship ?? null, role: next.role, createdMs: current.createdMs,
    });
    return this.persons.get(id);
  }

  async delete(id: number): Promise<boolean> {
    if (!this.persons.get(id)) return false;
    const photos = this.persons.photos(id).map((ph) => ph.id);
    const updates = this.marks.personUpdates(id);
    await this.publish({ op: 'delete-person', id });
    await this.compact([id, ...updates, ...photos]);
    return true;
  }

  async addPhoto(personId: number, embedding: Float32Array, sha256: string): Promise<Photo | undefined> {
    const vector = Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength).toString('base64');
    const seq = await this.publish({ op: 'photo', personId, sha256, createdMs: Date.now(), vector });
    return this.persons.photos(personId).find((ph) => ph.id === seq);
  }

  async deletePhoto(personId: number, photoId: number): Promise<boolean> {
    if (!this.persons.photos(personId).some((ph) => ph.id === photoId)) return false;
    await this.publish({ op: 'delete-photo', personId, id: photoId });
    await this.compact([photoId]);
    return true;
  }

  /** Removes the messages of deleted persons and photos from the stream (ids are their sequences). */
  private async compact(seqs: number[]): Promise<void> {
    for (const seq of seqs) {
      try {
        await this.jsm.streams.deleteMessage(PERSONS_STREAM, seq, false);
        this.metrics.clusterSharedChanges.inc({ state: 'persons', result: 'compacted' });
      } catch (err) {
        // Gone already (another writer compacted it), or NATS away: a leftover message costs only space.
        this.log.debug(`${PERSONS_STREAM} message ${seq} not removed: ${(err as Error).message}`);
      }
    }
  }

  async close(): Promise<void> {
    await this.replica.close();
  }
}

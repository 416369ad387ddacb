/**
 * Known persons and their face embeddings: rows in the store, vectors mirrored in the face search worker
 * (FaceSearch) so a change is searchable at once, without a restart.
 */
import path from 'node:path';
import { FaceSearch } from './face-search.js';
import type { Logger } from '../../core/log.js';
import type { Metrics } from '../../core/metrics.js';
import type { Store } from '../store/store.js';

export type Role = 'user' | 'guest';

export interface PersonInput {
  name: string;
  surname?: string | null;
  birthday?: string | null;
  relationship?: string | null;
  role?: Role;
}

export interface Person {
  id: number;
  name: string;
  surname: string | null;
  birthday: string | null;
  relationship: string | null;
  role: Role;
  createdMs: number;
}

export interface Photo { id: number; personId: number; sha256: string; createdMs: number }

interface PersonRow { id: number; name: string; surname: string | null; birthday: string | null; relationship: string | null; role: Role; created_ms: number }

const toPerson = (r: PersonRow): Person => ({
  id: r.id, name: r.name, surname: r.surname, birthday: r.birthday, relationship: r.relationship, role: r.role, createdMs: r.created_ms,
});

/** Whole years from `birthday` (YYYY-MM-DD) to `today` (local date). */
export function ageOn(birthday: string | null, today = new Date()): number {
  if (!birthday) return 0;
  const [y, m, d] = birthday.split('-').map(Number);
  let age = today.getFullYear() - y;
  if (today.getMonth() + 1 < m || (today.getMonth() + 1 === m && today.getDate() < d)) age--;
  return Math.max(0, age);
}

/** How 1:N search runs (see config/settings.ts); null for a process that only writes (`sightline enroll`). */
export interface SearchSettings {
  dataDir: string;
  faceIndexExactBelow: number;
  faceIndexEf: number;
  faceIndexM: number;
  faceIndexEfConstruction: number;
}


/**
 * Changes asked for through the API. Locally they are written at once (`localPersonsWriter`); in a cluster they go
 * through a log every node applies, so ids agree and every gateway recognises the same persons. `addPhoto` answers
 * undefined when the person was deleted meanwhile. A change the log cannot take now fails with UNAVAILABLE.
 */
export interface PersonsWriter {
  create(p: PersonInput): Promise<Person>;
  update(id: number, patch: Partial<PersonInput>): Promise<Person | undefined>;
  delete(id: number): Promise<boolean>;
  addPhoto(personId: number, embedding: Float32Array, sha256: string): Promise<Photo | undefined>;
  deletePhoto(personId: number, photoId: number): Promise<boolean>;
}

export class KnownPersons {
  /** The search worker, or null when this process does not search. */
  readonly search: FaceSearch | null;


  constructor(private readonly store: Store, search: SearchSettings | null, log: Logger, metrics?: Metrics, readonly dim = 128) {
    this.search = search && new FaceSearch({
      dbFile: store.file, dataDir: path.resolve(search.dataDir), dim,
      exactBelow: search.faceIndexExactBelow, efSearch: search.faceIndexEf, m: search.faceIndexM, efConstruction: search.faceIndexEfConstruction,
    }, log, metrics);
    this.dataVersion = this.db.pragma('data_version', { simple: true }) as number;
  }

  /** Embeddings the search holds (as last reported by its worker). */
  get indexSize(): number {
    return this.search?.status.size ?? 0;
  }

  private get db() {
    return this.store.db;
  }

  list(): (Person & { photos: number })[] {
    return (this.db.prepare(`SELECT p.*, (SELECT COUNT(*) FROM person_embeddings e WHERE e.person_id = p.id) AS photos
      FROM persons p ORDER BY p.id`).all() as (PersonRow & { photos: number })[]).map((r) => ({ ...toPerson(r), photos: r.photos }));
  }

  get(id: number): Person | undefined {
    const r = this.db.prepare('SELECT * FROM persons WHERE id = ?').get(id) as PersonRow | undefined;
    return r && toPerson(r);
  }

  create(p: PersonInput): Person {
    const id = Number(this.db.prepare('INSERT INTO persons (name, surname, birthday, relationship, role, created_ms) VALUES (?, ?, ?, ?, ?, ?)')
      .run(p.name, p.surname ?? null, p.birthday ?? null, p.relationship ?? null, p.role ?? 'guest', Date.now()).lastInsertRowid);
    return this.get(id)!;
  }

  update(id: number, patch: Partial<PersonInput>): Person | undefined {
    const current = this.get(id);
    if (!current) return undefined;
    const next = { ...current, ...patch };
    this.db.prepare('UPDATE persons SET name = ?, surname = ?, birthday = ?, relationship = ?, role = ? WHERE id = ?')
      .run(next.name, next.surname ?? null, next.birthday ?? null, next.relationship ?? null, next.role, id);
    return this.get(id);
  }

  delete(id: number): boolean {
    const deleted = this.db.prepare('DELETE FROM persons WHERE id = ?').run(id).changes > 0;
    if (deleted) this.search?.removePerson(id);
    return deleted;
  }

  /** Writes a person with the id agreed elsewhere (a change from the cluster's log): insert or replace. */
  put(p: Person): void {
    this.db.prepare(`INSERT INTO persons (id, name, surname, birthday, relationship, role, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET name = excluded.name, surname = excluded.surname, birthday = excluded.birthday,
      relationship = excluded.relationship, role = excluded.role`)
      .run(p.id, p.name, p.surname, p.birthday, p.relationship, p.role, p.createdMs);
  }

  /** Writes a photo's embedding with the id agreed elsewhere; ignored when its person is gone. */
  putPhoto(photo: Photo, embedding: Float32Array): boolean {
    const vector = Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength);
    const added = this.db.prepare(`INSERT INTO person_embeddings (id, person_id, vector, photo_sha256, created_ms)
      SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM persons WHERE id = ?) ON CONFLICT(id) DO NOTHING`)
      .run(photo.id, photo.personId, vector, photo.sha256, photo.createdMs, photo.personId).changes > 0;
    if (added) this.search?.add(photo.id, photo.personId, embedding);
    return added;
  }

  /** Forgets every person (a node whose copy came from a log that no longer exists). */
  clear(): void {
    this.db.exec('DELETE FROM person_embeddings; DELETE FROM persons;');
    this.search?.reload();
  }

  photos(personId: number): Photo[] {
    return (this.db.prepare('SELECT id, person_id, photo_sha256, created_ms FROM person_embeddings WHERE person_id = ? ORDER BY id').all(personId) as
      { id: number; person_id: number; photo_sha256: string; created_ms: number }[])
      .map((r) => ({ id: r.id, personId: r.person_id, sha256: r.photo_sha256, createdMs: r.created_ms }));
  }

  addPhoto(personId: number, embedding: Float32Array, sha256: string): Photo {
    const vector = Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength);
    const now = Date.now();
    const id = Number(this.db.prepare('INSERT INTO person_embeddings (person_id, vector, photo_sha256, created_ms) VALUES (?, ?, ?, ?)')
      .run(personId, vector, sha256, now).lastInsertRowid);
    this.search?.add(id, personId, embedding);
    return { id, personId, sha256, createdMs: now };
  }

  deletePhoto(personId: number, photoId: number): boolean {
    const deleted = this.db.prepare('DELETE FROM person_embeddings WHERE id = ? AND person_id = ?').run(photoId, personId).changes > 0;
    if (deleted) this.search?.removeLabels([photoId]);
    return deleted;
  }

  /** The best enrolled person for each embedding (a frame's faces, one request), if similar enough. */
  async identify(embeddings: Float32Array[], threshold: number): Promise<({ person: Person; similarity: number } | null)[]> {
    if (!this.search || !embeddings.length) return embeddings.map(() => null);
    this.syncWithOtherWriters();
    const matches = await this.search.search(embeddings);
    const cache = new Map<number, Person | undefined>();
    return matches.map((m) => {
      if (!m || m.similarity < threshold) return null;
      if (!cache.has(m.personId)) cache.set(m.personId, this.get(m.personId));
      const person = cache.get(m.personId);
      return person ? { person, similarity: m.similarity } : null;
    });
  }

  /**
   * Another process (e.g. `sightline enroll`) may have changed the database: SQLite's data_version moves
   * when another connection commits (not for this connection's own writes, which reach the worker as they
   * happen), so the worker re-reads the store only then, before the search that follows.
   */
  private syncWithOtherWriters(): void {
    const version = this.db.pragma('data_version', { simple: true }) as number;
    if (version !== this.dataVersion) this.search?.reload();
    this.dataVersion = version;
  }

  private dataVersion: number;

  async close(): Promise<void> {
    await this.search?.close();
  }
}

/** The single node's writer: changes go straight into the local store. */
export function localPersonsWriter(persons: KnownPersons): PersonsWriter {
  return {
    create: async (p) => persons.create(p),
    update: async (id, patch) => persons.update(id, patch),
    delete: async (id) => persons.delete(id),
    addPhoto: async (personId, embedding, sha256) => persons.addPhoto(personId, embedding, sha256),
    deletePhoto: async (personId, photoId) => persons.deletePhoto(personId, photoId),
  };
}

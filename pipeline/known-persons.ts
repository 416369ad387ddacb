/**
 * Known persons and their face embeddings: rows in the store, vectors mirrored in a FaceIndex so a change
 * is searchable at once, without a restart.
 */
import { FaceIndex } from './face-index.js';
import type { Store } from './store.js';

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

export class KnownPersons {
  readonly index: FaceIndex;

  constructor(private readonly store: Store, readonly dim = 128) {
    this.index = new FaceIndex(dim);
    this.reloadIndex();
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
    if (deleted) this.index.removePerson(id);
    return deleted;
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
    this.index.add(personId, embedding);
    return { id, personId, sha256, createdMs: now };
  }

  deletePhoto(personId: number, photoId: number): boolean {
    const deleted = this.db.prepare('DELETE FROM person_embeddings WHERE id = ? AND person_id = ?').run(photoId, personId).changes > 0;
    if (deleted) this.reloadIndex();
    return deleted;
  }

  /** The best enrolled person for each embedding, if similar enough. */
  identify(embeddings: Float32Array[], threshold: number): ({ person: Person; similarity: number } | null)[] {
    this.syncWithOtherWriters();
    const cache = new Map<number, Person | undefined>();
    return embeddings.map((e) => {
      const m = this.index.search(e);
      if (!m || m.similarity < threshold) return null;
      if (!cache.has(m.personId)) cache.set(m.personId, this.get(m.personId));
      const person = cache.get(m.personId);
      return person ? { person, similarity: m.similarity } : null;
    });
  }

  /**
   * Another process (e.g. `sightline enroll`) may have changed the database: SQLite's data_version moves
   * when another connection commits, so the index is reloaded only then.
   */
  private syncWithOtherWriters(): void {
    const version = this.db.pragma('data_version', { simple: true }) as number;
    if (this.dataVersion !== undefined && version !== this.dataVersion) this.reloadIndex();
    this.dataVersion = version;
  }

  private dataVersion: number | undefined;

  private reloadIndex(): void {
    const rows = this.db.prepare('SELECT person_id, vector FROM person_embeddings ORDER BY id').all() as { person_id: number; vector: Buffer }[];
    this.index.load(rows.map((r) => ({
      personId: r.person_id,
      vector: new Float32Array(r.vector.buffer.slice(r.vector.byteOffset, r.vector.byteOffset + r.vector.byteLength)),
    })));
  }
}

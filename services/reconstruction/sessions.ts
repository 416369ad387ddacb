/**
 * Reconstruction sessions: their settings and images, kept across restarts.
 *
 * State goes in the process's one SQLite file (the Store; tables in services/store/migrations.ts) rather than a
 * JSON file per session: a session's image count and status change with every upload from concurrent sockets, and
 * a transaction makes "check the limit, add the image" atomic and crash-safe, which rewriting JSON files is not. Image files and the GLB live in
 * `<dataDir>/reconstruction/<session id>/`, and go with the session when it is deleted or expires.
 */
import { coded } from '../../core/errors.js';
import { randomUUID } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Store } from '../store/store.js';

export type SessionStatus = 'created' | 'receiving' | 'processing' | 'completed' | 'finalized' | 'failed';

export interface SessionImage { index: number; filename: string; path: string }

export interface ReconstructionSession {
  id: string;
  status: SessionStatus;
  maxImages: number;
  processRes: number;
  numMaxPoints: number;
  createdMs: number;
  lastActivityMs: number;
  images: SessionImage[];
  /** The latest complete model, if any. */
  model: { path: string; sizeBytes: number; numPoints: number; numFrames: number; generatedMs: number } | null;
  message: string | null;
}


interface Row {
  id: string; status: SessionStatus; max_images: number; process_res: number; num_max_points: number;
  created_ms: number; last_activity_ms: number; model_size_bytes: number | null; model_points: number | null;
  model_frames: number | null; model_generated_ms: number | null; message: string | null;
}



/**
 * Changes asked for by the transport. On a single node they are written at once; in a cluster they go
 * through a log every gateway applies in order, so a session can be used
 * from any gateway. Reads (`get`, `list`) always answer from this node's copy.
 */
export interface SessionsWriter {
  create(o: SessionOptions): Promise<ReconstructionSession>;
  addImage(id: string, filename: string, bytes: Uint8Array): Promise<SessionImage>;
  setStatus(id: string, status: SessionStatus, message?: string | null): Promise<void>;
  saveModel(id: string, glb: Uint8Array, numPoints: number, numFrames: number, status?: SessionStatus): Promise<void>;
  /** Records activity; a cluster may record it up to `precisionMs` late (touches are shared coarsely). */
  touch(id: string, precisionMs: number): void;
  delete(id: string): Promise<boolean>;
  /** Deletes sessions idle since before `cutoffMs` (except those in `keep`); answers the ids deleted. */
  expire(cutoffMs: number, keep: Set<string>): Promise<string[]>;
}

export interface SessionOptions { maxImages: number; processRes: number; numMaxPoints: number }

export class ReconstructionSessions {
  readonly root: string;

  private readonly deleted = new Set<(id: string) => void>();

  constructor(private readonly store: Store, dataDir: string) {
    this.root = path.resolve(dataDir, 'reconstruction');
    mkdirSync(this.root, { recursive: true });
  }

  dir(id: string): string { return path.join(this.root, id); }
  modelPath(id: string): string { return path.join(this.dir(id), 'model.glb'); }

  /** Calls `fn` with the id of every session deleted or expired from now on (whoever asked); answers an unsubscribe. */
  onDeleted(fn: (id: string) => void): () => void {
    this.deleted.add(fn);
    return () => { this.deleted.delete(fn); };
  }

  create(o: SessionOptions, now = Date.now(), id: string = randomUUID()): ReconstructionSession {
    mkdirSync(path.join(this.dir(id), 'images'), { recursive: true });
    this.store.db.prepare(`INSERT INTO reconstruction_sessions (id, status, max_images, process_res, num_max_points, created_ms, last_activity_ms)
      VALUES (?, 'created', ?, ?, ?, ?, ?)`).run(id, o.maxImages, o.processRes, o.numMaxPoints, now, now);
    return this.get(id)!;
  }

  get(id: string): ReconstructionSession | undefined {
    const row = this.store.db.prepare('SELECT * FROM reconstruction_sessions WHERE id = ?').get(id) as Row | undefined;
    return row && this.toSession(row);
  }

  count(): number {
    return (this.store.db.prepare('SELECT COUNT(*) AS n FROM reconstruction_sessions').get() as { n: number }).n;
  }

  /** Bytes of a session's stored images. */
  storedBytes(id: string): number {
    let total = 0;
    for (const img of this.get(id)?.images ?? []) {
      try { total += statSync(img.path).size; } catch { /* gone: counts nothing */ }
    }
    return total;
  }

  list(): ReconstructionSession[] {
    return (this.store.db.prepare('SELECT * FROM reconstruction_sessions ORDER BY created_ms DESC').all() as Row[]).map((r) => this.toSession(r));
  }

  touch(id: string, now = Date.now()): void {
    this.store.db.prepare('UPDATE reconstruction_sessions SET last_activity_ms = ? WHERE id = ?').run(now, id);
  }

  setStatus(id: string, status: SessionStatus, message: string | null = null, now = Date.now()): void {
    this.store.db.prepare('UPDATE reconstruction_sessions SET status = ?, message = ?, last_activity_ms = ? WHERE id = ?').run(status, message, now, id);
  }

  /** Stores an image (file first, then the row, in one transaction with the limit check). */
  addImage(id: string, filename: string, bytes: Uint8Array, now = Date.now()): SessionImage {
    return this.store.db.transaction(() => {
      const s = this.get(id);
      if (!s) throw coded('UNKNOWN_SESSION', `Session ${id} not found`);
      if (s.images.length >= s.maxImages) throw coded('TOO_MANY_IMAGES', `session already has its maximum of ${s.maxImages} images`);
      const index = s.images.length;
      const file = path.join(this.dir(id), 'images', `${String(index).padStart(4, '0')}_${safeName(filename)}`);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, bytes);
      this.store.db.prepare('INSERT INTO reconstruction_images (session_id, idx, filename, file) VALUES (?, ?, ?, ?)').run(id, index, filename, file);
      this.store.db.prepare("UPDATE reconstruction_sessions SET status = 'receiving', last_activity_ms = ? WHERE id = ?").run(now, id);
      return { index, filename, path: file };
    })();
  }

  /** Saves the model (write, then rename: a reader never sees half a GLB). */
  saveModel(id: string, glb: Uint8Array, numPoints: number, numFrames: number, status: SessionStatus = 'completed', now = Date.now()): void {
    const file = this.modelPath(id);
    writeFileSync(`${file}.tmp`, glb);
    renameSync(`${file}.tmp`, file);
    this.store.db.prepare(`UPDATE reconstruction_sessions SET status = ?, message = NULL, model_size_bytes = ?, model_points = ?,
      model_frames = ?, model_generated_ms = ?, last_activity_ms = ? WHERE id = ?`)
      .run(status, glb.byteLength, numPoints, numFrames, now, now, id);
  }

  delete(id: string): boolean {
    const gone = this.store.db.prepare('DELETE FROM reconstruction_sessions WHERE id = ?').run(id).changes > 0;
    rmSync(this.dir(id), { recursive: true, force: true });
    if (gone) for (const fn of this.deleted) fn(id);
    return gone;
  }

  /** Sessions idle since before `cutoffMs`, except those in `keep`. */
  idle(cutoffMs: number, keep: Set<string>): ReconstructionSession[] {
    return (this.store.db.prepare('SELECT * FROM reconstruction_sessions WHERE last_activity_ms < ?').all(cutoffMs) as Row[])
      .filter((r) => !keep.has(r.id)).map((r) => this.toSession(r));
  }

  /** Deletes sessions idle since before `cutoffMs` (except those in `keep`); returns their ids. */
  expire(cutoffMs: number, keep: Set<string>): string[] {
    const ids = this.idle(cutoffMs, keep).map((s) => s.id);
    for (const id of ids) this.delete(id);
    return ids;
  }

  /** Forgets every session and its files (a node whose copy came from a log that no longer exists). */
  clear(): void {
    for (const s of this.list()) this.delete(s.id);
  }

  private toSession(r: Row): ReconstructionSession {
    const images = (this.store.db.prepare('SELECT idx, filename, file FROM reconstruction_images WHERE session_id = ? ORDER BY idx').all(r.id) as
      { idx: number; filename: string; file: string }[]).map((i) => ({ index: i.idx, filename: i.filename, path: i.file }));
    return {
      id: r.id, status: r.status, maxImages: r.max_images, processRes: r.process_res, numMaxPoints: r.num_max_points,
      createdMs: r.created_ms, lastActivityMs: r.last_activity_ms, images, message: r.message,
      model: r.model_size_bytes === null ? null : {
        path: this.modelPath(r.id), sizeBytes: r.model_size_bytes, numPoints: r.model_points ?? 0,
        numFrames: r.model_frames ?? 0, generatedMs: r.model_generated_ms ?? 0,
      },
    };
  }
}

/** A client's filename reduced to a safe basename (no directories, no odd characters). */
function safeName(name: string): string {
  const base = path.basename(name.replace(/\\/g, '/')).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '');
  return (base || 'image').slice(0, 80);
}

/** The single node's writer: changes go straight into the local store. */
export function localSessionsWriter(sessions: ReconstructionSessions): SessionsWriter {
  return {
    create: async (o) => sessions.create(o),
    addImage: async (id, filename, bytes) => sessions.addImage(id, filename, bytes),
    setStatus: async (id, status, message) => sessions.setStatus(id, status, message),
    saveModel: async (id, glb, numPoints, numFrames, status) => sessions.saveModel(id, glb, numPoints, numFrames, status),
    touch: (id) => sessions.touch(id),
    delete: async (id) => sessions.delete(id),
    expire: async (cutoffMs, keep) => sessions.expire(cutoffMs, keep),
  };
}

/**
 * Saved face crops: each track's best face as `face_<id>.jpg` in `<dataDir>/faces/<pipeline>/` and a row in the
 * store (face id = track id). A new face id adds one to the day's face count (counting's day totals). Files are
 * written then renamed, so a reader never sees half a JPEG.
 */
import { mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CountsTable } from '../counting/counts.js';
import type { Store } from '../store/store.js';

export interface FaceRow { faceId: number; filename: string; score: number; createdMs: number }

/** A saved face with what a copy elsewhere needs to recreate it. */
export interface SavedFace extends FaceRow { pipeline: string; day: string }

/** Where a pipeline's face crops live. */
export function facesDir(dataDir: string, pipeline: string): string {
  return path.resolve(dataDir, 'faces', pipeline);
}

export const faceFilename = (faceId: number): string => `face_${faceId}.jpg`;

export class FaceCrops {
  constructor(private readonly store: Store, private readonly counts: CountsTable, readonly dataDir: string) {}

  dir(pipeline: string): string {
    return facesDir(this.dataDir, pipeline);
  }

  /** The JPEG file of a face (built from the integer id, never from client text). */
  file(pipeline: string, faceId: number): string {
    return path.join(this.dir(pipeline), faceFilename(faceId));
  }

  /** Saves (or replaces) a face's crop and row; the day's face count grows only for a new face id. */
  save(f: SavedFace, jpeg: Uint8Array): void {
    const dir = this.dir(f.pipeline);
    mkdirSync(dir, { recursive: true });
    const tmp = path.join(dir, `.${f.filename}.tmp`);
    writeFileSync(tmp, jpeg);
    renameSync(tmp, path.join(dir, f.filename));
    const db = this.store.db;
    this.store.transaction(() => {
      const known = db.prepare('SELECT 1 FROM faces WHERE pipeline = ? AND face_id = ?').get(f.pipeline, f.faceId);
      db.prepare(`INSERT INTO faces (pipeline, face_id, day, filename, score, created_ms) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT(pipeline, face_id) DO UPDATE SET filename = excluded.filename, score = excluded.score, created_ms = excluded.created_ms`)
        .run(f.pipeline, f.faceId, f.day, f.filename, f.score, f.createdMs);
      if (!known) this.counts.bump(f.pipeline, f.day, 'face_count');
    });
  }

  /** Forgets a face and its file (its day's count stays: the face was seen). True if it was there. */
  delete(pipeline: string, faceId: number): boolean {
    const gone = this.store.db.prepare('DELETE FROM faces WHERE pipeline = ? AND face_id = ?').run(pipeline, faceId).changes > 0;
    if (gone) rmSync(this.file(pipeline, faceId), { force: true });
    return gone;
  }

  get(pipeline: string, faceId: number): FaceRow | undefined {
    const r = this.store.db.prepare('SELECT face_id, filename, score, created_ms FROM faces WHERE pipeline = ? AND face_id = ?').get(pipeline, faceId) as
      { face_id: number; filename: string; score: number; created_ms: number } | undefined;
    return r && { faceId: r.face_id, filename: r.filename, score: r.score, createdMs: r.created_ms };
  }

  /** Bytes of the face's file, or null when it is gone. */
  async read(pipeline: string, faceId: number): Promise<Buffer | null> {
    try {
      return await readFile(this.file(pipeline, faceId));
    } catch {
      return null;
    }
  }

  /** Size of the face's file on disk (-1 when absent). */
  size(pipeline: string, faceId: number): number {
    try {
      return statSync(this.file(pipeline, faceId)).size;
    } catch {
      return -1;
    }
  }

  /** The newest faces of every pipeline first. */
  newest(limit: number): (FaceRow & { pipeline: string })[] {
    return (this.store.db.prepare('SELECT pipeline, face_id, filename, score, created_ms FROM faces ORDER BY created_ms DESC, face_id DESC LIMIT ?')
      .all(limit) as { pipeline: string; face_id: number; filename: string; score: number; created_ms: number }[])
      .map((r) => ({ pipeline: r.pipeline, faceId: r.face_id, filename: r.filename, score: r.score, createdMs: r.created_ms }));
  }

  /** The newest faces of a pipeline first. */
  recent(pipeline: string, limit: number): FaceRow[] {
    return (this.store.db.prepare('SELECT face_id, filename, score, created_ms FROM faces WHERE pipeline = ? ORDER BY created_ms DESC, face_id DESC LIMIT ?')
      .all(pipeline, limit) as { face_id: number; filename: string; score: number; created_ms: number }[])
      .map((r) => ({ faceId: r.face_id, filename: r.filename, score: r.score, createdMs: r.created_ms }));
  }
}

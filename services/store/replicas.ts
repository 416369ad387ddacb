/**
 * Bookkeeping of replicated logs (a cluster's streams of changes, copied into this store): how far the copy of each
 * log stands, and which entries of the persons log carry updates of a person. Plain data about positions in a log;
 * what a log is made of is the caller's business.
 */
import type { Store } from './store.js';

export interface LogMark { stream: string; seq: number }

export class ReplicaMarks {
  constructor(private readonly store: Store) {}

  mark(name: string): LogMark | undefined {
    return this.store.db.prepare('SELECT stream, seq FROM shared_logs WHERE name = ?').get(name) as LogMark | undefined;
  }

  /** Starts the copy of `name` over, from the log instance `stream`. */
  restart(name: string, stream: string): void {
    this.store.db.prepare('INSERT OR REPLACE INTO shared_logs (name, stream, seq) VALUES (?, ?, 0)').run(name, stream);
  }

  /** Records that the copy holds entry `seq` (inside the transaction that applied it). */
  advance(name: string, seq: number): void {
    this.store.db.prepare('UPDATE shared_logs SET seq = ? WHERE name = ?').run(seq, name);
  }

  /** Remembers that log entry `seq` updated person `personId`. */
  notePersonUpdate(personId: number, seq: number): void {
    this.store.db.prepare('INSERT OR IGNORE INTO shared_person_updates (person_id, seq) VALUES (?, ?)').run(personId, seq);
  }

  personUpdates(personId: number): number[] {
    return (this.store.db.prepare('SELECT seq FROM shared_person_updates WHERE person_id = ?').all(personId) as { seq: number }[]).map((r) => r.seq);
  }

  forgetPersonUpdates(personId?: number): void {
    if (personId === undefined) this.store.db.exec('DELETE FROM shared_person_updates');
    else this.store.db.prepare('DELETE FROM shared_person_updates WHERE person_id = ?').run(personId);
  }
}

/**
 * The embedded state store: one SQLite file in the data directory (WAL, so a crash loses nothing that was
 * committed and readers never block the writer), brought up to date by the migrations that list every table.
 * better-sqlite3 is synchronous, which suits the small, frequent writes of counting: each crossing is its own
 * committed transaction. The services own their tables' SQL (services/counting, faces, persons, reconstruction);
 * nobody else writes SQL.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { migrate } from './migrations.js';

export class Store {
  readonly db: Database.Database;
  /** The schema version the file is at. */
  readonly version: number;

  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a committed transaction survives a process crash (it may not survive power loss).
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.version = migrate(this.db);
  }

  static open(dataDir: string): Store {
    return new Store(path.resolve(dataDir, 'sightline.db'));
  }

  /** Runs `fn` in one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

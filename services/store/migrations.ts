/**
 * Every table of the store, listed once, as versioned migrations: each runs once, in order, inside a
 * transaction, and `PRAGMA user_version` records how far a database has come. A database made before migrations
 * existed (tables, user_version 0) takes version 1 as it is (CREATE … IF NOT EXISTS). Add a version; never edit one
 * that has shipped.
 */
import type Database from 'better-sqlite3';

export interface Migration { version: number; name: string; sql: string }

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'counting, faces, known persons, reconstruction sessions, replicated logs',
    sql: `
-- counting (services/counting): track id blocks per source, day totals, every crossing, high-traffic events
CREATE TABLE IF NOT EXISTS track_ids (source TEXT PRIMARY KEY, next_block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS day_counters (
  pipeline TEXT NOT NULL, day TEXT NOT NULL,
  count_in INTEGER NOT NULL DEFAULT 0, count_out INTEGER NOT NULL DEFAULT 0,
  face_count INTEGER NOT NULL DEFAULT 0, event_count INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (pipeline, day));
CREATE TABLE IF NOT EXISTS crossings (
  id INTEGER PRIMARY KEY, pipeline TEXT NOT NULL, day TEXT NOT NULL, track_id INTEGER NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('in', 'out')), at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS traffic_events (
  id INTEGER PRIMARY KEY, pipeline TEXT NOT NULL, day TEXT NOT NULL,
  start_ms INTEGER NOT NULL, end_ms INTEGER, count_in INTEGER NOT NULL DEFAULT 0);
-- saved face crops (services/faces): one row per track's best face, the JPEG beside the database
CREATE TABLE IF NOT EXISTS faces (
  pipeline TEXT NOT NULL, face_id INTEGER NOT NULL, day TEXT NOT NULL, filename TEXT NOT NULL,
  score REAL NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (pipeline, face_id));
CREATE INDEX IF NOT EXISTS faces_by_time ON faces (pipeline, created_ms DESC);
-- known persons (services/persons) and their face embeddings
CREATE TABLE IF NOT EXISTS persons (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, surname TEXT, birthday TEXT, relationship TEXT,
  role TEXT NOT NULL DEFAULT 'guest' CHECK (role IN ('user', 'guest')), created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS person_embeddings (
  id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
  vector BLOB NOT NULL, photo_sha256 TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS embeddings_by_person ON person_embeddings (person_id);
-- reconstruction sessions (services/reconstruction); images and models are files beside the database
CREATE TABLE IF NOT EXISTS reconstruction_sessions (
  id TEXT PRIMARY KEY, status TEXT NOT NULL, max_images INTEGER NOT NULL, process_res INTEGER NOT NULL,
  num_max_points INTEGER NOT NULL, created_ms INTEGER NOT NULL, last_activity_ms INTEGER NOT NULL,
  model_size_bytes INTEGER, model_points INTEGER, model_frames INTEGER, model_generated_ms INTEGER, message TEXT);
CREATE TABLE IF NOT EXISTS reconstruction_images (
  session_id TEXT NOT NULL REFERENCES reconstruction_sessions(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL, filename TEXT NOT NULL, file TEXT NOT NULL, PRIMARY KEY (session_id, idx));
-- replicated logs (services/store/replicas.ts): how far this node's copy of each log stands, and which log
-- entries carry updates of a known person (so that a delete can remove them from the log too)
CREATE TABLE IF NOT EXISTS shared_logs (name TEXT PRIMARY KEY, stream TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS shared_person_updates (person_id INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (person_id, seq));
`,
  },
  {
    version: 2,
    name: 'crossings by pipeline and day (the console reads a day\'s crossings per minute)',
    sql: 'CREATE INDEX IF NOT EXISTS crossings_by_day ON crossings (pipeline, day, at_ms);',
  },
];

/** Brings a database up to the newest version; answers the version it is at. */
export function migrate(db: Database.Database, migrations: Migration[] = MIGRATIONS): number {
  let version = db.pragma('user_version', { simple: true }) as number;
  const newest = migrations.at(-1)?.version ?? 0;
  if (version > newest) {
    throw new Error(`the database is at version ${version}, newer than this Sightline knows (${newest}); use a newer Sightline or another data directory`);
  }
  for (const m of migrations) {
    if (m.version <= version) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
    version = m.version;
  }
  return version;
}

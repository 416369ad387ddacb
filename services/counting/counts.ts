/**
 * Counting's tables: track id blocks per source, day totals per pipeline, every crossing, and high-traffic events.
 * The take-over methods (`raise…`, `adoptTraffic`) merge state another node reached, so a source moving between
 * nodes of a cluster keeps its ids, totals and open event.
 */
import type Database from 'better-sqlite3';
import type { Store } from '../store/store.js';

export interface DayCounters {
  countIn: number;
  countOut: number;
  faceCount: number;
  eventCount: number;
}

export interface TrafficEventRow { id: number; pipeline: string; day: string; startMs: number; endMs: number | null; countIn: number }
export interface InCrossing { atMs: number; trackId: number }
/** Crossings of one minute (`minuteMs`: its start, ms since epoch). */
export interface MinuteCrossings { minuteMs: number; in: number; out: number }

export class CountsTable {
  constructor(private readonly store: Store) {}

  /** Statements compiled once: stats are read on every counted frame. */
  private readonly statements = new Map<string, Database.Statement>();

  private get db() {
    return this.store.db;
  }

  private sql(text: string): Database.Statement {
    let s = this.statements.get(text);
    if (!s) this.statements.set(text, (s = this.db.prepare(text)));
    return s;
  }

  /**
   * Track ids are handed out in blocks so that ids stay unique across restarts without a write per
   * id: a restart starts at the next block, skipping at most one block's unused ids.
   */
  reserveTrackIds(source: string, blockSize: number): number {
    return this.db.transaction(() => {
      const row = this.sql('SELECT next_block FROM track_ids WHERE source = ?').get(source) as { next_block: number } | undefined;
      const start = row?.next_block ?? 1;
      this.sql('INSERT INTO track_ids (source, next_block) VALUES (?, ?) ON CONFLICT(source) DO UPDATE SET next_block = excluded.next_block')
        .run(source, start + blockSize);
      return start;
    })();
  }

  /** The first track id of the next block of a source (1 if none was reserved). */
  nextTrackIds(source: string): number {
    return (this.sql('SELECT next_block FROM track_ids WHERE source = ?').get(source) as { next_block: number } | undefined)?.next_block ?? 1;
  }

  /** Moves a source's next block to at least `next` (ids handed out by another node that ran it). */
  raiseTrackIds(source: string, next: number): void {
    this.sql('INSERT INTO track_ids (source, next_block) VALUES (?, ?) ON CONFLICT(source) DO UPDATE SET next_block = max(next_block, excluded.next_block)')
      .run(source, next);
  }

  dayCounters(pipeline: string, day: string): DayCounters {
    const row = this.sql('SELECT count_in, count_out, face_count, event_count FROM day_counters WHERE pipeline = ? AND day = ?')
      .get(pipeline, day) as { count_in: number; count_out: number; face_count: number; event_count: number } | undefined;
    return { countIn: row?.count_in ?? 0, countOut: row?.count_out ?? 0, faceCount: row?.face_count ?? 0, eventCount: row?.event_count ?? 0 };
  }

  /**
   * Raises a day's totals to at least `c` (never lowers them): counts taken over from another node that
   * ran this pipeline before, merged with what this node may have counted itself.
   */
  raiseDayCounters(pipeline: string, day: string, c: DayCounters): void {
    this.sql(`INSERT INTO day_counters (pipeline, day, count_in, count_out, face_count, event_count) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT(pipeline, day) DO UPDATE SET count_in = max(count_in, excluded.count_in), count_out = max(count_out, excluded.count_out),
      face_count = max(face_count, excluded.face_count), event_count = max(event_count, excluded.event_count)`)
      .run(pipeline, day, c.countIn, c.countOut, c.faceCount, c.eventCount);
  }

  /** Adds one to a day total (the faces service counts its new faces here). */
  bump(pipeline: string, day: string, column: 'count_in' | 'count_out' | 'face_count' | 'event_count'): void {
    this.sql(`INSERT INTO day_counters (pipeline, day, ${column}) VALUES (?, ?, 1)
      ON CONFLICT(pipeline, day) DO UPDATE SET ${column} = ${column} + 1`).run(pipeline, day);
  }

  /** Records one crossing and its day total (and the open traffic event's count) in one transaction. */
  recordCrossing(pipeline: string, day: string, trackId: number, direction: 'in' | 'out', atMs: number, openEventId: number | null): void {
    this.db.transaction(() => {
      this.sql('INSERT INTO crossings (pipeline, day, track_id, direction, at_ms) VALUES (?, ?, ?, ?, ?)').run(pipeline, day, trackId, direction, atMs);
      this.bump(pipeline, day, direction === 'in' ? 'count_in' : 'count_out');
      if (direction === 'in' && openEventId !== null) {
        this.sql('UPDATE traffic_events SET count_in = count_in + 1 WHERE id = ?').run(openEventId);
      }
    })();
  }

  /** Times of the `in` crossings since `sinceMs`, oldest first (to rebuild a sliding window after a restart). */
  recentIns(pipeline: string, sinceMs: number): number[] {
    return (this.sql("SELECT at_ms FROM crossings WHERE pipeline = ? AND direction = 'in' AND at_ms >= ? ORDER BY at_ms")
      .all(pipeline, sinceMs) as { at_ms: number }[]).map((r) => r.at_ms);
  }

  /** The `in` crossings since `sinceMs` with their tracks, oldest first (the window another node can take over). */
  recentInCrossings(pipeline: string, sinceMs: number): InCrossing[] {
    return (this.sql("SELECT at_ms, track_id FROM crossings WHERE pipeline = ? AND direction = 'in' AND at_ms >= ? ORDER BY at_ms, id")
      .all(pipeline, sinceMs) as { at_ms: number; track_id: number }[]).map((r) => ({ atMs: r.at_ms, trackId: r.track_id }));
  }

  /**
   * Takes over the traffic state another node reached (done again, it changes nothing): the `in` crossings
   * of its sliding window that are not here yet (totals untouched: they come with the day counters), and
   * its open event, inserted without counting it again in the day's events (or raised, if already here).
   * An open event here that the cluster no longer has open ended elsewhere, so it ends here too, at `atMs`.
   */
  adoptTraffic(pipeline: string, day: string, ins: readonly InCrossing[], open: { startMs: number; countIn: number } | null, atMs: number): void {
    this.db.transaction(() => {
      const have = new Map<string, number>();
      // `ins` is oldest first: the crossings here from its first one on are the ones it may repeat.
      const mine = ins.length ? this.recentInCrossings(pipeline, ins[0].atMs) : [];
      for (const c of mine) have.set(`${c.atMs} ${c.trackId}`, (have.get(`${c.atMs} ${c.trackId}`) ?? 0) + 1);
      const insert = this.sql("INSERT INTO crossings (pipeline, day, track_id, direction, at_ms) VALUES (?, ?, ?, 'in', ?)");
      for (const c of ins) {
        const k = `${c.atMs} ${c.trackId}`;
        const n = have.get(k) ?? 0;
        if (n > 0) have.set(k, n - 1);
        else insert.run(pipeline, day, c.trackId, c.atMs);
      }
      const local = this.sql('SELECT id, start_ms FROM traffic_events WHERE pipeline = ? AND end_ms IS NULL').all(pipeline) as { id: number; start_ms: number }[];
      for (const e of local) if (e.start_ms !== open?.startMs) this.sql('UPDATE traffic_events SET end_ms = ? WHERE id = ?').run(Math.max(atMs, e.start_ms), e.id);
      if (!open) return;
      const same = local.find((e) => e.start_ms === open.startMs);
      if (same) this.sql('UPDATE traffic_events SET count_in = max(count_in, ?) WHERE id = ?').run(open.countIn, same.id);
      else this.sql('INSERT INTO traffic_events (pipeline, day, start_ms, count_in) VALUES (?, ?, ?, ?)').run(pipeline, day, open.startMs, open.countIn);
    })();
  }

  /** A day's crossings per minute, oldest first (minutes without crossings left out). */
  crossingsPerMinute(pipeline: string, day: string): MinuteCrossings[] {
    return (this.sql(`SELECT at_ms / 60000 AS minute, sum(direction = 'in') AS ins, sum(direction = 'out') AS outs
      FROM crossings WHERE pipeline = ? AND day = ? GROUP BY minute ORDER BY minute`).all(pipeline, day) as { minute: number; ins: number; outs: number }[])
      .map((r) => ({ minuteMs: r.minute * 60000, in: r.ins, out: r.outs }));
  }

  /** A day's traffic events, oldest first. */
  dayEvents(pipeline: string, day: string): TrafficEventRow[] {
    return (this.sql('SELECT id, pipeline, day, start_ms, end_ms, count_in FROM traffic_events WHERE pipeline = ? AND day = ? ORDER BY start_ms, id')
      .all(pipeline, day) as { id: number; pipeline: string; day: string; start_ms: number; end_ms: number | null; count_in: number }[])
      .map((r) => ({ id: r.id, pipeline: r.pipeline, day: r.day, startMs: r.start_ms, endMs: r.end_ms, countIn: r.count_in }));
  }

  startEvent(pipeline: string, day: string, startMs: number, countIn: number): number {
    return this.db.transaction(() => {
      this.bump(pipeline, day, 'event_count');
      return Number(this.sql('INSERT INTO traffic_events (pipeline, day, start_ms, count_in) VALUES (?, ?, ?, ?)')
        .run(pipeline, day, startMs, countIn).lastInsertRowid);
    })();
  }

  endEvent(id: number, endMs: number): TrafficEventRow | undefined {
    this.sql('UPDATE traffic_events SET end_ms = ? WHERE id = ?').run(endMs, id);
    return this.event(id);
  }

  event(id: number): TrafficEventRow | undefined {
    const r = this.sql('SELECT id, pipeline, day, start_ms, end_ms, count_in FROM traffic_events WHERE id = ?').get(id) as
      { id: number; pipeline: string; day: string; start_ms: number; end_ms: number | null; count_in: number } | undefined;
    return r && { id: r.id, pipeline: r.pipeline, day: r.day, startMs: r.start_ms, endMs: r.end_ms, countIn: r.count_in };
  }

  openEvent(pipeline: string): TrafficEventRow | undefined {
    const r = this.sql('SELECT id FROM traffic_events WHERE pipeline = ? AND end_ms IS NULL ORDER BY id DESC LIMIT 1').get(pipeline) as { id: number } | undefined;
    return r ? this.event(r.id) : undefined;
  }
}

/**
 * A node's local copy of a JetStream stream of changes (known persons, reconstruction sessions): the stream is
 * the truth, the node's SQLite store a copy that records, with each change it applies, the last sequence it
 * applied (table `shared_logs`). On start the copy resumes after that mark (or starts over when the stream was
 * created again since), and it keeps applying the stream, in order, for as long as the node runs; a writer
 * waits until its own change is applied before it answers.
 */
import type { JetStreamClient, JetStreamManager, StreamConfig, StreamInfo } from 'nats';
import type { Logger } from '../core/log.js';
import { ReplicaMarks } from '../services/store/replicas.js';
import type { Store } from '../services/store/store.js';


export interface ReplicaOptions {
  stream: string;
  store: Store;
  log: Logger;
  /** Applies one message; it calls `mark(seq)` inside its own transaction, so change and mark commit together. */
  apply: (seq: number, data: Uint8Array) => Promise<void> | void;
  /** Drops the local copy (the stream was created again since it was made). */
  clear: () => void;
  /** What this node held before it joined the cluster, if anything (it is kept, unshared). */
  localOnly: () => string | null;
}

export class StreamReplica {
  /** The last sequence applied to the local copy. */
  applied = 0;
  private waiters: { seq: number; resolve: () => void }[] = [];
  private closed = false;
  private stopConsuming: (() => void) | null = null;
  private running: Promise<void> = Promise.resolve();

  private readonly marks: ReplicaMarks;

  constructor(private readonly js: JetStreamClient, private readonly o: ReplicaOptions) {
    this.marks = new ReplicaMarks(o.store);
  }

  /** The stream's info, creating it first if absent (two nodes may race to create it: the loser reads it). */
  static async ensure(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<StreamInfo> {
    try {
      return await jsm.streams.info(config.name);
    } catch {
      try {
        return await jsm.streams.add(config);
      } catch {
        return await jsm.streams.info(config.name);
      }
    }
  }

  /** Resumes after the local mark, or starts over when the stream is not the one the copy was made from. */
  begin(info: StreamInfo): void {
    const mark = this.marks.mark(this.o.stream);
    if (mark && mark.stream === info.created) {
      this.applied = mark.seq;
      return;
    }
    if (mark) {
      this.o.log.warn(`${this.o.stream} was recreated: the local copy is dropped and replayed`);
      this.o.clear();
    } else {
      const local = this.o.localOnly();
      if (local) this.o.log.warn(local);
    }
    this.marks.restart(this.o.stream, info.created);
    this.applied = 0;
  }

  /** Records that the copy holds message `seq` (inside the transaction that applied it). */
  mark(seq: number): void {
    this.marks.advance(this.o.stream, seq);
  }

  /** Applies the stream from after the last applied message, for as long as the node runs. */
  consume(): void {
    this.running = (async () => {
      while (!this.closed) {
        try {
          const consumer = await this.js.consumers.get(this.o.stream, { opt_start_seq: this.applied + 1 });
          const messages = await consumer.consume();
          this.stopConsuming = () => { void messages.close(); };
          // Closed while the consumer was being made: stop it now, not when the connection drains.
          if (this.closed) { this.stopConsuming(); break; }
          for await (const m of messages) {
            if (m.seq > this.applied) {
              await this.o.apply(m.seq, m.data);
              this.advance(m.seq);
            }
            if (this.closed) break;
          }
        } catch (err) {
          if (!this.closed) this.o.log.warn(`reading ${this.o.stream}: ${(err as Error).message}; retrying`);
        }
        if (!this.closed) await new Promise((r) => setTimeout(r, 1000));
      }
    })();
  }

  private advance(seq: number): void {
    this.applied = seq;
    const due = this.waiters.filter((w) => w.seq <= seq);
    this.waiters = this.waiters.filter((w) => w.seq > seq);
    for (const w of due) w.resolve();
  }

  /** Resolves once the copy has applied message `seq`; after `waitMs` (unless null) rejects with `timeout()`. */
  until(seq: number, waitMs: number | null = null, timeout?: () => Error): Promise<void> {
    if (seq <= this.applied) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = waitMs === null ? undefined : setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(timeout?.() ?? new Error(`${this.o.stream} sequence ${seq} not applied within ${waitMs} ms`));
      }, waitMs);
      const done = (): void => { clearTimeout(timer); resolve(); };
      this.waiters.push({ seq, resolve: done });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopConsuming?.();
    await this.running;
  }
}

/**
 * The WatchMe sessions of a transport, by id, one socket each. A connection with the id of a session whose socket is
 * dead (closed, or not answering a ping) takes the session over, watch and frame numbers included: the document's
 * RobustWebSocketClient reconnects with its session id a second after an unclean drop, when the server may not have
 * noticed that the old socket is gone (it would otherwise be refused until the old socket's ping timed out, 30-60 s).
 * A session whose socket answers keeps it, and the newcomer is refused as before.
 */
import type { WebSocket } from 'ws';
import type { Cancel, Clock } from '../../core/clock.js';
import { answersPing } from '../http/ws.js';
import type { Session } from './session.js';

export interface SessionsOptions {
  clock: Clock;
  /** How long a session's socket has to answer a ping before a newcomer with its id takes it over. */
  probeMs: number;
  /** How long a session let go of its dead socket waits for the newcomer's handshake before it is closed. */
  orphanMs: number;
}

interface Entry {
  session: Session;
  /** The socket it answers on; null between letting go of a dead one and the newcomer's arrival. */
  ws: WebSocket | null;
  orphaned?: Cancel;
  probe?: Promise<void>;
}

/** What a connection gets: its session (new, or taken over), or why not. */
export type Claim = { session: Session; resumed: boolean } | 'taken' | 'full';

export class Sessions {
  private readonly byId = new Map<string, Entry>();

  constructor(private readonly o: SessionsOptions) {}

  get size(): number {
    return this.byId.size;
  }

  /**
   * Before the handshake of a connection with `id`: when a session of that id has a socket that shows no life
   * within the probe time, the session lets go of it (and the socket is cut), so that the newcomer can claim it.
   */
  async vacateIfDead(id: string): Promise<void> {
    const entry = this.byId.get(id);
    if (!entry?.ws) return;
    // Several newcomers at once share one probe; the first to claim wins.
    entry.probe ??= answersPing(entry.ws, this.o.probeMs, this.o.clock).then((alive) => {
      entry.probe = undefined;
      if (alive || this.byId.get(id) !== entry || !entry.ws) return;
      const dead = entry.ws;
      entry.ws = null;
      dead.terminate();
      entry.orphaned = this.o.clock.timeout(() => this.drop(id, entry), this.o.orphanMs);
    });
    await entry.probe;
  }

  /**
   * A socket that completed its handshake: the session it takes over, else a new one unless the transport is `full`;
   * 'taken' when a live socket holds the id.
   */
  claim(id: string, ws: WebSocket, create: () => Session, full: boolean): Claim {
    const entry = this.byId.get(id);
    if (entry?.ws) return 'taken';
    if (entry) {
      entry.orphaned?.();
      entry.orphaned = undefined;
      entry.ws = ws;
      entry.session.attach(ws);
      return { session: entry.session, resumed: true };
    }
    if (full) return 'full';
    const session = create();
    this.byId.set(id, { session, ws });
    return { session, resumed: false };
  }

  /** A socket closed: its session ends, unless another socket took it over (or is about to). */
  released(id: string, ws: WebSocket): void {
    const entry = this.byId.get(id);
    if (entry && entry.ws === ws) this.drop(id, entry);
  }

  private drop(id: string, entry: Entry): void {
    entry.orphaned?.();
    entry.session.close();
    if (this.byId.get(id) === entry) this.byId.delete(id);
  }

  /** Ends every session (the transport is unmounted). */
  close(): void {
    for (const [id, entry] of [...this.byId]) this.drop(id, entry);
  }
}

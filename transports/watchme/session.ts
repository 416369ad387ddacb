/**
 * One WatchMe session: a `/video-stream/{session_id}` connection, its message rate limit, its replies (sent in the
 * order of the messages they answer), its live watch (`start_tracking`) and its client frames (`single_frame`).
 * A session outlives a dead socket when a new connection with its id takes it over (sessions.ts): the watch and the
 * frame numbers carry on over the new socket.
 */
import type { RawData, WebSocket } from 'ws';
import type { Graph } from '../../config/graph.js';
import type { Clock } from '../../core/clock.js';
import { coded, SightlineError } from '../../core/errors.js';
import type { PersonLooksEvent } from '../../core/events.js';
import type { Logger } from '../../core/log.js';
import { openVectors } from '../../services/looks/embedding-token.js';
import type { Appearance } from '../../services/looks/person-gallery.js';
import type { LooksDemand, LooksModels } from '../../services/looks/person-looks.js';
import type { LiveFeed, LiveFeeds, Watcher } from './feeds.js';
import { decodeBase64, type DescribeImage } from './images.js';
import { LIMITS } from './limits.js';
import { frameInfo, matchesMessage, matchesOf, seconds, statusMessage, type Status } from './messages.js';
import { resolveSource } from './sources.js';
import { isObject, parseMessage, preview } from '../http/json-message.js';

export interface SessionDeps {
  clock: Clock;
  log: Logger;
  key: Buffer;
  threshold: number;
  faceWeight: number;
  /** Messages a session may send per second (bursts up to the same number). */
  rate: number;
  /** Upper bound of a session's `fps_limit`. */
  maxFps: number;
  maxImageBytes: number;
  describe: DescribeImage;
  feeds: LiveFeeds;
  looks: LooksDemand;
  looksModels: LooksModels;
  graph(): Graph;
  sent(): void;
  dropped(): void;
  countError(kind: string): void;
}

interface Tracking { feed: LiveFeed; reference: Appearance; minGapMs: number; nextAt: number; unwatch: () => void }

export class Session implements Watcher {
  private tracking: Tracking | null = null;
  /** Token bucket of the message rate limit. */
  private tokens: number;
  private refilledAt: number;
  private rateErrorAt = 0;
  private framesSent = 0;
  private pendingFrames = 0;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(readonly id: string, private socket: WebSocket, private readonly d: SessionDeps) {
    this.tokens = d.rate;
    this.refilledAt = d.clock.now();
  }

  /** The socket the session answers on (replaced when another connection takes the session over). */
  get ws(): WebSocket {
    return this.socket;
  }

  /** Continues on `ws`: a new connection with this session's id took it over from a dead socket. */
  attach(ws: WebSocket): void {
    this.socket = ws;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(message: object): void {
    const ws = this.socket;
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(message));
    this.d.sent();
  }

  private status(st: Status, message?: string): void {
    this.send(statusMessage(st, message, this.d.clock.now()));
  }

  private fail(err: SightlineError): void {
    this.d.countError(err.code.toLowerCase());
    this.status('error', err.message);
  }

  /** Token bucket: `rate` messages a second, bursts of `rate`. */
  private allowMessage(): boolean {
    const t = this.d.clock.now();
    this.tokens = Math.min(this.d.rate, this.tokens + ((t - this.refilledAt) / 1000) * this.d.rate);
    this.refilledAt = t;
    if (this.tokens >= 1) { this.tokens -= 1; return true; }
    return false;
  }

  /** Replies keep the order of the messages they answer. */
  private reply(work: () => Promise<void> | void): void {
    this.chain = this.chain.then(work).catch((err: Error) => {
      if (err instanceof SightlineError && err.code !== 'INTERNAL') { this.fail(err); return; }
      this.d.log.error(`watchme: message failed: ${err.message}`);
      this.fail(coded('INTERNAL', 'internal error processing the message'));
    });
  }

  private reject(err: SightlineError): void {
    this.reply(() => { throw err; });
  }

  onMessage(raw: RawData, isBinary: boolean): void {
    if (!this.allowMessage()) {
      this.d.countError('rate_limited');
      const now = this.d.clock.now();
      if (now - this.rateErrorAt >= LIMITS.rateErrorIntervalMs) {
        this.rateErrorAt = now;
        this.status('error', `rate limit exceeded: at most ${this.d.rate} messages per second; message ignored`);
      }
      return;
    }
    // Bounded before it is parsed: no message of the protocol nests deeper than 3 levels.
    const parsed = parseMessage(raw, isBinary, { maxBytes: Math.ceil(this.d.maxImageBytes / 3) * 4 + 64 * 1024, maxDepth: 8 });
    if (!parsed.ok) {
      this.reject(parsed.reason === 'invalid_json' || parsed.reason === 'binary' ? coded('INVALID_JSON', 'message is not valid JSON')
        : coded('BAD_FORMAT', 'message nests too deep'));
      return;
    }
    if (!isObject(parsed.value)) {
      this.reject(coded('BAD_FORMAT', 'message must be a JSON object with a "type"'));
      return;
    }
    const m = parsed.value;
    switch (m.type) {
      case 'ping':
        this.reply(() => this.status('pong'));
        break;
      case 'start_tracking':
        this.reply(() => this.startTracking(m));
        break;
      case 'stop_tracking':
        this.reply(() => { this.leaveFeed(); this.status('tracking_stopped', 'Tracking stopped'); });
        break;
      case 'single_frame':
        this.singleFrame(m);
        break;
      default:
        this.reject(coded('UNKNOWN_TYPE', `unknown message type ${preview(m.type ?? null)}; expected ping, start_tracking, single_frame or stop_tracking`));
    }
  }

  private openToken(token: unknown): Appearance {
    if (token === undefined || token === null) throw coded('BAD_TOKEN', '"person_embed" is required: the embedding from POST /upload-embedding');
    // A token is a few kilobytes; anything longer was not issued here.
    if (typeof token !== 'string' || token.length > 64 * 1024) throw coded('BAD_TOKEN', '"person_embed" must be the token string from POST /upload-embedding');
    const v = openVectors(this.d.key, token);
    if (!v.body) throw coded('BAD_TOKEN', 'person_embed holds no body embedding');
    return { body: v.body, face: v.face };
  }

  private startTracking(msg: Record<string, unknown>): void {
    const reference = this.openToken(msg.person_embed);
    const fps = msg.fps_limit ?? 10;
    if (typeof fps !== 'number' || !Number.isFinite(fps) || fps < 0.01 || fps > 1000) throw coded('BAD_FORMAT', '"fps_limit" must be a number from 0.01 to 1000');
    const source = msg.video_source ?? 0;
    if (typeof source !== 'number' && (typeof source !== 'string' || source.length > 4096)) {
      throw coded('UNKNOWN_SOURCE', '"video_source" must be a source index, id, URI or file path');
    }
    const target = resolveSource(this.d.graph(), source);
    if (this.closed) return; // closed meanwhile: its feed was already left
    this.leaveFeed();
    const looksFps = Math.min(fps, this.d.maxFps);
    // First: a watch that cannot start (e.g. its model left the graph) leaves no feed behind.
    const unwatch = this.d.looks.watch({ pipeline: target.pipeline, models: this.d.looksModels, fps: looksFps });
    const feed = this.d.feeds.join(target.pipeline, this);
    this.tracking = { feed, reference, minGapMs: 1000 / looksFps, nextAt: 0, unwatch };
    const named = typeof msg.video_source === 'string' || typeof msg.video_source === 'number' ? msg.video_source : 0;
    this.status('tracking_started', `Started tracking on source: ${named}`);
  }

  /** Live looks of the watched pipeline: answered at the session's own rate. */
  onLooks(e: PersonLooksEvent, nowMs: number): void {
    const t = this.tracking;
    // A quarter of a gap early still counts: looks come at the feed's rate with some jitter (the time to describe
    // a frame varies), and a session at that same rate must not skip every other one.
    if (!t || nowMs < t.nextAt - t.minGapMs / 4) return;
    t.nextAt = Math.max(t.nextAt + t.minGapMs, nowMs + t.minGapMs / 2);
    // A client that stops reading skips live results instead of growing the server's memory.
    if (this.socket.bufferedAmount > LIMITS.maxQueuedBytes) { this.d.dropped(); return; }
    const people = e.persons.map((p) => ({ box: p.box, look: p }));
    this.send(matchesMessage(matchesOf(people, t.reference, this.d.threshold, this.d.faceWeight), seconds(e.capturedAtMs),
      frameInfo({ frame_number: e.seq, width: e.width, height: e.height }, e.capturedAtMs, this.d.clock.now())));
  }

  /** Started now (sessions and frames run in parallel on the pool), answered in order from the reply chain. */
  private singleFrame(msg: Record<string, unknown>): void {
    if (this.pendingFrames >= LIMITS.maxPendingFrames) {
      this.reject(coded('BUSY', 'too many frames waiting to be processed; frame skipped'));
      return;
    }
    this.pendingFrames++;
    const done = this.describeFrame(msg).then((answer) => ({ answer }), (err: Error) => ({ err })).finally(() => { this.pendingFrames--; });
    this.reply(async () => {
      const r = await done;
      if ('err' in r) throw r.err;
      this.send(r.answer);
    });
  }

  private async describeFrame(msg: Record<string, unknown>): Promise<object> {
    const receivedAt = this.d.clock.now();
    const reference = this.openToken(msg.person_embed);
    const image = decodeBase64(msg.frame, 'frame', this.d.maxImageBytes);
    const frameNumber = this.framesSent++;
    const r = await this.d.describe(image, 'frame', false);
    const people = r.persons.map((p) => ({ box: p.box, look: p }));
    return matchesMessage(matchesOf(people, reference, this.d.threshold, this.d.faceWeight), seconds(receivedAt),
      frameInfo({ frame_number: frameNumber, width: r.width, height: r.height }, receivedAt, this.d.clock.now()));
  }

  private leaveFeed(): void {
    const t = this.tracking;
    if (!t) return;
    this.tracking = null;
    t.unwatch();
    this.d.feeds.leave(t.feed, this);
  }

  /** Leaves its feed; the socket is closed by its owner. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.leaveFeed();
  }
}

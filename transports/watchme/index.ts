/**
 * WatchMe (watchme-person-tracking.rst): `POST /upload-embedding` turns a reference photo into an opaque,
 * encrypted embedding token; WS `/video-stream/{session_id}` finds that person in a configured source's live
 * frames (`start_tracking`) or in frames the client sends (`single_frame`), answering `matches` and `status`.
 */
import type http from 'node:http';
import type { Subscription } from 'rxjs';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Graph, TransportSpec } from '../../config/graph.js';
import { loadOrCreateKey, openVectors, sealVectors, TokenError } from '../../services/looks/embedding-token.js';
import { matchConfidence, personDistance, type Appearance } from '../../services/looks/person-gallery.js';
import { looksKey, type LooksModels, type PersonLooksEvent } from '../../services/looks/person-looks.js';
import { filePath, sourceKind } from '../../pipeline/sources/launch.js';
import { modelPath } from '../../pipeline/runtime.js';
import type { Box } from '../../core/types.js';
import type { ModelRef } from '../../inference/protocol.js';
import type { FaceModels, PersonEmbedResult, PersonEmbedTask } from '../../inference/ops/person-embed.protocol.js';
import { HttpError, readJson } from '../http/body.js';
import { sendJson } from '../http/hub.js';
import type { MountedTransport, TransportContext } from '../contract.js';

const PROTOCOL = 'watchme';
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;
const MAX_PIXELS = 40_000_000;
const MAX_QUEUED_BYTES = 1024 * 1024;

export interface WatchmeSpec extends TransportSpec {
  port: number;
  /** yolox model: persons in photos and client frames. */
  detector: string;
  /** reid model (person-reidentification-retail-0287). */
  reid: string;
  /** Optional yunet + mobilefacenet models: face similarity is fused in when both are given. */
  faceDetector?: string;
  faceEmbedder?: string;
  /** Largest cosine distance (1 − similarity) that is a match. */
  threshold?: number;
  /** Weight of the face similarity when a face is visible on both sides (0 = body only). */
  faceWeight?: number;
  personScore?: number;
  faceScore?: number;
  /** Frames between two ReID embeddings of the same track. */
  refreshFrames?: number;
  maxSessions?: number;
  /** Messages a session may send per second (bursts up to the same number). */
  maxMessagesPerSecond?: number;
  /** Upper bound of a session's `fps_limit`. */
  maxFps?: number;
  /** Largest photo or frame, in decoded bytes. */
  maxImageBytes?: number;
  /** Page origins allowed to call `POST /upload-embedding` from a browser (CORS); default any. */
  corsOrigins?: string[];
  /** Token key as 64 hex characters; by default one is generated and kept in the data directory. */
  key?: string;
}

type Status = 'tracking_started' | 'tracking_stopped' | 'pong' | 'error';

/** A protocol error: answered as a `status` (WS) or `{detail}` (HTTP) and counted under `kind`. */
class WatchmeError extends Error {
  constructor(readonly kind: string, message: string, readonly httpStatus = 400) { super(message); }
}

/** A watched pipeline and the sessions tracking someone in it. */
interface WatchedFeed {
  readonly sessions: Set<Session>;
  readonly pipeline: string;
  close(): void;
}

interface Session {
  id: string;
  ws: WebSocket;
  tracking: { feed: WatchedFeed; reference: Appearance; minGapMs: number; nextAt: number; unwatch: () => void } | null;
  /** Token bucket of the message rate limit. */
  tokens: number;
  refilledAt: number;
  rateErrorAt: number;
  framesSent: number;
  pendingFrames: number;
  chain: Promise<void>;
}

interface MatchJson { bbox: number[]; distance: number; confidence: number }

const now = (): number => Date.now() / 1000;

export function mountWatchme(spec: WatchmeSpec, ctx: TransportContext): MountedTransport {
  const { hub, metrics, log, inference, looks, settings, bus } = ctx;
  const graph = (): Graph => ctx.graph();
  // A key in the graph wins; in a cluster every node uses the shared one, so tokens open on any gateway.
  const key = spec.key ? loadOrCreateKey(settings.dataDir, spec.key) : ctx.embeddingKey ?? loadOrCreateKey(settings.dataDir);
  const threshold = spec.threshold ?? 0.4;
  const faceWeight = spec.faceWeight ?? 0.5;
  const maxImageBytes = spec.maxImageBytes ?? 10 * 1024 * 1024;
  const maxSessions = spec.maxSessions ?? 32;
  const rate = spec.maxMessagesPerSecond ?? 20;
  const maxFps = spec.maxFps ?? 30;
  const refreshFrames = spec.refreshFrames ?? 10;
  const corsOrigins = spec.corsOrigins ?? ['*'];
  const model = (id: string, kind: string): ModelRef => ({ path: modelPath(graph(), settings, id), kind });
  const detector = model(spec.detector, 'yolox');
  const reid = model(spec.reid, 'reid');
  const face: FaceModels | undefined = spec.faceDetector && spec.faceEmbedder
    ? { detector: model(spec.faceDetector, 'yunet'), embedder: model(spec.faceEmbedder, 'mobilefacenet'), scoreThreshold: spec.faceScore ?? 0.8 }
    : undefined;
  // Load the models now, so a missing or corrupt file is reported at start, not on the first request
  // (where the models run: the local pool, or the workers of a cluster, which load them on first use).
  for (const m of [detector, reid, ...(face ? [face.detector, face.embedder] : [])]) {
    inference.preload(m).catch((err: Error) => log.error(`watchme: ${err.message}`));
  }
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  const dropped = metrics.wsDropped.labels(PROTOCOL);
  const countError = (kind: string): void => metrics.wsErrors.inc({ protocol: PROTOCOL, kind });

  // ---- describing persons in images (photos, client frames) ---------------------------------------

  const decodeBase64 = (value: unknown, field: string): ArrayBuffer => {
    if (typeof value !== 'string' || value.length === 0) throw new WatchmeError('bad_format', `"${field}" must be a base64 string`);
    const b64 = value.replace(/^data:[^;,]+;base64,/, '').replace(/\s+/g, '');
    if (b64.length > Math.ceil(maxImageBytes / 3) * 4 + 4) {
      throw new WatchmeError('too_large', `"${field}" is larger than ${maxImageBytes} bytes`, 413);
    }
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64) || b64.length % 4 === 1) throw new WatchmeError('bad_base64', `"${field}" is not valid base64`);
    const bytes = Buffer.from(b64, 'base64');
    if (bytes.length === 0) throw new WatchmeError('bad_base64', `"${field}" is empty`);
    if (bytes.length > maxImageBytes) throw new WatchmeError('too_large', `"${field}" is larger than ${maxImageBytes} bytes`, 413);
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
  };

  /** Photos and client frames: on the workers of a cluster when this node is a gateway. */
  const describeImage = async (image: ArrayBuffer, field: string, wholeImageIsPerson: boolean): Promise<PersonEmbedResult> => {
    const task: PersonEmbedTask = {
      op: 'person-embed', reid, face, image, maxPixels: MAX_PIXELS, detector, personScore: spec.personScore ?? 0.3, wholeImageIsPerson,
    };
    try {
      return await inference.run<PersonEmbedResult>(task, [image]);
    } catch (err) {
      const message = (err as Error).message;
      if (/not a decodable image|more than \d+ pixels/.test(message)) {
        throw new WatchmeError('bad_image', `"${field}" is not a readable image (${message})`, 422);
      }
      throw err;
    }
  };

  const openToken = (token: unknown): Appearance => {
    if (token === undefined || token === null) throw new WatchmeError('bad_token', '"person_embed" is required: the embedding from POST /upload-embedding');
    try {
      const v = openVectors(key, token);
      if (!v.body) throw new TokenError('person_embed holds no body embedding');
      return { body: v.body, face: v.face };
    } catch (err) {
      if (err instanceof TokenError) throw new WatchmeError('bad_token', err.message);
      throw err;
    }
  };

  const matchesOf = (people: { box: Box; look: Appearance }[], reference: Appearance): MatchJson[] => people
    .map((p) => ({ box: p.box, distance: personDistance(reference, p.look, faceWeight) }))
    .filter((m) => m.distance <= threshold)
    .sort((a, b) => a.distance - b.distance)
    .map((m) => ({
      bbox: m.box.map((v) => Math.round(v)),
      distance: round4(m.distance),
      confidence: round4(matchConfidence(m.distance, threshold)),
    }));

  // ---- POST /upload-embedding -----------------------------------------------------------------------

  // The document's page calls this from its own origin with a JSON body: browsers ask first (CORS preflight).
  const allowOrigin = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const origin = req.headers.origin;
    if (!origin) return;
    if (corsOrigins.includes('*')) res.setHeader('access-control-allow-origin', '*');
    else if (corsOrigins.includes(origin)) { res.setHeader('access-control-allow-origin', origin); res.setHeader('vary', 'Origin'); }
  };
  hub.route(spec.id, spec.port, 'OPTIONS', '/upload-embedding', (req, res) => {
    allowOrigin(req, res);
    res.writeHead(204, { 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'content-type', 'access-control-max-age': '600' }).end();
  });
  hub.route(spec.id, spec.port, 'POST', '/upload-embedding', async (req, res) => {
    allowOrigin(req, res);
    try {
      const type = String(req.headers['content-type'] ?? '');
      if (type && !type.startsWith('application/json')) throw new WatchmeError('bad_format', 'send application/json {"image": "<base64>"}', 415);
      let body: unknown;
      try {
        body = await readJson(req, Math.ceil(maxImageBytes / 3) * 4 + 64 * 1024);
      } catch (err) {
        if (err instanceof HttpError) throw new WatchmeError(err.status === 413 ? 'too_large' : 'invalid_json', err.message, err.status);
        throw err;
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new WatchmeError('bad_format', 'request body must be a JSON object {"image": "<base64>"}');
      const image = decodeBase64((body as { image?: unknown }).image, 'image');
      const r = await describeImage(image, 'image', true);
      const person = r.persons[0];
      if (!person) throw new WatchmeError('no_person', 'no person found in the image; send a photo in which one person is clearly visible', 422);
      const vectors: Record<string, Float32Array> = { body: person.body };
      if (person.face) vectors.face = person.face;
      sendJson(res, 200, { embedding: sealVectors(key, vectors) });
    } catch (err) {
      if (!(err instanceof WatchmeError)) throw err;
      countError(err.kind);
      sendJson(res, err.httpStatus, { detail: err.message });
    }
  });

  // ---- live sources ---------------------------------------------------------------------------------

  /** The pipeline to watch for `video_source`: an index into the graph's sources, a source id, URI or file path. */
  const resolveSource = (value: unknown): { source: string; pipeline: string } => {
    const g = graph();
    const ids = Object.keys(g.sources);
    let source: string | undefined;
    if (typeof value === 'number' && Number.isInteger(value)) source = ids[value];
    else if (typeof value === 'string' && /^\d{1,6}$/.test(value)) source = ids[Number(value)];
    else if (typeof value === 'string') {
      source = g.sources[value] ? value : ids.find((id) => {
        const uri = g.sources[id].uri;
        return uri === value || (sourceKind(uri) === 'file' && filePath(uri) === filePath(`file://${value}`));
      });
    }
    if (source === undefined) {
      throw new WatchmeError('unknown_source', `unknown video_source ${JSON.stringify(value)?.slice(0, 80)}; configured sources: ` +
        `${ids.map((id, i) => `${i} (${id})`).join(', ') || 'none'}`);
    }
    const readers = Object.values(g.pipelines).filter((p) => p.source === source && p.stages.some((s) => s.use === 'detect'));
    const pick = readers.find((p) => p.stages.some((s) => s.use === 'track')) ?? readers[0];
    if (!pick) throw new WatchmeError('unknown_source', `source "${source}" has no pipeline with a detect stage to find persons in`);
    return { source, pipeline: pick.id };
  };

  const looksModels: LooksModels = {
    reid: spec.reid, faceDetector: spec.faceDetector, faceEmbedder: spec.faceEmbedder, faceScore: spec.faceScore, refreshFrames,
  };
  const looksOf = looksKey(looksModels);

  /**
   * One per watched pipeline, shared by every session tracking someone in it. The persons' looks are computed
   * where the pipeline runs (this node, or a cluster worker) while the feed lasts, as fast as its most demanding
   * session asks; each session is answered at its own rate.
   */
  class SourceFeed implements WatchedFeed {
    readonly sessions = new Set<Session>();
    private readonly sub: Subscription;

    constructor(readonly source: string, readonly pipeline: string) {
      this.sub = bus.on('person.looks').subscribe((e) => { if (e.pipeline === pipeline && e.models === looksOf) this.onLooks(e); });
    }

    private onLooks(e: PersonLooksEvent): void {
      const t = Date.now();
      const people = e.persons.map((p) => ({ box: p.box, look: p }));
      const frameInfo = { frame_number: e.seq, width: e.width, height: e.height };
      for (const s of this.sessions) {
        // A quarter of a gap early still counts: looks come at the feed's rate with some jitter (the time to
        // describe a frame varies), and a session at that same rate must not skip every other one.
        if (!s.tracking || t < s.tracking.nextAt - s.tracking.minGapMs / 4) continue;
        s.tracking.nextAt = Math.max(s.tracking.nextAt + s.tracking.minGapMs, t + s.tracking.minGapMs / 2);
        // A client that stops reading skips live results instead of growing the server's memory.
        if (s.ws.bufferedAmount > MAX_QUEUED_BYTES) { dropped.inc(); continue; }
        send(s, { type: 'matches', matches: matchesOf(people, s.tracking.reference), timestamp: e.capturedAtMs / 1000, frame_info: { ...frameInfo, processed_at: now() } });
      }
    }

    close(): void {
      this.sub.unsubscribe();
    }
  }

  const feeds = new Map<string, SourceFeed>();
  const leaveFeed = (s: Session): void => {
    const feed = s.tracking?.feed;
    s.tracking?.unwatch();
    s.tracking = null;
    if (!feed) return;
    feed.sessions.delete(s);
    if (feed.sessions.size === 0) { feed.close(); feeds.delete(feed.pipeline); }
  };

  // ---- WS /video-stream/{session_id} ----------------------------------------------------------------

  const sessions = new Map<string, Session>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: Math.ceil(maxImageBytes / 3) * 4 + 64 * 1024 });

  const send = (s: Session, message: object): void => {
    if (s.ws.readyState !== s.ws.OPEN) return;
    s.ws.send(JSON.stringify(message));
    out.inc();
  };
  const status = (s: Session, st: Status, message?: string): void => {
    send(s, { type: 'status', status: st, ...(message !== undefined ? { message } : {}), timestamp: now() });
  };
  const fail = (s: Session, err: WatchmeError): void => {
    countError(err.kind);
    status(s, 'error', err.message);
  };

  /** Token bucket: `rate` messages a second, bursts of `rate`. */
  const allowMessage = (s: Session): boolean => {
    const t = Date.now();
    s.tokens = Math.min(rate, s.tokens + ((t - s.refilledAt) / 1000) * rate);
    s.refilledAt = t;
    if (s.tokens >= 1) { s.tokens -= 1; return true; }
    return false;
  };

  const startTracking = (s: Session, msg: Record<string, unknown>): void => {
    const reference = openToken(msg.person_embed);
    const fps = msg.fps_limit ?? 10;
    if (typeof fps !== 'number' || !Number.isFinite(fps) || fps <= 0) throw new WatchmeError('bad_format', '"fps_limit" must be a positive number');
    const target = resolveSource(msg.video_source ?? 0);
    if (s.ws.readyState !== s.ws.OPEN) return; // closed meanwhile: its feed was already left
    leaveFeed(s);
    const looksFps = Math.min(fps, maxFps);
    // First: a watch that cannot start (e.g. its model left the graph) leaves no feed behind.
    const unwatch = looks.watch({ pipeline: target.pipeline, models: looksModels, fps: looksFps });
    let feed = feeds.get(target.pipeline);
    if (!feed) feeds.set(target.pipeline, (feed = new SourceFeed(target.source, target.pipeline)));
    feed.sessions.add(s);
    s.tracking = { feed, reference, minGapMs: 1000 / looksFps, nextAt: 0, unwatch };
    status(s, 'tracking_started', `Started tracking on source: ${typeof msg.video_source === 'string' || typeof msg.video_source === 'number' ? msg.video_source : 0}`);
  };

  /** The `matches` answer to a client's frame; the caller sends it in message order. */
  const singleFrame = async (s: Session, msg: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const receivedAt = now();
    const reference = openToken(msg.person_embed);
    const image = decodeBase64(msg.frame, 'frame');
    const frameNumber = s.framesSent++;
    const r = await describeImage(image, 'frame', false);
    return {
      type: 'matches',
      matches: matchesOf(r.persons.map((p) => ({ box: p.box, look: p })), reference),
      timestamp: receivedAt,
      frame_info: { frame_number: frameNumber, width: r.width, height: r.height, processed_at: now() },
    };
  };

  const onMessage = (s: Session, raw: RawData, isBinary: boolean): void => {
    inbound.inc();
    if (!allowMessage(s)) {
      countError('rate_limited');
      // One error a second at most: answering every message of a flood would be a flood of its own.
      if (Date.now() - s.rateErrorAt >= 1000) {
        s.rateErrorAt = Date.now();
        status(s, 'error', `rate limit exceeded: at most ${rate} messages per second; message ignored`);
      }
      return;
    }
    const reply = (work: () => Promise<void> | void): void => {
      // Replies keep the order of the messages they answer.
      s.chain = s.chain.then(work).catch((err: Error) => {
        if (err instanceof WatchmeError) { fail(s, err); return; }
        log.error(`watchme: message failed: ${err.message}`);
        fail(s, new WatchmeError('internal', 'internal error processing the message'));
      });
    };
    const reject = (kind: string, message: string): void => reply(() => { throw new WatchmeError(kind, message); });
    let msg: unknown;
    try {
      msg = JSON.parse(isBinary ? '' : raw.toString());
    } catch {
      reject('invalid_json', 'message is not valid JSON');
      return;
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      reject('bad_format', 'message must be a JSON object with a "type"');
      return;
    }
    const m = msg as Record<string, unknown>;
    switch (m.type) {
      case 'ping':
        reply(() => status(s, 'pong'));
        break;
      case 'start_tracking':
        reply(() => startTracking(s, m));
        break;
      case 'stop_tracking':
        reply(() => { leaveFeed(s); status(s, 'tracking_stopped', 'Tracking stopped'); });
        break;
      case 'single_frame': {
        if (s.pendingFrames >= 4) {
          reject('busy', 'too many frames waiting to be processed; frame skipped');
          break;
        }
        s.pendingFrames++;
        // Started now (different sessions and frames run in parallel on the pool), answered in order:
        // the answer is sent from the reply chain, never by the frame's own (possibly earlier) completion.
        const done = singleFrame(s, m).then((answer) => ({ answer }), (err: Error) => ({ err })).finally(() => { s.pendingFrames--; });
        reply(async () => {
          const r = await done;
          if ('err' in r) throw r.err;
          send(s, r.answer);
        });
        break;
      }
      default:
        reject('unknown_type', `unknown message type ${JSON.stringify(m.type ?? null).slice(0, 64)}; expected ping, start_tracking, single_frame or stop_tracking`);
    }
  };

  const turnAway = (ws: WebSocket, kind: string, message: string, code: number): void => {
    countError(kind);
    ws.send(JSON.stringify({ type: 'status', status: 'error', message, timestamp: now() }));
    out.inc();
    ws.close(code, message.slice(0, 120));
  };

  wss.on('connection', (ws: WebSocket, _req: http.IncomingMessage, id: string) => {
    ws.on('error', () => undefined);
    // Refusals go over the socket, so that the client reads the reason as the protocol's status message.
    if (!SESSION_ID.test(id)) { turnAway(ws, 'bad_session_id', 'session id must be 1-128 characters of A-Z, a-z, 0-9, "_" and "-"', 1008); return; }
    if (sessions.has(id)) { turnAway(ws, 'bad_session_id', `session "${id}" is already connected`, 1008); return; }
    if (sessions.size >= maxSessions) { turnAway(ws, 'session_limit', `too many sessions (at most ${maxSessions}); try again later`, 1013); return; }
    const s: Session = {
      id, ws, tracking: null, tokens: rate, refilledAt: Date.now(), rateErrorAt: 0, framesSent: 0, pendingFrames: 0, chain: Promise.resolve(),
    };
    sessions.set(id, s);
    metrics.wsClients.inc({ protocol: PROTOCOL });
    let alive = true;
    ws.on('pong', () => { alive = true; });
    const heartbeat = setInterval(() => {
      if (!alive) { ws.terminate(); return; }
      alive = false;
      ws.ping();
    }, 30_000);
    heartbeat.unref();
    ws.on('message', (raw, isBinary) => onMessage(s, raw, isBinary));
    ws.on('close', () => {
      clearInterval(heartbeat);
      leaveFeed(s);
      sessions.delete(id);
      metrics.wsClients.dec({ protocol: PROTOCOL });
    });
  });

  hub.upgrade(spec.id, spec.port, (p) => p.startsWith('/video-stream/'), (req, socket, head, url) => {
    let id: string;
    try {
      id = decodeURIComponent(url.pathname.slice('/video-stream/'.length));
    } catch {
      id = '';
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req, id));
  });

  return {
    close: async () => {
      for (const s of sessions.values()) leaveFeed(s);
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

const round4 = (v: number): number => Math.round(v * 1e4) / 1e4;

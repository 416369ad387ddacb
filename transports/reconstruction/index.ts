/**
 * Reconstruction (reconstruction.md): sessions created over REST, images streamed over WS
 * `/ws/reconstruct/{session_id}` as base64 JSON, a GLB point cloud back with progress on the way, and
 * `/dashboard` to browse sessions and view their models. Depth, fusion and GLB writing run in the worker pool;
 * on a cluster gateway the depth model runs on the workers (see `depthView`).
 */
import type http from 'node:http';
import { readFile } from 'node:fs/promises';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TransportSpec } from '../../config/graph.js';
import { ReconstructionSessions, SessionsUnavailableError, TooManyImagesError, type ReconstructionSession } from '../../services/reconstruction/sessions.js';
import { modelPath } from '../../pipeline/runtime.js';
import type { ModelRef } from '../../inference/protocol.js';
import type { DepthImageResult, DepthView } from '../../inference/ops/depth.protocol.js';
import type { ReconstructResult } from '../../inference/ops/reconstruct.protocol.js';
import { mountDashboard } from './dashboard.js';
import { HttpError } from '../http/body.js';
import { sendJson } from '../http/hub.js';
import type { MountedTransport, TransportContext } from '../contract.js';

const PROTOCOL = 'reconstruction';

export interface ReconstructionSpec extends TransportSpec {
  port: number;
  /** A depth model (kind fastdepth, midas or depth-anything). */
  model: string;
  /** Horizontal field of view assumed for every image, degrees. */
  fov?: number;
  /** Seconds a session may stay idle before it and its files are removed. */
  sessionTtl?: number;
  maxImageBytes?: number;
  /** Points in an incremental `delta` preview, at most. */
  previewPoints?: number;
  /** Relative-depth models: far/near ratio the first view is mapped to. */
  relativeRange?: number;
  /**
   * Largest `complete`/`delta` message, in bytes (0: no limit). A model larger than that is sent as a subset
   * of its points that fits; the whole model is kept and served at `metadata.full_model.url`.
   */
  maxMessageBytes?: number;
}

/** Defaults of the document's session parameters. */
const DEFAULTS = { max_images: 100, process_res: 504, num_max_points: 1_000_000 };
const LIMITS = { max_images: [1, 1000], process_res: [32, 2048], num_max_points: [1, 10_000_000] } as const;

/** What an image must start with to be worth decoding: JPEG, PNG, WebP, GIF, BMP. */
const IMAGE_MAGIC = [[0xff, 0xd8, 0xff], [0x89, 0x50, 0x4e, 0x47], [0x52, 0x49, 0x46, 0x46], [0x47, 0x49, 0x46, 0x38], [0x42, 0x4d]];
const isImage = (b: Buffer) => IMAGE_MAGIC.some((m) => b.length > m.length && m.every((x, i) => b[i] === x));

class ClientError extends Error {
  constructor(readonly kind: string, message: string) { super(message); }
}

export function sessionJson(s: ReconstructionSession, ttlMs: number) {
  return {
    session_id: s.id,
    status: s.status,
    created_at: new Date(s.createdMs).toISOString(),
    last_activity: new Date(s.lastActivityMs).toISOString(),
    expires_at: new Date(s.lastActivityMs + ttlMs).toISOString(),
    max_images: s.maxImages,
    process_res: s.processRes,
    num_max_points: s.numMaxPoints,
    num_images: s.images.length,
    images: s.images.map((i) => i.filename),
    has_model: s.model !== null,
    num_frames: s.model?.numFrames ?? 0,
    num_points: s.model?.numPoints ?? 0,
    glb_size_bytes: s.model?.sizeBytes ?? 0,
    model_url: s.model ? `/dashboard/models/${s.id}.glb` : null,
    message: s.message,
  };
}

export function mountReconstruction(spec: ReconstructionSpec, ctx: TransportContext): MountedTransport {
  const { hub, metrics, log, pool, inference, settings, store } = ctx;
  const graph = ctx.graph();
  const model: ModelRef = { path: modelPath(graph, settings, spec.model), kind: graph.models[spec.model].kind };
  const ttlMs = (spec.sessionTtl ?? 3600) * 1000;
  const maxImageBytes = spec.maxImageBytes ?? 20 * 1024 * 1024;
  const fovDeg = spec.fov ?? 60;
  const previewPoints = spec.previewPoints ?? 100_000;
  const relativeRange = spec.relativeRange ?? 10;
  // The websockets library's default max_size, which the document's Python client keeps.
  const maxMessageBytes = spec.maxMessageBytes ?? 1024 * 1024;
  // A cluster's gateways share one set of sessions (given in the context); a single node keeps its own.
  const sessions = ctx.reconstructionSessions ?? new ReconstructionSessions(store, settings.dataDir);
  const writer = sessions.writer;
  /** Activity is recorded at least this often (a cluster shares it this coarsely; see SessionsWriter.touch). */
  const touch = (id: string) => writer.touch(id, ttlMs / 4);
  inference.preload(model).catch((err: Error) => log.error(`reconstruction: ${err.message}`));
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  const countError = (kind: string) => metrics.wsErrors.inc({ protocol: PROTOCOL, kind });

  /** Live state of a session in this process: depth views computed so far, its sockets, one job at a time. */
  interface Live { views: Map<number, DepthView>; sockets: Set<WebSocket>; queue: Promise<void>; incremental: boolean; previewDirty: boolean; previewRunning: boolean }
  const live = new Map<string, Live>();
  const liveOf = (id: string): Live => {
    let l = live.get(id);
    if (!l) live.set(id, (l = { views: new Map(), sockets: new Set(), queue: Promise.resolve(), incremental: false, previewDirty: false, previewRunning: false }));
    return l;
  };
  /** Runs jobs of one session one after the other (two generates never share its views). */
  const enqueue = (id: string, job: () => Promise<void>): Promise<void> => {
    const l = liveOf(id);
    const next = l.queue.then(job, job);
    l.queue = next.catch(() => undefined);
    return next;
  };

  const send = (ws: WebSocket, msg: object): void => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(msg));
    out.inc();
  };
  const sendError = (ws: WebSocket, kind: string, message: string): void => {
    countError(kind);
    send(ws, { type: 'error', message });
  };

  /**
   * Decoding and the depth model: through `inference`, i.e. on the workers of a cluster when this node is a
   * gateway (an encoded image out, ~0.8 MB of pixels and depth back at the default process_res).
   */
  const depthView = async (image: Buffer, processRes: number): Promise<DepthView> => {
    const bytes = image.buffer.slice(image.byteOffset, image.byteOffset + image.byteLength) as ArrayBuffer;
    try {
      const r = await inference.run<DepthImageResult>({ op: 'depth-image', model, image: bytes, maxSide: processRes, maxPixels: 50_000_000 }, [bytes]);
      metrics.inferenceSeconds.observe({ model: spec.model }, r.inferenceMs / 1000);
      return r.view;
    } catch (err) {
      const message = (err as Error).message;
      if (/not a decodable image|more than \d+ pixels/.test(message)) throw new ClientError('bad_image', `image could not be decoded: ${message}`);
      throw err;
    }
  };

  /**
   * The most points a GLB may hold for its base64 to fit in one message of `maxMessageBytes` (the document's
   * Python client keeps the websockets library's 1 MiB limit): 24 bytes a point, plus headers per view.
   */
  const messagePoints = (views: number): number => maxMessageBytes > 0
    ? Math.max(1, Math.floor(((maxMessageBytes - 1024) * 0.75 - 4096 - 1024 * views) / 24))
    : Number.MAX_SAFE_INTEGER;

  /**
   * Depth of every image (computed once, kept while the process runs), then fused GLBs: the model with up to
   * `maxPoints` points, and, when that is too large for one message, a subset that fits to send.
   */
  const build = async (s: ReconstructionSession, maxPoints: number, progress?: (p: number, m: string) => void) => {
    const l = liveOf(s.id);
    let done = 0;
    const total = s.images.length;
    await Promise.all(s.images.map(async (img) => {
      if (!l.views.has(img.index)) l.views.set(img.index, await depthView(await readFile(img.path), s.processRes));
      done++;
      progress?.(0.8 * (done / total), `Estimated depth ${done}/${total} (${img.filename})`);
    }));
    progress?.(0.85, `Fusing ${total} views into a point cloud`);
    const views = s.images.map((img) => ({ ...l.views.get(img.index)!, name: img.filename }));
    const transfer = views.flatMap((v) => [v.rgb, v.depth.data]);
    const fit = messagePoints(views.length);
    // Fusion stays on this node's pool, even on a cluster gateway: it runs no model, and its task carries every
    // view's pixels and depth (about 0.8 MB each), far over a NATS message's 1 MB max_payload for any real session.
    const budgets = maxPoints > fit ? [maxPoints, fit] : [maxPoints];
    const r = await pool.run<ReconstructResult>({ op: 'reconstruct', views, fovDeg, maxPoints: budgets, relativeRange }, transfer);
    // The views come back untouched: keep them for the next model.
    r.views.forEach((v, i) => l.views.set(s.images[i].index, { width: v.width, height: v.height, rgb: v.rgb, depth: v.depth }));
    const [full, message = full] = r.models.map((m) => ({ glb: Buffer.from(m.glb), numPoints: m.numPoints }));
    return { full, message };
  };

  /** A `complete` or `delta` message: the model that fits in a message, and where the full one is. */
  const modelMessage = (type: 'complete' | 'delta', id: string, numFrames: number, m: Awaited<ReturnType<typeof build>>) => ({
    type,
    glb_base64: m.message.glb.toString('base64'),
    metadata: {
      num_frames: numFrames, glb_size_bytes: m.message.glb.byteLength, num_points: m.message.numPoints,
      full_model: { url: `/dashboard/models/${id}.glb`, num_points: m.full.numPoints, glb_size_bytes: m.full.glb.byteLength },
    },
  });

  const generate = (id: string, ws: WebSocket): Promise<void> => enqueue(id, async () => {
    const s = sessions.get(id);
    if (!s) return sendError(ws, 'unknown_session', `Session ${id} not found`);
    if (s.images.length === 0) return sendError(ws, 'no_images', 'no images in this session yet; send images before generate');
    await writer.setStatus(id, 'processing');
    const progress = (p: number, message: string) => send(ws, { type: 'progress', progress: Math.round(p * 1000) / 1000, message });
    progress(0, `Processing ${s.images.length} images`);
    try {
      const m = await build(s, s.numMaxPoints, progress);
      if (!sessions.get(id)) return sendError(ws, 'unknown_session', `Session ${id} was deleted while its model was being built`);
      await writer.saveModel(id, m.full.glb, m.full.numPoints, s.images.length, s.status === 'finalized' ? 'finalized' : 'completed');
      progress(1, `Point cloud ready: ${m.full.numPoints} points`);
      send(ws, modelMessage('complete', id, s.images.length, m));
      log.info(`reconstruction: session ${id}: ${s.images.length} images → ${m.full.numPoints} points, ${m.full.glb.byteLength} bytes`);
    } catch (err) {
      await writer.setStatus(id, 'failed', (err as Error).message).catch(() => undefined);
      if (err instanceof SessionsUnavailableError) return sendError(ws, 'unavailable', err.message);
      if (err instanceof ClientError) return sendError(ws, err.kind, err.message);
      log.error(`reconstruction: session ${id}: ${(err as Error).message}`);
      sendError(ws, 'internal', `reconstruction failed: ${(err as Error).message}`);
    }
  });

  /** Incremental mode: a smaller preview after new images, coalesced while one is being built. */
  const preview = (id: string): void => {
    const l = liveOf(id);
    l.previewDirty = true;
    if (l.previewRunning) return;
    l.previewRunning = true;
    void enqueue(id, async () => {
      while (l.previewDirty) {
        l.previewDirty = false;
        const s = sessions.get(id);
        if (!s || s.images.length === 0) break;
        try {
          const m = await build(s, Math.min(previewPoints, s.numMaxPoints));
          const msg = modelMessage('delta', id, s.images.length, m);
          for (const ws of l.sockets) send(ws, msg);
        } catch (err) {
          for (const ws of l.sockets) sendError(ws, err instanceof ClientError ? err.kind : 'internal', `preview failed: ${(err as Error).message}`);
        }
      }
    }).finally(() => { l.previewRunning = false; });
  };

  const onImage = async (id: string, ws: WebSocket, msg: Record<string, unknown>): Promise<void> => {
    const s = sessions.get(id);
    if (!s) throw new ClientError('unknown_session', `Session ${id} not found`);
    if (s.status === 'finalized') throw new ClientError('finalized', 'session is finalized; create a new session to add images');
    if (s.images.length >= s.maxImages) throw new ClientError('too_many_images', `session already has its maximum of ${s.maxImages} images`);
    if (typeof msg.data !== 'string' || msg.data.length === 0) throw new ClientError('bad_format', '"data" must be a base64-encoded image');
    const b64 = msg.data.replace(/^data:[^;,]+;base64,/, '');
    if (b64.length % 4 === 1 || !/^[A-Za-z0-9+/\s]+={0,2}$/.test(b64)) throw new ClientError('bad_base64', '"data" is not valid base64');
    const bytes = Buffer.from(b64, 'base64');
    if (bytes.length > maxImageBytes) throw new ClientError('too_large', `image is larger than ${maxImageBytes} bytes`);
    if (!isImage(bytes)) throw new ClientError('bad_image', '"data" is not an image (expected JPEG, PNG, WebP, GIF or BMP)');
    const filename = typeof msg.filename === 'string' && msg.filename ? msg.filename : `image_${s.images.length}.jpg`;
    // Decoded and its depth estimated now, in a worker: a corrupt image is refused before it is stored,
    // and generate later finds the work done.
    const view = await depthView(bytes, s.processRes);
    let image;
    try {
      image = await writer.addImage(id, filename, bytes);
    } catch (err) {
      if (err instanceof TooManyImagesError) throw new ClientError('too_many_images', err.message);
      throw err;
    }
    const l = liveOf(id);
    l.views.set(image.index, view);
    send(ws, { type: 'ack', image_path: image.path, filename, image_index: image.index, num_images: image.index + 1, max_images: s.maxImages });
    if (l.incremental) preview(id);
  };

  // ---- WebSocket /ws/reconstruct/{session_id} ---------------------------------------------------
  // Room for the base64 of twice the largest image plus 1 MiB, so a larger image gets a clear error on an open socket.
  const wss = new WebSocketServer({ noServer: true, maxPayload: Math.ceil((maxImageBytes * 2 * 4) / 3) + 1024 * 1024 });
  wss.on('connection', (ws: WebSocket, id: string) => {
    metrics.wsClients.inc({ protocol: PROTOCOL });
    const s = sessions.get(id);
    if (s) {
      liveOf(id).sockets.add(ws);
      touch(id);
      send(ws, { type: 'connected', session_id: id, message: 'Connected to reconstruction session', num_images: s.images.length, max_images: s.maxImages, status: s.status });
    } else {
      // The socket stays open: the client reads the error, and every message gets the same answer.
      sendError(ws, 'unknown_session', `Session ${id} not found; create one with POST /ws/session/create`);
    }
    // Messages of one connection are handled in order.
    let chain = Promise.resolve();
    ws.on('message', (raw, isBinary) => {
      inbound.inc();
      chain = chain.then(async () => {
        try {
          if (isBinary) throw new ClientError('bad_format', 'send JSON text messages: {"type": "image", "data": "<base64>", "filename": "..."}');
          let msg: unknown;
          try { msg = JSON.parse(raw.toString()); } catch { throw new ClientError('invalid_json', 'message is not valid JSON'); }
          if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new ClientError('bad_format', 'message must be a JSON object with a "type"');
          const m = msg as Record<string, unknown>;
          if (!sessions.get(id)) throw new ClientError('unknown_session', `Session ${id} not found`);
          touch(id);
          switch (m.type) {
            case 'image': return await onImage(id, ws, m);
            case 'generate':
              if (m.incremental === true) liveOf(id).incremental = true;
              return await generate(id, ws);
            case 'finalize': {
              const cur = sessions.get(id)!;
              const stale = cur.images.length > 0 && (cur.model?.numFrames ?? 0) !== cur.images.length;
              await writer.setStatus(id, 'finalized');
              liveOf(id).incremental = false;
              if (stale) await generate(id, ws);
              const fin = sessions.get(id);
              if (!fin) throw new ClientError('unknown_session', `Session ${id} was deleted`);
              await writer.setStatus(id, 'finalized');
              send(ws, { type: 'finalized', session_id: id, num_frames: fin.images.length, has_model: fin.model !== null });
              return;
            }
            default:
              throw new ClientError('unknown_type', `unknown message type ${JSON.stringify(m.type ?? null)}; expected image, generate or finalize`);
          }
        } catch (err) {
          if (err instanceof ClientError) return sendError(ws, err.kind, err.message);
          if (err instanceof SessionsUnavailableError) return sendError(ws, 'unavailable', err.message);
          log.error(`reconstruction: session ${id}: ${(err as Error).message}`);
          sendError(ws, 'internal', `internal error: ${(err as Error).message}`);
        }
      });
    });
    ws.on('close', () => {
      metrics.wsClients.dec({ protocol: PROTOCOL });
      const l = live.get(id);
      l?.sockets.delete(ws);
      // Depth views are kept only while someone is connected (about 1 MB an image); they can be recomputed
      // from the stored images. Jobs already queued keep their own references.
      if (l && l.sockets.size === 0) { l.views.clear(); l.incremental = false; }
    });
    // A message over maxPayload: ws closes the socket with 1009 (it cannot be read to answer it); count it.
    ws.on('error', (err: Error & { code?: string }) => { if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') countError('too_large'); });
  });
  const WS_PATH = /^\/ws\/reconstruct\/([^/]{1,200})$/;
  hub.upgrade(spec.id, spec.port, (p) => WS_PATH.test(p), (req, socket, head, url) => {
    const id = decodeURIComponent(WS_PATH.exec(url.pathname)![1]);
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, id));
  });

  // ---- REST /ws/session* ------------------------------------------------------------------------
  // The document's HTML client runs on another origin (a static file server), so the API allows any origin.
  const cors = (res: http.ServerResponse) => {
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-methods', 'GET, POST, DELETE, OPTIONS');
    res.setHeader('access-control-allow-headers', 'content-type');
  };
  const route = (method: string, pattern: RegExp, handler: (req: http.IncomingMessage, res: http.ServerResponse, m: RegExpExecArray, url: URL) => void | Promise<void>) => {
    hub.route(spec.id, spec.port, method, (p) => pattern.test(p), async (req, res, url) => {
      cors(res);
      try {
        await handler(req, res, pattern.exec(url.pathname)!, url);
      } catch (err) {
        if (err instanceof SessionsUnavailableError) err = new HttpError(503, err.message);
        if (!(err instanceof HttpError)) throw err;
        metrics.wsErrors.inc({ protocol: PROTOCOL, kind: `http_${err.status}` });
        sendJson(res, err.status, { detail: err.message });
      }
    });
  };
  const SESSION = /^\/ws\/session\/([^/]{1,200})$/;
  const sessionOr404 = (id: string) => {
    const s = sessions.get(decodeURIComponent(id));
    if (!s) throw new HttpError(404, 'Session not found');
    return s;
  };
  for (const p of [/^\/ws\/session\/create$/, SESSION, /^\/ws\/sessions$/]) {
    route('OPTIONS', p, (_req, res) => { res.writeHead(204).end(); });
  }
  route('POST', /^\/ws\/session\/create$/, async (_req, res, _m, url) => {
    const param = (name: keyof typeof DEFAULTS): number => {
      const raw = url.searchParams.get(name);
      if (raw === null || raw === '') return DEFAULTS[name];
      const v = Number(raw);
      const [lo, hi] = LIMITS[name];
      if (!Number.isInteger(v) || v < lo || v > hi) throw new HttpError(422, `${name} must be an integer from ${lo} to ${hi}, got ${JSON.stringify(raw)}`);
      return v;
    };
    const s = await writer.create({ maxImages: param('max_images'), processRes: param('process_res'), numMaxPoints: param('num_max_points') });
    log.info(`reconstruction: session ${s.id} created`);
    sendJson(res, 200, { ...sessionJson(s, ttlMs), websocket_url: `/ws/reconstruct/${s.id}` });
  });
  route('GET', /^\/ws\/sessions$/, (_req, res) => {
    const list = sessions.list().map((s) => sessionJson(s, ttlMs));
    sendJson(res, 200, { sessions: list, count: list.length });
  });
  route('GET', SESSION, (_req, res, m) => sendJson(res, 200, sessionJson(sessionOr404(m[1]), ttlMs)));
  route('DELETE', SESSION, async (_req, res, m) => {
    const s = sessionOr404(m[1]);
    // The sockets of the session hear of it through onDeleted, here and on every other gateway.
    await writer.delete(s.id);
    sendJson(res, 200, { status: 'deleted', session_id: s.id });
  });

  const forget = (id: string) => {
    const l = live.get(id);
    for (const ws of l?.sockets ?? []) sendError(ws, 'unknown_session', `Session ${id} was deleted`);
    live.delete(id);
  };
  const stopForgetting = sessions.onDeleted(forget);

  // ---- expiry: idle sessions (no message, no open socket) and their files go after sessionTtl ----
  let sweeping = false;
  const sweep = async () => {
    if (sweeping) return;
    sweeping = true;
    try {
      const connected = new Set([...live].filter(([, l]) => l.sockets.size > 0).map(([id]) => id));
      for (const id of connected) touch(id);
      for (const id of await writer.expire(Date.now() - ttlMs, connected)) log.info(`reconstruction: session ${id} expired`);
    } catch (err) {
      log.error(`reconstruction: expiry failed: ${(err as Error).message}`);
    } finally {
      sweeping = false;
    }
  };
  void sweep();
  const timer = setInterval(() => void sweep(), Math.max(200, Math.min(60_000, ttlMs / 4)));
  timer.unref();

  const dashboard = mountDashboard(hub, spec.id, spec.port, sessions);

  return {
    close: async () => {
      clearInterval(timer);
      stopForgetting();
      dashboard.close();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await Promise.all([...live.values()].map((l) => l.queue));
    },
  };
}

/**
 * People Counter protocol (people-counter.md): pushes `frame`, `stats` and `event` messages to every
 * client and answers `get_face` / `get_all_faces`. Speaks the document exactly; knows nothing of stages
 * beyond the bus events and the store.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Subscription } from 'rxjs';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { TransportSpec } from '../../config/graph.js';
import { RateGate } from '../../core/rate-gate.js';
import { broadcast, type BroadcastLimits } from '../http/ws-broadcast.js';
import type { MountedTransport, TransportContext } from '../contract.js';

const PROTOCOL = 'people-counter';
const DEFAULT_FACE_LIMIT = 50;
const MAX_FACE_LIMIT = 500;

export interface PeopleCounterSpec extends TransportSpec {
  port: number;
  pipeline: string;
  /** Most `frame` messages per second (the document says 10-30). */
  fps?: number;
  maxMessageBytes?: number;
}

/** `YYYY-MM-DD HH:MM:SS.mmm` in local time, as the document's timestamps. */
export function timestamp(ms = Date.now()): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${clock(ms)}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** `HH:MM:SS` in local time. */
export function clock(ms: number): string {
  const d = new Date(ms);
  return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
}

const p2 = (n: number): string => String(n).padStart(2, '0');

/** Where the faces stage keeps a pipeline's face crops (face_<id>.jpg). */
export function facesDir(dataDir: string, pipeline: string): string {
  return path.resolve(dataDir, 'faces', pipeline);
}

export function mountPeopleCounter(spec: PeopleCounterSpec, ctx: TransportContext): MountedTransport {
  const { hub, bus, metrics, store, settings, log } = ctx;
  const pipeline = spec.pipeline;
  // A client more than a few frames behind skips frames (it gets the newest instead of a backlog).
  const limits: BroadcastLimits = { dropAboveBytes: 512 * 1024, closeAboveBytes: 32 * 1024 * 1024 };
  const wss = new WebSocketServer({ noServer: true, maxPayload: spec.maxMessageBytes ?? 64 * 1024 });
  const clientsGauge = metrics.wsClients.labels(PROTOCOL);
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  const dropped = metrics.wsDropped.labels(PROTOCOL);
  const dir = facesDir(settings.dataDir, pipeline);
  const hasFaces = (): boolean => ctx.graph().pipelines[pipeline]?.stages.some((s) => s.use === 'faces') ?? false;

  const push = (message: object, droppable: boolean): void => {
    if (wss.clients.size === 0) return;
    const r = broadcast(wss.clients, JSON.stringify(message), droppable, limits);
    out.inc(r.sent);
    if (r.dropped) dropped.inc(r.dropped);
    if (r.closed) log.warn(`people-counter: disconnected ${r.closed} client(s) that stopped reading`);
  };

  const subs: Subscription[] = [];
  const frameGate = new RateGate(spec.fps ?? 15);
  subs.push(bus.on('packet').subscribe((p) => {
    if (p.pipeline !== pipeline || !p.jpeg || wss.clients.size === 0) return;
    const now = Date.now();
    if (!frameGate.allow(now)) return;
    push({ type: 'frame', data: Buffer.from(p.jpeg.data).toString('base64'), timestamp: timestamp(now) }, true);
  }));
  subs.push(bus.on('count.stats').subscribe((s) => {
    if (s.pipeline !== pipeline) return;
    push({
      type: 'stats',
      data: {
        count_in: s.countIn, count_out: s.countOut, face_count: s.faceCount, daily_event_count: s.dailyEventCount,
        event_active: s.eventActive, current_event_count_in: s.currentEventCountIn,
      },
      timestamp: timestamp(s.atMs),
    }, false);
  }));
  subs.push(bus.on('traffic.event').subscribe((e) => {
    if (e.pipeline !== pipeline) return;
    const data = e.status === 'started'
      ? { status: 'started', start_time: clock(e.startMs) }
      : { status: 'ended', start_time: clock(e.startMs), end_time: clock(e.endMs ?? Date.now()), count_in: e.countIn };
    push({ type: 'event', data, timestamp: timestamp() }, false);
  }));

  const reply = (ws: WebSocket, message: object): void => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(message));
    out.inc();
  };
  const fail = (ws: WebSocket, kind: string, error: string): void => {
    metrics.wsErrors.inc({ protocol: PROTOCOL, kind });
    reply(ws, { error });
  };

  const faceImage = async (faceId: number): Promise<{ filename: string; image_data: string } | { error: string }> => {
    const row = store.face(pipeline, faceId);
    if (!row) return { error: 'Face ID not found' };
    // The path is built from the validated integer id, never from client text.
    const file = path.join(dir, `face_${faceId}.jpg`);
    try {
      return { filename: row.filename, image_data: (await readFile(file)).toString('base64') };
    } catch {
      return { error: 'Face image file not found' };
    }
  };

  const onMessage = async (ws: WebSocket, raw: RawData, isBinary: boolean): Promise<void> => {
    inbound.inc();
    let msg: unknown;
    try {
      msg = JSON.parse(isBinary ? '' : raw.toString());
    } catch {
      fail(ws, 'invalid_json', 'Invalid JSON message');
      return;
    }
    const type = typeof msg === 'object' && msg !== null ? (msg as { type?: unknown }).type : undefined;
    if (type === 'get_face') {
      const faceId = (msg as { face_id?: unknown }).face_id;
      if (!isId(faceId)) { fail(ws, 'bad_format', 'Invalid face_id or limit format'); return; }
      reply(ws, { type: 'face_image', face_id: faceId, ...(await faceImage(faceId)) });
    } else if (type === 'get_all_faces') {
      const limit = (msg as { limit?: unknown }).limit ?? DEFAULT_FACE_LIMIT;
      if (!isId(limit) || limit < 1) { fail(ws, 'bad_format', 'Invalid face_id or limit format'); return; }
      if (!hasFaces()) { reply(ws, { type: 'all_faces', error: 'Face data not available on server' }); return; }
      const faces = [];
      for (const row of store.recentFaces(pipeline, Math.min(limit, MAX_FACE_LIMIT))) {
        const img = await faceImage(row.faceId);
        if ('image_data' in img) faces.push({ face_id: row.faceId, filename: img.filename, image_data: img.image_data });
      }
      reply(ws, { type: 'all_faces', faces });
    } else {
      fail(ws, 'unknown_type', `Unknown request type: ${typeof type === 'string' ? type.slice(0, 64) : JSON.stringify(type ?? null)}`);
    }
  };

  wss.on('connection', (ws) => {
    clientsGauge.inc();
    ws.on('message', (raw, isBinary) => {
      onMessage(ws, raw, isBinary).catch((err: Error) => {
        log.error(`people-counter: request failed: ${err.message}`);
        fail(ws, 'internal', 'Internal server error processing request');
      });
    });
    ws.on('close', () => clientsGauge.dec());
    ws.on('error', () => undefined);
  });

  hub.upgrade(spec.id, spec.port, '/', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  return {
    close: async () => {
      subs.forEach((s) => s.unsubscribe());
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 2 ** 31;
}

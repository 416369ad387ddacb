/**
 * DDFR's `/ws`: binary JPEG/PNG frames in, one JSON answer per frame out, in order. A frame that cannot be
 * processed is answered `null` (the document's choice) and the connection stays open. A client that sends faster than
 * its frames are processed is slowed down, as by the document's server (one frame at a time): its socket is not read
 * while frames wait, so it is never answered `null` for being fast (the document's own example does not expect that).
 */
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Clock } from '../../core/clock.js';
import { codeOf, isCode } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Metrics } from '../../core/metrics.js';
import type { FaceRecognizer } from '../../services/persons/face-recognizer.js';
import type { KnownPersons } from '../../services/persons/known-persons.js';
import { DETAIL } from '../http/errors.js';
import { WsGuard, wsRoute } from '../http/ws.js';
import { faceJson } from './messages.js';

const PROTOCOL = 'ddfr';
/** Frames of one connection in flight; at that many its socket is not read (TCP holds the rest back at the client). */
const MAX_PENDING = 8;

export interface FramesDeps {
  clock: Clock;
  recognizer: FaceRecognizer;
  persons: KnownPersons;
  metrics: Metrics;
  log: Logger;
  maxImageBytes: number;
  maxConnections: number;
  /** A connection that sends no frame for this long is closed. */
  idleMs: number;
}

/** The `/ws` endpoint: answers the routes to register and what to close when the transport goes. */
export function framesEndpoint(d: FramesDeps): { routes(app: FastifyInstance): void; close(): Promise<void> } {
  const { metrics, log, persons, recognizer } = d;
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  let warnedEmpty = false;

  const answer = async (data: Buffer): Promise<string> => {
    try {
      const r = await recognizer.recognize(data);
      if (persons.indexSize === 0 && !warnedEmpty) {
        warnedEmpty = true;
        log.warn('ddfr: no known persons enrolled; detection only, every face is Unknown');
      }
      const today = new Date();
      return JSON.stringify({ status: 'ok', faces: r.faces.map((f) => faceJson(f.box, f.match?.person ?? null, today)) });
    } catch (err) {
      if (isCode(err, 'BAD_IMAGE', 'IMAGE_TOO_LARGE')) {
        metrics.wsErrors.inc({ protocol: PROTOCOL, kind: 'bad_image' });
        log.debug(`ddfr: frame not decoded: ${err.message}`);
      } else {
        metrics.wsErrors.inc({ protocol: PROTOCOL, kind: codeOf(err) === 'INTERNAL' ? 'internal' : codeOf(err).toLowerCase() });
        log.error(`ddfr: frame failed: ${(err as Error).message}`);
      }
      return 'null';
    }
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: d.maxImageBytes });
  const guard = new WsGuard({
    clock: d.clock, maxConnections: d.maxConnections, pingMs: 30_000, idleMs: d.idleMs,
    onError: (kind) => metrics.wsErrors.inc({ protocol: PROTOCOL, kind }),
  });
  wss.on('connection', (ws: WebSocket) => {
    guard.watch(ws);
    metrics.wsClients.inc({ protocol: PROTOCOL });
    // Frames of one connection are answered in order; different connections run in parallel.
    let chain = Promise.resolve();
    let pending = 0;
    let paused = false;
    const send = (text: string): void => { if (ws.readyState === ws.OPEN) { ws.send(text); out.inc(); } };
    ws.on('message', (raw, isBinary) => {
      inbound.inc();
      if (!isBinary) {
        metrics.wsErrors.inc({ protocol: PROTOCOL, kind: 'text_frame' });
        // Through the chain too, so replies keep the order of the messages they answer.
        chain = chain.then(() => send(JSON.stringify({ status: 'error', message: 'send each frame as a binary message holding a JPEG or PNG image' })));
        return;
      }
      const data = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw as ArrayBuffer);
      // A few frames already read may still arrive after the pause: the work in flight stays bounded all the same.
      if (++pending >= MAX_PENDING && !paused) { paused = true; ws.pause(); }
      const result = answer(data);
      chain = chain.then(async () => {
        const text = await result;
        pending--;
        send(text);
        if (paused && pending < MAX_PENDING) { paused = false; ws.resume(); }
      });
    });
    ws.on('close', () => metrics.wsClients.dec({ protocol: PROTOCOL }));
    ws.on('error', () => undefined);
  });
  return {
    routes: (app) => wsRoute(app, '/ws', {
      shape: DETAIL,
      refuse: () => (guard.admits() ? null : { status: 503, body: { detail: 'too many connections; try again later' } }),
      server: () => wss,
      accept: (ws, req) => wss.emit('connection', ws, req.raw),
    }),
    close: async () => {
      guard.close();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

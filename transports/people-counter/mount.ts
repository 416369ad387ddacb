/** Mounting the people-counter protocol (its definition and options schema: index.ts, which loads this file only when a graph serves it). */
import type { Subscription } from 'rxjs';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { DETAIL } from '../http/errors.js';
import { parseMessage } from '../http/json-message.js';
import { WsGuard, wsRoute } from '../http/ws.js';
import type { Graph, TransportSpec } from '../../config/graph.js';
import { RateGate } from '../../core/rate-gate.js';
import type { MountedTransport, TransportContext } from '../contract.js';
import { broadcast, type BroadcastLimits } from '../http/ws-broadcast.js';
import { eventMessage, frameMessage, statsMessage } from './messages.js';
import { answer, isRefusal } from './requests.js';

const PROTOCOL = 'people-counter';
/** A client more than a few frames behind skips frames (it gets the newest instead of a backlog). */
const LIMITS: BroadcastLimits = { dropAboveBytes: 512 * 1024, closeAboveBytes: 32 * 1024 * 1024 };

export interface PeopleCounterOptions extends TransportSpec {
  pipeline: string;
  /** Most `frame` messages per second (the document says 10-30). */
  fps: number;
  maxMessageBytes: number;
  /** Clients at once; more are refused at the handshake (503). */
  maxConnections: number;
}

const usesStage = (graph: Graph, pipeline: string, stage: string): boolean =>
  graph.pipelines[pipeline]?.stages.some((s) => s.use === stage) ?? false;

export function mount(spec: PeopleCounterOptions & { port: number }, ctx: TransportContext): MountedTransport {
  const { hub, bus, metrics, faces, log, clock } = ctx;
  const pipeline = spec.pipeline;
  const wss = new WebSocketServer({ noServer: true, maxPayload: spec.maxMessageBytes });
  const clientsGauge = metrics.wsClients.labels(PROTOCOL);
  const out = metrics.wsMessages.labels(PROTOCOL, 'out');
  const inbound = metrics.wsMessages.labels(PROTOCOL, 'in');
  const dropped = metrics.wsDropped.labels(PROTOCOL);

  const push = (message: object, droppable: boolean): void => {
    if (wss.clients.size === 0) return;
    const r = broadcast(wss.clients, JSON.stringify(message), droppable, LIMITS);
    out.inc(r.sent);
    if (r.dropped) dropped.inc(r.dropped);
    if (r.closed) log.warn(`people-counter: disconnected ${r.closed} client(s) that stopped reading`);
  };

  const subs: Subscription[] = [];
  const frameGate = new RateGate(spec.fps);
  subs.push(bus.on('packet').subscribe((p) => {
    if (p.pipeline !== pipeline || !p.jpeg || wss.clients.size === 0) return;
    const now = clock.now();
    if (frameGate.allow(now)) push(frameMessage(p.jpeg.data, now), true);
  }));
  subs.push(bus.on('count.stats').subscribe((s) => { if (s.pipeline === pipeline) push(statsMessage(s), false); }));
  subs.push(bus.on('traffic.event').subscribe((e) => { if (e.pipeline === pipeline) push(eventMessage(e, clock.now()), false); }));

  const reply = (ws: WebSocket, message: object): void => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(message));
    out.inc();
  };
  const onMessage = async (ws: WebSocket, raw: RawData, isBinary: boolean): Promise<void> => {
    inbound.inc();
    const msg = parseMessage(raw, isBinary, { maxBytes: spec.maxMessageBytes, maxDepth: 8 });
    if (!msg.ok) {
      metrics.wsErrors.inc({ protocol: PROTOCOL, kind: msg.reason === 'invalid_json' ? 'invalid_json' : 'bad_format' });
      reply(ws, { error: 'Invalid JSON message' });
      return;
    }
    const r = await answer(msg.value, faces, pipeline, usesStage(ctx.graph(), pipeline, 'faces'));
    if (isRefusal(r)) {
      metrics.wsErrors.inc({ protocol: PROTOCOL, kind: r.kind });
      reply(ws, { error: r.error });
    } else reply(ws, r);
  };

  const guard = new WsGuard({
    clock, maxConnections: spec.maxConnections, pingMs: 30_000, idleMs: 0, onError: (kind) => metrics.wsErrors.inc({ protocol: PROTOCOL, kind }),
  });
  // Frames are encoded only while someone watches them (the annotate stage asks the bus).
  let unwant: (() => void) | null = null;
  wss.on('connection', (ws) => {
    guard.watch(ws);
    unwant ??= bus.want('jpeg', pipeline);
    clientsGauge.inc();
    ws.on('message', (raw, isBinary) => {
      onMessage(ws, raw, isBinary).catch((err: Error) => {
        log.error(`people-counter: request failed: ${err.message}`);
        metrics.wsErrors.inc({ protocol: PROTOCOL, kind: 'internal' });
        reply(ws, { error: 'Internal server error processing request' });
      });
    });
    ws.on('close', () => {
      clientsGauge.dec();
      if (wss.clients.size === 0) { unwant?.(); unwant = null; }
    });
    ws.on('error', () => undefined);
  });

  hub.mount(spec.port, {
    owner: spec.id, prefixes: ['/'], shape: DETAIL,
    routes: (app) => wsRoute(app, '/', {
      shape: DETAIL,
      refuse: () => (guard.admits() ? null : { status: 503, body: { detail: 'too many clients; try again later' } }),
      server: () => wss,
      accept: (ws, req) => wss.emit('connection', ws, req.raw),
    }),
  });

  let closing: Promise<void> | null = null;
  return {
    close: () => (closing ??= (async () => {
      subs.forEach((s) => s.unsubscribe());
      unwant?.();
      guard.close();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    })()),
  };
}

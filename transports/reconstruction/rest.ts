/**
 * The REST side of reconstruction: `POST /ws/session/create`, `GET /ws/session/{id}`, `GET /ws/sessions`,
 * `DELETE /ws/session/{id}`. The document's HTML client runs on another origin (a static file server), so the API
 * allows any origin. Parameters are decimal integers in their documented ranges (422 otherwise, as FastAPI answers);
 * errors are `{"detail": ...}`.
 */
import type { FastifyInstance } from 'fastify';
import { coded } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { ReconstructionSessions, SessionsWriter } from '../../services/reconstruction/sessions.js';
import { cors } from '../http/bodies.js';
import { SESSION_DEFAULTS, SESSION_LIMITS } from './limits.js';
import { sessionJson } from './messages.js';

export interface RestDeps {
  sessions: ReconstructionSessions;
  writer: SessionsWriter;
  ttlMs: number;
  /** Sessions at once; creating one more is refused (503). */
  maxSessions: number;
  log: Logger;
}

/** A session id as the server makes them (a UUID); anything else is no session. */
const SESSION_ID = '^[0-9a-f-]{36}$';
type Params = { id: string };

export function restRoutes(app: FastifyInstance, d: RestDeps): void {
  const { sessions, writer, ttlMs } = d;
  cors(app, { origins: ['*'], methods: 'GET, POST, DELETE, OPTIONS', paths: ['/ws/session/create', '/ws/session/:id', '/ws/sessions'] });
  const sessionOr404 = (id: string) => {
    const s = new RegExp(SESSION_ID).test(id) ? sessions.get(id) : undefined;
    if (!s) throw coded('UNKNOWN_SESSION', 'Session not found');
    return s;
  };
  app.post<{ Querystring: Record<string, unknown> }>('/ws/session/create', async (req) => {
    const param = (name: keyof typeof SESSION_DEFAULTS): number => {
      const raw = req.query[name];
      if (raw === undefined || raw === '') return SESSION_DEFAULTS[name];
      const [lo, hi] = SESSION_LIMITS[name];
      // Decimal digits only: 0x10, 1e3, " 5" and repeated parameters are not integers here.
      const v = typeof raw === 'string' && /^[0-9]{1,9}$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(v) || v < lo || v > hi) {
        throw coded('BAD_REQUEST', `${name} must be an integer from ${lo} to ${hi}, got ${JSON.stringify(String(raw).slice(0, 32))}`);
      }
      return v;
    };
    const o = { maxImages: param('max_images'), processRes: param('process_res'), numMaxPoints: param('num_max_points') };
    if (sessions.count() >= d.maxSessions) throw coded('SESSION_LIMIT', `the server holds its maximum of ${d.maxSessions} sessions; delete one or try later`);
    const s = await writer.create(o);
    d.log.info(`reconstruction: session ${s.id} created`);
    return { ...sessionJson(s, ttlMs), websocket_url: `/ws/reconstruct/${s.id}` };
  });
  app.get('/ws/sessions', async () => {
    const list = sessions.list().map((s) => sessionJson(s, ttlMs));
    return { sessions: list, count: list.length };
  });
  app.get<{ Params: Params }>('/ws/session/:id', async (req) => sessionJson(sessionOr404(req.params.id), ttlMs));
  app.delete<{ Params: Params }>('/ws/session/:id', async (req) => {
    const s = sessionOr404(req.params.id);
    // The sockets of the session hear of it through onDeleted, here and on every other gateway.
    await writer.delete(s.id);
    return { status: 'deleted', session_id: s.id };
  });
}

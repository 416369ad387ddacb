/**
 * The REST side of reconstruction: `POST /ws/session/create`, `GET /ws/session/{id}`, `GET /ws/sessions`,
 * `DELETE /ws/session/{id}`. The document's HTML client runs on another origin (a static file server), so the API
 * allows any origin. Errors are `{"detail": ...}`.
 */
import type http from 'node:http';
import { coded, SightlineError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { ReconstructionSessions, SessionsWriter } from '../../services/reconstruction/sessions.js';
import { sendJson, type HttpHub } from '../http/hub.js';
import { SESSION_DEFAULTS, SESSION_LIMITS } from './limits.js';
import { sessionJson } from './messages.js';

export interface RestDeps {
  hub: HttpHub;
  owner: string;
  port: number;
  sessions: ReconstructionSessions;
  writer: SessionsWriter;
  ttlMs: number;
  log: Logger;
  countError(kind: string): void;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, m: RegExpExecArray, url: URL) => void | Promise<void>;

const SESSION = /^\/ws\/session\/([^/]{1,200})$/;
const CREATE = /^\/ws\/session\/create$/;
const LIST = /^\/ws\/sessions$/;

export function mountRest(d: RestDeps): void {
  const { sessions, writer, ttlMs } = d;
  const cors = (res: http.ServerResponse) => {
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-methods', 'GET, POST, DELETE, OPTIONS');
    res.setHeader('access-control-allow-headers', 'content-type');
  };
  const route = (method: string, pattern: RegExp, handler: Handler) => {
    d.hub.route(d.owner, d.port, method, (p) => pattern.test(p), async (req, res, url) => {
      cors(res);
      try {
        await handler(req, res, pattern.exec(url.pathname)!, url);
      } catch (err) {
        if (!(err instanceof SightlineError) || err.code === 'INTERNAL') throw err;
        // Out-of-range parameters answer 422 (FastAPI's validation status, which the document's server uses).
        const status = err.code === 'BAD_REQUEST' ? 422 : err.status;
        d.countError(`http_${status}`);
        sendJson(res, status, { detail: err.message });
      }
    });
  };
  const sessionOr404 = (id: string) => {
    const s = sessions.get(decodeURIComponent(id));
    if (!s) throw coded('UNKNOWN_SESSION', 'Session not found');
    return s;
  };
  for (const p of [CREATE, SESSION, LIST]) route('OPTIONS', p, (_req, res) => { res.writeHead(204).end(); });
  route('POST', CREATE, async (_req, res, _m, url) => {
    const param = (name: keyof typeof SESSION_DEFAULTS): number => {
      const raw = url.searchParams.get(name);
      if (raw === null || raw === '') return SESSION_DEFAULTS[name];
      const v = Number(raw);
      const [lo, hi] = SESSION_LIMITS[name];
      if (!Number.isInteger(v) || v < lo || v > hi) throw coded('BAD_REQUEST', `${name} must be an integer from ${lo} to ${hi}, got ${JSON.stringify(raw)}`);
      return v;
    };
    const s = await writer.create({ maxImages: param('max_images'), processRes: param('process_res'), numMaxPoints: param('num_max_points') });
    d.log.info(`reconstruction: session ${s.id} created`);
    sendJson(res, 200, { ...sessionJson(s, ttlMs), websocket_url: `/ws/reconstruct/${s.id}` });
  });
  route('GET', LIST, (_req, res) => {
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
}

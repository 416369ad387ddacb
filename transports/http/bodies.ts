/**
 * Request bodies, read defensively, per transport scope: JSON only as `application/json` (any case), its text bounded
 * by the route's body limit and its nesting depth before it is parsed; no `text/plain` parser (a page of another
 * origin can send text/plain without asking first); and writes refused when they come from a page of another origin.
 */
import type { FastifyInstance } from 'fastify';
import { coded } from '../../core/errors.js';
import { jsonDepth } from './json-message.js';

/**
 * Replaces the scope's body parsers with a bounded JSON one (INVALID_JSON with the same message for every malformed
 * body); any other content type is refused with UNSUPPORTED_MEDIA_TYPE and `otherTypes` as its message.
 */
export function jsonBodies(app: FastifyInstance, o: { maxDepth?: number; otherTypes?: string } = {}): void {
  const maxDepth = o.maxDepth ?? 16;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => {
    done(coded('UNSUPPORTED_MEDIA_TYPE', o.otherTypes ?? 'send the body as application/json'), undefined);
  });
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = body as string;
    if (text.length === 0) { done(coded('INVALID_JSON', 'request body is not valid JSON'), undefined); return; }
    if (jsonDepth(text, maxDepth) > maxDepth) { done(coded('BAD_FORMAT', `request body nests deeper than ${maxDepth} levels`), undefined); return; }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(coded('INVALID_JSON', 'request body is not valid JSON'), undefined);
    }
  });
}

/** The origin (scheme://host[:port]) a page is served from, as browsers send it in `Origin`. */
function originHost(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}

/**
 * Refuses state-changing requests (anything but GET, HEAD, OPTIONS) sent by a page of another origin: the `Origin`
 * header, when a browser sends one, must name this server (the `Host` the request came to) or an allowed origin.
 * Clients that are not browsers send no Origin and are not concerned.
 */
export function refuseCrossSiteWrites(app: FastifyInstance, allowOrigins: readonly string[]): void {
  app.addHook('onRequest', async (req) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return;
    const origin = req.headers.origin;
    if (origin === undefined) return;
    if (allowOrigins.includes('*') || allowOrigins.includes(origin)) return;
    if (originHost(origin) !== null && originHost(origin) === req.headers.host) return;
    throw coded('FORBIDDEN', `requests from pages of another origin (${origin.slice(0, 100)}) may not change anything here`);
  });
}

/** CORS for a scope: `Access-Control-Allow-Origin` for allowed origins, and preflights answered on `paths`. */
export function cors(app: FastifyInstance, o: { origins: readonly string[]; methods: string; paths: string[] }): void {
  const allow = (origin: string | undefined): string | null =>
    o.origins.includes('*') ? '*' : origin !== undefined && o.origins.includes(origin) ? origin : null;
  app.addHook('onRequest', async (req, reply) => {
    const a = allow(req.headers.origin);
    if (a) { reply.header('access-control-allow-origin', a); if (a !== '*') reply.header('vary', 'Origin'); }
  });
  for (const path of o.paths) {
    app.options(path, async (_req, reply) => {
      reply.code(204).headers({ 'access-control-allow-methods': o.methods, 'access-control-allow-headers': 'content-type', 'access-control-max-age': '600' }).send();
    });
  }
}

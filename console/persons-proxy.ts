/**
 * The persons page's API: `/api/persons…` forwarded to the graph's persons API (DDFR's `/persons…`, on its own port)
 * from the console's origin, so the console's rules apply before anything reaches it: reads are open, changes need the
 * console token. Answers come back as the persons API gives them (its `{"detail"}` errors included).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { coded } from '../core/errors.js';
import type { ConsoleAuth } from './auth.js';

export interface PersonsTarget { host: string; port: number }

/** Where a listener bound to `host` is reached from this process. */
export function loopbackFor(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

const FORWARDED_HEADERS = ['content-type', 'accept'];

export function personsProxy(app: FastifyInstance, o: { target(): PersonsTarget | undefined; auth: ConsoleAuth; maxBytes: number }): void {
  void app.register(async (scope) => {
    // Bodies go through as bytes (JSON or a multipart photo); the persons API reads and bounds them itself.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: o.maxBytes }, (_req, body, done) => done(null, body));
    const forward = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      if (req.method !== 'GET' && req.method !== 'HEAD') await o.auth.caller(req);
      const target = o.target();
      if (!target) throw coded('NOT_FOUND', 'the graph serves no persons API (a ddfr transport)');
      const url = new URL(req.url.replace(/^\/api\/persons/, '/persons'), `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`);
      const headers: Record<string, string> = {};
      for (const h of FORWARDED_HEADERS) { const v = req.headers[h]; if (typeof v === 'string') headers[h] = v; }
      let res: Response;
      try {
        res = await fetch(url, { method: req.method, headers, body: Buffer.isBuffer(req.body) && req.body.length ? new Uint8Array(req.body) : undefined, redirect: 'manual' });
      } catch {
        throw coded('UNAVAILABLE', 'the persons API does not answer');
      }
      reply.code(res.status);
      const type = res.headers.get('content-type');
      if (type) reply.header('content-type', type);
      return reply.send(Buffer.from(await res.arrayBuffer()));
    };
    for (const url of ['/api/persons', '/api/persons/*']) {
      scope.route({ method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'], url, handler: forward });
    }
  });
}

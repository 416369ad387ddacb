/**
 * `/dashboard`: one HTML page and one script module listing reconstruction sessions, with a three.js viewer of their
 * GLB models. three.js is served from the installed `three` package (no CDN: the server may be offline), only its
 * `build/` and `examples/jsm/` folders, only `.js` files; @fastify/static refuses paths that leave its root.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { coded } from '../../core/errors.js';
import type { ReconstructionSessions } from '../../services/reconstruction/sessions.js';

/** The page's own files, kept as source (not compiled): transports/reconstruction/web/ beside this module's source. */
const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../transports/reconstruction/web');
const THREE_DIR = path.resolve(path.dirname(createRequire(import.meta.url).resolve('three')), '..');

const onlyJs = (p: string): boolean => p.endsWith('.js');
const noCache = (res: { setHeader(k: string, v: string): void }): void => res.setHeader('cache-control', 'no-cache');

export function dashboardRoutes(app: FastifyInstance, sessions: ReconstructionSessions): void {
  void app.register(fastifyStatic, { root: WEB_DIR, prefix: '/dashboard/', index: 'dashboard.html', cacheControl: false, setHeaders: noCache });
  void app.register(fastifyStatic, {
    root: path.join(THREE_DIR, 'build'), prefix: '/dashboard/vendor/three/build/', decorateReply: false, allowedPath: onlyJs, maxAge: 3600_000,
  });
  void app.register(fastifyStatic, {
    root: path.join(THREE_DIR, 'examples', 'jsm'), prefix: '/dashboard/vendor/three/addons/', decorateReply: false, allowedPath: onlyJs, maxAge: 3600_000,
  });
  app.get('/dashboard', async (_req, reply) => reply.sendFile('dashboard.html'));
  app.get<{ Params: { file: string } }>('/dashboard/models/:file', {
    schema: { params: { type: 'object', properties: { file: { type: 'string', pattern: '^[0-9a-f-]{36}\\.glb$' } } } },
  }, async (req, reply) => {
    const s = sessions.get(req.params.file.slice(0, 36));
    if (!s?.model) throw coded('NOT_FOUND', 'no model for this session');
    noCache(reply.raw);
    return reply.sendFile(path.basename(s.model.path), path.dirname(s.model.path));
  });
}

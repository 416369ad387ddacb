/**
 * `/dashboard`: one HTML page and one script module listing reconstruction sessions, with a three.js viewer
 * of their GLB models. three.js is served from the installed `three` package (no CDN: the server may be offline).
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReconstructionSessions } from '../../services/reconstruction/sessions.js';
import type { HttpHub } from '../http/hub.js';
import { sendJson } from '../http/hub.js';

/** The page's own files, kept as source (not compiled): transports/reconstruction/web/ beside this module's source. */
const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../transports/reconstruction/web');
const THREE_DIR = path.resolve(path.dirname(createRequire(import.meta.url).resolve('three')), '..');
/** Only these parts of the three package are served. */
const THREE_ROOTS: Record<string, string> = {
  build: path.join(THREE_DIR, 'build'),
  addons: path.join(THREE_DIR, 'examples', 'jsm'),
};

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.glb': 'model/gltf-binary' };

export function mountDashboard(hub: HttpHub, owner: string, port: number, sessions: ReconstructionSessions): { close(): void } {
  const file = (res: import('node:http').ServerResponse, filePath: string, cache: string) => {
    if (!existsSync(filePath) || !statSync(filePath).isFile()) { sendJson(res, 404, { detail: 'not found' }); return; }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(filePath)] ?? 'application/octet-stream',
      'content-length': statSync(filePath).size, 'cache-control': cache,
    });
    createReadStream(filePath).pipe(res);
  };
  hub.route(owner, port, 'GET', (p) => p === '/dashboard' || p === '/dashboard/', (_req, res) => file(res, path.join(WEB_DIR, 'dashboard.html'), 'no-cache'));
  hub.route(owner, port, 'GET', '/dashboard/dashboard.js', (_req, res) => file(res, path.join(WEB_DIR, 'dashboard.js'), 'no-cache'));
  const MODEL = /^\/dashboard\/models\/([0-9a-f-]{36})\.glb$/;
  hub.route(owner, port, 'GET', (p) => MODEL.test(p), (_req, res, url) => {
    const s = sessions.get(MODEL.exec(url.pathname)![1]);
    if (!s?.model) { sendJson(res, 404, { detail: 'no model for this session' }); return; }
    file(res, s.model.path, 'no-cache');
  });
  const VENDOR = /^\/dashboard\/vendor\/three\/(build|addons)\/([A-Za-z0-9_/.-]+\.js)$/;
  hub.route(owner, port, 'GET', (p) => p.startsWith('/dashboard/vendor/'), (_req, res, url) => {
    const m = VENDOR.exec(url.pathname);
    const root = m && THREE_ROOTS[m[1]];
    const target = root && path.resolve(root, m[2]);
    // No way out of the package's folders (`..` is resolved before the check).
    if (!root || !target || !target.startsWith(root + path.sep)) { sendJson(res, 404, { detail: 'not found' }); return; }
    file(res, target, 'max-age=3600');
  });
  return { close: () => undefined };
}

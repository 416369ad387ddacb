/**
 * `POST /upload-embedding {"image": "<base64>"}` → `{"embedding": "<token>"}`: the most prominent person of a
 * reference photo, sealed as an encrypted token. Errors are `{"detail": ...}` with the code's HTTP status.
 */
import type http from 'node:http';
import { coded, SightlineError } from '../../core/errors.js';
import { sealVectors } from '../../services/looks/embedding-token.js';
import { readJson } from '../http/body.js';
import { sendJson, type HttpHub } from '../http/hub.js';
import { decodeBase64, type DescribeImage } from './images.js';

export interface UploadDeps {
  hub: HttpHub;
  owner: string;
  port: number;
  key: Buffer;
  describe: DescribeImage;
  maxImageBytes: number;
  /** Page origins allowed to call from a browser (CORS); `*` for any. */
  corsOrigins: string[];
  /** Counts a refused request under its error kind. */
  countError(kind: string): void;
}

export function mountUpload(d: UploadDeps): void {
  // The document's page calls this from its own origin with a JSON body: browsers ask first (CORS preflight).
  const allowOrigin = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const origin = req.headers.origin;
    if (!origin) return;
    if (d.corsOrigins.includes('*')) res.setHeader('access-control-allow-origin', '*');
    else if (d.corsOrigins.includes(origin)) { res.setHeader('access-control-allow-origin', origin); res.setHeader('vary', 'Origin'); }
  };
  d.hub.route(d.owner, d.port, 'OPTIONS', '/upload-embedding', (req, res) => {
    allowOrigin(req, res);
    res.writeHead(204, { 'access-control-allow-methods': 'POST', 'access-control-allow-headers': 'content-type', 'access-control-max-age': '600' }).end();
  });
  d.hub.route(d.owner, d.port, 'POST', '/upload-embedding', async (req, res) => {
    allowOrigin(req, res);
    try {
      const type = String(req.headers['content-type'] ?? '');
      if (type && !type.startsWith('application/json')) throw coded('UNSUPPORTED_MEDIA_TYPE', 'send application/json {"image": "<base64>"}');
      const body = await readJson(req, Math.ceil(d.maxImageBytes / 3) * 4 + 64 * 1024);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw coded('BAD_FORMAT', 'request body must be a JSON object {"image": "<base64>"}');
      const image = decodeBase64((body as { image?: unknown }).image, 'image', d.maxImageBytes);
      const person = (await d.describe(image, 'image', true)).persons[0];
      if (!person) throw coded('NO_PERSON', 'no person found in the image; send a photo in which one person is clearly visible');
      const vectors: Record<string, Float32Array> = { body: person.body };
      if (person.face) vectors.face = person.face;
      sendJson(res, 200, { embedding: sealVectors(d.key, vectors) });
    } catch (err) {
      if (!(err instanceof SightlineError) || err.code === 'INTERNAL') throw err;
      d.countError(err.code.toLowerCase());
      sendJson(res, err.status, { detail: err.message });
    }
  });
}

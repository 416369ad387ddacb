/**
 * `POST /upload-embedding {"image": "<base64>"}` → `{"embedding": "<token>"}`: the most prominent person of a
 * reference photo, sealed as an encrypted token. The document's page calls it from its own origin, so CORS is
 * answered for the configured origins. Errors are `{"detail": ...}` with the code's HTTP status.
 */
import type { FastifyInstance } from 'fastify';
import { coded } from '../../core/errors.js';
import { sealVectors } from '../../services/looks/embedding-token.js';
import { cors, jsonBodies } from '../http/bodies.js';
import { decodeBase64, type DescribeImage } from './images.js';

export interface UploadDeps {
  key: Buffer;
  describe: DescribeImage;
  maxImageBytes: number;
  /** Page origins allowed to call from a browser (CORS); `*` for any. */
  corsOrigins: string[];
}

export function uploadRoutes(app: FastifyInstance, d: UploadDeps): void {
  jsonBodies(app, { otherTypes: 'send application/json {"image": "<base64>"}' });
  cors(app, { origins: d.corsOrigins, methods: 'POST', paths: ['/upload-embedding'] });
  app.post('/upload-embedding', {
    // The base64 of the largest image, and room for the JSON around it.
    bodyLimit: Math.ceil(d.maxImageBytes / 3) * 4 + 64 * 1024,
    schema: { body: { type: 'object', maxProperties: 8 } },
    schemaErrorFormatter: () => coded('BAD_FORMAT', 'request body must be a JSON object {"image": "<base64>"}'),
  }, async (req) => {
    const image = decodeBase64((req.body as { image?: unknown }).image, 'image', d.maxImageBytes);
    const person = (await d.describe(image, 'image', true)).persons[0];
    if (!person) throw coded('NO_PERSON', 'no person found in the image; send a photo in which one person is clearly visible');
    const vectors: Record<string, Float32Array> = { body: person.body };
    if (person.face) vectors.face = person.face;
    return { embedding: sealVectors(d.key, vectors) };
  });
}

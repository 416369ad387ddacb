/**
 * WatchMe (watchme-person-tracking.rst): `POST /upload-embedding` turns a reference photo into an opaque, encrypted
 * embedding token (upload.ts); WS `/video-stream/{session_id}` finds that person in a configured source's live
 * frames (`start_tracking`, feeds.ts) or in frames the client sends (`single_frame`), one Session per connection.
 *
 * ```yaml
 * transports:
 *   watchme: { port: 5000, detector: people, reid: reid, faceDetector: faces, faceEmbedder: arcface }
 * ```
 */
import { defineTransport, mountFrom, PORT_SCHEMA } from '../contract.js';
import type { WatchmeOptions } from './mount.js';

export const watchmeTransport = defineTransport<WatchmeOptions>({
  name: 'watchme',
  schema: {
    type: 'object', additionalProperties: false, required: ['detector', 'reid'],
    dependencies: { faceDetector: ['faceEmbedder'], faceEmbedder: ['faceDetector'] },
    properties: {
      port: PORT_SCHEMA, detector: { type: 'string' }, reid: { type: 'string' },
      faceDetector: { type: 'string' }, faceEmbedder: { type: 'string' },
      threshold: { type: 'number', exclusiveMinimum: 0, maximum: 2, default: 0.4 },
      faceWeight: { type: 'number', minimum: 0, maximum: 1, default: 0.5 },
      personScore: { type: 'number', minimum: 0, maximum: 1, default: 0.3 },
      faceScore: { type: 'number', minimum: 0, maximum: 1, default: 0.8 },
      refreshFrames: { type: 'integer', minimum: 1, maximum: 10000, default: 10 },
      maxSessions: { type: 'integer', minimum: 1, maximum: 100000, default: 32 },
      maxMessagesPerSecond: { type: 'number', minimum: 1, maximum: 10000, default: 20 },
      maxFps: { type: 'number', minimum: 1, maximum: 240, default: 30 },
      maxImageBytes: { type: 'integer', minimum: 1024, maximum: 104857600, default: 10 * 1024 * 1024 },
      key: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
      corsOrigins: { type: 'array', items: { type: 'string', minLength: 1 }, default: ['*'] },
    },
  },
  models: { detector: 'yolox', reid: 'reid', faceDetector: 'yunet', faceEmbedder: 'mobilefacenet' },
  defaultPort: () => 5000,
  mount: mountFrom(() => import('./mount.js')),
});

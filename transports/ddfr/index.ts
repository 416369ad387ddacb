/**
 * DDFR (ddfr-face-recognition.md): binary JPEG/PNG frames on WS `/ws`, answered in order with the faces found and
 * the known persons they belong to (frames.ts); plus the REST API that manages those known persons (persons-api.ts).
 *
 * ```yaml
 * transports:
 *   ddfr: { port: 8000, detector: faces, embedder: arcface }
 * ```
 */
import { defineTransport, mountFrom, PORT_SCHEMA } from '../contract.js';
import type { DdfrOptions } from './mount.js';

export const ddfrTransport = defineTransport<DdfrOptions>({
  name: 'ddfr',
  schema: {
    type: 'object', additionalProperties: false, required: ['detector', 'embedder'],
    properties: {
      port: PORT_SCHEMA, detector: { type: 'string' }, embedder: { type: 'string' },
      threshold: { type: 'number', minimum: -1, maximum: 1, default: 0.4 },
      faceScore: { type: 'number', minimum: 0, maximum: 1, default: 0.8 },
      maxImageBytes: { type: 'integer', minimum: 1024, maximum: 104857600, default: 10 * 1024 * 1024 },
      maxConnections: { type: 'integer', minimum: 1, maximum: 100000, default: 256 },
      idleSeconds: { type: 'number', minimum: 1, maximum: 86400, default: 600 },
      allowOrigins: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    },
  },
  models: { detector: 'yunet', embedder: 'mobilefacenet' },
  defaultPort: () => 8000,
  mount: mountFrom(() => import('./mount.js')),
});

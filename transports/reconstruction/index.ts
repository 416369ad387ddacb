/**
 * Reconstruction (reconstruction.md): sessions created over REST (rest.ts), images streamed over WS
 * `/ws/reconstruct/{session_id}` as base64 JSON (sockets.ts), a GLB point cloud back with progress on the way
 * (live.ts, builder.ts), and `/dashboard` to browse sessions and view their models (dashboard.ts). Sessions idle
 * for `sessionTtl` (no message, no open socket) are removed with their files.
 *
 * ```yaml
 * transports:
 *   reconstruction: { port: 8000, model: depth, fov: 60, sessionTtl: 3600 }
 * ```
 */
import { DEPTH_MODEL_KINDS } from '../../inference/models/depth.js';
import { defineTransport, mountFrom, PORT_SCHEMA } from '../contract.js';
import type { ReconstructionOptions } from './mount.js';

export const reconstructionTransport = defineTransport<ReconstructionOptions>({
  name: 'reconstruction',
  schema: {
    type: 'object', additionalProperties: false, required: ['model'],
    properties: {
      port: PORT_SCHEMA, model: { type: 'string' },
      fov: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 180, default: 60 },
      sessionTtl: { type: 'number', exclusiveMinimum: 0, default: 3600 },
      maxImageBytes: { type: 'integer', minimum: 1024, maximum: 104857600, default: 20 * 1024 * 1024 },
      previewPoints: { type: 'integer', minimum: 1, maximum: 10000000, default: 100_000 },
      relativeRange: { type: 'number', exclusiveMinimum: 1, default: 10 },
      maxMessageBytes: { type: 'integer', minimum: 0, maximum: 1073741824, default: 1024 * 1024 },
      maxSessions: { type: 'integer', minimum: 1, maximum: 100000, default: 100 },
      maxSessionBytes: { type: 'integer', minimum: 1048576, maximum: 68719476736, default: 256 * 1024 * 1024 },
      maxConnections: { type: 'integer', minimum: 1, maximum: 100000, default: 256 },
      idleSeconds: { type: 'number', minimum: 1, maximum: 86400, default: 600 },
    },
  },
  models: { model: DEPTH_MODEL_KINDS },
  defaultPort: () => 8000,
  mount: mountFrom(() => import('./mount.js')),
});

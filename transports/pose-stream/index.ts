/**
 * Pose stream v1 (pose-stream-v1.md): the authenticated `/ws/v1` WebSocket API. Cameras play the role the document
 * gives to WiFi routers: `environment_id` is a source's `environment` (else the source id; environments.ts),
 * `hardware_event` a camera going down or coming back, `csi_quality` the share of a source's frames that made it
 * through the pipeline. The handshake (handshake.ts) admits a client, a Connection (connection.ts) holds its
 * subscriptions (or the default stream until it subscribes), and the streams (streams.ts) turn bus events into the
 * document's messages. Knows stages only through the packet and the bus events.
 *
 * ```yaml
 * transports:
 *   pose-stream-v1: { port: 8000, auth: { secretEnv: POSE_STREAM_JWT_SECRET } }
 * ```
 */
import { defineTransport, mountFrom, PORT_SCHEMA } from '../contract.js';
import type { PoseStreamOptions } from './mount.js';

export const POSE_STREAM_SCHEMA = {
  type: 'object', additionalProperties: false, required: ['auth'],
  properties: {
    port: PORT_SCHEMA,
    auth: {
      type: 'object', additionalProperties: false,
      properties: {
        secret: { type: 'string', minLength: 32 }, secretEnv: { type: 'string', minLength: 1 }, secretFile: { type: 'string', minLength: 1 },
        publicKey: { type: 'string', minLength: 1 }, publicKeyFile: { type: 'string', minLength: 1 },
        algorithms: { type: 'array', minItems: 1, items: { enum: ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] } },
        issuer: { type: 'string' }, audience: { type: 'string' }, clockTolerance: { type: 'number', minimum: 0, maximum: 300 },
        requireExpiry: { type: 'boolean' },
      },
      oneOf: [{ required: ['secret'] }, { required: ['secretEnv'] }, { required: ['secretFile'] }, { required: ['publicKey'] }, { required: ['publicKeyFile'] }],
    },
    heartbeatSeconds: { type: 'number', minimum: 1, maximum: 3600, default: 30 },
    maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 1048576, default: 64 * 1024 },
    maxConnections: { type: 'integer', minimum: 1, maximum: 100000, default: 1000 },
    maxSubscriptions: { type: 'integer', minimum: 1, maximum: 1000, default: 32 },
    latencyAlertMs: { type: 'number', minimum: 1, default: 250 },
  },
};

export const poseStreamTransport = defineTransport<PoseStreamOptions>({
  name: 'pose-stream-v1',
  schema: POSE_STREAM_SCHEMA,
  defaultPort: () => 8000,
  mount: mountFrom(() => import('./mount.js')),
});

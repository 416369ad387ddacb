/**
 * DDFR (ddfr-face-recognition.md): binary JPEG/PNG frames on WS `/ws`, answered in order with the faces found and
 * the known persons they belong to (frames.ts); plus the REST API that manages those known persons (persons-api.ts).
 *
 * ```yaml
 * transports:
 *   ddfr: { port: 8000, detector: faces, embedder: arcface }
 * ```
 */
import type { TransportSpec } from '../../config/graph.js';
import { FaceRecognizer } from '../../services/persons/face-recognizer.js';
import { defineTransport, PORT_SCHEMA, type MountedTransport, type TransportContext } from '../contract.js';
import { DETAIL } from '../http/errors.js';
import { framesEndpoint } from './frames.js';
import { personsRoutes } from './persons-api.js';

export interface DdfrOptions extends TransportSpec {
  detector: string;
  embedder: string;
  /** Cosine similarity needed to name a person (the document's 0.4). */
  threshold: number;
  faceScore: number;
  /** Largest frame or photo accepted, in bytes. */
  maxImageBytes: number;
  /** `/ws` connections at once; more are refused at the handshake (503). */
  maxConnections: number;
  /** Seconds a `/ws` connection may go without sending a frame before it is closed. */
  idleSeconds: number;
  /** Page origins (besides this server's own) allowed to change known persons from a browser. */
  allowOrigins: string[];
}

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
  mount: mountDdfr,
});

function mountDdfr(spec: DdfrOptions & { port: number }, ctx: TransportContext): MountedTransport {
  const { hub, metrics, log, persons, inference, clock } = ctx;
  const recognizer = new FaceRecognizer(inference, persons, {
    detector: { path: ctx.modelPath(spec.detector), kind: 'yunet' },
    embedder: { path: ctx.modelPath(spec.embedder), kind: 'mobilefacenet' },
    faceScore: spec.faceScore, threshold: spec.threshold, maxSide: 1280, maxPixels: 40_000_000,
  });
  // Load both models now, so a missing or corrupt file is reported at start, not on the first frame.
  for (const model of [recognizer.opts.detector, recognizer.opts.embedder]) {
    inference.preload(model).catch((err: Error) => log.error(`ddfr: ${err.message}`));
  }
  // Load the known faces (or build their search graph) now rather than on the first frame.
  persons.search?.warm();
  const frames = framesEndpoint({
    clock, recognizer, persons, metrics, log, maxImageBytes: spec.maxImageBytes, maxConnections: spec.maxConnections, idleMs: spec.idleSeconds * 1000,
  });
  hub.mount(spec.port, {
    owner: spec.id, prefixes: ['/ws', '/persons'], shape: DETAIL,
    routes: (app) => {
      frames.routes(app);
      personsRoutes(app, { persons, writer: ctx.personsWriter, recognizer, clock, maxImageBytes: spec.maxImageBytes, allowOrigins: spec.allowOrigins });
    },
  });
  let closing: Promise<void> | null = null;
  return { close: () => (closing ??= frames.close()) };
}

/** Mounting the ddfr protocol (its definition and options schema: index.ts, which loads this file only when a graph serves it). */
import type { TransportSpec } from '../../config/graph.js';
import { FaceRecognizer } from '../../services/persons/face-recognizer.js';
import type { MountedTransport, TransportContext } from '../contract.js';
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

export function mount(spec: DdfrOptions & { port: number }, ctx: TransportContext): MountedTransport {
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

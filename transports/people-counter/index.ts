/**
 * People Counter protocol (people-counter.md): pushes `frame`, `stats` and `event` messages to every client and
 * answers `get_face` / `get_all_faces`. Speaks the document exactly; knows stages only through the bus events and
 * the saved faces.
 *
 * ```yaml
 * transports:
 *   people-counter: { port: 8765, pipeline: entrance, fps: 15 }
 * ```
 */
import { defineTransport, mountFrom, PORT_SCHEMA } from '../contract.js';
import type { PeopleCounterOptions } from './mount.js';

export const peopleCounterTransport = defineTransport<PeopleCounterOptions>({
  name: 'people-counter',
  schema: {
    type: 'object', additionalProperties: false, required: ['pipeline'],
    properties: {
      port: PORT_SCHEMA, pipeline: { type: 'string' },
      fps: { type: 'number', minimum: 1, maximum: 60, default: 15 },
      maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 16777216, default: 64 * 1024 },
      maxConnections: { type: 'integer', minimum: 1, maximum: 100000, default: 1000 },
    },
  },
  defaultPort: () => 8765,
  // `frame` messages carry the pipeline's annotated JPEG: without one the clients would wait for frames in silence.
  check: (spec, _graph, facts) => (spec.pipeline !== undefined && !facts.provides(spec.pipeline).has('jpeg') ? {
    warnings: [{
      path: ['pipeline'],
      message: `pipeline "${spec.pipeline}" produces no JPEG (no stage provides jpeg): clients get stats and events but never a "frame" message; add an annotate stage`,
    }],
  } : {}),
  mount: mountFrom(() => import('./mount.js')),
});

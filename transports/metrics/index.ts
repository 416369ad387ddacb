/**
 * Prometheus scrape endpoint (`/metrics`) and a JSON health summary (`/health`) on the metrics port. Mounted on
 * every node, on the settings' metrics port unless the graph names one.
 *
 * ```yaml
 * transports:
 *   metrics: { port: 9464 }
 * ```
 */
import type { TransportSpec } from '../../config/graph.js';
import { defineTransport, PORT_SCHEMA, type MountedTransport, type TransportContext } from '../contract.js';
import { ERROR_MESSAGE } from '../http/errors.js';

export const metricsTransport = defineTransport<TransportSpec>({
  name: 'metrics',
  schema: { type: 'object', additionalProperties: false, properties: { port: PORT_SCHEMA } },
  defaultPort: (s) => s.metricsPort,
  mount: mountMetrics,
});

function mountMetrics(spec: TransportSpec & { port: number }, ctx: TransportContext): MountedTransport {
  const { hub, metrics } = ctx;
  hub.mount(spec.port, {
    owner: spec.id, prefixes: ['/metrics', '/health'], shape: ERROR_MESSAGE,
    routes: (app) => {
      app.get('/metrics', async (_req, reply) => {
        reply.header('content-type', metrics.registry.contentType).send(await metrics.render());
      });
      app.get('/health', async (_req, reply) => {
        const rt = ctx.runtime();
        const sources = Object.fromEntries([...rt.sources].map(([id, s]) => [id, s.state.value]));
        const pipelines = Object.fromEntries([...rt.pipelines].map(([id, p]) => [id, { state: p.state, reason: p.reason }]));
        const ok = [...rt.pipelines.values()].every((p) => p.state !== 'failed');
        reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', sources, pipelines });
      });
    },
  });
  return { close: async () => undefined };
}

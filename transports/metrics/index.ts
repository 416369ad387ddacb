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
import { sendJson } from '../http/hub.js';

export const metricsTransport = defineTransport<TransportSpec>({
  name: 'metrics',
  schema: { type: 'object', additionalProperties: false, properties: { port: PORT_SCHEMA } },
  defaultPort: (s) => s.metricsPort,
  mount: mountMetrics,
});

function mountMetrics(spec: TransportSpec & { port: number }, ctx: TransportContext): MountedTransport {
  const { hub, metrics } = ctx;
  hub.route(spec.id, spec.port, 'GET', '/metrics', async (_req, res) => {
    const body = await metrics.render();
    res.writeHead(200, { 'content-type': metrics.registry.contentType });
    res.end(body);
  });
  hub.route(spec.id, spec.port, 'GET', '/health', (_req, res) => {
    const rt = ctx.runtime();
    const sources = Object.fromEntries([...rt.sources].map(([id, s]) => [id, s.state.value]));
    const pipelines = Object.fromEntries([...rt.pipelines].map(([id, p]) => [id, { state: p.state, reason: p.reason }]));
    const ok = [...rt.pipelines.values()].every((p) => p.state !== 'failed');
    sendJson(res, ok ? 200 : 503, { status: ok ? 'ok' : 'degraded', sources, pipelines });
  });
  return { close: async () => undefined };
}

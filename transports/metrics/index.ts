/** Prometheus scrape endpoint (`/metrics`) and a JSON health summary (`/health`) on the metrics port. */
import type { Metrics } from '../../core/metrics.js';
import type { Runtime } from '../../pipeline/runtime.js';
import { type HttpHub, sendJson } from '../http/hub.js';

export function mountMetrics(hub: HttpHub, port: number, metrics: Metrics, runtime: () => Runtime | null): void {
  hub.route('metrics', port, 'GET', '/metrics', async (_req, res) => {
    const body = await metrics.render();
    res.writeHead(200, { 'content-type': metrics.registry.contentType });
    res.end(body);
  });
  hub.route('metrics', port, 'GET', '/health', (_req, res) => {
    const rt = runtime();
    const sources = rt ? Object.fromEntries([...rt.sources].map(([id, s]) => [id, s.state.value])) : {};
    const pipelines = rt ? Object.fromEntries([...rt.pipelines].map(([id, p]) => [id, { state: p.state, reason: p.reason }])) : {};
    const ok = rt !== null && [...rt.pipelines.values()].every((p) => p.state !== 'failed');
    sendJson(res, ok ? 200 : 503, { status: ok ? 'ok' : 'degraded', sources, pipelines });
  });
}

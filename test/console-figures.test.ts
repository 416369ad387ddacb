/**
 * The console's figures: quantiles from histogram bucket deltas (as Prometheus's histogram_quantile), and the rates
 * and quantiles two readings of a real metrics registry give for the time between them.
 */
import test from 'ava';
import { Metrics } from '../core/metrics.js';
import type { InferencePool } from '../inference/pool.js';
import { quantile, readFigures, sampleBetween } from '../console/figures.js';

test('quantile interpolates inside the bucket that holds the rank, over the observations between two readings', (t) => {
  const le = [0.1, 0.2, 0.5, Infinity];
  const near = (a: number | null, b: number) => t.true(a !== null && Math.abs(a - b) < 1e-9, `${a} ≈ ${b}`);
  near(quantile(0.5, { le, counts: [0, 10, 10, 10] }), 0.15);
  // 10 old observations in the first bucket do not count; the 10 new ones are all in (0.2, 0.5].
  near(quantile(0.95, { le, counts: [10, 10, 20, 20] }, { le, counts: [10, 10, 10, 10] }), 0.2 + 0.3 * 0.95);
  t.is(quantile(0.95, { le, counts: [0, 0, 0, 5] }), 0.5, 'past the last finite bound: that bound');
  t.is(quantile(0.5, { le, counts: [3, 3, 3, 3] }, { le, counts: [3, 3, 3, 3] }), null, 'nothing observed');
});

test('two readings of the registry give frame rates, drops by reason, latency quantiles and the pool\'s load', async (t) => {
  const metrics = new Metrics();
  let busy = 0;
  const pool = { busySeconds: () => busy, workers: 2, queueSize: 1 } as unknown as InferencePool;
  metrics.declarePipeline('p', 's', ['detect']);
  const first = await readFigures(metrics, pool, 0);
  metrics.framesIn.inc({ source: 's' }, 50);
  metrics.framesProcessed.inc({ pipeline: 'p', source: 's' }, 40);
  metrics.framesDropped.inc({ pipeline: 'p', source: 's', reason: 'stale' }, 10);
  metrics.stageErrors.inc({ pipeline: 'p', stage: 'detect' }, 5);
  for (let i = 0; i < 40; i++) {
    metrics.pipelineLatency.observe({ pipeline: 'p' }, i < 38 ? 0.03 : 0.3);
    metrics.stageLatency.observe({ pipeline: 'p', stage: 'detect' }, 0.012);
  }
  busy = 5;
  const second = await readFigures(metrics, pool, 5000);
  const s = sampleBetween(first, second);
  t.deepEqual(s.sources, { s: { fpsIn: 10 } });
  t.like(s.pipelines.p, { fps: 8, dropsPerS: { stale: 2, stage_error: 0, shutdown: 0 } });
  t.is(s.pipelines.p.stages.detect.errorsPerS, 1);
  t.true(s.pipelines.p.stages.detect.p95Ms! > 10 && s.pipelines.p.stages.detect.p95Ms! <= 20);
  // 38 of 40 under 35 ms, 2 slow: the 95th percentile is the 38th, still in the (20, 35] ms bucket.
  t.true(s.pipelines.p.p95Ms! > 20 && s.pipelines.p.p95Ms! <= 35, `${s.pipelines.p.p95Ms} ms`);
  t.deepEqual(s.pool, { utilization: 0.5, queue: 1, threads: 2 });
});

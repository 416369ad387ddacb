/** Periodic figures: `performance_update` (process and pipeline load) and `analytics_stream` (1-minute window). */
import os from 'node:os';
import { combine, round, trends, type AnalyticsFigures, type SourceStats } from './source-stats.js';

/** Process CPU use in percent of the machine, over the time since the previous sample (at least 0.5 s). */
export class CpuSampler {
  private at = { usage: process.cpuUsage(), t: performance.now(), percent: 0 };

  percent(): number {
    const t = performance.now();
    if (t - this.at.t >= 500) {
      const u = process.cpuUsage(this.at.usage);
      const percent = ((u.user + u.system) / 1000 / (t - this.at.t)) * 100 / os.availableParallelism();
      this.at = { usage: process.cpuUsage(), t, percent };
    }
    return this.at.percent;
  }
}

export function performanceUpdate(list: SourceStats[], environmentId: string | undefined, queueSize: number, cpu: number, latencyAlertMs: number) {
  const now = Date.now();
  const fps = list.reduce((a, x) => a + x.fps(now), 0);
  const latency = fps > 0 ? list.reduce((a, x) => a + x.averageLatencyMs() * x.fps(now), 0) / fps : 0;
  const memory = (process.memoryUsage.rss() / os.totalmem()) * 100;
  const alerts = [];
  if (latency > latencyAlertMs) alerts.push({ type: 'high_latency', severity: 'warning', value: round(latency, 1), threshold: latencyAlertMs });
  if (cpu > 90) alerts.push({ type: 'high_cpu', severity: 'warning', value: round(cpu, 1), threshold: 90 });
  if (memory > 90) alerts.push({ type: 'high_memory', severity: 'warning', value: round(memory, 1), threshold: 90 });
  return {
    ...(environmentId ? { environment_id: environmentId } : {}),
    metrics: {
      frames_per_second: round(fps, 1), average_latency_ms: round(latency, 1), processing_queue_size: queueSize,
      cpu_usage: round(cpu, 1), memory_usage: round(memory, 1),
      // No GPU: inference runs on the CPU workers.
      gpu_usage: null,
    },
    alerts,
  };
}

export function analyticsStream(list: SourceStats[], environmentId: string | undefined) {
  const now = combine(list.map((x) => x.analytics()));
  const prevs = list.map((x) => x.previous);
  const before = prevs.length && prevs.every((p) => p !== null) ? combine(prevs as AnalyticsFigures[]) : null;
  return {
    window: '1_minute', ...(environmentId ? { environment_id: environmentId } : {}),
    metrics: now, trends: trends(now, before),
  };
}

/** The counting "day": totals start from zero at a local time of day (`resetAt`, default midnight). */
import type { Graph } from '../../config/graph.js';

/** The day a moment belongs to: its local date, shifted so that a day starts at `resetAt` (HH:MM). */
export function dayKey(ms: number, resetAt: string): string {
  const [h, m] = resetAt.split(':').map(Number);
  const d = new Date(ms);
  d.setHours(d.getHours() - h, d.getMinutes() - m);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** When a pipeline's day starts: its count stage's `resetAt`, else midnight (face counts follow the same day). */
export function resetAtOf(graph: Graph, pipeline: string): string {
  return String(graph.pipelines[pipeline]?.stages.find((s) => s.use === 'count')?.with.resetAt ?? '00:00');
}

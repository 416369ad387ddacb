/** What differs between two graphs, section by section: the unit of a live reload. */
import { isDeepStrictEqual } from 'node:util';
import type { Graph } from '../config/graph.js';

import type { GraphChanges, SectionChanges } from '../core/events.js';

export type { GraphChanges, SectionChanges };

function diffSection<T>(a: Record<string, T>, b: Record<string, T>, changed: (id: string) => boolean): SectionChanges {
  return {
    added: Object.keys(b).filter((id) => !(id in a)),
    removed: Object.keys(a).filter((id) => !(id in b)),
    changed: Object.keys(b).filter((id) => id in a && changed(id)),
  };
}

/** The graph models a pipeline's stages load. */
export function modelsOf(graph: Graph, pipelineId: string): string[] {
  return graph.pipelines[pipelineId]?.models ?? [];
}

export function diffGraphs(a: Graph, b: Graph): GraphChanges {
  const models = diffSection(a.models, b.models, (id) => !isDeepStrictEqual(a.models[id], b.models[id]));
  const touchedModels = new Set([...models.changed, ...models.removed]);
  return {
    sources: diffSection(a.sources, b.sources, (id) => !isDeepStrictEqual(a.sources[id], b.sources[id])),
    models,
    pipelines: diffSection(a.pipelines, b.pipelines, (id) =>
      !isDeepStrictEqual(a.pipelines[id], b.pipelines[id]) || modelsOf(b, id).some((m) => touchedModels.has(m))),
    transports: diffSection(a.transports, b.transports, (id) => !isDeepStrictEqual(a.transports[id], b.transports[id])),
  };
}

export function hasChanges(c: GraphChanges): boolean {
  return Object.values(c).some((s: SectionChanges) => s.added.length + s.removed.length + s.changed.length > 0);
}

/** One line per non-empty change, e.g. "pipelines: ~lobby +garage". */
export function describeChanges(c: GraphChanges): string {
  const parts = Object.entries(c).map(([section, s]: [string, SectionChanges]) => {
    const items = [...s.added.map((i) => `+${i}`), ...s.removed.map((i) => `-${i}`), ...s.changed.map((i) => `~${i}`)];
    return items.length ? `${section}: ${items.join(' ')}` : '';
  }).filter(Boolean);
  return parts.join('; ') || 'no changes';
}

/**
 * The pose stream's environments (the document's rooms): a source's `environment` id when the graph gives it one
 * (`sources.lobby.environment: room_001`; several cameras may share a room), else the source's own id. Messages carry
 * the environment; a subscription's `environment_id` filter names either the environment or the source.
 */
import type { Graph } from '../../config/graph.js';

/** Where a frame or event comes from: its source and that source's environment. */
export interface Place { source: string; environment: string }

export function placeOf(graph: Graph, source: string): Place {
  return { source, environment: graph.sources[source]?.environment ?? source };
}

/** Every name an `environment_id` filter accepts: environment ids and source ids. */
export function environmentNames(graph: Graph): string[] {
  const names = new Set<string>();
  for (const s of Object.values(graph.sources)) {
    if (s.environment !== undefined) names.add(s.environment);
    names.add(s.id);
  }
  return [...names];
}

/** Whether a filter (an environment or source id, or none) takes what comes from `place`. */
export const inEnvironment = (filter: string | undefined, place: Place | undefined): boolean =>
  filter === undefined || place === undefined || filter === place.environment || filter === place.source;

/** What `video_source` names: an index into the graph's sources, a source id, or its URI or file path. */
import type { Graph } from '../../config/graph.js';
import { coded } from '../../core/errors.js';
import { filePath, sourceKind } from '../../pipeline/sources/launch.js';
import { preview } from '../http/json-message.js';

export interface WatchTarget { source: string; pipeline: string }

/** The source `value` names and the pipeline that finds persons in it (a tracking one preferred). */
export function resolveSource(graph: Graph, value: unknown): WatchTarget {
  const ids = Object.keys(graph.sources);
  let source: string | undefined;
  if (typeof value === 'number' && Number.isInteger(value)) source = ids[value];
  else if (typeof value === 'string' && /^\d{1,6}$/.test(value)) source = ids[Number(value)];
  else if (typeof value === 'string') {
    source = graph.sources[value] ? value : ids.find((id) => {
      const uri = graph.sources[id].uri;
      return uri === value || (sourceKind(uri) === 'file' && filePath(uri) === filePath(`file://${value}`));
    });
  }
  if (source === undefined) {
    throw coded('UNKNOWN_SOURCE', `unknown video_source ${preview(value, 80)}; configured sources: ` +
      `${ids.map((id, i) => `${i} (${id})`).join(', ') || 'none'}`);
  }
  const readers = Object.values(graph.pipelines).filter((p) => p.source === source && p.stages.some((s) => s.use === 'detect'));
  const pick = readers.find((p) => p.stages.some((s) => s.use === 'track')) ?? readers[0];
  if (!pick) throw coded('UNKNOWN_SOURCE', `source "${source}" has no pipeline with a detect stage to find persons in`);
  return { source, pipeline: pick.id };
}

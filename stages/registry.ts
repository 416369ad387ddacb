/** Every stage a graph can `use`, by name. */
import type { StageDefinition } from '../pipeline/stage.js';
import { annotateStage } from './annotate.js';
import { countStage } from './count.js';
import { detectStage } from './detect.js';
import { facesStage } from './faces.js';
import { trackStage } from './track.js';

/** Model kinds a graph's `models` section may declare. */
export const MODEL_KINDS = ['yolox', 'yunet', 'mobilefacenet', 'reid'] as const;

const definitions = [detectStage, trackStage, countStage, facesStage, annotateStage] as unknown as StageDefinition<never>[];

export function stageDefinitions(): StageDefinition<never>[] {
  return definitions;
}

export function stageDefinition(name: string): StageDefinition<Record<string, unknown>> | undefined {
  return definitions.find((d) => d.name === name) as StageDefinition<Record<string, unknown>> | undefined;
}

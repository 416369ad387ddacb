/** Every stage a graph can `use`, by name. */
import type { StageDefinition } from '../pipeline/stage.js';
import { activityStage } from './activity.js';
import { annotateStage } from './annotate.js';
import { countStage } from './count.js';
import { DEPTH_MODEL_KINDS } from './depth-models.js';
import { depthStage } from './depth.js';
import { reconstructStage } from './reconstruct.js';
import { detectStage } from './detect.js';
import { facesStage } from './faces.js';
import { poseStage } from './pose.js';
import { trackStage } from './track.js';

/** Model kinds a graph's `models` section may declare. */
export const MODEL_KINDS = ['yolox', 'yunet', 'mobilefacenet', 'simplepose', 'reid', ...DEPTH_MODEL_KINDS] as const;

const definitions = [detectStage, trackStage, countStage, facesStage, annotateStage, poseStage, activityStage, depthStage, reconstructStage] as unknown as StageDefinition<never>[];

export function stageDefinitions(): StageDefinition<never>[] {
  return definitions;
}

export function stageDefinition(name: string): StageDefinition<Record<string, unknown>> | undefined {
  return definitions.find((d) => d.name === name) as StageDefinition<Record<string, unknown>> | undefined;
}

/** Every stage a graph can `use`, by name. */
import type { StageDefinition } from '../pipeline/stage.js';
import { activityStage } from '../stages/activity.js';
import { annotateStage } from '../stages/annotate.js';
import { countStage } from '../stages/count.js';
import { DEPTH_MODEL_KINDS } from '../inference/models/depth.js';
import { depthStage } from '../stages/depth.js';
import { reconstructStage } from '../stages/reconstruct.js';
import { detectStage } from '../stages/detect.js';
import { facesStage } from '../stages/faces.js';
import { poseStage } from '../stages/pose.js';
import { trackStage } from '../stages/track.js';

/** Model kinds a graph's `models` section may declare. */
export const MODEL_KINDS = ['yolox', 'yunet', 'mobilefacenet', 'simplepose', 'reid', ...DEPTH_MODEL_KINDS] as const;

const definitions = [detectStage, trackStage, countStage, facesStage, annotateStage, poseStage, activityStage, depthStage, reconstructStage] as unknown as StageDefinition<never>[];

export function stageDefinitions(): StageDefinition<never>[] {
  return definitions;
}

export function stageDefinition(name: string): StageDefinition<Record<string, unknown>> | undefined {
  return definitions.find((d) => d.name === name) as StageDefinition<Record<string, unknown>> | undefined;
}

/** detect: YOLOX person/object detection. Pixels go to a worker (transferred) and come back with boxes. */
import type { StageDefinition } from '../pipeline/stage.js';
import { checkModel, orderedAsyncStage } from '../pipeline/stage.js';
import type { DetectResult, DetectTask } from '../inference/ops/detect.protocol.js';
import { classIdOf } from '../inference/models/coco-classes.js';

export interface DetectOptions {
  model: string;
  /** COCO class names to keep (all when left out). */
  classes?: string[];
  score: number;
  nmsIou: number;
}

export const detectStage: StageDefinition<DetectOptions> = {
  name: 'detect',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['model'],
    properties: {
      model: { type: 'string' },
      classes: { type: 'array', items: { type: 'string' }, minItems: 1 },
      score: { type: 'number', minimum: 0, maximum: 1, default: 0.3 },
      nmsIou: { type: 'number', minimum: 0, maximum: 1, default: 0.45 },
    },
  },
  check(o, graph) {
    const problems = checkModel(graph, o.model, ['yolox'], 'detect');
    (o.classes ?? []).forEach((c, i) => {
      if (classIdOf(c) < 0) problems.push({ path: ['classes', i], message: `unknown class "${c}"; expected a COCO class name such as person, car, bicycle` });
    });
    return problems;
  },
  provides: ['detections'],
  models: (o) => [o.model],
  create(o, ctx) {
    const model = { path: ctx.modelPath(o.model), kind: 'yolox' };
    const classIds = o.classes ? o.classes.map(classIdOf) : null;
    const inference = ctx.metrics.inferenceSeconds.labels(o.model);
    return orderedAsyncStage(ctx, ctx.settings.workers, async (p) => {
      const { frame } = p;
      const task: DetectTask = {
        op: 'detect', model, width: frame.width, height: frame.height, data: frame.data,
        scoreThreshold: o.score, nmsIou: o.nmsIou, classIds,
      };
      // On a worker failure the transferred pixels are lost with it; the packet carries the error onward.
      const r = await ctx.pool.run<DetectResult>(task, [frame.data]);
      inference.observe(r.inferenceMs / 1000);
      return { ...p, frame: { ...frame, data: r.data }, detections: r.detections };
    });
  },
};


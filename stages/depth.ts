/**
 * depth: monocular depth of every frame (or every Nth) with the model named in the graph. The model's kind
 * fixes its pre-processing and whether it gives metric depth or relative inverse depth (see depth-models.ts).
 */
import type { StageDefinition } from '../pipeline/stage.js';
import { checkModel, orderedAsyncStage } from '../pipeline/stage.js';
import { DEPTH_MODEL_KINDS } from '../inference/models/depth.js';
import type { DepthResult, DepthTask } from '../inference/ops/depth.protocol.js';

export interface DepthOptions {
  model: string;
  /** Run on every Nth frame only. */
  every: number;
}

export const depthStage: StageDefinition<DepthOptions> = {
  name: 'depth',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['model'],
    properties: {
      model: { type: 'string' },
      every: { type: 'integer', minimum: 1, maximum: 1000, default: 1 },
    },
  },
  check: (o, graph) => checkModel(graph, o.model, DEPTH_MODEL_KINDS, 'depth'),
  provides: ['depth'],
  models: (o) => [o.model],
  create(o, ctx) {
    const model = { path: ctx.modelPath(o.model), kind: ctx.graph.models[o.model].kind };
    const { every } = o;
    const inference = ctx.metrics.inferenceSeconds.labels(o.model);
    return orderedAsyncStage(ctx, ctx.settings.workers, async (p) => {
      if (p.frame.seq % every !== 0) return p;
      const { frame } = p;
      const task: DepthTask = { op: 'depth', model, width: frame.width, height: frame.height, data: frame.data };
      const r = await ctx.pool.run<DepthResult>(task, [frame.data], frame.capturedAtMs);
      inference.observe(r.inferenceMs / 1000);
      return { ...p, frame: { ...frame, data: r.data }, depth: r.depth };
    });
  },
};

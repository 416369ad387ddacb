/** annotate: tracks (or detections), faces, the counting line and the counts drawn on the frame, as one JPEG. */
import type { StageDefinition } from '../pipeline/stage.js';
import { RateGate } from '../core/rate-gate.js';
import { orderedAsyncStage } from '../pipeline/stage.js';
import type { AnnotateBox, AnnotateResult, AnnotateTask } from '../inference/ops/annotate.protocol.js';

export interface AnnotateOptions {
  quality: number;
  /** Output width in pixels (aspect kept); default the frame's width. */
  width?: number;
  /** Most annotated frames per second; frames in between are not encoded (consumers throttle anyway). */
  fps: number;
}

export const annotateStage: StageDefinition<AnnotateOptions> = {
  name: 'annotate',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      quality: { type: 'integer', minimum: 1, maximum: 100, default: 70 },
      width: { type: 'integer', minimum: 16, maximum: 7680 },
      fps: { type: 'number', exclusiveMinimum: 0, maximum: 240, default: 30 },
    },
  },
  provides: ['jpeg'],
  create(o, ctx) {
    const gate = new RateGate(o.fps);
    return orderedAsyncStage(ctx, ctx.settings.workers, async (p) => {
      // Encoding is the costly part: only while a consumer wants the frames, and not beyond the configured rate.
      if (!ctx.bus.wanted('jpeg', ctx.pipeline) || !gate.allow(p.frame.capturedAtMs)) return p;
      const { frame } = p;
      const boxes: AnnotateBox[] = p.tracks
        ? p.tracks.map((t) => ({ box: t.box, label: `${t.id}` }))
        : (p.detections ?? []).map((d) => ({ box: d.box, label: `${d.label} ${d.score.toFixed(2)}` }));
      for (const f of p.faces ?? []) boxes.push({ box: f.box, label: '', color: '#ffffff' });
      const lines = p.counting ? [{ from: p.counting.line[0], to: p.counting.line[1], color: '#ffd400' }] : [];
      const texts = p.counting ? [{ text: `IN ${p.counting.countIn}   OUT ${p.counting.countOut}`, x: 10, y: 10, size: 22 }] : [];
      const task: AnnotateTask = {
        op: 'annotate', width: frame.width, height: frame.height, data: frame.data,
        quality: o.quality, outWidth: o.width, boxes, lines, texts,
      };
      const r = await ctx.pool.run<AnnotateResult>(task, [frame.data], frame.capturedAtMs);
      return { ...p, frame: { ...frame, data: r.data }, jpeg: { data: r.jpeg, width: r.width, height: r.height } };
    });
  },
};

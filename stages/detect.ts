/**
 * detect: YOLOX person/object detection. Pixels go to a worker (transferred) and come back with boxes.
 *
 * Detection is the costliest stage, so it can run on fewer frames, with the tracker predicting in between (as DL
 * Streamer's `inference-interval` with `gvatrack`): `every: N` runs it on every Nth frame; `motion` skips frames on
 * which too little changed since the last frame it ran on (a frame difference on a small grey thumbnail), with a
 * detection at least every `maxSkip` frames all the same. Skipped frames are marked (`detectSkipped`) and counted.
 *
 *   - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.1, every: 2, motion: { threshold: 12 } } }
 */
import { map, type OperatorFunction } from 'rxjs';
import type { Packet } from '../core/types.js';
import type { DetectResult, DetectTask } from '../inference/ops/detect.protocol.js';
import { classIdOf } from '../inference/models/coco-classes.js';
import { YOLOX_INPUT } from '../inference/models/yolox.js';
import { checkModel, orderedAsyncStage, type StageDefinition } from '../pipeline/stage.js';
import { changedShare, thumbnail, type Thumbnail } from './detect/motion.js';

export interface MotionOptions {
  /** Grey levels (0–255) a thumbnail cell must move by to count as changed. */
  threshold: number;
  /** Share of cells that must change for detection to run. */
  area: number;
  /** Detection runs at least every this many frames, motion or not (tracks are refreshed). */
  maxSkip: number;
}

export interface DetectOptions {
  model: string;
  /** COCO class names to keep (all when left out). */
  classes?: string[];
  score: number;
  nmsIou: number;
  /** Run on every Nth frame; the tracker predicts the others. */
  every: number;
  /** Skip frames without motion (present: on). */
  motion?: MotionOptions;
}

/**
 * Which frames of a pipeline `every: N` runs on: cameras started together would otherwise all detect on the same
 * frame ticks and leave the pool idle on the others, so each pipeline gets a phase from its id (FNV-1a), spreading
 * the detections of many cameras evenly over the ticks.
 */
export function detectPhase(pipeline: string, every: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < pipeline.length; i++) h = Math.imul(h ^ pipeline.charCodeAt(i), 0x01000193) >>> 0;
  return every > 1 ? h % every : 0;
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
      every: { type: 'integer', minimum: 1, maximum: 100, default: 1 },
      motion: {
        type: 'object', additionalProperties: false,
        properties: {
          threshold: { type: 'number', minimum: 0, maximum: 255, default: 12 },
          area: { type: 'number', minimum: 0, maximum: 1, default: 0.002 },
          maxSkip: { type: 'integer', minimum: 1, maximum: 10000, default: 50 },
        },
      },
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
  pixels: { view: YOLOX_INPUT },
  create(o, ctx) {
    const model = { path: ctx.modelPath(o.model), kind: 'yolox' };
    const classIds = o.classes ? o.classes.map(classIdOf) : null;
    const inference = ctx.metrics.inferenceSeconds.labels(o.model);
    const skipped = { every: ctx.metrics.detectSkipped.labels(ctx.pipeline, 'every'), no_motion: ctx.metrics.detectSkipped.labels(ctx.pipeline, 'no_motion') };
    skipped.every.inc(0);
    skipped.no_motion.inc(0);
    let reference: Thumbnail | null = null;
    let sinceDetect = 0;
    const phase = detectPhase(ctx.pipeline, o.every);

    /** Why this frame is skipped, or null to detect (called in frame order, before the frame goes to a worker). */
    const skipReason = (p: Packet): Packet['detectSkipped'] | null => {
      if (o.every > 1 && (p.frame.seq + phase) % o.every !== 0) return 'every';
      // The thumbnail is read from the detector's view when the frame has one (the same picture, fewer bytes).
      const px = p.frame.view ?? p.frame;
      if (!o.motion || px.data.byteLength !== px.width * px.height * 3) return null;
      const thumb = thumbnail(new Uint8Array(px.data), px.width, px.height);
      if (reference && sinceDetect < o.motion.maxSkip && changedShare(reference, thumb, o.motion.threshold) < o.motion.area) {
        sinceDetect++;
        return 'no_motion';
      }
      reference = thumb;
      sinceDetect = 0;
      return null;
    };

    const run = orderedAsyncStage(ctx, ctx.settings.workers, async (p) => {
      if (p.detectSkipped) return p;
      const { frame } = p;
      // The view GStreamer scaled to the model's size when the source has one: no full frame to resample or send.
      const { view } = frame;
      const pixels = view ?? frame;
      const task: DetectTask = {
        op: 'detect', model, width: pixels.width, height: pixels.height, data: pixels.data, scoreThreshold: o.score, nmsIou: o.nmsIou, classIds,
        ...(view ? { frameWidth: frame.width, frameHeight: frame.height } : {}),
      };
      // On a worker failure the transferred pixels are lost with it; the packet carries the error onward.
      const r = await ctx.pool.run<DetectResult>(task, [pixels.data], frame.capturedAtMs);
      inference.observe(r.inferenceMs / 1000);
      const back = view ? { ...frame, view: { ...view, data: r.data } } : { ...frame, data: r.data };
      return { ...p, frame: back, detections: r.detections };
    });
    // The decision is taken in frame order on the main thread (a few thousand reads of a thumbnail), so a skipped
    // frame never waits for a worker.
    return (input) => run(input.pipe(mapSkip(skipReason, (reason) => skipped[reason].inc())));
  },
};

function mapSkip(reason: (p: Packet) => Packet['detectSkipped'] | null, count: (r: 'every' | 'no_motion') => void): OperatorFunction<Packet, Packet> {
  return map((p) => {
    const r = reason(p);
    if (!r) return p;
    count(r);
    return { ...p, detectSkipped: r };
  });
}

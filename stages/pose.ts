/**
 * pose: top-down 17 COCO keypoints (Ultralight-Nano-SimplePose) for every person of a frame, on the frame's
 * tracks (so each pose carries its track id) or, without a tracker, on its person detections. One worker task
 * per frame runs every person due; pixels are transferred there and back. With `every: N` and tracks, each track
 * is estimated on one frame in N and carried between (stages/pose/turns.ts).
 */
import type { StageDefinition } from '../pipeline/stage.js';
import { checkModel, orderedAsyncStage } from '../pipeline/stage.js';
import type { Box, Packet, PersonPose } from '../core/types.js';
import type { PoseResult, PoseTask } from '../inference/ops/pose.protocol.js';
import { PoseTurns } from './pose/turns.js';

export interface PoseOptions {
  model: string;
  /** Boxes scoring below this are skipped. */
  minScore: number;
  /** Boxes lower than this (source pixels) are skipped: too few pixels for keypoints. */
  minHeight: number;
  /** Keypoint confidence from which a keypoint is `visible` (the ncnn reference draws from 0.2; peaks rarely pass 0.8). */
  visibility: number;
  /**
   * Estimate each person on one frame in N. With tracks, tracks take turns and the others carry their last keypoints
   * moved with their box (`carried`); without, only every Nth frame has `poses`.
   */
  every: number;
  /** At most this many persons per frame, the largest boxes first (bounds the worker time per frame). */
  maxPersons: number;
}

interface Candidate { box: Box; score: number; trackId?: number }

/** The persons to estimate: live tracks when the pipeline tracks, else person detections; largest first. */
export function poseCandidates(p: Packet, minScore: number, minHeight: number, maxPersons: number): Candidate[] {
  const all: Candidate[] = p.tracks
    ? p.tracks.filter((t) => t.state !== 'lost' && t.label === 'person').map((t) => ({ box: t.box, score: t.score, trackId: t.id }))
    : (p.detections ?? []).filter((d) => d.label === 'person').map((d) => ({ box: d.box, score: d.score }));
  return all
    .filter((c) => c.score >= minScore && c.box[3] - c.box[1] >= minHeight && c.box[2] > c.box[0])
    .sort((a, b) => area(b.box) - area(a.box))
    .slice(0, maxPersons);
}

const area = (b: Box): number => (b[2] - b[0]) * (b[3] - b[1]);

export const poseStage: StageDefinition<PoseOptions> = {
  name: 'pose',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['model'],
    properties: {
      model: { type: 'string' },
      minScore: { type: 'number', minimum: 0, maximum: 1, default: 0.3 },
      minHeight: { type: 'number', minimum: 0, default: 32 },
      visibility: { type: 'number', minimum: 0, maximum: 1, default: 0.2 },
      every: { type: 'integer', minimum: 1, maximum: 1000, default: 1 },
      maxPersons: { type: 'integer', minimum: 1, maximum: 200, default: 20 },
    },
  },
  check: (o, graph) => checkModel(graph, o.model, ['simplepose'], 'pose'),
  needs: ['detections'],
  provides: ['poses'],
  models: (o) => [o.model],
  create(o, ctx) {
    const model = { path: ctx.modelPath(o.model), kind: 'simplepose' };
    const { every, minScore, minHeight, maxPersons, visibility } = o;
    const inference = ctx.metrics.inferenceSeconds.labels(o.model);
    const turns = every > 1 ? new PoseTurns(every) : null;
    return orderedAsyncStage(ctx, ctx.settings.workers, async (p) => {
      const { frame } = p;
      const tracked = turns !== null && p.tracks !== undefined;
      if (!tracked && frame.seq % every !== 0) return p;
      const persons = poseCandidates(p, minScore, minHeight, maxPersons);
      // Decided here, in frame order, before any worker runs.
      const due = tracked
        ? turns.due(persons.map((c) => c.trackId ?? -1), frame.seq, new Set((p.tracks ?? []).map((t) => t.id)))
        : persons.map(() => true);
      const estimate = persons.filter((_, i) => due[i]);
      const fresh = new Map<Candidate, PersonPose>();
      let data = frame.data;
      if (estimate.length) {
        const task: PoseTask = { op: 'pose', model, width: frame.width, height: frame.height, data, boxes: estimate.map((c) => c.box), visibility };
        const r = await ctx.pool.run<PoseResult>(task, [data], frame.capturedAtMs);
        for (const ms of r.runMs) inference.observe(ms / 1000);
        data = r.data;
        estimate.forEach((c, i) => {
          const keypoints = r.keypoints[i];
          if (!keypoints?.length) return;
          const confidence = keypoints.reduce((s, k) => s + k.confidence, 0) / keypoints.length;
          const pose: PersonPose = { ...(c.trackId !== undefined ? { trackId: c.trackId } : {}), box: c.box, score: c.score, confidence, keypoints };
          fresh.set(c, pose);
          if (tracked) turns.estimated(frame.seq, pose);
        });
      }
      const poses: PersonPose[] = [];
      persons.forEach((c, i) => {
        const pose = due[i] ? fresh.get(c) : turns?.carry(c.trackId ?? -1, c.box, c.score);
        if (pose) poses.push(pose);
      });
      return { ...p, frame: { ...frame, data }, poses };
    });
  },
};

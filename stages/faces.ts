/**
 * faces: YuNet face detection on the whole frame (one inference however many people), faces assigned to
 * the tracks they belong to, and, with `save`, the best face crop of each track kept as face_<id>.jpg in
 * the data directory (face id = track id) and recorded in the store.
 */
import type { FaceDetection, Packet, TrackedObject } from '../core/types.js';
import type { CropResult, CropTask } from '../inference/ops/crop.protocol.js';
import type { FacesResult, FacesTask } from '../inference/ops/faces.protocol.js';
import { checkModel, orderedAsyncStage, type StageDefinition } from '../pipeline/stage.js';
import { dayKey, resetAtOf } from '../services/counting/day.js';
import { faceFilename } from '../services/faces/face-crops.js';

export interface FacesOptions {
  model: string;
  score: number;
  maxSide: number;
  /** Run on every Nth frame only (faces change slowly; tracks carry identity in between). */
  every: number;
  /** Keep the best face crop per track. */
  save: boolean;
  cropQuality: number;
  /** Smallest face (box height, source pixels) worth saving. */
  minSaveHeight: number;
}

/** A face belongs to the track whose box contains its centre in the upper half (the head), smallest box first. */
export function assignFacesToTracks(faces: FaceDetection[], tracks: readonly TrackedObject[]): FaceDetection[] {
  return faces.map((f) => {
    const cx = (f.box[0] + f.box[2]) / 2;
    const cy = (f.box[1] + f.box[3]) / 2;
    const owner = tracks
      .filter((t) => cx >= t.box[0] && cx <= t.box[2] && cy >= t.box[1] && cy <= t.box[1] + (t.box[3] - t.box[1]) / 2)
      .sort((a, b) => area(a.box) - area(b.box))[0];
    return owner ? { ...f, trackId: owner.id } : f;
  });
}

const area = (b: [number, number, number, number]): number => (b[2] - b[0]) * (b[3] - b[1]);

/** Larger, more confident faces make better crops. */
const quality = (f: FaceDetection): number => f.score * Math.sqrt(area(f.box));

export const facesStage: StageDefinition<FacesOptions> = {
  name: 'faces',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['model'],
    properties: {
      model: { type: 'string' },
      score: { type: 'number', minimum: 0, maximum: 1, default: 0.8 },
      maxSide: { type: 'integer', minimum: 64, maximum: 4096, multipleOf: 32, default: 768 },
      every: { type: 'integer', minimum: 1, maximum: 1000, default: 1 },
      save: { type: 'boolean', default: false },
      cropQuality: { type: 'integer', minimum: 1, maximum: 100, default: 85 },
      minSaveHeight: { type: 'integer', minimum: 1, default: 24 },
    },
  },
  check: (o, graph) => checkModel(graph, o.model, ['yunet'], 'faces'),
  provides: ['faces'],
  models: (o) => [o.model],
  create(o, ctx) {
    const { pool, faces: crops, pipeline, source, bus, settings, clock } = ctx;
    const model = { path: ctx.modelPath(o.model), kind: 'yunet' };
    // Face counts belong to the same "day" as the pipeline's counting stage, if it has one.
    const resetAt = resetAtOf(ctx.graph, pipeline);
    const best = new Map<number, number>();
    const inference = ctx.metrics.inferenceSeconds.labels(o.model);

    const saveBest = async (p: Packet, faces: FaceDetection[]): Promise<Packet> => {
      const better = faces.filter((f) => f.trackId !== undefined && f.box[3] - f.box[1] >= o.minSaveHeight
        && quality(f) > (best.get(f.trackId) ?? 0) * 1.1);
      if (!better.length) return p;
      const { frame } = p;
      const task: CropTask = {
        op: 'crop', width: frame.width, height: frame.height, data: frame.data, quality: o.cropQuality,
        crops: better.map((f) => ({ key: f.trackId!, box: f.box })),
      };
      const r = await pool.run<CropResult>(task, [frame.data], frame.capturedAtMs);
      const now = clock.now();
      for (const c of r.crops) {
        const face = better.find((f) => f.trackId === c.key)!;
        const filename = faceFilename(c.key);
        best.set(c.key, quality(face));
        crops.save({ pipeline, day: dayKey(now, resetAt), faceId: c.key, filename, score: face.score, createdMs: now }, new Uint8Array(c.jpeg));
        bus.publish('face.saved', { pipeline, source, faceId: c.key, filename, score: face.score, atMs: now });
      }
      if (best.size > 10_000) for (const k of [...best.keys()].slice(0, 5_000)) best.delete(k);
      return { ...p, frame: { ...frame, data: r.data } };
    };

    return orderedAsyncStage(ctx, settings.workers, async (p) => {
      if (p.frame.seq % o.every !== 0) return p;
      const { frame } = p;
      const task: FacesTask = {
        op: 'faces', model, width: frame.width, height: frame.height, data: frame.data,
        scoreThreshold: o.score, maxSide: o.maxSide,
      };
      const r = await pool.run<FacesResult>(task, [frame.data], frame.capturedAtMs);
      inference.observe(r.inferenceMs / 1000);
      const faces = assignFacesToTracks(r.faces, p.tracks ?? []);
      const out: Packet = { ...p, frame: { ...frame, data: r.data }, faces };
      return o.save ? saveBest(out, faces) : out;
    });
  },
};

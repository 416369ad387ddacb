/**
 * faces: YuNet face detection on the whole frame (one inference however many people), faces assigned to
 * the tracks they belong to, and, with `save`, the best face crop of each track kept as face_<id>.jpg in
 * the data directory (face id = track id) and recorded in the store.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { StageDefinition } from '../pipeline/stage.js';
import { orderedAsyncStage } from '../pipeline/stage.js';
import type { FaceDetection, Packet, TrackedObject } from '../core/types.js';
import type { CropResult, CropTask } from '../inference/protocol.js';
import { facesDir } from '../transports/people-counter/index.js';
import { dayKey } from '../services/counting/people-counter.js';
import type { FacesResult, FacesTask } from '../inference/ops/faces.protocol.js';

export interface FacesOptions {
  model: string;
  score?: number;
  maxSide?: number;
  /** Run on every Nth frame only (faces change slowly; tracks carry identity in between). */
  every?: number;
  /** Keep the best face crop per track. */
  save?: boolean;
  cropQuality?: number;
  /** Smallest face (box height, source pixels) worth saving. */
  minSaveHeight?: number;
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
      score: { type: 'number', minimum: 0, maximum: 1 },
      maxSide: { type: 'integer', minimum: 64, maximum: 4096, multipleOf: 32 },
      every: { type: 'integer', minimum: 1, maximum: 1000 },
      save: { type: 'boolean' },
      cropQuality: { type: 'integer', minimum: 1, maximum: 100 },
      minSaveHeight: { type: 'integer', minimum: 1 },
    },
  },
  check(o, graph) {
    const model = graph.models[o.model];
    if (!model) return [{ path: ['model'], message: `unknown model "${o.model}"; declare it under models: (defined: ${Object.keys(graph.models).join(', ') || 'none'})` }];
    if (model.kind !== 'yunet') return [{ path: ['model'], message: `model "${o.model}" is of kind "${model.kind}"; faces needs kind "yunet"` }];
    return [];
  },
  provides: ['faces'],
  models: (o) => [o.model],
  create(o, ctx) {
    const { pool, store, pipeline, source, bus, settings } = ctx;
    const model = { path: ctx.modelPath(o.model), kind: 'yunet' };
    const every = o.every ?? 1;
    const dir = facesDir(settings.dataDir, pipeline);
    if (o.save) mkdirSync(dir, { recursive: true });
    // Face counts belong to the same "day" as the pipeline's counting stage, if it has one.
    const resetAt = String(ctx.graph.pipelines[pipeline].stages.find((s) => s.use === 'count')?.with.resetAt ?? '00:00');
    const best = new Map<number, number>();
    const inference = ctx.metrics.inferenceSeconds.labels(o.model);

    const saveBest = async (p: Packet, faces: FaceDetection[]): Promise<Packet> => {
      const better = faces.filter((f) => f.trackId !== undefined && f.box[3] - f.box[1] >= (o.minSaveHeight ?? 24)
        && quality(f) > (best.get(f.trackId) ?? 0) * 1.1);
      if (!better.length) return p;
      const { frame } = p;
      const task: CropTask = {
        op: 'crop', width: frame.width, height: frame.height, data: frame.data, quality: o.cropQuality ?? 85,
        crops: better.map((f) => ({ key: f.trackId!, box: f.box })),
      };
      const r = await pool.run<CropResult>(task, [frame.data]);
      const now = Date.now();
      for (const c of r.crops) {
        const face = better.find((f) => f.trackId === c.key)!;
        const filename = `face_${c.key}.jpg`;
        // Write then rename, so a reader never sees half a JPEG.
        const tmp = path.join(dir, `.${filename}.tmp`);
        writeFileSync(tmp, Buffer.from(c.jpeg));
        renameSync(tmp, path.join(dir, filename));
        best.set(c.key, quality(face));
        store.saveFace(pipeline, dayKey(now, resetAt), c.key, filename, face.score, now);
        bus.publish('face.saved', { pipeline, source, faceId: c.key, filename, score: face.score, atMs: now });
      }
      if (best.size > 10_000) for (const k of [...best.keys()].slice(0, 5_000)) best.delete(k);
      return { ...p, frame: { ...frame, data: r.data } };
    };

    return orderedAsyncStage(ctx, settings.workers, async (p) => {
      if (p.frame.seq % every !== 0) return p;
      const { frame } = p;
      const task: FacesTask = {
        op: 'faces', model, width: frame.width, height: frame.height, data: frame.data,
        scoreThreshold: o.score ?? 0.8, maxSide: o.maxSide ?? 768,
      };
      const r = await pool.run<FacesResult>(task, [frame.data]);
      inference.observe(r.inferenceMs / 1000);
      const faces = assignFacesToTracks(r.faces, p.tracks ?? []);
      const out: Packet = { ...p, frame: { ...frame, data: r.data }, faces };
      return o.save ? saveBest(out, faces) : out;
    });
  },
};

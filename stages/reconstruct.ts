/**
 * reconstruct: a point cloud of what a camera sees, from the depth stage's maps. Every `every`th frame with
 * depth becomes a view (a copy of its pixels and its depth map); the last `views` views are fused in a worker
 * every `intervalSeconds` and written as `<dataDir>/reconstruction/pipelines/<pipeline>.glb`, announced on
 * the bus as `reconstruction.model`. Packets pass through unchanged.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tap } from 'rxjs';
import type { StageDefinition } from '../pipeline/stage.js';
import type { DepthView } from '../inference/ops/depth.protocol.js';
import type { ReconstructResult } from '../inference/ops/reconstruct.protocol.js';

export interface ReconstructOptions {
  /** Take one view every N frames that carry depth. */
  every: number;
  /** Views fused into one cloud (the most recent ones). */
  views: number;
  maxPoints: number;
  /** Horizontal field of view of the camera, degrees. */
  fov: number;
  /** Seconds between two models, at most one being built at a time. */
  intervalSeconds: number;
  relativeRange: number;
}

export function pipelineModelPath(dataDir: string, pipeline: string): string {
  return path.resolve(dataDir, 'reconstruction', 'pipelines', `${pipeline}.glb`);
}

export const reconstructStage: StageDefinition<ReconstructOptions> = {
  name: 'reconstruct',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      every: { type: 'integer', minimum: 1, maximum: 100000, default: 10 },
      views: { type: 'integer', minimum: 1, maximum: 64, default: 4 },
      maxPoints: { type: 'integer', minimum: 1, maximum: 10000000, default: 200_000 },
      fov: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 180, default: 60 },
      intervalSeconds: { type: 'number', minimum: 0, default: 5 },
      relativeRange: { type: 'number', exclusiveMinimum: 1, default: 10 },
    },
  },
  needs: ['depth'],
  create(o, ctx) {
    const { pool, bus, log, pipeline, source, clock } = ctx;
    const { every, views: keep } = o;
    const intervalMs = o.intervalSeconds * 1000;
    const file = pipelineModelPath(ctx.settings.dataDir, pipeline);
    mkdirSync(path.dirname(file), { recursive: true });
    const views: (DepthView & { name: string })[] = [];
    let withDepth = 0;
    let busy = false;
    let lastMs = -Infinity;

    const build = async (): Promise<void> => {
      const batch = views.splice(0, views.length);
      try {
        const r = await pool.run<ReconstructResult>({
          op: 'reconstruct', views: batch, fovDeg: o.fov, maxPoints: [o.maxPoints], relativeRange: o.relativeRange,
        }, batch.flatMap((v) => [v.rgb, v.depth.data]));
        // Views that arrived meanwhile are newer: they go after the ones handed back, and the newest `keep` stay.
        views.splice(0, views.length, ...[...r.views, ...views].slice(-keep));
        const { glb, numPoints } = r.models[0];
        writeFileSync(`${file}.tmp`, Buffer.from(glb));
        renameSync(`${file}.tmp`, file);
        bus.publish('reconstruction.model', { pipeline, source, path: file, numPoints, numFrames: batch.length, glbSizeBytes: glb.byteLength, atMs: clock.now() });
      } catch (err) {
        log.warn(`reconstruction failed: ${(err as Error).message}`);
      }
    };

    return tap((p) => {
      if (!p.depth || withDepth++ % every !== 0) return;
      // Copies: the frame and its depth map travel on to the next stages.
      views.push({ name: `frame_${p.frame.seq}`, width: p.frame.width, height: p.frame.height, rgb: p.frame.data.slice(0), depth: { ...p.depth, data: p.depth.data.slice(0) } });
      if (views.length > keep) views.splice(0, views.length - keep);
      const now = clock.now();
      if (busy || now - lastMs < intervalMs) return;
      busy = true;
      lastMs = now;
      void build().finally(() => { busy = false; });
    });
  },
};

/**
 * Models of a session: the depth of each image (through `inference`, i.e. on the workers of a cluster when this
 * node is a gateway), kept per session while someone is connected, then fused into a GLB point cloud on this
 * node's own pool (fusion runs no model, and its task carries every view's pixels and depth, about 0.8 MB each,
 * far over a NATS message's max_payload).
 */
import { readFile } from 'node:fs/promises';
import { coded, isCode } from '../../core/errors.js';
import type { Metrics } from '../../core/metrics.js';
import type { ModelRef } from '../../core/types.js';
import type { InferenceClient } from '../../inference/client.js';
import type { InferencePool } from '../../inference/pool.js';
import type { DepthImageResult, DepthView } from '../../inference/ops/depth.protocol.js';
import type { ReconstructResult } from '../../inference/ops/reconstruct.protocol.js';
import type { ReconstructionSession } from '../../services/reconstruction/sessions.js';
import { MAX_PIXELS } from './limits.js';

export interface BuiltModel {
  /** The model with up to the session's points. */
  full: { glb: Buffer; numPoints: number };
  /** The subset of it that fits in one message (the full model when it fits). */
  message: { glb: Buffer; numPoints: number };
}

export interface BuilderOptions {
  model: ModelRef;
  /** The graph's id of the model (a metrics label). */
  modelId: string;
  fovDeg: number;
  relativeRange: number;
  /** Largest `complete`/`delta` message in bytes (0: no limit). */
  maxMessageBytes: number;
}

export class ModelBuilder {
  constructor(private readonly inference: InferenceClient, private readonly pool: InferencePool,
    private readonly metrics: Metrics, private readonly o: BuilderOptions) {}

  /**
   * An image's pixels scaled down to `processRes` and its depth (and, with `store`, the scaled copy as a JPEG);
   * BAD_IMAGE when it does not decode.
   */
  async depthView(image: Buffer, processRes: number, store = false): Promise<{ view: DepthView; jpeg?: Buffer }> {
    const bytes = image.buffer.slice(image.byteOffset, image.byteOffset + image.byteLength) as ArrayBuffer;
    try {
      const r = await this.inference.run<DepthImageResult>({
        op: 'depth-image', model: this.o.model, image: bytes, maxSide: processRes, maxPixels: MAX_PIXELS, storeJpeg: store,
      }, [bytes]);
      this.metrics.inferenceSeconds.observe({ model: this.o.modelId }, r.inferenceMs / 1000);
      return { view: r.view, ...(r.jpeg ? { jpeg: Buffer.from(r.jpeg) } : {}) };
    } catch (err) {
      if (isCode(err, 'BAD_IMAGE', 'IMAGE_TOO_LARGE')) throw coded('BAD_IMAGE', `image could not be decoded: ${err.message}`);
      throw err;
    }
  }

  /**
   * The most points a GLB may hold for its base64 to fit in one message of `maxMessageBytes` (the document's
   * Python client keeps the websockets library's 1 MiB limit): 24 bytes a point, plus headers per view.
   */
  private messagePoints(views: number): number {
    const max = this.o.maxMessageBytes;
    return max > 0 ? Math.max(1, Math.floor(((max - 1024) * 0.75 - 4096 - 1024 * views) / 24)) : Number.MAX_SAFE_INTEGER;
  }

  /**
   * Depth of every image (computed once and kept in `views`), then fused GLBs: the model with up to `maxPoints`
   * points, and, when that is too large for one message, a subset that fits to send.
   */
  async build(s: ReconstructionSession, views: Map<number, DepthView>, maxPoints: number,
    progress?: (p: number, m: string) => void): Promise<BuiltModel> {
    let done = 0;
    const total = s.images.length;
    await Promise.all(s.images.map(async (img) => {
      if (!views.has(img.index)) views.set(img.index, (await this.depthView(await readFile(img.path), s.processRes)).view);
      done++;
      progress?.(0.8 * (done / total), `Estimated depth ${done}/${total} (${img.filename})`);
    }));
    progress?.(0.85, `Fusing ${total} views into a point cloud`);
    const named = s.images.map((img) => ({ ...views.get(img.index)!, name: img.filename }));
    const transfer = named.flatMap((v) => [v.rgb, v.depth.data]);
    const fit = this.messagePoints(named.length);
    const budgets = maxPoints > fit ? [maxPoints, fit] : [maxPoints];
    const r = await this.pool.run<ReconstructResult>({
      op: 'reconstruct', views: named, fovDeg: this.o.fovDeg, maxPoints: budgets, relativeRange: this.o.relativeRange,
    }, transfer);
    // The views come back untouched: keep them for the next model.
    r.views.forEach((v, i) => views.set(s.images[i].index, { width: v.width, height: v.height, rgb: v.rgb, depth: v.depth }));
    const [full, message = full] = r.models.map((m) => ({ glb: Buffer.from(m.glb), numPoints: m.numPoints }));
    return { full, message };
  }
}

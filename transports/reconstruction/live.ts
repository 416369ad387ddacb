/**
 * The live side of reconstruction sessions in this process: each session's depth views computed so far, its open
 * sockets and its jobs (run one after the other, so two generates never share its views), and what the protocol's
 * messages do: `image` (decoded and its depth estimated at once, then stored), `generate`, incremental previews,
 * and `finalize`.
 */
import path from 'node:path';
import type { WebSocket } from 'ws';
import { coded, publicMessage, SightlineError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { DepthView } from '../../inference/ops/depth.protocol.js';
import type { ReconstructionSessions, SessionsWriter } from '../../services/reconstruction/sessions.js';
import type { ModelBuilder } from './builder.js';
import { sniffFormat } from '../../inference/image/sniff.js';
import { errorMessage, modelMessage } from './messages.js';

interface Live { views: Map<number, DepthView>; sockets: Set<WebSocket>; queue: Promise<void>; incremental: boolean; previewDirty: boolean;
  previewRunning: boolean }

export interface LiveDeps {
  sessions: ReconstructionSessions;
  writer: SessionsWriter;
  builder: ModelBuilder;
  log: Logger;
  maxImageBytes: number;
  /** Bytes of stored (scaled) images a session may hold. */
  maxSessionBytes: number;
  previewPoints: number;
  /** Image paths are reported relative to it (the data directory is the server's business). */
  dataDir: string;
  send(ws: WebSocket, message: object): void;
  countError(kind: string): void;
}

export class LiveSessions {
  private readonly live = new Map<string, Live>();

  constructor(private readonly d: LiveDeps) {}

  private liveOf(id: string): Live {
    let l = this.live.get(id);
    if (!l) this.live.set(id, (l = { views: new Map(), sockets: new Set(), queue: Promise.resolve(), incremental: false, previewDirty: false,
      previewRunning: false }));
    return l;
  }

  /** Runs the jobs of one session one after the other. */
  private enqueue(id: string, job: () => Promise<void>): Promise<void> {
    const l = this.liveOf(id);
    const next = l.queue.then(job, job);
    l.queue = next.catch(() => undefined);
    return next;
  }

  /** Answers a failure on the socket: the coded message for client errors, a fixed text for bugs (logged). */
  sendError(ws: WebSocket, err: unknown, context = ''): void {
    const code = err instanceof SightlineError ? err.code : 'INTERNAL';
    if (code === 'INTERNAL') this.d.log.error(`reconstruction: ${context}${(err as Error).message}`);
    this.d.countError(code.toLowerCase());
    this.d.send(ws, errorMessage(publicMessage(err, `${context}internal error`)));
  }

  attach(id: string, ws: WebSocket): void {
    this.liveOf(id).sockets.add(ws);
  }

  detach(id: string, ws: WebSocket): void {
    const l = this.live.get(id);
    l?.sockets.delete(ws);
    // Depth views are kept only while someone is connected (about 1 MB an image); they can be recomputed from the
    // stored images. Jobs already queued keep their own references.
    if (l && l.sockets.size === 0) { l.views.clear(); l.incremental = false; }
  }

  /** Ids of the sessions with a socket open (never expired while in use). */
  connected(): Set<string> {
    return new Set([...this.live].filter(([, l]) => l.sockets.size > 0).map(([id]) => id));
  }

  /** A deleted session: its sockets hear of it, its state goes. */
  forget(id: string): void {
    const l = this.live.get(id);
    for (const ws of l?.sockets ?? []) this.sendError(ws, coded('UNKNOWN_SESSION', `Session ${id} was deleted`));
    this.live.delete(id);
  }

  generate(id: string, ws: WebSocket, incremental: boolean): Promise<void> {
    if (incremental) this.liveOf(id).incremental = true;
    return this.enqueue(id, () => this.generateNow(id, ws));
  }

  private async generateNow(id: string, ws: WebSocket): Promise<void> {
    const { sessions, builder, writer } = this.d;
    const s = sessions.get(id);
    if (!s) return this.sendError(ws, coded('UNKNOWN_SESSION', `Session ${id} not found`));
    if (s.images.length === 0) return this.sendError(ws, coded('NO_IMAGES', 'no images in this session yet; send images before generate'));
    await writer.setStatus(id, 'processing');
    const progress = (p: number, message: string) => this.d.send(ws, { type: 'progress', progress: Math.round(p * 1000) / 1000, message });
    progress(0, `Processing ${s.images.length} images`);
    try {
      const m = await builder.build(s, this.liveOf(id).views, s.numMaxPoints, progress);
      if (!sessions.get(id)) return this.sendError(ws, coded('UNKNOWN_SESSION', `Session ${id} was deleted while its model was being built`));
      await writer.saveModel(id, m.full.glb, m.full.numPoints, s.images.length, s.status === 'finalized' ? 'finalized' : 'completed');
      progress(1, `Point cloud ready: ${m.full.numPoints} points`);
      this.d.send(ws, modelMessage('complete', id, s.images.length, m));
      this.d.log.info(`reconstruction: session ${id}: ${s.images.length} images → ${m.full.numPoints} points, ${m.full.glb.byteLength} bytes`);
    } catch (err) {
      await writer.setStatus(id, 'failed', publicMessage(err, 'reconstruction failed')).catch(() => undefined);
      this.sendError(ws, err, `session ${id}: reconstruction failed: `);
    }
  }

  /** Incremental mode: a smaller preview after new images, coalesced while one is being built. */
  private preview(id: string): void {
    const l = this.liveOf(id);
    l.previewDirty = true;
    if (l.previewRunning) return;
    l.previewRunning = true;
    void this.enqueue(id, async () => {
      while (l.previewDirty) {
        l.previewDirty = false;
        const s = this.d.sessions.get(id);
        if (!s || s.images.length === 0) break;
        try {
          const m = await this.d.builder.build(s, l.views, Math.min(this.d.previewPoints, s.numMaxPoints));
          const msg = modelMessage('delta', id, s.images.length, m);
          for (const ws of l.sockets) this.d.send(ws, msg);
        } catch (err) {
          for (const ws of l.sockets) this.sendError(ws, err, `session ${id}: preview failed: `);
        }
      }
    }).finally(() => { l.previewRunning = false; });
  }

  async image(id: string, ws: WebSocket, msg: Record<string, unknown>): Promise<void> {
    const { sessions, builder, writer, maxImageBytes } = this.d;
    const s = sessions.get(id);
    if (!s) throw coded('UNKNOWN_SESSION', `Session ${id} not found`);
    if (s.status === 'finalized') throw coded('FINALIZED', 'session is finalized; create a new session to add images');
    if (s.images.length >= s.maxImages) throw coded('TOO_MANY_IMAGES', `session already has its maximum of ${s.maxImages} images`);
    if (typeof msg.data !== 'string' || msg.data.length === 0) throw coded('BAD_FORMAT', '"data" must be a base64-encoded image');
    const b64 = msg.data.replace(/^data:[^;,]+;base64,/, '');
    if (b64.length % 4 === 1 || !/^[A-Za-z0-9+/\s]+={0,2}$/.test(b64)) throw coded('BAD_BASE64', '"data" is not valid base64');
    const bytes = Buffer.from(b64, 'base64');
    if (bytes.length > maxImageBytes) throw coded('TOO_LARGE', `image is larger than ${maxImageBytes} bytes`);
    if (!sniffFormat(bytes)) throw coded('BAD_IMAGE', '"data" is not an image (expected JPEG, PNG, WebP, GIF or TIFF)');
    const filename = cleanFilename(msg.filename) ?? `image_${s.images.length}.jpg`;
    // Decoded, scaled to process_res and its depth estimated now, in a worker: a corrupt image is refused before it
    // is stored, generate later finds the work done, and what is stored is the scaled copy, not the upload.
    const { view, jpeg } = await builder.depthView(bytes, s.processRes, true);
    const stored = jpeg ?? bytes;
    if (this.d.sessions.storedBytes(id) + stored.byteLength > this.d.maxSessionBytes) {
      throw coded('TOO_LARGE', `session holds its maximum of ${Math.round(this.d.maxSessionBytes / 1048576)} MiB of images`);
    }
    const image = await writer.addImage(id, filename, stored);
    const l = this.liveOf(id);
    l.views.set(image.index, view);
    this.d.send(ws, {
      type: 'ack', image_path: path.relative(this.d.dataDir, image.path), filename, image_index: image.index, num_images: image.index + 1, max_images: s.maxImages,
    });
    if (l.incremental) this.preview(id);
  }

  async finalize(id: string, ws: WebSocket): Promise<void> {
    const { sessions, writer } = this.d;
    const cur = sessions.get(id);
    if (!cur) throw coded('UNKNOWN_SESSION', `Session ${id} not found`);
    const stale = cur.images.length > 0 && (cur.model?.numFrames ?? 0) !== cur.images.length;
    await writer.setStatus(id, 'finalized');
    this.liveOf(id).incremental = false;
    if (stale) await this.generate(id, ws, false);
    const fin = sessions.get(id);
    if (!fin) throw coded('UNKNOWN_SESSION', `Session ${id} was deleted`);
    await writer.setStatus(id, 'finalized');
    this.d.send(ws, { type: 'finalized', session_id: id, num_frames: fin.images.length, has_model: fin.model !== null });
  }

  /** Waits for every session's running jobs. */
  async drain(): Promise<void> {
    await Promise.all([...this.live.values()].map((l) => l.queue));
  }
}

/** A client's filename, bounded and stripped of control characters (stored and echoed); null when none is usable. */
function cleanFilename(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  // eslint-disable-next-line no-control-regex -- control characters are what is removed
  const clean = v.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, 255);
  return clean || null;
}

/** The reconstruction protocol's JSON: sessions as the REST API shows them, and the model messages. */
import type { ReconstructionSession } from '../../services/reconstruction/sessions.js';
import type { BuiltModel } from './builder.js';

export function sessionJson(s: ReconstructionSession, ttlMs: number) {
  return {
    session_id: s.id,
    status: s.status,
    created_at: new Date(s.createdMs).toISOString(),
    last_activity: new Date(s.lastActivityMs).toISOString(),
    expires_at: new Date(s.lastActivityMs + ttlMs).toISOString(),
    max_images: s.maxImages,
    process_res: s.processRes,
    num_max_points: s.numMaxPoints,
    num_images: s.images.length,
    images: s.images.map((i) => i.filename),
    has_model: s.model !== null,
    num_frames: s.model?.numFrames ?? 0,
    num_points: s.model?.numPoints ?? 0,
    glb_size_bytes: s.model?.sizeBytes ?? 0,
    model_url: s.model ? `/dashboard/models/${s.id}.glb` : null,
    message: s.message,
  };
}

/** A `complete` or `delta` message: the model that fits in a message, and where the full one is. */
export function modelMessage(type: 'complete' | 'delta', id: string, numFrames: number, m: BuiltModel) {
  return {
    type,
    glb_base64: m.message.glb.toString('base64'),
    metadata: {
      num_frames: numFrames, glb_size_bytes: m.message.glb.byteLength, num_points: m.message.numPoints,
      full_model: { url: `/dashboard/models/${id}.glb`, num_points: m.full.numPoints, glb_size_bytes: m.full.glb.byteLength },
    },
  };
}

export const errorMessage = (message: string) => ({ type: 'error', message });

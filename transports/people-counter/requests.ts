/**
 * What a People Counter client may ask: `get_face` (one saved face crop) and `get_all_faces` (the newest ones).
 * Answers and errors are the document's; ids and limits are validated before anything is read.
 */
import type { FaceCrops } from '../../services/faces/face-crops.js';
import { preview } from '../http/json-message.js';

const DEFAULT_FACE_LIMIT = 50;
const MAX_FACE_LIMIT = 500;

export type Reply = object;
/** A refused request: the document's `{error}` answer and the metric kind it is counted under. */
export interface Refusal { kind: string; error: string }

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 2 ** 31;
}

export async function faceImage(faces: FaceCrops, pipeline: string, faceId: number): Promise<{ filename: string; image_data: string } | { error: string }> {
  const row = faces.get(pipeline, faceId);
  if (!row) return { error: 'Face ID not found' };
  const bytes = await faces.read(pipeline, faceId);
  return bytes ? { filename: row.filename, image_data: bytes.toString('base64') } : { error: 'Face image file not found' };
}

/** The answer to one parsed message, or the refusal to send instead. */
export async function answer(msg: unknown, faces: FaceCrops, pipeline: string, hasFaces: boolean): Promise<Reply | Refusal> {
  const type = typeof msg === 'object' && msg !== null ? (msg as { type?: unknown }).type : undefined;
  if (type === 'get_face') {
    const faceId = (msg as { face_id?: unknown }).face_id;
    if (!isId(faceId)) return { kind: 'bad_format', error: 'Invalid face_id or limit format' };
    return { type: 'face_image', face_id: faceId, ...await faceImage(faces, pipeline, faceId) };
  }
  if (type === 'get_all_faces') {
    const limit = (msg as { limit?: unknown }).limit ?? DEFAULT_FACE_LIMIT;
    if (!isId(limit) || limit < 1) return { kind: 'bad_format', error: 'Invalid face_id or limit format' };
    if (!hasFaces) return { type: 'all_faces', error: 'Face data not available on server' };
    const out = [];
    for (const row of faces.recent(pipeline, Math.min(limit, MAX_FACE_LIMIT))) {
      const img = await faceImage(faces, pipeline, row.faceId);
      if ('image_data' in img) out.push({ face_id: row.faceId, filename: img.filename, image_data: img.image_data });
    }
    return { type: 'all_faces', faces: out };
  }
  return { kind: 'unknown_type', error: `Unknown request type: ${typeof type === 'string' ? type.slice(0, 64) : preview(type ?? null)}` };
}

export const isRefusal = (r: Reply | Refusal): r is Refusal => 'kind' in r && 'error' in r;

/**
 * Persons in images clients send (reference photos, `single_frame`s): base64 decoded and bounded here, the image
 * decoded and its persons described by the `person-embed` op — on this node's pool, or on a cluster's workers.
 */
import { coded, isCode } from '../../core/errors.js';
import type { ModelRef } from '../../core/types.js';
import type { InferenceClient } from '../../inference/client.js';
import type { FaceModels, PersonEmbedResult, PersonEmbedTask } from '../../inference/ops/person-embed.protocol.js';
import { LIMITS } from './limits.js';

/** The bytes of a base64 field (a `data:` prefix allowed), refused beyond `maxBytes`. */
export function decodeBase64(value: unknown, field: string, maxBytes: number): ArrayBuffer {
  if (typeof value !== 'string' || value.length === 0) throw coded('BAD_FORMAT', `"${field}" must be a base64 string`);
  const b64 = value.replace(/^data:[^;,]+;base64,/, '').replace(/\s+/g, '');
  if (b64.length > Math.ceil(maxBytes / 3) * 4 + 4) throw coded('TOO_LARGE', `"${field}" is larger than ${maxBytes} bytes`);
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64) || b64.length % 4 === 1) throw coded('BAD_BASE64', `"${field}" is not valid base64`);
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length === 0) throw coded('BAD_BASE64', `"${field}" is empty`);
  if (bytes.length > maxBytes) throw coded('TOO_LARGE', `"${field}" is larger than ${maxBytes} bytes`);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
}

export interface DescriberModels { detector: ModelRef; reid: ModelRef; face?: FaceModels; personScore: number }

/** Describes the persons of an image: boxes in image pixels, body (and face) embeddings. */
export function imageDescriber(inference: InferenceClient, m: DescriberModels) {
  return async (image: ArrayBuffer, field: string, wholeImageIsPerson: boolean): Promise<PersonEmbedResult> => {
    const task: PersonEmbedTask = {
      op: 'person-embed', reid: m.reid, face: m.face, image, maxPixels: LIMITS.maxPixels, detector: m.detector,
      personScore: m.personScore, wholeImageIsPerson,
    };
    try {
      return await inference.run<PersonEmbedResult>(task, [image]);
    } catch (err) {
      if (isCode(err, 'BAD_IMAGE', 'IMAGE_TOO_LARGE')) throw coded('BAD_IMAGE', `"${field}" is not a readable image (${err.message})`);
      throw err;
    }
  };
}

export type DescribeImage = ReturnType<typeof imageDescriber>;

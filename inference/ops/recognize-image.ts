/** The recognize-image op: a client's image decoded, its faces detected and embedded (DDFR frames and photos). */
import { decodeImage } from '../image/decode.js';
import { defineOp } from '../protocol.js';
import { embedFaces } from './embed-faces.js';
import type { RecognizeImageResult, RecognizeImageTask } from './recognize-image.protocol.js';

export const ops = [
  defineOp<RecognizeImageTask, RecognizeImageResult>({
    op: 'recognize-image',
    run: async (t, env) => {
      const { width, height, rgb } = await decodeImage(new Uint8Array(t.image), t.maxPixels);
      const r = await embedFaces({ ...t, op: 'embed-faces', width, height, data: rgb.buffer as ArrayBuffer }, env.threads);
      return { faces: r.faces, detectMs: r.detectMs, embedMs: r.embedMs, width, height };
    },
    transfer: (r) => r.faces.map((f) => f.embedding.buffer as ArrayBuffer),
  }),
];

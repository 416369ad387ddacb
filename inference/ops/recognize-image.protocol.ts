/** The recognize-image op: decodes an image a client sent (JPEG, PNG), then detects and embeds its faces. */
import type { EmbedFacesResult, EmbedFacesTask } from './embed-faces.protocol.js';

export interface RecognizeImageTask extends Omit<EmbedFacesTask, 'op' | 'width' | 'height' | 'data'> {
  op: 'recognize-image';
  image: ArrayBuffer;
  /** Images with more pixels than this are refused (decompression bombs). */
  maxPixels: number;
}

export type RecognizeImageResult = Omit<EmbedFacesResult, 'data'> & { width: number; height: number };

/** The crop op: JPEG-encodes regions of a frame (e.g. a track's best face), so pixels never travel back for that. */
import type { Box } from '../../core/types.js';

export interface CropTask {
  op: 'crop';
  width: number;
  height: number;
  data: ArrayBuffer;
  crops: { key: number; box: Box }[];
  quality: number;
}

export interface CropResult { crops: { key: number; jpeg: ArrayBuffer }[]; data: ArrayBuffer }

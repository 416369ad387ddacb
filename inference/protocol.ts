/** Messages between the main thread and inference workers. Frames travel as transferred ArrayBuffers. */
import type { AnnotateTask } from './ops/annotate.protocol.js';
import type { DepthImageTask, DepthTask } from './ops/depth.protocol.js';
import type { EmbedFacesResult, EmbedFacesTask } from './ops/embed-faces.protocol.js';
import type { FacesTask } from './ops/faces.protocol.js';
import type { PoseTask } from './ops/pose.protocol.js';
import type { ReconstructTask } from './ops/reconstruct.protocol.js';
import type { PersonEmbedTask } from './ops/person-embed.protocol.js';
import type { ReidTask } from './ops/reid.protocol.js';
import type { Box, Detection } from '../core/types.js';

export interface ModelRef {
  /** Absolute path of the ONNX file. */
  path: string;
  kind: string;
}

export interface LoadTask { op: 'load'; model: ModelRef }
export interface LoadResult { inputs: string[]; outputs: string[] }

export interface DetectTask {
  op: 'detect';
  model: ModelRef;
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker and transferred back in the result. */
  data: ArrayBuffer;
  scoreThreshold: number;
  nmsIou: number;
  classIds: number[] | null;
}

export interface DetectResult {
  detections: Detection[];
  data: ArrayBuffer;
  inferenceMs: number;
}

/** JPEG-encodes regions of a frame (e.g. a track's best face), so pixels never travel back for that. */
export interface CropTask {
  op: 'crop';
  width: number;
  height: number;
  data: ArrayBuffer;
  crops: { key: number; box: Box }[];
  quality: number;
}
export interface CropResult { crops: { key: number; jpeg: ArrayBuffer }[]; data: ArrayBuffer }

/** Decodes an encoded image (JPEG, PNG, …) sent by a client, then detects and embeds its faces. */
export interface RecognizeImageTask extends Omit<EmbedFacesTask, 'op' | 'width' | 'height' | 'data'> {
  op: 'recognize-image';
  image: ArrayBuffer;
  /** Images with more pixels than this are refused (decompression bombs). */
  maxPixels: number;
}
export type RecognizeImageResult = Omit<EmbedFacesResult, 'data'> & { width: number; height: number };

export type WorkerTask = LoadTask | DetectTask | FacesTask | AnnotateTask | CropTask | EmbedFacesTask | RecognizeImageTask | ReidTask
  | PoseTask | DepthTask | DepthImageTask | ReconstructTask | PersonEmbedTask;

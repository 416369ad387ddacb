/**
 * Messages between the main thread and the worker for describing persons by appearance: the whole-body ReID
 * embedding of each person box, plus the face embedding of the face inside it when one is visible. Used for
 * reference photos and client frames (encoded images: decoded and searched for persons in the worker) and for
 * the tracks of a source's frames (raw pixels and the boxes to describe).
 */
import type { Box } from '../../core/types.js';
import type { ModelRef } from '../../core/types.js';
import type { FaceInput } from './embed-faces.protocol.js';

export interface FaceModels {
  /** YuNet; used only when a frame's faces are not given. */
  detector: ModelRef;
  embedder: ModelRef;
  scoreThreshold: number;
}

interface PersonEmbedBase {
  op: 'person-embed';
  reid: ModelRef;
  /** Face embeddings are added only when face models are given. */
  face?: FaceModels;
}

/** An encoded image (JPEG, PNG, …): decoded, persons detected with YOLOX, each described. */
export interface PersonEmbedImageTask extends PersonEmbedBase {
  image: ArrayBuffer;
  /** Images with more pixels than this are refused (decompression bombs). */
  maxPixels: number;
  detector: ModelRef;
  personScore: number;
  /**
   * A reference photo that is itself a tight crop of one person: when detection finds nobody, or only a box
   * covering most of the image, the whole image is the person.
   */
  wholeImageIsPerson: boolean;
}

/** Raw frame pixels and the person boxes (tracks or detections) to describe. */
export interface PersonEmbedFrameTask extends PersonEmbedBase {
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker (it is not handed back). */
  data: ArrayBuffer;
  boxes: Box[];
  /** Faces already found on this frame (e.g. by the faces stage); otherwise YuNet runs when `face` is given. */
  faces?: FaceInput[];
}

export type PersonEmbedTask = PersonEmbedImageTask | PersonEmbedFrameTask;

export interface DescribedPerson {
  box: Box;
  /** Detection score (1 for given boxes and for a whole-image crop). */
  score: number;
  /** 256 floats, L2-normalised (person-reidentification-retail-0287), over its own ArrayBuffer. */
  body: Float32Array;
  /** 128 floats, L2-normalised (MobileFaceNet), when a face was found inside the box. */
  face?: Float32Array;
}

export interface PersonEmbedResult {
  width: number;
  height: number;
  /** Image tasks: most prominent first. Frame tasks: in `boxes` order. */
  persons: DescribedPerson[];
  inferenceMs: number;
}

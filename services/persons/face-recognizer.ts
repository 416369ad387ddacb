/**
 * Face recognition for images that clients send (DDFR frames, enrolment photos): decode, detect, align
 * and embed in a Piscina worker, then search the known persons in the face search worker.
 */
import type { KnownPersons, Person } from './known-persons.js';
import type { Box } from '../../core/types.js';
import type { ModelRef, RecognizeImageResult } from '../../inference/protocol.js';
import type { InferenceClient } from '../../inference/client.js';

export interface RecognizerOptions {
  detector: ModelRef;
  embedder: ModelRef;
  /** YuNet score threshold (0.8 keeps false faces out). */
  faceScore: number;
  /** Cosine similarity needed to name a person. */
  threshold: number;
  maxSide: number;
  maxPixels: number;
}

export interface RecognizedFace {
  box: Box;
  score: number;
  embedding: Float32Array;
  match: { person: Person; similarity: number } | null;
}


export class FaceRecognizer {
  constructor(private readonly inference: Pick<InferenceClient, 'run'>, private readonly persons: KnownPersons, readonly opts: RecognizerOptions) {}

  async recognize(image: Uint8Array): Promise<{ width: number; height: number; faces: RecognizedFace[] }> {
    // Copy into a buffer of our own: it is transferred to the worker.
    const bytes = image.buffer.slice(image.byteOffset, image.byteOffset + image.byteLength) as ArrayBuffer;
    // A bad image fails with BAD_IMAGE or IMAGE_TOO_LARGE (the caller's fault, not ours), from any worker.
    const r = await this.inference.run<RecognizeImageResult>({
      op: 'recognize-image', image: bytes, maxPixels: this.opts.maxPixels, detector: this.opts.detector,
      embedder: this.opts.embedder, scoreThreshold: this.opts.faceScore, maxSide: this.opts.maxSide,
    }, [bytes]);
    const matches = await this.persons.identify(r.faces.map((f) => f.embedding), this.opts.threshold);
    return {
      width: r.width, height: r.height,
      faces: r.faces.map((f, i) => ({ box: f.box, score: f.score, embedding: f.embedding, match: matches[i] })),
    };
  }
}

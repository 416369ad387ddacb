/**
 * Appearance of the persons a source is showing, kept per track so that matching a reference person follows
 * the track: each track's body embedding is the mean of its last few ReID embeddings (one partial occlusion
 * barely moves it), refreshed every `refreshFrames` frames (the cost per track is bounded), and not refreshed
 * while another track covers part of its box (the crop would show someone else). Pure bookkeeping: the
 * embeddings are computed elsewhere.
 */
import type { Box } from '../../core/types.js';

/** What a reference (uploaded photo) or a tracked person looks like: unit vectors. */
export interface Appearance {
  body: Float32Array;
  face?: Float32Array;
}

export interface GalleryOptions {
  /** Frames between two embeddings of the same track. */
  refreshFrames: number;
  /** Embeddings averaged per track. */
  history: number;
  /** A track not seen for this many frames is forgotten. */
  forgetFrames: number;
  /** Share of a box that another track may cover before the box is no longer refreshed. */
  maxOccluded: number;
}

interface Entry {
  recent: Float32Array[];
  /** The looks so far were taken while another track covered part of the box: replaced by the first clear one. */
  covered: boolean;
  appearance: Appearance;
  refreshedSeq: number;
  seenSeq: number;
}

export class TrackGallery {
  private readonly entries = new Map<number, Entry>();

  constructor(private readonly opts: GalleryOptions) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Tracks of frame `seq` whose appearance is missing, or due for a refresh and visible enough to refresh: every
   * `refreshFrames` frames, or as soon as it is clear of the others when all it has are looks taken while covered.
   * `covered` says whether another track covers more than `maxOccluded` of the box now.
   */
  due(tracks: readonly { id: number; box: Box }[], seq: number): { id: number; box: Box; covered: boolean }[] {
    const out: { id: number; box: Box; covered: boolean }[] = [];
    for (const t of tracks) {
      const e = this.entries.get(t.id);
      if (e) e.seenSeq = seq;
      const covered = occludedShare(t.box, tracks.filter((o) => o.id !== t.id).map((o) => o.box)) > this.opts.maxOccluded;
      if (!e || (!covered && (e.covered || seq - e.refreshedSeq >= this.opts.refreshFrames))) out.push({ id: t.id, box: t.box, covered });
    }
    return out;
  }

  update(id: number, seq: number, seen: Appearance, covered = false): void {
    let e = this.entries.get(id);
    if (!e) this.entries.set(id, (e = { recent: [], covered, appearance: seen, refreshedSeq: seq, seenSeq: seq }));
    // Looks that may show someone else in front give way to the first clear one.
    if (e.covered && !covered) e.recent = [];
    e.covered = covered;
    e.recent.push(seen.body);
    if (e.recent.length > this.opts.history) e.recent.shift();
    // A face is used while it is from the latest look at the track: it is visible now, or was a moment ago.
    e.appearance = { body: meanUnit(e.recent), face: seen.face };
    e.refreshedSeq = seq;
    e.seenSeq = seq;
  }

  get(id: number): Appearance | undefined {
    return this.entries.get(id)?.appearance;
  }

  /** Forgets tracks not seen for `forgetFrames` frames (ended tracks). */
  prune(seq: number): void {
    for (const [id, e] of this.entries) if (seq - e.seenSeq > this.opts.forgetFrames) this.entries.delete(id);
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Cosine distance of a seen person to a reference: body alone, or fused with the face when both show one. */
export function personDistance(ref: Appearance, seen: Appearance, faceWeight: number): number {
  const body = dot(ref.body, seen.body);
  if (!ref.face || !seen.face || faceWeight <= 0) return 1 - body;
  return 1 - ((1 - faceWeight) * body + faceWeight * dot(ref.face, seen.face));
}

/** 1 at distance 0, 0.5 at the threshold, 0 at twice the threshold. */
export function matchConfidence(distance: number, threshold: number): number {
  return Math.max(0, Math.min(1, 1 - distance / (2 * threshold)));
}

function dot(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0; // vectors of another model: similar to nothing
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function meanUnit(vectors: Float32Array[]): Float32Array {
  const out = new Float32Array(vectors[0].length);
  for (const v of vectors) for (let i = 0; i < v.length; i++) out[i] += v[i];
  let n = 0;
  for (let i = 0; i < out.length; i++) n += out[i] * out[i];
  const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
  for (let i = 0; i < out.length; i++) out[i] *= inv;
  return out;
}

/** The largest share of `box` that any one of `others` covers. */
function occludedShare(box: Box, others: Box[]): number {
  const area = (box[2] - box[0]) * (box[3] - box[1]);
  if (area <= 0) return 1;
  let worst = 0;
  for (const o of others) {
    const w = Math.min(box[2], o[2]) - Math.max(box[0], o[0]);
    const h = Math.min(box[3], o[3]) - Math.max(box[1], o[1]);
    if (w > 0 && h > 0) worst = Math.max(worst, (w * h) / area);
  }
  return worst;
}

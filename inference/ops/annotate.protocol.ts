/** Messages between the main thread and the worker that draws overlays on a frame and encodes it as JPEG. */
import type { Box } from '../../core/types.js';

export interface AnnotateBox {
  /** Source pixels. */
  box: Box;
  /** Shown in a tab on the box's top edge (e.g. the track id); '' draws no tab. */
  label: string;
  /** Any CSS colour; default: a palette colour picked from the label, so a track keeps its colour. */
  color?: string;
}

export interface AnnotateLine {
  /** Source pixels. */
  from: [number, number];
  to: [number, number];
  color?: string;
}

export interface AnnotateText {
  /** '\n' starts a new line. */
  text: string;
  /** Top-left corner of the text's dark background, in source pixels. */
  x: number;
  y: number;
  /** Default white. */
  color?: string;
  /** Font size in OUTPUT pixels, so text stays legible when the output is scaled down; default ≈ outHeight/40. */
  size?: number;
}

export interface AnnotateTask {
  op: 'annotate';
  width: number;
  height: number;
  /** Packed RGB; transferred to the worker and transferred back in the result. */
  data: ArrayBuffer;
  /** JPEG quality, integer 1–100. */
  quality: number;
  /** Scale the output to this width, keeping the aspect ratio; default: the frame width. */
  outWidth?: number;
  boxes: AnnotateBox[];
  lines: AnnotateLine[];
  texts: AnnotateText[];
}

export interface AnnotateResult {
  /** Its own transferable buffer. */
  jpeg: ArrayBuffer;
  /** The task's frame buffer, handed back. */
  data: ArrayBuffer;
  /** Size of the JPEG. */
  width: number;
  height: number;
  /** Wall time of the whole job in the worker: RGB→RGBA, scaling, drawing and encoding. */
  encodeMs: number;
}

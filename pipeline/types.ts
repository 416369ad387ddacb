/** Shared data types that flow through a pipeline. */

/** Axis-aligned box in source pixels: [x1, y1, x2, y2]. */
export type Box = [number, number, number, number];

export interface Detection {
  box: Box;
  score: number;
  classId: number;
  label: string;
}

/** One decoded video frame. `data` is tightly packed RGB (width * height * 3 bytes). */
export interface Frame {
  source: string;
  seq: number;
  /** Presentation time in nanoseconds from the start of the stream. */
  ptsNs: number;
  /** Wall-clock time (ms since epoch) when the frame left the appsink. */
  capturedAtMs: number;
  width: number;
  height: number;
  format: 'RGB';
  data: ArrayBuffer;
}

/** A frame plus everything the stages have added so far. */
export interface Packet {
  frame: Frame;
  pipeline: string;
  detections?: Detection[];
  /** Per-stage failures; the packet still reaches the sink so nothing is silently lost. */
  errors?: { stage: string; message: string }[];
}

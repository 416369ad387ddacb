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

/** A tracked object as stages see it (confirmed tracks only; ids unique per source). */
export interface TrackedObject {
  id: number;
  box: Box;
  score: number;
  classId: number;
  label: string;
  state: 'tentative' | 'confirmed' | 'lost';
  velocity: [number, number];
}

export interface LineCrossing { trackId: number; direction: 'in' | 'out'; atMs: number }

export interface FaceDetection {
  box: Box;
  score: number;
  landmarks: [number, number][];
  /** The track the face belongs to, when tracks are available. */
  trackId?: number;
}

/** A frame plus everything the stages have added so far. */
export interface Packet {
  frame: Frame;
  pipeline: string;
  detections?: Detection[];
  tracks?: TrackedObject[];
  crossings?: LineCrossing[];
  /** Counting line in source pixels and the running totals, for drawing. */
  counting?: { line: [[number, number], [number, number]]; countIn: number; countOut: number };
  faces?: FaceDetection[];
  /** Annotated frame, JPEG-encoded once for every consumer. */
  jpeg?: { data: ArrayBuffer; width: number; height: number };
  /** Per-stage failures; the packet still reaches the sink so nothing is silently lost. */
  errors?: { stage: string; message: string }[];
}

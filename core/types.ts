/** Shared data types that flow through a pipeline. */

/** A model as a worker loads it: the ONNX file and the kind that fixes its input and output conventions. */
export interface ModelRef {
  /** Absolute path of the ONNX file. */
  path: string;
  kind: string;
}

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
  /** The same picture at a detector's input size, scaled by GStreamer beside the frame (see `FrameView`). */
  view?: FrameView;
}

/**
 * A frame scaled to fit a detector's input (each side at most the detector's, the frame's aspect kept), packed RGB.
 * GStreamer makes it in C from the decoded picture, so the detector never resamples a full frame in JavaScript; it
 * belongs to the pipeline as the frame's pixels do (frame-pool.ts).
 */
export interface FrameView {
  width: number;
  height: number;
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
  /** Where the object was first detected, before the track was confirmed (source pixels). */
  origin?: Box;
}

export interface LineCrossing { trackId: number; direction: 'in' | 'out'; atMs: number }

export interface FaceDetection {
  box: Box;
  score: number;
  landmarks: [number, number][];
  /** The track the face belongs to, when tracks are available. */
  trackId?: number;
}

/** COCO keypoint names, in the order pose models emit them. */
export const COCO_KEYPOINTS = [
  'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
  'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip',
  'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
] as const;
export type KeypointName = (typeof COCO_KEYPOINTS)[number];

export interface Keypoint {
  name: KeypointName;
  /** Source pixels. */
  x: number;
  y: number;
  confidence: number;
  /** confidence above the pose stage's visibility threshold. */
  visible: boolean;
}

/** One person's keypoints (top-down: estimated inside a detection or track box). */
export interface PersonPose {
  /** The track the pose was estimated for, when tracks are available. */
  trackId?: number;
  box: Box;
  /** Detection/track score of the box. */
  score: number;
  /** Mean confidence of the keypoints. */
  confidence: number;
  keypoints: Keypoint[];
  /** Keypoints of an earlier frame's estimate, moved with the track's box (pose `every` on a tracked pipeline). */
  carried?: boolean;
}

export type Posture = 'standing' | 'walking' | 'running' | 'sitting' | 'lying' | 'unknown';

/** What the activity stage knows of one track in this frame. */
export interface PersonActivity {
  trackId: number;
  posture: Posture;
  /** Confidence of the posture classification, 0..1. */
  confidence: number;
  /** Speed of the box centre in source pixels per second. */
  speedPxPerS: number;
  /** Recent box centres, oldest first (source pixels, ms since epoch). */
  trajectory: { x: number; y: number; atMs: number }[];
  /** Where the track's motion model puts the centre `horizonMs` from now. */
  predicted: { x: number; y: number; horizonMs: number };
  /** True while the track is in a detected fall (from the fall until recovery). */
  fallen: boolean;
}

/**
 * A dense depth map over the whole frame at the depth model's resolution: row-major float32 in `data`.
 * `metric`: metres, larger is farther; `inverse-relative`: inverse depth up to scale and shift, larger is nearer.
 */
export interface DepthMap { width: number; height: number; data: ArrayBuffer; kind: 'metric' | 'inverse-relative' }

/** Packet fields a stage may read or add (what `needs` and `provides` name). */
export type PacketField = 'detections' | 'tracks' | 'crossings' | 'faces' | 'poses' | 'activities' | 'jpeg' | 'depth';

/** A frame plus everything the stages have added so far. */
export interface Packet {
  frame: Frame;
  pipeline: string;
  detections?: Detection[];
  /** Detection did not run on this frame (detect `every` N frames, or no motion): trackers predict instead. */
  detectSkipped?: 'every' | 'no_motion';
  tracks?: TrackedObject[];
  crossings?: LineCrossing[];
  /** Counting line in source pixels and the running totals, for drawing. */
  counting?: { line: [[number, number], [number, number]]; countIn: number; countOut: number };
  faces?: FaceDetection[];
  /** Keypoints per person (pose stage). */
  poses?: PersonPose[];
  /** Posture, motion and falls per track (activity stage). */
  activities?: PersonActivity[];
  /** Persons present in this frame (activity stage). */
  occupancy?: number;
  /** Monocular depth of the frame (depth stage). */
  depth?: DepthMap;
  /** Annotated frame, JPEG-encoded once for every consumer. */
  jpeg?: { data: ArrayBuffer; width: number; height: number };
  /** Per-stage failures; the packet still reaches the sink so nothing is silently lost. */
  errors?: { stage: string; message: string }[];
}

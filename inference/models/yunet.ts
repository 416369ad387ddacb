/**
 * YuNet face detection (face_detection_yunet_2023mar_dynamic.onnx): pre-processing and output decoding.
 * Pure functions with no I/O so they run in the inference worker next to onnxruntime-node; both are on the
 * per-frame hot path. Conventions follow OpenCV's FaceDetectorYN (face_detect.cpp).
 */
import type { Box } from '../../core/types.js';
import { nms } from './nms.js';
import { letterboxToBgrPlanes } from '../image/resample.js';

/** Manifest values: OpenCV's default 0.9 misses little, but 0.8 still has no false positives on the samples. */
export const YUNET_SCORE_THRESHOLD = 0.8;
export const YUNET_NMS_IOU = 0.3;
/** 640 keeps faces down to ~10 px findable in a 768×576 frame at a few ms per frame. */
export const YUNET_MAX_SIDE = 640;
/** OpenCV's top_k default. */
export const YUNET_TOP_K = 5000;

const STRIDES = [8, 16, 32] as const;
/** The dynamic model needs H and W divisible by the largest stride. */
const ALIGN = 32;
/** OpenCV pads the bottom/right with zeros (copyMakeBorder BORDER_CONSTANT). */
const PAD_VALUE = 0;
const LANDMARKS = 5;

export interface Face {
  box: Box;
  score: number;
  /**
   * 5 points in source pixels: right eye, left eye, nose tip, right mouth corner, left mouth corner.
   * Sides are the subject's, so the "right eye" is on the image left; this is the ArcFace template order.
   * Not clipped to the frame, so alignment of a face at the border stays undistorted.
   */
  landmarks: [number, number][];
}

export interface YunetInput {
  /** 3*inputH*inputW floats, NCHW, planes in B, G, R order, raw 0–255. */
  tensor: Float32Array;
  inputW: number;
  inputH: number;
  /** Source → model-space factor; divide model-space coordinates by it to get source pixels. */
  scale: number;
}

/**
 * Resize packed RGB so that its longer side is at most `maxSide` (never upscaled), then pad the right and
 * bottom with zeros up to multiples of 32. One fused pass does bilinear sampling, RGB→BGR and HWC→CHW.
 * `out` may be larger than needed (a worker keeps one growing buffer); the returned tensor is a view of
 * its first 3*inputW*inputH floats, every one of them overwritten.
 */
export function yunetInput(
  rgb: Uint8Array,
  width: number,
  height: number,
  maxSide: number = YUNET_MAX_SIDE,
  out?: Float32Array,
): YunetInput {
  checkInputArgs(rgb, width, height, maxSide);
  const scale = Math.min(1, maxSide / Math.max(width, height));
  // Round (not floor) so float error such as 639.99999 still gives the full side.
  const outW = Math.max(1, Math.min(maxSide, Math.round(width * scale)));
  const outH = Math.max(1, Math.min(maxSide, Math.round(height * scale)));
  const inputW = Math.ceil(outW / ALIGN) * ALIGN;
  const inputH = Math.ceil(outH / ALIGN) * ALIGN;

  const size = 3 * inputW * inputH;
  if (out && out.length < size) {
    throw new RangeError(`yunetInput: out buffer must hold at least ${size} floats, has ${out.length}`);
  }
  const tensor = out ? out.subarray(0, size) : new Float32Array(size);
  letterboxToBgrPlanes(rgb, width, height, tensor, inputW, inputH, outW, outH, PAD_VALUE);
  return { tensor, inputW, inputH, scale };
}

function checkInputArgs(rgb: Uint8Array, width: number, height: number, maxSide: number): void {
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`yunetInput: ${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(maxSide) || maxSide < ALIGN) {
    throw new RangeError(`yunetInput: maxSide must be an integer >= ${ALIGN}, got ${maxSide}`);
  }
  if (rgb.length < width * height * 3) {
    throw new RangeError(`yunetInput: expected ${width * height * 3} RGB bytes for ${width}x${height}, got ${rgb.length}`);
  }
}

export interface YunetDecodeOptions {
  /** Model input size, from `yunetInput`. */
  inputW: number;
  inputH: number;
  /** `yunetInput(...).scale` of the frame these outputs belong to. */
  scale: number;
  /** Source frame size, for clipping boxes. */
  width: number;
  height: number;
  /** Minimum sqrt(cls*obj); default YUNET_SCORE_THRESHOLD. */
  scoreThreshold?: number;
  /** Default YUNET_NMS_IOU. */
  nmsIou?: number;
  /** At most this many faces are returned (best first); default YUNET_TOP_K. */
  topK?: number;
}

interface Candidate extends Face {
  classId: 0; // lets the shared class-aware nms() treat all faces as one class
}

/**
 * Decode the 12 YuNet outputs (cls/obj/bbox/kps per stride) into faces in SOURCE pixels: boxes clipped to
 * the frame, NMS, sorted by score desc.
 */
export function decodeYunet(outputs: Record<string, Float32Array>, opts: YunetDecodeOptions): Face[] {
  checkDecodeOptions(opts);
  const threshold = opts.scoreThreshold ?? YUNET_SCORE_THRESHOLD;
  const candidates: Candidate[] = [];
  for (const stride of STRIDES) {
    decodeStride(stride, strideOutputs(outputs, stride, opts), threshold, opts, candidates);
  }
  const kept = nms(candidates, opts.nmsIou ?? YUNET_NMS_IOU, false);
  return kept.slice(0, opts.topK ?? YUNET_TOP_K).map(({ box, score, landmarks }) => ({ box, score, landmarks }));
}

function checkDecodeOptions(opts: YunetDecodeOptions): void {
  for (const key of ['inputW', 'inputH'] as const) {
    const v = opts[key];
    if (!Number.isInteger(v) || v <= 0 || v % ALIGN !== 0) {
      throw new RangeError(`decodeYunet: ${key} must be a positive multiple of ${ALIGN}, got ${v}`);
    }
  }
  if (!(opts.scale > 0) || !Number.isFinite(opts.scale)) {
    throw new RangeError(`decodeYunet: scale must be a positive number, got ${opts.scale}`);
  }
}

interface StrideOutputs {
  cls: Float32Array;
  obj: Float32Array;
  bbox: Float32Array;
  kps: Float32Array;
  cols: number;
  rows: number;
}

/** Look up one stride's four outputs and check their sizes against the input grid. */
function strideOutputs(outputs: Record<string, Float32Array>, stride: number, opts: YunetDecodeOptions): StrideOutputs {
  const cols = opts.inputW / stride;
  const rows = opts.inputH / stride;
  const n = cols * rows;
  const get = (name: string, per: number): Float32Array => {
    const t = outputs[`${name}_${stride}`];
    if (!t) throw new Error(`decodeYunet: output ${name}_${stride} is missing`);
    if (t.length !== n * per) {
      throw new RangeError(`decodeYunet: ${name}_${stride} has ${t.length} floats, expected ${n}x${per} for ${opts.inputW}x${opts.inputH}`);
    }
    return t;
  };
  return { cls: get('cls', 1), obj: get('obj', 1), bbox: get('bbox', 4), kps: get('kps', 2 * LANDMARKS), cols, rows };
}

function decodeStride(
  stride: number,
  { cls, obj, bbox, kps, cols, rows }: StrideOutputs,
  threshold: number,
  opts: YunetDecodeOptions,
  into: Candidate[],
): void {
  const k = stride / opts.scale; // grid units → source pixels
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++, i++) {
      const score = Math.sqrt(clamp(cls[i], 0, 1) * clamp(obj[i], 0, 1));
      if (!(score >= threshold)) continue; // the negated form also rejects NaN
      const box = decodeBox(bbox, i, c, r, k, opts);
      if (!(box[2] > box[0] && box[3] > box[1])) continue; // empty after clipping
      into.push({ box, score, landmarks: decodeLandmarks(kps, i, c, r, k), classId: 0 });
    }
  }
}

/** Cell-relative (dx, dy, log w, log h) → clipped [x1,y1,x2,y2] in source pixels. */
function decodeBox(bbox: Float32Array, i: number, c: number, r: number, k: number, opts: YunetDecodeOptions): Box {
  const o = i * 4;
  const cx = (c + bbox[o]) * k;
  const cy = (r + bbox[o + 1]) * k;
  const halfW = Math.exp(bbox[o + 2]) * k * 0.5;
  const halfH = Math.exp(bbox[o + 3]) * k * 0.5;
  return [
    clamp(cx - halfW, 0, opts.width),
    clamp(cy - halfH, 0, opts.height),
    clamp(cx + halfW, 0, opts.width),
    clamp(cy + halfH, 0, opts.height),
  ];
}

function decodeLandmarks(kps: Float32Array, i: number, c: number, r: number, k: number): [number, number][] {
  const o = i * 2 * LANDMARKS;
  const points: [number, number][] = [];
  for (let j = 0; j < LANDMARKS; j++) points.push([(kps[o + 2 * j] + c) * k, (kps[o + 2 * j + 1] + r) * k]);
  return points;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

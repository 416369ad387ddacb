/**
 * YOLOX-Nano pre-processing (letterbox) and output decoding. Pure functions with no I/O so they can run
 * inside the inference worker next to onnxruntime-node; both are on the per-frame hot path.
 */
import type { Box, Detection } from '../../core/types.js';
import { COCO_CLASSES } from './coco-classes.js';
import { nms } from './nms.js';
import { bilinearTaps, resampleToBgrPlanes } from '../image/resample.js';

export const YOLOX_INPUT = 416;
/** Values from the model manifest: 0.3 keeps real objects without spectator noise; 0.45 is YOLOX's own NMS IoU. */
export const YOLOX_SCORE_THRESHOLD = 0.3;
export const YOLOX_NMS_IOU = 0.45;

const PAD_VALUE = 114;
const STRIDES = [8, 16, 32] as const;
const NUM_CLASSES = COCO_CLASSES.length;
/** Output row: [tx, ty, tw, th, obj, p0..p79]. */
const ROW_LEN = 5 + NUM_CLASSES;
const ALL_CLASSES: readonly number[] = COCO_CLASSES.map((_, i) => i);

export interface LetterboxResult {
  /** 3*size*size floats, NCHW, planes in B, G, R order, raw 0–255. */
  tensor: Float32Array;
  /** Source → model-space factor r; divide model-space coordinates by it to get source pixels. */
  scale: number;
}

/**
 * Letterbox packed RGB (width*height*3 bytes) into a size×size BGR NCHW float tensor: scale by
 * r = min(size/w, size/h), keep the image at the top-left, pad the right/bottom with 114.
 * One fused pass does bilinear sampling, RGB→BGR and HWC→CHW. Pass `out` to reuse a buffer across frames;
 * every element is overwritten, so it needs no clearing.
 */
export function letterbox(
  rgb: Uint8Array,
  width: number,
  height: number,
  size: number = YOLOX_INPUT,
  out?: Float32Array,
): LetterboxResult {
  checkDims(width, height, size);
  if (rgb.length < width * height * 3) {
    throw new RangeError(`letterbox: expected ${width * height * 3} RGB bytes, got ${rgb.length}`);
  }
  const plane = size * size;
  const tensor = out ?? new Float32Array(3 * plane);
  if (tensor.length !== 3 * plane) {
    throw new RangeError(`letterbox: out buffer must hold ${3 * plane} floats, has ${tensor.length}`);
  }

  const scale = Math.min(size / width, size / height);
  // Round (not floor) so float error such as 415.99999 still fills the full side.
  const outW = Math.min(size, Math.max(1, Math.round(width * scale)));
  const outH = Math.min(size, Math.max(1, Math.round(height * scale)));

  const cols = bilinearTaps(width, outW, 3);
  const rows = bilinearTaps(height, outH, width * 3);
  resampleToBgrPlanes(rgb, tensor, size, size, cols, rows);
  fillPadding(tensor, size, outW, outH);
  return { tensor, scale };
}

function checkDims(width: number, height: number, size: number): void {
  for (const [name, v] of [['width', width], ['height', height], ['size', size]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`letterbox: ${name} must be a positive integer, got ${v}`);
  }
}

/** Fill only the pad area (right strip of image rows, then everything below) in each plane. */
function fillPadding(dst: Float32Array, size: number, outW: number, outH: number): void {
  const plane = size * size;
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    if (outW < size) {
      for (let y = 0; y < outH; y++) dst.fill(PAD_VALUE, base + y * size + outW, base + (y + 1) * size);
    }
    dst.fill(PAD_VALUE, base + outH * size, base + plane);
  }
}

export interface DecodeOptions {
  /** Minimum obj*p_c for a detection. */
  scoreThreshold: number;
  /** Class-wise NMS IoU; boxes overlapping a better one of the same class by more than this are dropped. */
  nmsIou: number;
  /** Only decode these class ids (e.g. new Set([0]) for persons); null/undefined = all 80. */
  classIds?: ReadonlySet<number> | null;
  /** Source image size, for clipping. */
  width: number;
  height: number;
  /** `LetterboxResult.scale` of the frame this output belongs to. */
  scale: number;
  /** Model input side; default YOLOX_INPUT. */
  size?: number;
}

/**
 * Decode the raw [N,85] YOLOX output into detections in SOURCE pixels: boxes clipped to the image,
 * class-wise NMS, sorted by score desc. Like YOLOX's class-aware demo NMS, every class whose score passes
 * the threshold yields a candidate, so one box can carry two labels if the model is unsure.
 */
export function decodeYolox(output: Float32Array, opts: DecodeOptions): Detection[] {
  const size = opts.size ?? YOLOX_INPUT;
  checkDecodeInput(output, opts, size);
  const classes = opts.classIds ? [...opts.classIds].filter((c) => c >= 0 && c < NUM_CLASSES) : ALL_CLASSES;
  const threshold = opts.scoreThreshold;
  const candidates: Detection[] = [];

  let o = 0; // offset of the current row
  for (const stride of STRIDES) {
    const grid = size / stride;
    for (let gy = 0; gy < grid; gy++) {
      for (let gx = 0; gx < grid; gx++, o += ROW_LEN) {
        const obj = output[o + 4];
        // score = obj * p <= obj, so most rows are rejected here without touching the 80 class scores.
        // The negated form also rejects NaN.
        if (!(obj >= threshold)) continue;
        let box: Box | undefined;
        for (const classId of classes) {
          const score = obj * output[o + 5 + classId];
          if (!(score >= threshold)) continue;
          box ??= decodeBox(output, o, gx, gy, stride, opts);
          if (!(box[2] > box[0] && box[3] > box[1])) break; // empty after clipping (or NaN): nothing to report
          candidates.push({ box: [box[0], box[1], box[2], box[3]], score, classId, label: COCO_CLASSES[classId] });
        }
      }
    }
  }
  return nms(candidates, opts.nmsIou, true);
}

function checkDecodeInput(output: Float32Array, opts: DecodeOptions, size: number): void {
  if (!Number.isInteger(size) || size <= 0 || size % STRIDES[STRIDES.length - 1] !== 0) {
    throw new RangeError(`decodeYolox: size must be a positive multiple of 32, got ${size}`);
  }
  const rows = STRIDES.reduce((n, s) => n + (size / s) ** 2, 0);
  if (output.length !== rows * ROW_LEN) {
    throw new RangeError(`decodeYolox: expected [${rows},${ROW_LEN}] = ${rows * ROW_LEN} floats, got ${output.length}`);
  }
  if (!(opts.scale > 0) || !Number.isFinite(opts.scale)) {
    throw new RangeError(`decodeYolox: scale must be a positive number, got ${opts.scale}`);
  }
}

/** Grid-relative (tx, ty, tw, th) → clipped [x1,y1,x2,y2] in source pixels. */
function decodeBox(output: Float32Array, o: number, gx: number, gy: number, stride: number, opts: DecodeOptions): Box {
  const k = stride / opts.scale; // model-space units → source pixels
  const cx = (output[o] + gx) * k;
  const cy = (output[o + 1] + gy) * k;
  const halfW = Math.exp(output[o + 2]) * k * 0.5;
  const halfH = Math.exp(output[o + 3]) * k * 0.5;
  return [
    clamp(cx - halfW, 0, opts.width),
    clamp(cy - halfH, 0, opts.height),
    clamp(cx + halfW, 0, opts.width),
    clamp(cy + halfH, 0, opts.height),
  ];
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/**
 * YOLOX-Nano pre-processing (letterbox) and output decoding. Pure functions with no I/O so they can run
 * inside the inference worker next to onnxruntime-node; both are on the per-frame hot path.
 */
import type { Box, Detection } from '../../core/types.js';
import { COCO_CLASSES } from './coco-classes.js';
import { nms } from './nms.js';
import { letterboxToBgrPlanes } from '../image/resample.js';

export const YOLOX_INPUT = 416;
/** Values from the model manifest: 0.3 keeps real objects without spectator noise; 0.45 is YOLOX's own NMS IoU. */
export const YOLOX_SCORE_THRESHOLD = 0.3;
export const YOLOX_NMS_IOU = 0.45;

const PAD_VALUE = 114;
const STRIDES = [8, 16, 32] as const;
const NUM_CLASSES = COCO_CLASSES.length;
/** Output row: [tx, ty, tw, th, obj, p0..p79]; a column-selected model's row keeps the first 5 and some scores. */
const BOX_COLUMNS = 5;
const ALL_CLASSES: readonly number[] = COCO_CLASSES.map((_, i) => i);

/**
 * The output columns a column-selected model is asked for (see onnx-output-columns.ts): the box and objectness, then
 * the score of each class wanted (all 80 for null), and the class ids those score columns hold, in order.
 */
export function yoloxColumns(classIds: readonly number[] | null): { indices: number[]; classIds: number[] } {
  const wanted = classIds ? [...new Set(classIds)].filter((c) => Number.isInteger(c) && c >= 0 && c < NUM_CLASSES) : [...ALL_CLASSES];
  return { indices: [0, 1, 2, 3, 4, ...wanted.map((c) => BOX_COLUMNS + c)], classIds: wanted };
}

export interface LetterboxResult {
  /** 3×inputHeight×inputWidth floats, NCHW, planes in B, G, R order, raw 0–255. */
  tensor: Float32Array;
  /** Source → model-space factor r; divide model-space coordinates by it to get source pixels. */
  scale: number;
  /** The model input's size: size × size for a fixed-size model, the frame's own aspect for a free-size one. */
  inputWidth: number;
  inputHeight: number;
}

/**
 * The input a free-size model runs a width×height frame at: the frame scaled by r = min(size/w, size/h), each side
 * rounded up to the largest stride (640×360 → 416×256, 768×576 → 416×320). A fixed-size model takes size × size.
 */
export function yoloxInputSize(width: number, height: number, size: number = YOLOX_INPUT): { width: number; height: number } {
  checkDims(width, height, size);
  const scale = Math.min(size / width, size / height);
  const stride = STRIDES[STRIDES.length - 1];
  const up = (v: number): number => Math.min(size, Math.max(stride, Math.ceil(Math.round(v * scale) / stride) * stride));
  return { width: up(width), height: up(height) };
}

/**
 * Letterbox packed RGB (width*height*3 bytes) into a BGR NCHW float tensor of `input` size (default size × size):
 * scale by r = min(size/w, size/h), keep the image at the top-left, pad the right/bottom with 114.
 * One fused pass does bilinear sampling, RGB→BGR and HWC→CHW. Pass `out` (at least the tensor's length) to reuse a
 * buffer across frames; every element of the tensor is overwritten, so it needs no clearing.
 */
export function letterbox(
  rgb: Uint8Array,
  width: number,
  height: number,
  size: number = YOLOX_INPUT,
  out?: Float32Array,
  input: { width: number; height: number } = { width: size, height: size },
): LetterboxResult {
  checkDims(width, height, size);
  checkDims(input.width, input.height, size);
  if (rgb.length < width * height * 3) {
    throw new RangeError(`letterbox: expected ${width * height * 3} RGB bytes, got ${rgb.length}`);
  }
  const plane = input.width * input.height;
  if (out && out.length < 3 * plane) {
    throw new RangeError(`letterbox: out buffer must hold ${3 * plane} floats, has ${out.length}`);
  }
  const tensor = !out ? new Float32Array(3 * plane) : out.length === 3 * plane ? out : out.subarray(0, 3 * plane);

  const scale = Math.min(size / width, size / height);
  // Round (not floor) so float error such as 415.99999 still fills the full side.
  const outW = Math.min(input.width, Math.max(1, Math.round(width * scale)));
  const outH = Math.min(input.height, Math.max(1, Math.round(height * scale)));

  letterboxToBgrPlanes(rgb, width, height, tensor, input.width, input.height, outW, outH, PAD_VALUE);
  return { tensor, scale, inputWidth: input.width, inputHeight: input.height };
}

function checkDims(width: number, height: number, size: number): void {
  for (const [name, v] of [['width', width], ['height', height], ['size', size]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new RangeError(`letterbox: ${name} must be a positive integer, got ${v}`);
  }
}

export interface DecodeOptions {
  /** Minimum obj*p_c for a detection. */
  scoreThreshold: number;
  /** Class-wise NMS IoU; boxes overlapping a better one of the same class by more than this are dropped. */
  nmsIou: number;
  /** Only decode these class ids (e.g. new Set([0]) for persons); null/undefined = all 80. */
  classIds?: ReadonlySet<number> | null;
  /** The class id of each score column, when the output holds only some (`yoloxColumns().classIds`); default all 80. */
  scoreColumns?: readonly number[];
  /** Source image size, for clipping. */
  width: number;
  height: number;
  /** `LetterboxResult.scale` of the frame this output belongs to. */
  scale: number;
  /** Model input side; default YOLOX_INPUT. */
  size?: number;
  /** The input the output belongs to, when not size × size (`LetterboxResult.inputWidth/inputHeight`). */
  inputWidth?: number;
  inputHeight?: number;
}

/**
 * Decode the raw [N,85] YOLOX output (or [N, 5 + scoreColumns.length] from a column-selected model) into detections
 * in SOURCE pixels: boxes clipped to the image, class-wise NMS, sorted by score desc. Like YOLOX's class-aware demo
 * NMS, every class whose score passes the threshold yields a candidate, so one box can carry two labels if the model
 * is unsure.
 */
export function decodeYolox(output: Float32Array, opts: DecodeOptions): Detection[] {
  const size = opts.size ?? YOLOX_INPUT;
  const inW = opts.inputWidth ?? size;
  const inH = opts.inputHeight ?? size;
  const scoreColumns = opts.scoreColumns ?? ALL_CLASSES;
  const rowLen = BOX_COLUMNS + scoreColumns.length;
  checkDecodeInput(output, opts, inW, inH, rowLen);
  // [class id, its column in the row], in the order the classes were asked for.
  const columnOf = new Map(scoreColumns.map((c, i) => [c, BOX_COLUMNS + i]));
  const classes = (opts.classIds ? [...opts.classIds] : ALL_CLASSES).filter((c) => c >= 0 && c < NUM_CLASSES && columnOf.has(c))
    .map((c) => [c, columnOf.get(c) as number] as const);
  const threshold = opts.scoreThreshold;
  const candidates: Detection[] = [];

  let o = 0; // offset of the current row
  for (const stride of STRIDES) {
    const gridW = inW / stride;
    const gridH = inH / stride;
    for (let gy = 0; gy < gridH; gy++) {
      for (let gx = 0; gx < gridW; gx++, o += rowLen) {
        const obj = output[o + 4];
        // score = obj * p <= obj, so most rows are rejected here without touching the 80 class scores.
        // The negated form also rejects NaN.
        if (!(obj >= threshold)) continue;
        let box: Box | undefined;
        for (const [classId, column] of classes) {
          const score = obj * output[o + column];
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

function checkDecodeInput(output: Float32Array, opts: DecodeOptions, inW: number, inH: number, rowLen: number): void {
  for (const side of [inW, inH]) {
    if (!Number.isInteger(side) || side <= 0 || side % STRIDES[STRIDES.length - 1] !== 0) {
      throw new RangeError(`decodeYolox: input sides must be positive multiples of 32, got ${inW}×${inH}`);
    }
  }
  const rows = STRIDES.reduce((n, s) => n + (inW / s) * (inH / s), 0);
  if (output.length !== rows * rowLen) {
    throw new RangeError(`decodeYolox: expected [${rows},${rowLen}] = ${rows * rowLen} floats, got ${output.length}`);
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

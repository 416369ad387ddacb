/**
 * Person re-identification pre-processing (OpenVINO person-reidentification-retail-0287, TF-style NHWC export):
 * crop a person box, stretch it to 128×256 (W×H) with bilinear sampling, and write raw 0–255 BGR NHWC floats
 * straight into a (batch) input tensor. Pure function, no I/O; on the per-person hot path it allocates nothing.
 */
import type { Box } from '../../core/types.js';

/** Model input width and height (the crop is stretched to this, aspect ratio not kept). */
export const REID_WIDTH = 128;
export const REID_HEIGHT = 256;
/** Floats one crop occupies in the NHWC tensor (256 × 128 × 3). */
export const REID_TENSOR_SIZE = REID_HEIGHT * REID_WIDTH * 3;

// Tap tables, reused by every call (the function is synchronous, so calls never overlap).
const xLo = new Int32Array(REID_WIDTH);
const xHi = new Int32Array(REID_WIDTH);
const xFrac = new Float32Array(REID_WIDTH);
const yLo = new Int32Array(REID_HEIGHT);
const yHi = new Int32Array(REID_HEIGHT);
const yFrac = new Float32Array(REID_HEIGHT);

/**
 * The box clipped to a width×height frame, or null when nothing of it is inside (zero area after clipping).
 * Throws on non-finite coordinates, which only a bug upstream produces.
 */
export function clipReidBox(box: Box, width: number, height: number): Box | null {
  if (!box.every(Number.isFinite)) throw new RangeError(`reid: box [${box}] has non-finite coordinates`);
  const x1 = clamp(box[0], 0, width);
  const y1 = clamp(box[1], 0, height);
  const x2 = clamp(box[2], 0, width);
  const y2 = clamp(box[3], 0, height);
  return x2 > x1 && y2 > y1 ? [x1, y1, x2, y2] : null;
}

/**
 * Crop `box` (source pixels [x1,y1,x2,y2], clipped to the frame) out of packed RGB and stretch it to
 * 128×256, writing `out[offset .. offset + REID_TENSOR_SIZE)` as NHWC with channels B, G, R, raw 0–255.
 *
 * Sampling is OpenCV INTER_LINEAR on the crop (half-pixel centres): output column d reads source
 * x = x1 + (d + 0.5)·(x2 − x1)/128 − 0.5, clamped to the pixels the box covers, [floor(x1), ceil(x2) − 1].
 * For an integer box that is exactly `cv2.resize(img[y1:y2, x1:x2], (128, 256))`, what the model was used
 * with; fractional boxes are sampled sub-pixel instead of being rounded. Pixels outside the box are never read.
 * Throws a RangeError for a box with nothing inside the frame (see clipReidBox) or a too small `out`.
 */
export function reidInput(rgb: Uint8Array, width: number, height: number, box: Box, out: Float32Array, offset: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`reidInput: width and height must be positive integers, got ${width}x${height}`);
  }
  if (rgb.length < width * height * 3) {
    throw new RangeError(`reidInput: expected ${width * height * 3} RGB bytes for ${width}x${height}, got ${rgb.length}`);
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + REID_TENSOR_SIZE > out.length) {
    throw new RangeError(`reidInput: out (${out.length} floats) has no room for ${REID_TENSOR_SIZE} floats at offset ${offset}`);
  }
  const clipped = clipReidBox(box, width, height);
  if (!clipped) throw new RangeError(`reidInput: box [${box}] has no area inside the ${width}x${height} frame`);
  const [x1, y1, x2, y2] = clipped;
  cropTaps(x1, x2, REID_WIDTH, 3, xLo, xHi, xFrac);
  cropTaps(y1, y2, REID_HEIGHT, width * 3, yLo, yHi, yFrac);

  let o = offset;
  for (let y = 0; y < REID_HEIGHT; y++) {
    const r0 = yLo[y];
    const r1 = yHi[y];
    const fy = yFrac[y];
    for (let x = 0; x < REID_WIDTH; x++, o += 3) {
      const fx = xFrac[x];
      const p00 = r0 + xLo[x];
      const p01 = r0 + xHi[x];
      const p10 = r1 + xLo[x];
      const p11 = r1 + xHi[x];
      out[o] = bilerp(rgb, p00 + 2, p01 + 2, p10 + 2, p11 + 2, fx, fy); // B
      out[o + 1] = bilerp(rgb, p00 + 1, p01 + 1, p10 + 1, p11 + 1, fx, fy); // G
      out[o + 2] = bilerp(rgb, p00, p01, p10, p11, fx, fy); // R
    }
  }
}

/**
 * Taps for `dstLen` outputs spread over the source span [a, b) (already inside the frame): half-pixel
 * mapping, clamped to the covered pixels [floor(a), ceil(b) − 1]; offsets are pixel index · `step`.
 */
function cropTaps(a: number, b: number, dstLen: number, step: number, lo: Int32Array, hi: Int32Array, frac: Float32Array): void {
  const first = Math.floor(a);
  const last = Math.max(first, Math.ceil(b) - 1);
  const ratio = (b - a) / dstLen;
  for (let d = 0; d < dstLen; d++) {
    const s = clamp(a + (d + 0.5) * ratio - 0.5, first, last);
    const i0 = Math.floor(s);
    lo[d] = i0 * step;
    hi[d] = Math.min(i0 + 1, last) * step;
    frac[d] = s - i0;
  }
}

function bilerp(src: Uint8Array, p00: number, p01: number, p10: number, p11: number, fx: number, fy: number): number {
  const top = src[p00] + (src[p01] - src[p00]) * fx;
  const bottom = src[p10] + (src[p11] - src[p10]) * fx;
  return top + (bottom - top) * fy;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

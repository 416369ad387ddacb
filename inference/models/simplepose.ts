/**
 * Ultralight-Nano-SimplePose pre- and post-processing (top-down COCO 17 keypoints). Pure functions, no I/O:
 * the person box is widened to 1.4·w × 1.2·h around its centre, clipped to the frame, stretched to 192×256,
 * written as RGB NCHW normalised with the ImageNet mean/std; each 64×48 heat map gives one keypoint at its
 * argmax, refined by a quarter cell towards the larger neighbour, mapped back into the crop.
 */
import { COCO_KEYPOINTS, type Box, type Keypoint } from '../../core/types.js';

export const POSE_WIDTH = 192;
export const POSE_HEIGHT = 256;
export const HEATMAP_WIDTH = 48;
export const HEATMAP_HEIGHT = 64;
export const POSE_KEYPOINTS = COCO_KEYPOINTS.length;
/** Floats of one crop in the NCHW input tensor. */
export const POSE_TENSOR_SIZE = 3 * POSE_HEIGHT * POSE_WIDTH;

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
/** The model was trained on crops this much larger than the person box. */
export const CROP_SCALE_W = 1.4;
export const CROP_SCALE_H = 1.2;

/** The region the model sees for a person box: widened around the centre, clipped to the frame; null if empty. */
export function poseCropBox(box: Box, width: number, height: number): Box | null {
  if (!box.every(Number.isFinite)) throw new RangeError(`pose: box [${box}] has non-finite coordinates`);
  const cx = (box[0] + box[2]) / 2;
  const cy = (box[1] + box[3]) / 2;
  const hw = ((box[2] - box[0]) * CROP_SCALE_W) / 2;
  const hh = ((box[3] - box[1]) * CROP_SCALE_H) / 2;
  const x1 = clamp(cx - hw, 0, width);
  const y1 = clamp(cy - hh, 0, height);
  const x2 = clamp(cx + hw, 0, width);
  const y2 = clamp(cy + hh, 0, height);
  // Less than a pixel either way has nothing for the model to look at.
  return x2 - x1 >= 1 && y2 - y1 >= 1 ? [x1, y1, x2, y2] : null;
}

// Tap tables reused by every call (synchronous, so calls never overlap).
const xLo = new Int32Array(POSE_WIDTH);
const xHi = new Int32Array(POSE_WIDTH);
const xFrac = new Float32Array(POSE_WIDTH);
const yLo = new Int32Array(POSE_HEIGHT);
const yHi = new Int32Array(POSE_HEIGHT);
const yFrac = new Float32Array(POSE_HEIGHT);

/**
 * Stretch `crop` (already inside the frame, see poseCropBox) of packed RGB to 192×256 with bilinear sampling
 * (half-pixel centres, like cv2.resize) and write `out[offset .. offset + POSE_TENSOR_SIZE)` as normalised
 * RGB NCHW. Allocates nothing.
 */
export function poseInput(rgb: Uint8Array, width: number, height: number, crop: Box, out: Float32Array, offset = 0): void {
  if (rgb.length < width * height * 3) throw new RangeError(`poseInput: expected ${width * height * 3} RGB bytes, got ${rgb.length}`);
  if (offset < 0 || offset + POSE_TENSOR_SIZE > out.length) throw new RangeError(`poseInput: no room for a crop at offset ${offset}`);
  const [x1, y1, x2, y2] = crop;
  taps(x1, x2, POSE_WIDTH, width, 3, xLo, xHi, xFrac);
  taps(y1, y2, POSE_HEIGHT, height, width * 3, yLo, yHi, yFrac);
  const plane = POSE_HEIGHT * POSE_WIDTH;
  const scale = [1 / (255 * STD[0]), 1 / (255 * STD[1]), 1 / (255 * STD[2])];
  const bias = [MEAN[0] / STD[0], MEAN[1] / STD[1], MEAN[2] / STD[2]];
  for (let y = 0; y < POSE_HEIGHT; y++) {
    const r0 = yLo[y];
    const r1 = yHi[y];
    const fy = yFrac[y];
    for (let x = 0; x < POSE_WIDTH; x++) {
      const fx = xFrac[x];
      const p00 = r0 + xLo[x];
      const p01 = r0 + xHi[x];
      const p10 = r1 + xLo[x];
      const p11 = r1 + xHi[x];
      const o = offset + y * POSE_WIDTH + x;
      for (let c = 0; c < 3; c++) {
        const top = rgb[p00 + c] + (rgb[p01 + c] - rgb[p00 + c]) * fx;
        const bottom = rgb[p10 + c] + (rgb[p11 + c] - rgb[p10 + c]) * fx;
        out[o + c * plane] = (top + (bottom - top) * fy) * scale[c] - bias[c];
      }
    }
  }
}

/** Half-pixel taps for `dstLen` samples over [a, b), clamped to the pixels the span covers; offsets = index · step. */
function taps(a: number, b: number, dstLen: number, size: number, step: number, lo: Int32Array, hi: Int32Array, frac: Float32Array): void {
  const first = Math.max(0, Math.floor(a));
  const last = Math.min(size - 1, Math.max(first, Math.ceil(b) - 1));
  const ratio = (b - a) / dstLen;
  for (let d = 0; d < dstLen; d++) {
    const s = clamp(a + (d + 0.5) * ratio - 0.5, first, last);
    const i0 = Math.floor(s);
    lo[d] = i0 * step;
    hi[d] = Math.min(i0 + 1, last) * step;
    frac[d] = s - i0;
  }
}

/**
 * Keypoints of one person from its 17 heat maps (`heatmaps[offset ..]`, 17×64×48), in source pixels of the
 * crop they came from. Confidence is the heat-map peak clamped to 0..1 (the model's peaks reach about 0.8);
 * `visible` is confidence ≥ `visibility`.
 */
export function decodeHeatmaps(heatmaps: Float32Array, crop: Box, visibility: number, offset = 0): Keypoint[] {
  const W = HEATMAP_WIDTH;
  const H = HEATMAP_HEIGHT;
  const cw = crop[2] - crop[0];
  const ch = crop[3] - crop[1];
  const keypoints: Keypoint[] = [];
  for (let k = 0; k < POSE_KEYPOINTS; k++) {
    const base = offset + k * W * H;
    let best = 0;
    let max = -Infinity;
    for (let i = 0; i < W * H; i++) {
      const v = heatmaps[base + i];
      if (v > max) { max = v; best = i; }
    }
    const hx = best % W;
    const hy = (best - hx) / W;
    // Sub-cell refinement: the true peak lies towards the larger neighbour (a quarter cell, as in SimpleBaseline).
    let sx = hx;
    let sy = hy;
    if (hx > 0 && hx < W - 1) sx += 0.25 * Math.sign(heatmaps[base + best + 1] - heatmaps[base + best - 1]);
    if (hy > 0 && hy < H - 1) sy += 0.25 * Math.sign(heatmaps[base + best + W] - heatmaps[base + best - W]);
    const confidence = Number.isFinite(max) ? clamp(max, 0, 1) : 0;
    keypoints.push({
      name: COCO_KEYPOINTS[k],
      x: crop[0] + ((sx + 0.5) / W) * cw,
      y: crop[1] + ((sy + 0.5) / H) * ch,
      confidence,
      visible: confidence >= visibility,
    });
  }
  return keypoints;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/**
 * 5-point face alignment for the face-embedding model (MobileFaceNet, ArcFace convention): a least-squares
 * similarity transform from the YuNet landmarks to the ArcFace 112×112 template, then one fused pass that
 * warps, normalises and writes RGB NCHW straight into a (batch) input tensor. Pure functions, no I/O; the
 * warp is on the per-face hot path and allocates nothing per pixel.
 */

/** Side of the aligned crop the embedding model takes. */
export const FACE_SIZE = 112;
/** Floats one aligned face occupies in an NCHW tensor (3 × 112 × 112). */
export const FACE_TENSOR_SIZE = 3 * FACE_SIZE * FACE_SIZE;

/**
 * ArcFace (InsightFace) 5-point template in 112×112 crop pixels, in YuNet's landmark order: right eye,
 * left eye, nose tip, right mouth corner, left mouth corner (subject's sides, so "right" is on the image left).
 */
export const ARCFACE_TEMPLATE: readonly (readonly [number, number])[] = [
  [38.2946, 51.6963],
  [73.5318, 51.5014],
  [56.0252, 71.7366],
  [41.5493, 92.3655],
  [70.7299, 92.2041],
];

/** Pixel value outside the source frame: black, like cv2.warpAffine's default BORDER_CONSTANT 0 (InsightFace norm_crop). */
const BORDER_VALUE = 0;
/** Model normalisation: (x - 127.5) / 128. */
const MEAN = 127.5;
const INV_STD = 1 / 128;

/**
 * 2×3 affine [a, b, tx, c, d, ty]: x' = a·x + b·y + tx, y' = c·x + d·y + ty.
 * For a similarity a = d = s·cosθ and c = -b = s·sinθ.
 */
export type Affine = [number, number, number, number, number, number];

type Point = readonly [number, number];

/**
 * Least-squares similarity transform (rotation, uniform scale, translation; never a reflection) mapping `src`
 * onto `dst`, i.e. Umeyama's method constrained to det R = +1. In 2-D that optimum has a closed form: treat
 * the centred points as complex numbers, then s·e^{iθ} = Σ conj(x̃ᵢ)·ỹᵢ / Σ|x̃ᵢ|² and t = ȳ - s·R·x̄.
 * This equals skimage's SimilarityTransform.estimate (what InsightFace uses) whenever that does not reflect.
 */
export function similarityTransform(src: readonly Point[], dst: readonly Point[]): Affine {
  const n = src.length;
  if (n < 2 || dst.length !== n) {
    throw new RangeError(`similarityTransform: need two equally long lists of at least 2 points, got ${n} and ${dst.length}`);
  }
  let sx = 0, sy = 0, dx = 0, dy = 0;
  for (let i = 0; i < n; i++) {
    sx += src[i][0]; sy += src[i][1];
    dx += dst[i][0]; dy += dst[i][1];
  }
  sx /= n; sy /= n; dx /= n; dy /= n;

  let re = 0, im = 0, norm = 0; // Σ conj(x̃)·ỹ and Σ|x̃|²
  for (let i = 0; i < n; i++) {
    const xs = src[i][0] - sx, ys = src[i][1] - sy;
    const xd = dst[i][0] - dx, yd = dst[i][1] - dy;
    re += xs * xd + ys * yd;
    im += xs * yd - ys * xd;
    norm += xs * xs + ys * ys;
  }
  // The negated form also rejects NaN (non-finite landmarks).
  if (!(norm > 1e-12) || !Number.isFinite(re + im)) {
    throw new RangeError('similarityTransform: source points are degenerate (all equal or not finite)');
  }
  const p = re / norm; // s·cosθ
  const q = im / norm; // s·sinθ
  return [p, -q, dx - (p * sx - q * sy), q, p, dy - (q * sx + p * sy)];
}

/** Inverse of an affine map; throws if it is singular. */
export function invert([a, b, tx, c, d, ty]: Affine): Affine {
  const det = a * d - b * c;
  if (!(Math.abs(det) > 1e-12) || !Number.isFinite(det)) throw new RangeError(`invert: affine is singular (det ${det})`);
  const ia = d / det, ib = -b / det, ic = -c / det, id = a / det;
  return [ia, ib, -(ia * tx + ib * ty), ic, id, -(ic * tx + id * ty)];
}

/** Apply an affine to one point. */
export function applyAffine([a, b, tx, c, d, ty]: Affine, [x, y]: Point): [number, number] {
  return [a * x + b * y + tx, c * x + d * y + ty];
}

/**
 * Warp the face with these 5 landmarks (source pixels, YuNet order) to the 112×112 ArcFace crop and write it
 * as normalised RGB NCHW ((v - 127.5) / 128, planes R, G, B) into `out[offset .. offset + 3·112·112)`, so a
 * batch tensor is filled face by face with no intermediate image.
 *
 * Each output pixel (u, v) (integer coordinates = pixel centres, as cv2.warpAffine) is mapped through the
 * inverse transform into the source and sampled bilinearly. Taps outside the frame read black (constant
 * border 0, as cv2.warpAffine's default), so a face cut by the frame edge is not smeared.
 * Returns the forward transform (source → crop).
 */
export function alignFace(
  rgb: Uint8Array,
  width: number,
  height: number,
  landmarks: readonly Point[],
  out: Float32Array,
  offset: number,
): Affine {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`alignFace: width and height must be positive integers, got ${width}x${height}`);
  }
  if (rgb.length < width * height * 3) {
    throw new RangeError(`alignFace: expected ${width * height * 3} RGB bytes for ${width}x${height}, got ${rgb.length}`);
  }
  if (landmarks.length !== ARCFACE_TEMPLATE.length) {
    throw new RangeError(`alignFace: expected ${ARCFACE_TEMPLATE.length} landmarks, got ${landmarks.length}`);
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + FACE_TENSOR_SIZE > out.length) {
    throw new RangeError(`alignFace: out (${out.length} floats) has no room for ${FACE_TENSOR_SIZE} floats at offset ${offset}`);
  }
  const forward = similarityTransform(landmarks, ARCFACE_TEMPLATE);
  warpToPlanes(rgb, width, height, invert(forward), out, offset);
  return forward;
}

/** The fused warp: inverse-map, bilinear sample, normalise, write R, G, B planes. */
function warpToPlanes(rgb: Uint8Array, width: number, height: number, inv: Affine, out: Float32Array, offset: number): void {
  const [a, b, tx, c, d, ty] = inv;
  const plane = FACE_SIZE * FACE_SIZE;
  const stride = width * 3;
  const maxX = width - 1;
  const maxY = height - 1;
  for (let v = 0; v < FACE_SIZE; v++) {
    // Source position of (0, v); moving one output pixel right adds (a, c).
    let sx = b * v + tx;
    let sy = d * v + ty;
    let o = offset + v * FACE_SIZE;
    for (let u = 0; u < FACE_SIZE; u++, sx += a, sy += c, o++) {
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      let r: number, g: number, bl: number;
      if (x0 >= 0 && y0 >= 0 && x0 < maxX && y0 < maxY) {
        // All four taps inside: the common case, no bounds checks.
        const p00 = y0 * stride + x0 * 3;
        const p10 = p00 + stride;
        r = bilerp(rgb, p00, p10, fx, fy);
        g = bilerp(rgb, p00 + 1, p10 + 1, fx, fy);
        bl = bilerp(rgb, p00 + 2, p10 + 2, fx, fy);
      } else {
        r = bilerpBorder(rgb, stride, maxX, maxY, x0, y0, fx, fy, 0);
        g = bilerpBorder(rgb, stride, maxX, maxY, x0, y0, fx, fy, 1);
        bl = bilerpBorder(rgb, stride, maxX, maxY, x0, y0, fx, fy, 2);
      }
      out[o] = (r - MEAN) * INV_STD;
      out[o + plane] = (g - MEAN) * INV_STD;
      out[o + 2 * plane] = (bl - MEAN) * INV_STD;
    }
  }
}

/** Bilinear between the 2×2 taps whose left pixels start at p00 (top) and p10 (bottom); right = +3. */
function bilerp(src: Uint8Array, p00: number, p10: number, fx: number, fy: number): number {
  const top = src[p00] + (src[p00 + 3] - src[p00]) * fx;
  const bottom = src[p10] + (src[p10 + 3] - src[p10]) * fx;
  return top + (bottom - top) * fy;
}

/** Bilinear near or beyond the frame edge: taps outside read BORDER_VALUE. */
function bilerpBorder(
  src: Uint8Array,
  stride: number,
  maxX: number,
  maxY: number,
  x0: number,
  y0: number,
  fx: number,
  fy: number,
  channel: number,
): number {
  if (x0 < -1 || y0 < -1 || x0 > maxX || y0 > maxY) return BORDER_VALUE; // all four taps outside
  const t00 = tap(src, stride, maxX, maxY, x0, y0, channel);
  const t01 = tap(src, stride, maxX, maxY, x0 + 1, y0, channel);
  const t10 = tap(src, stride, maxX, maxY, x0, y0 + 1, channel);
  const t11 = tap(src, stride, maxX, maxY, x0 + 1, y0 + 1, channel);
  const top = t00 + (t01 - t00) * fx;
  const bottom = t10 + (t11 - t10) * fx;
  return top + (bottom - top) * fy;
}

function tap(src: Uint8Array, stride: number, maxX: number, maxY: number, x: number, y: number, channel: number): number {
  return x >= 0 && y >= 0 && x <= maxX && y <= maxY ? src[y * stride + x * 3 + channel] : BORDER_VALUE;
}

/**
 * Fusion of depth views into one coloured point cloud: back-projection with pinhole intrinsics from the
 * image size and a field of view, scale/shift alignment of relative depth between views, and a uniform
 * random subset of at most `maxPoints` points. Pure and synchronous; it runs in a worker.
 *
 * Every view is placed at the origin (glTF's camera convention: looking down −Z, +Y up), which suits photos
 * taken from about one spot. A view that overlaps the one before it (a camera panning or tilting) is turned
 * by the rotation its image shift implies, so the overlap lands in the same place; other views face −Z.
 * Translation between views is not estimated.
 */
import { bilinearTaps } from './resample.js';
import type { DepthMap } from '../../core/types.js';
import { registerPair, type Shift } from './register-views.js';

export interface FusionView {
  /** Name of the view (e.g. the image's filename). */
  name: string;
  width: number;
  height: number;
  /** Packed RGB, width × height × 3 (colours of the points). */
  rgb: Uint8Array;
  depth: DepthMap;
}

export interface FusionOptions {
  /** Horizontal field of view of every image, degrees. */
  fovDeg: number;
  maxPoints: number;
  /** Relative depth only: the depth range (far / near) that the 5th–95th percentile of the first view spans. */
  relativeRange: number;
  /** Seed of the point subset, so the same input gives the same cloud. */
  seed?: number;
  /** Turn views that overlap the previous one by the rotation between them (default true). */
  register?: boolean;
}

export interface ViewCloud {
  name: string;
  /** x, y, z per point (metres for metric depth, units of the nearest depth for relative). */
  positions: Float32Array;
  /** Linear RGB 0–1 per point (glTF COLOR_0 is linear; the images are sRGB). */
  colors: Float32Array;
  /** The view's orientation: rotation about +Y (yaw), then about +X (pitch), radians. */
  yaw: number;
  pitch: number;
  /** Correlation with the previous view when it was registered to it, else null. */
  registration: number | null;
}

/** Orientation of every view: the first faces −Z; each next one is turned from the previous by their image shift. */
export function viewPoses(views: FusionView[], shifts: (Shift | null)[], fovDeg: number): { yaw: number; pitch: number; registration: number | null }[] {
  const poses = [{ yaw: 0, pitch: 0, registration: null as number | null }];
  for (let i = 1; i < views.length; i++) {
    const prev = poses[i - 1];
    const shift = shifts[i];
    if (!shift) { poses.push({ yaw: 0, pitch: 0, registration: null }); continue; }
    // b(x, y) ≈ a(x + dx, y + dy): b's optical axis is a's ray through (cx + dx, cy + dy).
    const f = views[i].width / 2 / Math.tan((fovDeg * Math.PI) / 360);
    poses.push({ yaw: prev.yaw - Math.atan(shift.dx / f), pitch: prev.pitch - Math.atan(shift.dy / f), registration: shift.score });
  }
  return poses;
}

/** sRGB byte → linear 0–1. */
const SRGB_TO_LINEAR = Float32Array.from({ length: 256 }, (_, i) => {
  const c = i / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
});

export function fuseViews(views: FusionView[], o: FusionOptions): ViewCloud[] {
  if (!(o.fovDeg > 0 && o.fovDeg < 180)) throw new RangeError(`fovDeg must be in (0, 180), got ${o.fovDeg}`);
  // shifts[i]: how view i lines up with view i − 1, when they overlap.
  const shifts = views.map((v, i) => (i > 0 && (o.register ?? true) ? registerPair(views[i - 1], v) : null));
  const zs = alignedDepths(views, o.relativeRange, shifts);
  // Every valid pixel of every view is a candidate; a uniform subset of them is kept.
  const offsets: number[] = [];
  let total = 0;
  for (const v of views) { offsets.push(total); total += v.width * v.height; }
  const valid = new Uint32Array(total);
  let n = 0;
  zs.forEach((z, vi) => { for (let i = 0; i < z.length; i++) if (z[i] > 0 && Number.isFinite(z[i])) valid[n++] = offsets[vi] + i; });
  const keep = sampleSorted(valid.subarray(0, n), Math.max(0, Math.floor(o.maxPoints)), o.seed ?? 1);
  const poses = viewPoses(views, shifts, o.fovDeg);

  const out: ViewCloud[] = [];
  let k = 0;
  views.forEach((v, vi) => {
    const end = vi + 1 < views.length ? offsets[vi + 1] : total;
    const first = k;
    while (k < keep.length && keep[k] < end) k++;
    const count = k - first;
    const positions = new Float32Array(count * 3);
    const colors = new Float32Array(count * 3);
    const f = v.width / 2 / Math.tan((o.fovDeg * Math.PI) / 360);
    const cx = v.width / 2;
    const cy = v.height / 2;
    const z = zs[vi];
    const { yaw, pitch } = poses[vi];
    const [cy1, sy1, cp, sp] = [Math.cos(yaw), Math.sin(yaw), Math.cos(pitch), Math.sin(pitch)];
    for (let j = 0; j < count; j++) {
      const i = keep[first + j] - offsets[vi];
      const u = (i % v.width) + 0.5;
      const row = Math.floor(i / v.width) + 0.5;
      const d = z[i];
      // Camera coordinates, then pitch (about X), then yaw (about Y).
      const x = ((u - cx) * d) / f;
      const y0 = (-(row - cy) * d) / f;
      const y = y0 * cp + d * sp;
      const z1 = y0 * sp - d * cp;
      positions[3 * j] = x * cy1 + z1 * sy1;
      positions[3 * j + 1] = y;
      positions[3 * j + 2] = -x * sy1 + z1 * cy1;
      colors[3 * j] = SRGB_TO_LINEAR[v.rgb[3 * i]];
      colors[3 * j + 1] = SRGB_TO_LINEAR[v.rgb[3 * i + 1]];
      colors[3 * j + 2] = SRGB_TO_LINEAR[v.rgb[3 * i + 2]];
    }
    out.push({ name: v.name, positions, colors, ...poses[vi] });
  });
  return out;
}

/**
 * Depth (distance along the optical axis) per image pixel of every view.
 *
 * A view that overlaps the previous one is aligned on the overlap, pixel to pixel: metric depth by one scale
 * (the median ratio), relative inverse depth by the least-squares scale and shift. Other relative views are
 * matched to the first one's statistics (same median, same mean absolute deviation). Relative inverse depth
 * is then turned into depth with one affine map that puts the first view's 5th–95th percentiles at
 * [range, 1] depth units.
 */
export function alignedDepths(views: FusionView[], relativeRange: number, shifts: (Shift | null)[] = []): Float32Array[] {
  const maps = views.map((v) => upsample(v.depth, v.width, v.height));
  const relative = views.some((v) => v.depth.kind === 'inverse-relative');
  if (relative && views.some((v) => v.depth.kind !== 'inverse-relative')) throw new Error('cannot fuse metric and relative depth views');
  const ref = robustStats(maps[0]);
  for (let vi = 1; vi < maps.length; vi++) {
    const m = maps[vi];
    const pairs = shifts[vi] ? overlapPairs(maps[vi - 1], m, views[vi].width, views[vi].height, shifts[vi]!) : null;
    if (!relative) {
      if (pairs) {
        const ratios = pairs.a.map((a, i) => a / pairs.b[i]).filter((r) => Number.isFinite(r) && r > 0).sort((x, y) => x - y);
        const s = ratios[Math.floor(ratios.length / 2)] ?? 1;
        for (let i = 0; i < m.length; i++) m[i] *= s;
      }
      continue;
    }
    let [s, t] = pairs ? fitAffine(pairs.b, pairs.a) : [0, 0];
    if (!(s > 0)) {
      const { median, mad } = robustStats(m);
      s = mad > 0 ? ref.mad / mad : 1;
      t = ref.median - s * median;
    }
    for (let i = 0; i < m.length; i++) m[i] = m[i] * s + t;
  }
  if (!relative) return maps;
  // 1/z = a·d + b with d = p95 → z = 1 (near) and d = p5 → z = range (far).
  const [p5, p95] = [ref.p5, ref.p95];
  const a = p95 > p5 ? (1 - 1 / relativeRange) / (p95 - p5) : 0;
  const b = 1 - a * p95;
  const minInv = 1 / (4 * relativeRange); // the far tail is clamped rather than flipped behind the camera
  for (const m of maps) for (let i = 0; i < m.length; i++) m[i] = 1 / Math.max(a * m[i] + b, minInv);
  return maps;
}

/** Values of `prev` and `cur` at corresponding pixels (cur(x, y) ↔ prev(x + dx, y + dy)), on a grid of about 4000 points. */
function overlapPairs(prev: Float32Array, cur: Float32Array, w: number, h: number, shift: Shift): { a: number[]; b: number[] } | null {
  const step = Math.max(1, Math.floor(Math.sqrt((w * h) / 4000)));
  const dx = Math.round(shift.dx);
  const dy = Math.round(shift.dy);
  const a: number[] = [];
  const b: number[] = [];
  for (let y = Math.max(0, -dy); y < Math.min(h, h - dy); y += step) {
    for (let x = Math.max(0, -dx); x < Math.min(w, w - dx); x += step) {
      const va = prev[(y + dy) * w + x + dx];
      const vb = cur[y * w + x];
      if (Number.isFinite(va) && Number.isFinite(vb)) { a.push(va); b.push(vb); }
    }
  }
  return a.length >= 50 ? { a, b } : null;
}

/** Least-squares [s, t] with s·x + t ≈ y. */
function fitAffine(x: number[], y: number[]): [number, number] {
  const n = x.length;
  let sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (let i = 0; i < n; i++) { sx += x[i]; sy += y[i]; sxx += x[i] * x[i]; sxy += x[i] * y[i]; }
  const den = n * sxx - sx * sx;
  if (!(Math.abs(den) > 1e-12)) return [0, 0];
  const s = (n * sxy - sx * sy) / den;
  return [s, (sy - s * sx) / n];
}

function robustStats(m: Float32Array): { median: number; mad: number; p5: number; p95: number } {
  // Percentiles of a strided sample: exact enough, and sorting 10k values instead of 200k.
  const step = Math.max(1, Math.floor(m.length / 10_000));
  const sample: number[] = [];
  for (let i = 0; i < m.length; i += step) if (Number.isFinite(m[i])) sample.push(m[i]);
  sample.sort((x, y) => x - y);
  const at = (q: number) => sample[Math.min(sample.length - 1, Math.floor(q * sample.length))] ?? 0;
  const median = at(0.5);
  const mad = sample.reduce((s, x) => s + Math.abs(x - median), 0) / Math.max(1, sample.length);
  return { median, mad, p5: at(0.05), p95: at(0.95) };
}

/** The depth map resampled (bilinear, half-pixel centres) to the image's width × height. */
export function upsample(depth: DepthMap, width: number, height: number): Float32Array {
  const src = new Float32Array(depth.data);
  const { width: dw, height: dh } = depth;
  if (src.length !== dw * dh) throw new Error(`depth map has ${src.length} values, expected ${dw}x${dh}`);
  const out = new Float32Array(width * height);
  const xs = bilinearTaps(dw, width, 1);
  const ys = bilinearTaps(dh, height, 1);
  for (let y = 0; y < height; y++) {
    const r0 = ys.lo[y] * dw;
    const r1 = ys.hi[y] * dw;
    const fy = ys.frac[y];
    for (let x = 0; x < width; x++) {
      const fx = xs.frac[x];
      const top = src[r0 + xs.lo[x]] + (src[r0 + xs.hi[x]] - src[r0 + xs.lo[x]]) * fx;
      const bottom = src[r1 + xs.lo[x]] + (src[r1 + xs.hi[x]] - src[r1 + xs.lo[x]]) * fx;
      out[y * width + x] = top + (bottom - top) * fy;
    }
  }
  return out;
}

/** `k` of `items` chosen uniformly at random (partial Fisher–Yates, seeded), in ascending order. */
function sampleSorted(items: Uint32Array, k: number, seed: number): Uint32Array {
  if (k >= items.length) return items.slice();
  const a = items.slice();
  const rand = mulberry32(seed);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (a.length - i));
    const t = a[i]; a[i] = a[j]; a[j] = t;
  }
  return a.subarray(0, k).sort();
}

function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

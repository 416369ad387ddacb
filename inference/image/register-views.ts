/**
 * Rotation between two photos taken from one spot (a camera panning or tilting about its centre), from the
 * image shift that best lines them up: a coarse-to-fine search of the zero-mean normalised cross-correlation
 * of grey thumbnails. Photos that do not overlap (no shift correlates well) give null.
 */

export interface ViewImage { width: number; height: number; rgb: Uint8Array }

/** `b(x, y) ≈ a(x + dx, y + dy)` in full-size pixels, with the correlation that supports it. */
export interface Shift { dx: number; dy: number; score: number }

const COARSE_WIDTH = 64;
const FINE_WIDTH = 192;
/** Least share of the thumbnail the two must overlap in. */
const MIN_OVERLAP = 0.4;
/** Least correlation for two photos to count as overlapping. */
export const MIN_SCORE = 0.75;

export function registerPair(a: ViewImage, b: ViewImage): Shift | null {
  if (a.width !== b.width || a.height !== b.height) return null;
  const coarse = grey(a, COARSE_WIDTH);
  const coarseB = grey(b, COARSE_WIDTH);
  const { w, h } = coarse;
  const coarseBest = search(coarse.v, coarseB.v, w, h, -Math.round(0.6 * w), Math.round(0.6 * w), -Math.round(0.6 * h), Math.round(0.6 * h));
  if (!coarseBest || coarseBest.score < MIN_SCORE - 0.1) return null;
  // Refine around the coarse answer on a larger thumbnail.
  const fw = Math.min(FINE_WIDTH, a.width);
  const fa = grey(a, fw);
  const fb = grey(b, fw);
  const k = fa.w / w;
  const r = Math.ceil(k) + 1;
  const cx = Math.round(coarseBest.dx * k);
  const cy = Math.round(coarseBest.dy * k);
  const fine = search(fa.v, fb.v, fa.w, fa.h, cx - r, cx + r, cy - r, cy + r);
  const [best, thumbWidth] = fine ? [fine, fa.w] : [coarseBest, w];
  if (best.score < MIN_SCORE) return null;
  const scale = a.width / thumbWidth;
  return { dx: best.dx * scale, dy: best.dy * scale, score: best.score };
}

function search(a: Float32Array, b: Float32Array, w: number, h: number, x0: number, x1: number, y0: number, y1: number): Shift | null {
  let best: Shift | null = null;
  for (let dy = y0; dy <= y1; dy++) {
    for (let dx = x0; dx <= x1; dx++) {
      const score = ncc(a, b, w, h, dx, dy);
      if (score !== null && (!best || score > best.score)) best = { dx, dy, score };
    }
  }
  return best;
}

/** Zero-mean normalised cross-correlation of b(x, y) and a(x + dx, y + dy) where both exist; null if they hardly overlap. */
function ncc(a: Float32Array, b: Float32Array, w: number, h: number, dx: number, dy: number): number | null {
  const xs = Math.max(0, -dx);
  const xe = Math.min(w, w - dx);
  const ys = Math.max(0, -dy);
  const ye = Math.min(h, h - dy);
  const n = (xe - xs) * (ye - ys);
  if (xe <= xs || ye <= ys || n < MIN_OVERLAP * w * h) return null;
  let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (let y = ys; y < ye; y++) {
    const rb = y * w;
    const ra = (y + dy) * w + dx;
    for (let x = xs; x < xe; x++) {
      const va = a[ra + x];
      const vb = b[rb + x];
      sa += va; sb += vb; saa += va * va; sbb += vb * vb; sab += va * vb;
    }
  }
  const cov = sab - (sa * sb) / n;
  const den = Math.sqrt((saa - (sa * sa) / n) * (sbb - (sb * sb) / n));
  return den > 1e-6 ? cov / den : null;
}

/** Grey thumbnail `tw` wide (box average), aspect kept. */
function grey(img: ViewImage, tw: number): { v: Float32Array; w: number; h: number } {
  const w = Math.max(1, Math.min(tw, img.width));
  const h = Math.max(1, Math.round((img.height * w) / img.width));
  const sum = new Float32Array(w * h);
  const cnt = new Uint32Array(w * h);
  for (let y = 0; y < img.height; y++) {
    const ty = Math.min(h - 1, Math.floor((y * h) / img.height));
    for (let x = 0; x < img.width; x++) {
      const tx = Math.min(w - 1, Math.floor((x * w) / img.width));
      const i = 3 * (y * img.width + x);
      sum[ty * w + tx] += 0.299 * img.rgb[i] + 0.587 * img.rgb[i + 1] + 0.114 * img.rgb[i + 2];
      cnt[ty * w + tx]++;
    }
  }
  for (let i = 0; i < sum.length; i++) sum[i] /= Math.max(1, cnt[i]);
  return { v: sum, w, h };
}

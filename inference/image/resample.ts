/** Bilinear resampling of packed RGB straight into a model's BGR NCHW input planes (one fused pass). */

/** Per output index along one axis: the two source offsets (index * `step`) and the weight of the second. */
export interface Taps {
  lo: Int32Array;
  hi: Int32Array;
  frac: Float32Array;
}

/**
 * Half-pixel-centre mapping, the same as OpenCV INTER_LINEAR (what these detectors were trained with):
 * src = (dst + 0.5) * (srcLen / dstLen) - 0.5, clamped to the edge. Computed once per call, not per pixel.
 */
export function bilinearTaps(srcLen: number, dstLen: number, step: number): Taps {
  const lo = new Int32Array(dstLen);
  const hi = new Int32Array(dstLen);
  const frac = new Float32Array(dstLen);
  const ratio = srcLen / dstLen;
  for (let d = 0; d < dstLen; d++) {
    const s = Math.min(Math.max((d + 0.5) * ratio - 0.5, 0), srcLen - 1);
    const i0 = Math.floor(s);
    lo[d] = i0 * step;
    hi[d] = Math.min(i0 + 1, srcLen - 1) * step;
    frac[d] = s - i0;
  }
  return { lo, hi, frac };
}

/**
 * Samples a cols.length × rows.length image into the top-left of planes of planeW × planeH, writing
 * R, G, B into planes 2, 1, 0 (BGR order).
 */
export function resampleToBgrPlanes(rgb: Uint8Array, dst: Float32Array, planeW: number, planeH: number, cols: Taps, rows: Taps): void {
  const plane = planeW * planeH;
  const { lo: xLo, hi: xHi, frac: xFrac } = cols;
  const outW = xLo.length;
  for (let y = 0; y < rows.lo.length; y++) {
    const r0 = rows.lo[y];
    const r1 = rows.hi[y];
    const fy = rows.frac[y];
    const b = y * planeW; // B plane row start; G and R are one and two planes further
    for (let x = 0; x < outW; x++) {
      const fx = xFrac[x];
      const p00 = r0 + xLo[x];
      const p01 = r0 + xHi[x];
      const p10 = r1 + xLo[x];
      const p11 = r1 + xHi[x];
      const i = b + x;
      dst[i + 2 * plane] = bilerp(rgb, p00, p01, p10, p11, fx, fy);
      dst[i + plane] = bilerp(rgb, p00 + 1, p01 + 1, p10 + 1, p11 + 1, fx, fy);
      dst[i] = bilerp(rgb, p00 + 2, p01 + 2, p10 + 2, p11 + 2, fx, fy);
    }
  }
}

function bilerp(src: Uint8Array, p00: number, p01: number, p10: number, p11: number, fx: number, fy: number): number {
  const top = src[p00] + (src[p01] - src[p00]) * fx;
  const bottom = src[p10] + (src[p11] - src[p10]) * fx;
  return top + (bottom - top) * fy;
}

/**
 * Constant-velocity Kalman filter for boxes, as used by DeepSORT and ByteTrack.
 *
 * State (8): [cx, cy, a, h, vcx, vcy, va, vh] — box centre, aspect ratio a = w/h, height, and their
 * per-frame velocities. Measurement (4): [cx, cy, a, h]. Noise scales with the box height so that
 * near (large) and far (small) objects are tracked with the same relative uncertainty; the aspect
 * ratio gets small fixed noise because it barely changes for a walking person.
 *
 * Matrices are row-major Float64Arrays of fixed size (8×8, 4×4); no library, no allocation beyond
 * a few temporaries per call.
 */
import type { Box } from '../../core/types.js';

/** Measurement vector: centre x, centre y, aspect ratio (w/h), height. */
export type Xyah = [number, number, number, number];

export interface KalmanState {
  /** 8 values: [cx, cy, a, h, vcx, vcy, va, vh]. */
  mean: Float64Array;
  /** 8×8 covariance, row-major. */
  cov: Float64Array;
}

export interface KalmanOptions {
  /** Position std as a fraction of box height (ByteTrack: 1/20). */
  stdWeightPosition: number;
  /** Velocity std as a fraction of box height (ByteTrack: 1/160). */
  stdWeightVelocity: number;
}

export const KALMAN_DEFAULTS: Readonly<KalmanOptions> = { stdWeightPosition: 1 / 20, stdWeightVelocity: 1 / 160 };

const N = 8; // state size
const M = 4; // measurement size

/** F: x' = x + v (dt = one frame). */
const F = (() => {
  const f = identity(N);
  for (let i = 0; i < M; i++) f[i * N + i + M] = 1;
  return f;
})();
const FT = transpose(F, N, N);

export class KalmanBoxFilter {
  private readonly wp: number;
  private readonly wv: number;

  constructor(opts: Partial<KalmanOptions> = {}) {
    this.wp = opts.stdWeightPosition ?? KALMAN_DEFAULTS.stdWeightPosition;
    this.wv = opts.stdWeightVelocity ?? KALMAN_DEFAULTS.stdWeightVelocity;
  }

  /** New state at the measurement with zero velocity; velocity starts very uncertain (10× its step noise). */
  initiate(z: Xyah): KalmanState {
    const mean = new Float64Array(N);
    mean.set(z);
    const h = z[3];
    const std = [
      2 * this.wp * h, 2 * this.wp * h, 1e-2, 2 * this.wp * h,
      10 * this.wv * h, 10 * this.wv * h, 1e-5, 10 * this.wv * h,
    ];
    return { mean, cov: diag(std.map((s) => s * s)) };
  }

  /** Advance one frame in place: x = F x, P = F P Fᵀ + Q. */
  predict(s: KalmanState): void {
    const h = s.mean[3];
    const p = this.wp * h;
    const v = this.wv * h;
    const q = diag([p * p, p * p, 1e-4, p * p, v * v, v * v, 1e-10, v * v]);
    s.mean.set(matMul(F, s.mean, N, N, 1));
    s.cov.set(add(matMul(matMul(F, s.cov, N, N, N), FT, N, N, N), q));
  }

  /** Correct in place with a measurement: K = P Hᵀ S⁻¹, x += K (z − H x), P −= K S Kᵀ. */
  update(s: KalmanState, z: Xyah): void {
    const h = s.mean[3];
    const p = this.wp * h;
    // Innovation covariance S = H P Hᵀ + R; H selects the first four state components.
    const r = [p * p, p * p, 1e-2, p * p];
    const S = new Float64Array(M * M);
    const PHt = new Float64Array(N * M);
    for (let i = 0; i < N; i++) for (let j = 0; j < M; j++) PHt[i * M + j] = s.cov[i * N + j];
    for (let i = 0; i < M; i++) for (let j = 0; j < M; j++) S[i * M + j] = s.cov[i * N + j] + (i === j ? r[i] : 0);

    const K = matMul(PHt, invert(S, M), N, M, M);
    const innovation = z.map((zi, i) => zi - s.mean[i]);
    const correction = matMul(K, Float64Array.from(innovation), N, M, 1);
    for (let i = 0; i < N; i++) s.mean[i] += correction[i];

    const KSKt = matMul(matMul(K, S, N, M, M), transpose(K, N, M), N, M, N);
    for (let i = 0; i < N * N; i++) s.cov[i] -= KSKt[i];
    symmetrize(s.cov, N); // keeps rounding from slowly making P asymmetric over long tracks
  }
}

/** [x1,y1,x2,y2] → [cx, cy, w/h, h]. Caller guarantees h > 0. */
export function boxToXyah(b: Box): Xyah {
  const w = b[2] - b[0];
  const h = b[3] - b[1];
  return [b[0] + w / 2, b[1] + h / 2, w / h, h];
}

/** First four state components [cx, cy, a, h] → [x1,y1,x2,y2]. */
export function xyahToBox(m: ArrayLike<number>): Box {
  const h = m[3];
  const w = m[2] * h;
  return [m[0] - w / 2, m[1] - h / 2, m[0] + w / 2, m[1] + h / 2];
}

// ---------- small dense matrix helpers (row-major) ----------

function identity(n: number): Float64Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

function diag(values: number[]): Float64Array {
  const n = values.length;
  const m = new Float64Array(n * n);
  values.forEach((v, i) => (m[i * n + i] = v));
  return m;
}

/** (rows×inner) · (inner×cols). */
function matMul(a: Float64Array, b: Float64Array, rows: number, inner: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < inner; k++) {
      const aik = a[i * inner + k];
      if (aik === 0) continue;
      for (let j = 0; j < cols; j++) out[i * cols + j] += aik * b[k * cols + j];
    }
  }
  return out;
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]);
}

function symmetrize(a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = (a[i * n + j] + a[j * n + i]) / 2;
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  }
}

/** Gauss–Jordan inverse with partial pivoting; S is SPD here, so it is always invertible. */
function invert(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = identity(n);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r * n + col]) > Math.abs(m[pivot * n + col])) pivot = r;
    if (m[pivot * n + col] === 0) throw new RangeError('singular matrix in Kalman update');
    swapRows(m, n, col, pivot);
    swapRows(inv, n, col, pivot);
    const d = m[col * n + col];
    for (let j = 0; j < n; j++) {
      m[col * n + j] /= d;
      inv[col * n + j] /= d;
    }
    for (let r = 0; r < n; r++) {
      const f = m[r * n + col];
      if (r === col || f === 0) continue;
      for (let j = 0; j < n; j++) {
        m[r * n + j] -= f * m[col * n + j];
        inv[r * n + j] -= f * inv[col * n + j];
      }
    }
  }
  return inv;
}

function swapRows(m: Float64Array, n: number, a: number, b: number): void {
  if (a === b) return;
  for (let j = 0; j < n; j++) {
    const t = m[a * n + j];
    m[a * n + j] = m[b * n + j];
    m[b * n + j] = t;
  }
}

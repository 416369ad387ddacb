/**
 * Optimal linear assignment with a cost gate, with the same semantics as `lap.lapjv(cost,
 * extend_cost=True, cost_limit=maxCost)` that ByteTrack uses: minimise
 *
 *     Σ cost(matched pairs) + maxCost/2 · (#unmatched rows + #unmatched cols)
 *
 * so a pair is only worth matching when its cost is below `maxCost`, and a pair with cost above
 * `maxCost` (or a non-finite cost) is never matched. Note this can prefer one good match over two
 * mediocre ones — that is intended (it is what keeps a strong IoU match from being broken up).
 *
 * Solved exactly with the Hungarian algorithm (shortest augmenting paths with potentials, O(n³))
 * on the square matrix padded with "leave unmatched" dummies.
 */

export interface AssignmentResult {
  /** [row, col] pairs, sorted by row. */
  matches: Array<[number, number]>;
  unmatchedRows: number[];
  unmatchedCols: number[];
}

/**
 * @param cost rows × cols matrix (rows may differ in count from cols; every row must have `cols` entries).
 *   With zero rows the column count is unknown, so `unmatchedCols` is empty — callers handle that case.
 * @param maxCost gate; Infinity means "match as many as possible, then minimise cost".
 */
export function linearAssignment(cost: readonly (readonly number[])[], maxCost = Infinity): AssignmentResult {
  const rows = cost.length;
  const cols = rows > 0 ? cost[0].length : 0;
  if (cost.some((r) => r.length !== cols)) throw new RangeError('cost matrix rows must all have the same length');
  if (Number.isNaN(maxCost)) throw new RangeError('maxCost must be a number');
  if (rows === 0 || cols === 0) return { matches: [], unmatchedRows: range(rows), unmatchedCols: range(cols) };

  const padded = padWithDummies(cost, maxCost);
  const colOfRow = hungarian(padded, rows + cols);

  const matches: Array<[number, number]> = [];
  const rowMatched = new Array<boolean>(rows).fill(false);
  const colMatched = new Array<boolean>(cols).fill(false);
  for (let r = 0; r < rows; r++) {
    const c = colOfRow[r];
    // The second test is defensive: padding already makes gated pairs strictly worse than dummies.
    if (c < cols && allowed(cost[r][c], maxCost)) {
      matches.push([r, c]);
      rowMatched[r] = true;
      colMatched[c] = true;
    }
  }
  return {
    matches,
    unmatchedRows: range(rows).filter((r) => !rowMatched[r]),
    unmatchedCols: range(cols).filter((c) => !colMatched[c]),
  };
}

function allowed(c: number, maxCost: number): boolean {
  return Number.isFinite(c) && c <= maxCost;
}

/**
 * (rows+cols)² matrix:  [ cost      | dummy ]   dummy = maxCost/2 (leave that row unmatched)
 *                       [ dummy     |   0   ]   dummy = maxCost/2 (leave that col unmatched)
 * Gated entries are clamped to a finite value that is strictly worse than two dummies, which keeps
 * the Hungarian arithmetic finite.
 */
function padWithDummies(cost: readonly (readonly number[])[], maxCost: number): Float64Array {
  const rows = cost.length;
  const cols = cost[0].length;
  const n = rows + cols;
  const dummy = Number.isFinite(maxCost) ? Math.max(0, maxCost) / 2 : unboundedDummy(cost);
  const forbidden = 2 * dummy + 1;
  const m = new Float64Array(n * n);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      let v: number;
      if (r < rows && c < cols) v = allowed(cost[r][c], maxCost) ? cost[r][c] : forbidden;
      else if (r < rows || c < cols) v = dummy;
      else v = 0;
      m[r * n + c] = v;
    }
  }
  return m;
}

/** Without a gate, a dummy must cost more than any set of real matches could save. */
function unboundedDummy(cost: readonly (readonly number[])[]): number {
  let maxAbs = 0;
  for (const row of cost) for (const v of row) if (Number.isFinite(v)) maxAbs = Math.max(maxAbs, Math.abs(v));
  return (maxAbs + 1) * (cost.length + cost[0].length);
}

/**
 * Hungarian algorithm on an n×n matrix (shortest augmenting path with row/column potentials, as in
 * Jonker–Volgenant). Returns the column assigned to each row.
 */
function hungarian(a: Float64Array, n: number): Int32Array {
  // 1-based internally; column 0 is the virtual start of each augmenting path.
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const rowOfCol = new Int32Array(n + 1);
  const way = new Int32Array(n + 1);
  const minv = new Float64Array(n + 1);
  const used = new Uint8Array(n + 1);

  for (let i = 1; i <= n; i++) {
    rowOfCol[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = rowOfCol[j0];
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = a[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[rowOfCol[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (rowOfCol[j0] !== 0);
    // Flip the augmenting path.
    do {
      const j1 = way[j0];
      rowOfCol[j0] = rowOfCol[j1];
      j0 = j1;
    } while (j0 !== 0);
  }

  const colOfRow = new Int32Array(n);
  for (let j = 1; j <= n; j++) colOfRow[rowOfCol[j] - 1] = j - 1;
  return colOfRow;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * 1:N face search: every enrolled embedding in one contiguous, L2-normalised Float32Array, scanned
 * with an unrolled dot product (cosine = dot for unit vectors). A person's score is the best of their
 * embeddings. Exact, allocation-free per query, and fast enough for 100 k embeddings on a CPU core.
 */
export interface IndexMatch { personId: number; similarity: number }

export class FaceIndex {
  private matrix = new Float32Array(0);
  private owners = new Int32Array(0);
  private count = 0;

  constructor(readonly dim: number) {}

  get size(): number {
    return this.count;
  }

  /** Replaces the whole index (rows are normalised on the way in). */
  load(rows: { personId: number; vector: Float32Array }[]): void {
    this.matrix = new Float32Array(Math.max(16, rows.length) * this.dim);
    this.owners = new Int32Array(Math.max(16, rows.length));
    this.count = 0;
    for (const r of rows) this.add(r.personId, r.vector);
  }

  add(personId: number, vector: Float32Array): void {
    if (vector.length !== this.dim) throw new Error(`embedding has ${vector.length} values, expected ${this.dim}`);
    if ((this.count + 1) * this.dim > this.matrix.length) this.grow();
    let sq = 0;
    for (let i = 0; i < this.dim; i++) sq += vector[i] * vector[i];
    const norm = Math.sqrt(sq) || 1;
    const at = this.count * this.dim;
    for (let i = 0; i < this.dim; i++) this.matrix[at + i] = vector[i] / norm;
    this.owners[this.count++] = personId;
  }

  removePerson(personId: number): void {
    let w = 0;
    for (let r = 0; r < this.count; r++) {
      if (this.owners[r] === personId) continue;
      if (w !== r) {
        this.matrix.copyWithin(w * this.dim, r * this.dim, (r + 1) * this.dim);
        this.owners[w] = this.owners[r];
      }
      w++;
    }
    this.count = w;
  }

  /** Best match for a (normalised) query, or null when the index is empty. */
  search(query: Float32Array): IndexMatch | null {
    const { dim, matrix, owners, count } = this;
    let best = -Infinity;
    let bestRow = -1;
    for (let r = 0, at = 0; r < count; r++, at += dim) {
      let s0 = 0; let s1 = 0; let s2 = 0; let s3 = 0;
      let i = 0;
      for (; i + 3 < dim; i += 4) {
        s0 += matrix[at + i] * query[i];
        s1 += matrix[at + i + 1] * query[i + 1];
        s2 += matrix[at + i + 2] * query[i + 2];
        s3 += matrix[at + i + 3] * query[i + 3];
      }
      for (; i < dim; i++) s0 += matrix[at + i] * query[i];
      const s = s0 + s1 + s2 + s3;
      if (s > best) { best = s; bestRow = r; }
    }
    return bestRow < 0 ? null : { personId: owners[bestRow], similarity: best };
  }

  private grow(): void {
    const rows = Math.max(16, (this.matrix.length / this.dim) * 2);
    const m = new Float32Array(rows * this.dim);
    m.set(this.matrix.subarray(0, this.count * this.dim));
    const o = new Int32Array(rows);
    o.set(this.owners.subarray(0, this.count));
    this.matrix = m;
    this.owners = o;
  }
}

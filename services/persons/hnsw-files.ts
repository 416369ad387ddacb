/** Where the HNSW face index is persisted, and how a persisted index is matched to the embeddings it covers. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { IndexMeta } from './face-search.protocol.js';

export const indexFiles = (dataDir: string): { file: string; metaFile: string } => ({
  file: path.join(dataDir, 'face-index.hnsw'),
  metaFile: path.join(dataDir, 'face-index.json'),
});

/**
 * sha256 over every (label, normalised vector) in label order: the same rows give the same value whatever
 * order they were added in, and any added, removed or changed embedding changes it.
 */
export function fingerprint(labels: Float64Array, vectors: Float32Array, dim: number): string {
  const order = Array.from(labels.keys()).sort((a, b) => labels[a] - labels[b]);
  const h = createHash('sha256');
  const label = Buffer.alloc(8);
  for (const r of order) {
    label.writeDoubleLE(labels[r]);
    h.update(label);
    h.update(new Uint8Array(vectors.buffer, vectors.byteOffset + r * dim * 4, dim * 4));
  }
  return `${labels.length}:${h.digest('hex')}`;
}

export function readMeta(metaFile: string): IndexMeta | null {
  try {
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as IndexMeta;
    return meta.format === 1 ? meta : null;
  } catch {
    return null;
  }
}

/**
 * Motion gating's core, pure: a small grey thumbnail of a frame, read on a sparse grid (each cell the mean of a 2×2
 * block of pixels, so a few thousand reads whatever the frame's size), and the share of cells that changed between two
 * thumbnails. Detection is skipped on frames where too little changed since the last frame it ran on (as Frigate does).
 */

/** Cells across the thumbnail (rows follow the frame's aspect). */
export const THUMB_WIDTH = 64;

export interface Thumbnail { width: number; height: number; grey: Uint8Array }

/** The thumbnail of packed RGB pixels. */
export function thumbnail(rgb: Uint8Array, width: number, height: number, cells = THUMB_WIDTH): Thumbnail {
  const tw = Math.max(1, Math.min(cells, width >> 1));
  const th = Math.max(1, Math.min(Math.round((tw * height) / width), height >> 1));
  const grey = new Uint8Array(tw * th);
  const stride = width * 3;
  for (let y = 0; y < th; y++) {
    const sy = Math.min(height - 2, Math.floor(((y + 0.5) * height) / th));
    for (let x = 0; x < tw; x++) {
      const sx = Math.min(width - 2, Math.floor(((x + 0.5) * width) / tw));
      const a = sy * stride + sx * 3;
      const b = a + stride;
      // Luma (BT.601, integer weights summing to 256) of the 2×2 block's mean.
      const r = rgb[a] + rgb[a + 3] + rgb[b] + rgb[b + 3];
      const g = rgb[a + 1] + rgb[a + 4] + rgb[b + 1] + rgb[b + 4];
      const bl = rgb[a + 2] + rgb[a + 5] + rgb[b + 2] + rgb[b + 5];
      grey[y * tw + x] = (77 * r + 150 * g + 29 * bl) >> 10;
    }
  }
  return { width: tw, height: th, grey };
}

/** Share of cells whose grey level moved by more than `threshold` (0–255) between two thumbnails of one size. */
export function changedShare(a: Thumbnail, b: Thumbnail, threshold: number): number {
  if (a.width !== b.width || a.height !== b.height) return 1;
  let changed = 0;
  for (let i = 0; i < a.grey.length; i++) if (Math.abs(a.grey[i] - b.grey[i]) > threshold) changed++;
  return changed / a.grey.length;
}

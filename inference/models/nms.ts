import type { Box } from '../../core/types.js';

/** Intersection over union of two [x1,y1,x2,y2] boxes; 0 when either box is empty. */
export function iou(a: Box, b: Box): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

function area(b: Box): number {
  return Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
}

/**
 * Greedy NMS, per class when `classWise` (default true). Input need not be sorted and is not mutated.
 * A box is dropped when its IoU with an already-kept box (of the same class, if class-wise) exceeds
 * `iouThreshold`. Returns kept detections sorted by score desc.
 */
export function nms<T extends { box: Box; score: number; classId: number }>(
  dets: T[],
  iouThreshold: number,
  classWise = true,
): T[] {
  const sorted = [...dets].sort((a, b) => b.score - a.score);
  // Kept boxes bucketed by class so each candidate is only compared with boxes it can suppress.
  const keptByClass = new Map<number, Box[]>();
  const kept: T[] = [];
  for (const det of sorted) {
    const key = classWise ? det.classId : 0;
    let bucket = keptByClass.get(key);
    if (!bucket) keptByClass.set(key, (bucket = []));
    if (bucket.some((box) => iou(box, det.box) > iouThreshold)) continue;
    bucket.push(det.box);
    kept.push(det);
  }
  return kept;
}

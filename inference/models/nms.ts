import { iou } from '../../core/geometry.js';
import type { Box } from '../../core/types.js';

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

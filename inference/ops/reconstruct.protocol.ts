/** Messages between the main thread and the worker for point-cloud reconstruction. Views travel as transferred ArrayBuffers. */
import type { DepthView } from './depth.protocol.js';

export interface ReconstructTask {
  op: 'reconstruct';
  /** Views in capture order; the first one anchors the alignment of relative depth. Transferred and handed back. */
  views: (DepthView & { name: string })[];
  /** Horizontal field of view of the images, degrees. */
  fovDeg: number;
  /** One GLB is written per entry, each with at most that many points (e.g. the full model and a smaller one to send). */
  maxPoints: number[];
  /** Relative depth only: far/near ratio the first view's depth is mapped to. */
  relativeRange: number;
}

export interface ReconstructResult {
  /** Binary glTF files, one per `maxPoints` entry: one POINTS primitive (POSITION, COLOR_0) per view. */
  models: { glb: ArrayBuffer; numPoints: number }[];
  /** The task's views, handed back so the caller can reuse them without a copy. */
  views: ReconstructTask['views'];
}

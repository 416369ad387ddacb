/**
 * Posture of one person from its keypoints (torso angle, leg ratios), its box and its speed. Pure function.
 * Image y grows downwards; lengths are compared with the torso (shoulder–hip) length, so the rules hold at
 * any distance from the camera.
 */
import type { Box, Keypoint, KeypointName, Posture } from '../../core/types.js';

export interface PostureThresholds {
  /** Torso this many degrees or more from vertical is lying. */
  lyingAngle: number;
  /** Speed (body heights per second) from which a person walks, and from which they run. */
  walkSpeed: number;
  runSpeed: number;
}

export const DEFAULT_POSTURE: PostureThresholds = { lyingAngle: 55, walkSpeed: 0.2, runSpeed: 1.3 };

export interface PostureResult { posture: Posture; confidence: number }

interface Point { x: number; y: number; confidence: number }

/** Middle of the visible one(s) of a left/right pair, or undefined when neither is visible. */
function pair(kp: readonly Keypoint[], a: KeypointName, b: KeypointName): Point | undefined {
  const seen = kp.filter((k) => (k.name === a || k.name === b) && k.visible);
  if (!seen.length) return undefined;
  const n = seen.length;
  return {
    x: seen.reduce((s, k) => s + k.x, 0) / n,
    y: seen.reduce((s, k) => s + k.y, 0) / n,
    confidence: seen.reduce((s, k) => s + k.confidence, 0) / n,
  };
}

export interface TorsoGeometry { shoulders: Point; hips: Point; knees?: Point; ankles?: Point; length: number; angle: number }

/** Shoulder and hip centres (both needed), knees and ankles if seen, torso length and angle from vertical (degrees). */
export function torsoGeometry(keypoints: readonly Keypoint[] | undefined): TorsoGeometry | undefined {
  if (!keypoints?.length) return undefined;
  const shoulders = pair(keypoints, 'left_shoulder', 'right_shoulder');
  const hips = pair(keypoints, 'left_hip', 'right_hip');
  if (!shoulders || !hips) return undefined;
  const dx = shoulders.x - hips.x;
  const dy = hips.y - shoulders.y; // > 0 when the shoulders are above the hips
  const length = Math.hypot(dx, dy);
  if (length < 1) return undefined;
  return {
    shoulders, hips, length,
    angle: (Math.atan2(Math.abs(dx), dy) * 180) / Math.PI,
    knees: pair(keypoints, 'left_knee', 'right_knee'),
    ankles: pair(keypoints, 'left_ankle', 'right_ankle'),
  };
}

/** Upright people are classified by speed alone. */
function moving(speed: number, t: PostureThresholds): Posture {
  return speed >= t.runSpeed ? 'running' : speed >= t.walkSpeed ? 'walking' : 'standing';
}

/**
 * - lying: torso at least `lyingAngle` from vertical, or half that with a box wider than high;
 * - sitting (also crouching): torso upright but the knees near hip height (thigh drop < 0.35 torso; about 0.85
 *   standing, 0.5–0.7 for walkers seen from an elevated camera), or, without knees, the ankles less than 0.8
 *   torso below the hips (1.6–1.8 standing, down to 1.0 from above);
 * - otherwise standing, walking or running by speed (body heights per second).
 * Without shoulders and hips the box's aspect decides, with a lower confidence.
 */
export function classifyPosture(keypoints: readonly Keypoint[] | undefined, box: Box, speed: number,
  t: PostureThresholds = DEFAULT_POSTURE): PostureResult {
  const bw = box[2] - box[0];
  const bh = box[3] - box[1];
  const g = torsoGeometry(keypoints);
  if (!g) {
    if (bw > 1.3 * bh) return { posture: 'lying', confidence: 0.4 };
    if (bh > 1.6 * bw) return { posture: moving(speed, t), confidence: 0.4 };
    return { posture: 'unknown', confidence: 0 };
  }
  const torsoConfidence = (g.shoulders.confidence + g.hips.confidence) / 2;
  if (g.angle >= t.lyingAngle || (g.angle >= t.lyingAngle / 2 && bw > 1.1 * bh)) {
    // Further from the threshold is surer.
    const margin = Math.min(1, 0.6 + (g.angle - t.lyingAngle / 2) / 90);
    return { posture: 'lying', confidence: clamp01(torsoConfidence * margin + 0.2) };
  }
  const thigh = g.knees ? (g.knees.y - g.hips.y) / g.length : undefined;
  const leg = g.ankles ? (g.ankles.y - g.hips.y) / g.length : undefined;
  if (thigh !== undefined ? thigh < 0.35 : leg !== undefined && leg < 0.8) {
    const legConfidence = g.knees?.confidence ?? g.ankles?.confidence ?? 0;
    return { posture: 'sitting', confidence: clamp01(((torsoConfidence + legConfidence) / 2) + 0.2) };
  }
  const legs = thigh !== undefined || leg !== undefined;
  // Upright torso without legs in view could be standing or sitting behind something.
  return { posture: moving(speed, t), confidence: clamp01(torsoConfidence + (legs ? 0.2 : 0)) * (legs ? 1 : 0.7) };
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

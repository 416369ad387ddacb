/** WatchMe's wire messages, as the document has them: pure mappings, no sockets. */
import { matchConfidence, personDistance, type Appearance } from '../../services/looks/person-gallery.js';
import type { Box } from '../../core/types.js';

export type Status = 'tracking_started' | 'tracking_stopped' | 'pong' | 'error';

export interface MatchJson { bbox: number[]; distance: number; confidence: number }

/**
 * `processing_time`: seconds from the frame's arrival (its capture for live tracking, the message's receipt for
 * `single_frame`) to its answer; the document's monitoring client prints it, though its message example omits it.
 */
export interface FrameInfo { frame_number: number; width: number; height: number; processed_at: number; processing_time: number }

/** Seconds since the epoch, as the document's timestamps. */
export const seconds = (ms: number): number => ms / 1000;

const round4 = (v: number): number => Math.round(v * 1e4) / 1e4;

/** The frame_info of an answer: `processing_time` from the frame's arrival to `nowMs`, in seconds. */
export function frameInfo(frame: { frame_number: number; width: number; height: number }, arrivedAtMs: number, nowMs: number): FrameInfo {
  return { ...frame, processed_at: seconds(nowMs), processing_time: round4(Math.max(0, nowMs - arrivedAtMs) / 1000) };
}

export function statusMessage(status: Status, message: string | undefined, nowMs: number): object {
  return { type: 'status', status, ...(message !== undefined ? { message } : {}), timestamp: seconds(nowMs) };
}

/** The persons that match `reference` within `threshold`, nearest first. */
export function matchesOf(people: { box: Box; look: Appearance }[], reference: Appearance, threshold: number, faceWeight: number): MatchJson[] {
  return people
    .map((p) => ({ box: p.box, distance: personDistance(reference, p.look, faceWeight) }))
    .filter((m) => m.distance <= threshold)
    .sort((a, b) => a.distance - b.distance)
    .map((m) => ({
      bbox: m.box.map((v) => Math.round(v)),
      distance: round4(m.distance),
      confidence: round4(matchConfidence(m.distance, threshold)),
    }));
}

export function matchesMessage(matches: MatchJson[], timestampS: number, frameInfo: FrameInfo): object {
  return { type: 'matches', matches, timestamp: timestampS, frame_info: frameInfo };
}

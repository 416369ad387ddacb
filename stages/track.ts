/**
 * track: ByteTrack on the detections of each frame; ids are unique per source, also across restarts (they are
 * handed out in blocks recorded in the store).
 *
 *   - { id: track, use: track, with: { minHits: 3, maxLost: 30 } }
 */
import { map } from 'rxjs';
import type { StageDefinition } from '../pipeline/stage.js';
import type { TrackedObject } from '../core/types.js';
import { BYTETRACK_DEFAULTS, ByteTracker, type ByteTrackOptions } from './track/bytetrack.js';

export type TrackOptions = Pick<ByteTrackOptions, 'highThresh' | 'lowThresh' | 'newTrackThresh' | 'matchThresh' | 'minHits' | 'maxLost' | 'recoverGrowth' | 'recoverMax'>;

const ID_BLOCK = 1000;

export const trackStage: StageDefinition<TrackOptions> = {
  name: 'track',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      highThresh: { type: 'number', minimum: 0, maximum: 1, default: BYTETRACK_DEFAULTS.highThresh },
      lowThresh: { type: 'number', minimum: 0, maximum: 1, default: BYTETRACK_DEFAULTS.lowThresh },
      newTrackThresh: { type: 'number', minimum: 0, maximum: 1, default: BYTETRACK_DEFAULTS.newTrackThresh },
      matchThresh: { type: 'number', minimum: 0, maximum: 1, default: BYTETRACK_DEFAULTS.matchThresh },
      minHits: { type: 'integer', minimum: 1, maximum: 100, default: BYTETRACK_DEFAULTS.minHits },
      maxLost: { type: 'integer', minimum: 0, maximum: 10000, default: BYTETRACK_DEFAULTS.maxLost },
      recoverGrowth: { type: 'number', minimum: 0, maximum: 10, default: BYTETRACK_DEFAULTS.recoverGrowth },
      recoverMax: { type: 'number', minimum: 0, maximum: 10, default: BYTETRACK_DEFAULTS.recoverMax },
    },
  },
  needs: ['detections'],
  provides: ['tracks'],
  pixels: 'none',
  create(o, ctx) {
    const { counts, source } = ctx;
    let idStart = counts.reserveTrackIds(source, ID_BLOCK);
    let reservedEnd = idStart + ID_BLOCK;
    const tracker = new ByteTracker({ ...o, idStart });
    return map((p) => {
      // A frame detection skipped: the tracks of the last detection, moved by their motion, keep counting going.
      const tracks = p.detectSkipped ? tracker.predicted(p.frame.seq)
        : p.detections ? tracker.update(p.detections, p.frame.seq, p.frame.capturedAtMs) : null;
      if (!tracks) return p;
      const maxId = tracks.reduce((m, t) => Math.max(m, t.id), 0);
      // Reserve the next block before this one runs out, so a restart never reuses an id.
      if (maxId >= reservedEnd - 1) {
        idStart = counts.reserveTrackIds(source, ID_BLOCK);
        reservedEnd = idStart + ID_BLOCK;
      }
      const out: TrackedObject[] = tracks.map((t) => ({
        id: t.id, box: t.box, score: t.score, classId: t.classId, label: t.label, state: t.state, velocity: t.velocity, origin: t.origin,
      }));
      return { ...p, tracks: out };
    });
  },
};

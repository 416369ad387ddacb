/** track: ByteTrack on the detections of each frame; ids are unique per source, also across restarts. */
import { map } from 'rxjs';
import type { StageDefinition } from '../pipeline/stage.js';
import type { TrackedObject } from '../core/types.js';
import { ByteTracker, type ByteTrackOptions } from './track/bytetrack.js';

export type TrackOptions = Partial<Pick<ByteTrackOptions, 'highThresh' | 'lowThresh' | 'newTrackThresh' | 'matchThresh' | 'minHits' | 'maxLost'>>;

const ID_BLOCK = 1000;

export const trackStage: StageDefinition<TrackOptions> = {
  name: 'track',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      highThresh: { type: 'number', minimum: 0, maximum: 1 },
      lowThresh: { type: 'number', minimum: 0, maximum: 1 },
      newTrackThresh: { type: 'number', minimum: 0, maximum: 1 },
      matchThresh: { type: 'number', minimum: 0, maximum: 1 },
      minHits: { type: 'integer', minimum: 1, maximum: 100 },
      maxLost: { type: 'integer', minimum: 0, maximum: 10000 },
    },
  },
  needs: ['detections'],
  provides: ['tracks'],
  create(o, ctx) {
    const { store, source } = ctx;
    let idStart = store.reserveTrackIds(source, ID_BLOCK);
    let reservedEnd = idStart + ID_BLOCK;
    const tracker = new ByteTracker({ ...o, idStart });
    return map((p) => {
      if (!p.detections) return p;
      const tracks = tracker.update(p.detections, p.frame.seq, p.frame.capturedAtMs);
      const maxId = tracks.reduce((m, t) => Math.max(m, t.id), 0);
      // Reserve the next block before this one runs out, so a restart never reuses an id.
      if (maxId >= reservedEnd - 1) {
        idStart = store.reserveTrackIds(source, ID_BLOCK);
        reservedEnd = idStart + ID_BLOCK;
      }
      const out: TrackedObject[] = tracks.map((t) => ({
        id: t.id, box: t.box, score: t.score, classId: t.classId, label: t.label, state: t.state, velocity: t.velocity,
      }));
      return { ...p, tracks: out };
    });
  },
};

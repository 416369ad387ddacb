/**
 * activity: posture, trajectory, falls and occupancy per track, from the tracker and the pose stage. A thin
 * wrapper around ActivityAnalyzer (pure, replayable, time passed in): it feeds each packet in and publishes what
 * comes out.
 *
 *   - { id: activity, use: activity, with: { fallSpeed: 0.8, lyingSeconds: 1.5 } }
 */
import { map } from 'rxjs';
import type { StageDefinition } from '../pipeline/stage.js';
import { ActivityAnalyzer, DEFAULT_ACTIVITY, type ActivityOptions } from './activity/analyzer.js';

export interface ActivityStageOptions {
  /** Downward torso speed, in body heights per second, that may start a fall. */
  fallSpeed: number;
  /** Share of the body height the torso must drop in a fall. */
  minDrop: number;
  /** Lying this long after the fast descent confirms the fall. */
  lyingSeconds: number;
  /** Lying must begin within this time of the fastest moment. */
  fallWindowSeconds: number;
  /** Upright this long after a fall is a recovery. */
  recoverSeconds: number;
  /** Body heights per second from which a person walks / runs. */
  walkSpeed: number;
  runSpeed: number;
  /** Torso angle from vertical (degrees) from which a person lies. */
  lyingAngle: number;
  trajectoryLength: number;
  predictSeconds: number;
  /** A new person count must hold this long before occupancy changes. */
  occupancyHoldSeconds: number;
}

/** The analyzer's options from the stage's (seconds become milliseconds); options left out keep the analyzer's defaults. */
export function analyzerOptions(o: Partial<ActivityStageOptions>): Partial<ActivityOptions> {
  const ms = (s: number | undefined): number | undefined => (s === undefined ? undefined : s * 1000);
  const all: Partial<ActivityOptions> = {
    fallSpeed: o.fallSpeed, minDrop: o.minDrop, lyingMs: ms(o.lyingSeconds), fallWindowMs: ms(o.fallWindowSeconds),
    recoverMs: ms(o.recoverSeconds), walkSpeed: o.walkSpeed, runSpeed: o.runSpeed, lyingAngle: o.lyingAngle,
    trajectoryLength: o.trajectoryLength, predictMs: ms(o.predictSeconds), occupancyHoldMs: ms(o.occupancyHoldSeconds),
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

const D = DEFAULT_ACTIVITY;
const seconds = (ms: number) => ({ type: 'number', minimum: 0, maximum: 600, default: ms / 1000 });

export const activityStage: StageDefinition<ActivityStageOptions> = {
  name: 'activity',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      fallSpeed: { type: 'number', exclusiveMinimum: 0, maximum: 20, default: D.fallSpeed },
      minDrop: { type: 'number', minimum: 0, maximum: 1, default: D.minDrop },
      lyingSeconds: seconds(D.lyingMs),
      fallWindowSeconds: seconds(D.fallWindowMs),
      recoverSeconds: seconds(D.recoverMs),
      walkSpeed: { type: 'number', minimum: 0, maximum: 20, default: D.walkSpeed },
      runSpeed: { type: 'number', minimum: 0, maximum: 20, default: D.runSpeed },
      lyingAngle: { type: 'number', minimum: 10, maximum: 90, default: D.lyingAngle },
      trajectoryLength: { type: 'integer', minimum: 1, maximum: 1000, default: D.trajectoryLength },
      predictSeconds: { type: 'number', minimum: 0, maximum: 60, default: D.predictMs / 1000 },
      occupancyHoldSeconds: seconds(D.occupancyHoldMs),
    },
  },
  check(o) {
    if (o.runSpeed <= o.walkSpeed) {
      return [{ path: ['runSpeed'], message: `runSpeed (${o.runSpeed}) must be above walkSpeed (${o.walkSpeed})` }];
    }
    return [];
  },
  needs: ['tracks', 'poses'],
  provides: ['activities'],
  pixels: 'none',
  create(o, ctx) {
    const { bus, pipeline, source } = ctx;
    const analyzer = new ActivityAnalyzer(analyzerOptions(o));
    const falls = ctx.metrics.falls.labels(pipeline, source);
    falls.inc(0); // the series exists at 0 before the first fall
    return map((p) => {
      const r = analyzer.update({ tMs: p.frame.ptsNs / 1e6, atMs: p.frame.capturedAtMs, tracks: p.tracks ?? [], poses: p.poses });
      for (const f of r.falls) {
        falls.inc();
        bus.publish('activity.fall', { pipeline, source, ...f, recoveryDetected: false });
      }
      for (const rec of r.recoveries) bus.publish('activity.recovered', { pipeline, source, ...rec });
      if (r.occupancyChange) bus.publish('occupancy', { pipeline, source, ...r.occupancyChange });
      return { ...p, activities: r.activities, occupancy: r.occupancy };
    });
  },
};

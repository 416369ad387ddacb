/**
 * count: people crossing a line (LineCounter, the stage's pure core), committed as day totals and high-traffic
 * events by the counting service; stats are published twice a second and whenever something was counted.
 *
 *   - id: count
 *     use: count
 *     with: { line: [[0.5, 0], [0.5, 1]], in: left-to-right, resetAt: "00:00", event: { windowSeconds: 60, minIn: 10 } }
 */
import { defer, finalize, map, type Observable } from 'rxjs';
import type { Packet } from '../core/types.js';
import type { StageDefinition } from '../pipeline/stage.js';
import { PeopleCounter, type TrafficChange, type TrafficEventOptions } from '../services/counting/people-counter.js';
import { LineCounter, type Anchor, type InDirection, type Point } from './count/line-counter.js';

export interface CountOptions {
  line: [Point, Point];
  in: InDirection;
  anchor: Anchor;
  hysteresis: number;
  /** Local time (HH:MM) at which the day's counts start again from zero. */
  resetAt: string;
  event: TrafficEventOptions;
  statsIntervalMs: number;
}

const point = { type: 'array', items: { type: 'number', minimum: 0, maximum: 1 }, minItems: 2, maxItems: 2 };

export const countStage: StageDefinition<CountOptions> = {
  name: 'count',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['line'],
    properties: {
      line: { type: 'array', items: point, minItems: 2, maxItems: 2 },
      in: { enum: ['left-to-right', 'right-to-left', 'top-to-bottom', 'bottom-to-top', 'positive', 'negative'], default: 'left-to-right' },
      anchor: { enum: ['bottom-center', 'center', 'top-center'], default: 'bottom-center' },
      hysteresis: { type: 'number', minimum: 0, maximum: 0.5, default: 0.01 },
      resetAt: { type: 'string', pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', default: '00:00' },
      event: {
        type: 'object', additionalProperties: false, default: {},
        properties: {
          windowSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 86400, default: 60 },
          minIn: { type: 'integer', minimum: 1, default: 10 },
          holdSeconds: { type: 'number', minimum: 0, maximum: 86400, default: 30 },
        },
      },
      statsIntervalMs: { type: 'integer', minimum: 100, maximum: 60000, default: 500 },
    },
  },
  check(o) {
    const [[x1, y1], [x2, y2]] = o.line;
    return x1 === x2 && y1 === y2 ? [{ path: ['line'], message: 'the two ends of the line are the same point' }] : [];
  },
  needs: ['tracks'],
  provides: ['crossings'],
  pixels: 'none',
  create(o, ctx) {
    const { bus, counts, pipeline, source, clock } = ctx;
    return (input: Observable<Packet>) => defer(() => {
      const line = new LineCounter({ line: o.line, inDirection: o.in, anchor: o.anchor, hysteresis: o.hysteresis });
      const counter = new PeopleCounter(pipeline, counts, { resetAt: o.resetAt, event: o.event }, clock.now());
      const publishTraffic = (changes: TrafficChange[]): void => {
        for (const c of changes) bus.publish('traffic.event', { pipeline, source, ...c });
      };
      const publishStats = (): void => bus.publish('count.stats', { pipeline, source, ...counter.stats(), atMs: clock.now() });
      // Stats go out on a clock, not per frame, and time alone can end an event or a day.
      const stopTimer = clock.interval(() => { publishTraffic(counter.tick(clock.now())); publishStats(); }, o.statsIntervalMs);
      publishStats();
      return input.pipe(
        map((p): Packet => {
          if (!p.tracks) return p;
          const now = clock.now();
          const day = counter.rollDay(now);
          // A new day: which side of the line a track was on no longer counts.
          if (day.newDay) line.reset();
          const { crossings, traffic } = counter.record(line.update(p.tracks, p.frame.width, p.frame.height, now), now);
          for (const c of crossings) bus.publish('count.crossed', { pipeline, source, ...c });
          publishTraffic([...day.traffic, ...traffic]);
          if (crossings.length || day.traffic.length || traffic.length) publishStats();
          const s = counter.stats();
          const px = (pt: Point): [number, number] => [pt[0] * p.frame.width, pt[1] * p.frame.height];
          return { ...p, crossings, counting: { line: [px(o.line[0]), px(o.line[1])], countIn: s.countIn, countOut: s.countOut } };
        }),
        finalize(() => stopTimer()),
      );
    });
  },
};

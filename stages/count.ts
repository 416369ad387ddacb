/** count: people crossing a line, day totals and high-traffic events; publishes stats twice a second. */
import { defer, finalize, map, type Observable } from 'rxjs';
import type { StageDefinition } from '../pipeline/stage.js';
import type { Packet } from '../core/types.js';
import { PeopleCounter, type PeopleCounterOptions, type TrafficChange } from '../services/counting/people-counter.js';
import type { Anchor, InDirection, Point } from './count/line-counter.js';

export interface CountOptions {
  line: [Point, Point];
  in?: InDirection;
  anchor?: Anchor;
  hysteresis?: number;
  resetAt?: string;
  event?: Partial<PeopleCounterOptions['event']>;
  statsIntervalMs?: number;
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
      in: { enum: ['left-to-right', 'right-to-left', 'top-to-bottom', 'bottom-to-top', 'positive', 'negative'] },
      anchor: { enum: ['bottom-center', 'center', 'top-center'] },
      hysteresis: { type: 'number', minimum: 0, maximum: 0.5 },
      resetAt: { type: 'string', pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' },
      event: {
        type: 'object', additionalProperties: false,
        properties: {
          windowSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 86400 },
          minIn: { type: 'integer', minimum: 1 },
          holdSeconds: { type: 'number', minimum: 0, maximum: 86400 },
        },
      },
      statsIntervalMs: { type: 'integer', minimum: 100, maximum: 60000 },
    },
  },
  check(o) {
    const [[x1, y1], [x2, y2]] = o.line;
    return x1 === x2 && y1 === y2 ? [{ path: ['line'], message: 'the two ends of the line are the same point' }] : [];
  },
  needs: ['tracks'],
  provides: ['crossings'],
  create(o, ctx) {
    const { bus, store, pipeline, source } = ctx;
    const opts: PeopleCounterOptions = {
      line: o.line, in: o.in ?? 'left-to-right', anchor: o.anchor, hysteresis: o.hysteresis, resetAt: o.resetAt ?? '00:00',
      event: { windowSeconds: 60, minIn: 10, holdSeconds: 30, ...o.event },
    };
    return (input: Observable<Packet>) => defer(() => {
      const counter = new PeopleCounter(pipeline, store, opts, Date.now());
      const publishTraffic = (changes: TrafficChange[]): void => {
        for (const c of changes) bus.publish('traffic.event', { pipeline, source, ...c });
      };
      const publishStats = (): void => bus.publish('count.stats', { pipeline, source, ...counter.stats(), atMs: Date.now() });
      // Stats go out on a clock, not per frame, and time alone can end an event or a day.
      const timer = setInterval(() => { publishTraffic(counter.tick(Date.now())); publishStats(); }, o.statsIntervalMs ?? 500);
      timer.unref();
      publishStats();
      return input.pipe(
        map((p): Packet => {
          if (!p.tracks) return p;
          const now = Date.now();
          const { crossings, traffic } = counter.update(p.tracks, p.frame.width, p.frame.height, now);
          for (const c of crossings) bus.publish('count.crossed', { pipeline, source, ...c });
          publishTraffic(traffic);
          if (crossings.length || traffic.length) publishStats();
          const s = counter.stats();
          const px = (pt: Point): [number, number] => [pt[0] * p.frame.width, pt[1] * p.frame.height];
          return { ...p, crossings, counting: { line: [px(o.line[0]), px(o.line[1])], countIn: s.countIn, countOut: s.countOut } };
        }),
        finalize(() => clearInterval(timer)),
      );
    });
  },
};

/**
 * Counts tracks crossing a line segment, with hysteresis. Pure and deterministic: no I/O, no clocks.
 *
 * Geometry works in the normalised frame (x/width, y/height, both 0..1). For the line A→B and a track
 * anchor P, the signed distance is
 *
 *     s = cross(B − A, P − A) / |B − A|      (cross(u, v) = u.x·v.y − u.y·v.x)
 *
 * Image y grows downwards, so s > 0 is the right-hand side of A→B *as seen on screen* (for A at the
 * top and B at the bottom of a vertical line, s > 0 is the left half of the frame).
 *
 * Directions: `positive` counts as "in" a move from the s < 0 side to the s > 0 side; `negative` the
 * reverse. A named direction (e.g. `left-to-right`) is mapped to one of them by the sign of the
 * line normal (−Δy, Δx) along that axis, so it does not matter which end of the line is A; it must
 * not be (nearly) parallel to the line — `left-to-right` on a horizontal line is rejected.
 *
 * Per track: the committed side is set the first time the anchor is at least `hysteresis` from the
 * line. A crossing counts when the anchor is at least `hysteresis` from the line on the *other* side;
 * the committed side then flips, so the track can only count again by going back across (with
 * hysteresis) — in then out counts in=1,out=1; jitter within ±hysteresis never counts. The crossing
 * only counts when the point where the anchor's path last crossed the infinite line lies within the
 * segment (projection in [0, 1], widened by `segmentMargin` at both ends); otherwise the side still
 * flips, silently.
 *
 * Frame borders: a box leaving the frame is clipped by the detector, so its anchor can never get past
 * the border, and a line closer than `hysteresis` to the border could never be crossed. When the room
 * between the line and the border (measured along the line normal from the anchor's foot point) is
 * under 2 × hysteresis, that side is "border-limited":
 *   - exits: the required distance shrinks to half the room — with a line at x = 0.98 an exiting walker
 *     counts once its anchor passes x = 0.99;
 *   - entries: a track first seen anywhere beyond the line on that side commits there at once (it can
 *     only have come in from off-frame), since by the time it is confirmed its clipped anchor has
 *     usually moved into the band already; it counts once it is `hysteresis` clear on the inner side.
 * A line lying exactly on the border can never be crossed.
 *
 * Track origins: a track is confirmed a few frames after its first detection, and a walker first seen just before
 * the line may be on it or past it by then. When a track carries its `origin` (the box that started it), the path
 * starts there: an origin clear of the line commits its side, so the crossing counts once the confirmed track is
 * clear on the other side; an origin inside the band that the track leaves on the other side of the line counts
 * too (it was seen on one side and left on the other), once.
 */
import type { Box } from '../../core/types.js';
import type { Track } from '../track/bytetrack.js';

export type Point = [number, number];
export type NamedDirection = 'left-to-right' | 'right-to-left' | 'top-to-bottom' | 'bottom-to-top';
export type InDirection = NamedDirection | 'positive' | 'negative';
export type Anchor = 'bottom-center' | 'center' | 'top-center';

export interface LineCounterOptions {
  /** Segment endpoints, normalised (0..1 of frame width / height). */
  line: [Point, Point];
  /** Which crossing direction counts as "in"; the other counts as "out". */
  inDirection: InDirection;
  /** Point of the box that has to cross; default bottom-center (the feet, for an overhead-ish camera). */
  anchor?: Anchor;
  /** Normalised perpendicular distance beyond the line needed to commit to a side; default 0.01 (0.02 missed walkers who stop just past the line). */
  hysteresis?: number;
  /** Normalised distance past either end of the segment that still counts; default 0.02. */
  segmentMargin?: number;
  /** Per-track state is dropped after this many `update` calls without that id; default 300. */
  staleFrames?: number;
}

export interface Crossing {
  trackId: number;
  direction: 'in' | 'out';
  timestampMs: number;
  /** Anchor position when the crossing was counted, in frame pixels. */
  anchor: Point;
}

export type CountableTrack = Pick<Track, 'id' | 'box' | 'state'> & { origin?: Box };

interface TrackSide {
  /** Committed side: +1 / −1, or 0 until the anchor has first been clear of the line. */
  side: number;
  /** Side of the track's origin when it lay inside the band (±1), else 0: leaving the band on the other side counts. */
  bornSide: number;
  /** Previous anchor (normalised) and its signed distance, to locate where the path crosses the line. */
  prev: Point | undefined;
  prevDist: number;
  /** Segment parameter (0..1 = on the segment) where the path last crossed the infinite line. */
  crossT: number;
  lastCall: number;
}

const AXES: Record<NamedDirection, Point> = {
  'left-to-right': [1, 0],
  'right-to-left': [-1, 0],
  'top-to-bottom': [0, 1],
  'bottom-to-top': [0, -1],
};
/** sin(1°): a named direction closer than this to the line's own direction is a misconfiguration. */
const MIN_AXIS_COMPONENT = Math.sin(Math.PI / 180);

export class LineCounter {
  private readonly a: Point;
  /** Unit direction A→B and unit normal (−dy, dx); s = dot(n, P − A). */
  private readonly dir: Point;
  private readonly normal: Point;
  private readonly length: number;
  /** +1 when "in" means ending on the s > 0 side. */
  private readonly inSign: number;
  private readonly anchor: Anchor;
  private readonly hysteresis: number;
  private readonly margin: number;
  private readonly staleFrames: number;

  private readonly sides = new Map<number, TrackSide>();
  private calls = 0;
  private tally = { in: 0, out: 0 };

  constructor(opts: LineCounterOptions) {
    const [a, b] = opts.line;
    if (![...a, ...b].every(Number.isFinite)) throw new RangeError('LineCounter: line endpoints must be finite');
    const dx = b[0] - a[0];
    const dy = b[1] - a[1];
    this.length = Math.hypot(dx, dy);
    if (this.length < 1e-9) throw new RangeError('LineCounter: line endpoints must differ');
    this.a = [a[0], a[1]];
    this.dir = [dx / this.length, dy / this.length];
    this.normal = [-this.dir[1], this.dir[0]];
    this.inSign = inSignFor(opts.inDirection, this.normal);
    this.anchor = opts.anchor ?? 'bottom-center';
    if (!['bottom-center', 'center', 'top-center'].includes(this.anchor)) {
      throw new RangeError(`LineCounter: unknown anchor ${String(this.anchor)}`);
    }
    this.hysteresis = nonNegative('hysteresis', opts.hysteresis ?? 0.01);
    this.margin = nonNegative('segmentMargin', opts.segmentMargin ?? 0.02);
    this.staleFrames = opts.staleFrames ?? 300;
    if (!Number.isSafeInteger(this.staleFrames) || this.staleFrames < 1) {
      throw new RangeError('LineCounter: staleFrames must be a positive integer');
    }
  }

  /** Totals since construction or the last `reset()`. */
  get counts(): { in: number; out: number } {
    return { ...this.tally };
  }

  /** Number of tracks whose state is held (for monitoring that memory stays bounded). */
  get trackCount(): number {
    return this.sides.size;
  }

  /**
   * Feed one frame's tracks. Only `confirmed` tracks move; other states just keep their id's state
   * alive (a lost track that is re-found continues from its committed side). Returns the crossings
   * counted in this call, in input order.
   */
  update(tracks: readonly CountableTrack[], frameWidth: number, frameHeight: number, timestampMs: number): Crossing[] {
    if (!(frameWidth > 0 && frameHeight > 0)) throw new RangeError('LineCounter: frame size must be positive');
    this.calls++;
    const crossings: Crossing[] = [];
    for (const t of tracks) {
      const existing = this.sides.get(t.id);
      if (existing) existing.lastCall = this.calls;
      if (t.state !== 'confirmed') continue;
      const st = existing ?? this.newState(t.id, t.origin, frameWidth, frameHeight);
      const px = anchorOf(t.box, this.anchor);
      const direction = this.step(st, [px[0] / frameWidth, px[1] / frameHeight]);
      if (direction) {
        this.tally[direction]++;
        crossings.push({ trackId: t.id, direction, timestampMs, anchor: px });
      }
    }
    this.evictStale();
    return crossings;
  }

  /** Zero the totals. Per-track sides are kept, so a crossing in progress still counts once. */
  reset(): void {
    this.tally = { in: 0, out: 0 };
  }

  /** Drop a track's state (e.g. when the tracker removes it). */
  forget(trackId: number): void {
    this.sides.delete(trackId);
  }

  private newState(id: number, origin: Box | undefined, width: number, height: number): TrackSide {
    const st: TrackSide = { side: 0, bornSide: 0, prev: undefined, prevDist: 0, crossT: NaN, lastCall: this.calls };
    this.sides.set(id, st);
    if (origin && origin.every(Number.isFinite)) {
      const px = anchorOf(origin, this.anchor);
      const p: Point = [px[0] / width, px[1] / height];
      const s = this.signedDistance(p);
      const side = Math.sign(s);
      st.prev = p;
      st.prevDist = s;
      if (side !== 0 && Math.abs(s) >= this.requiredDistance(p, side, true)) st.side = side;
      else st.bornSide = side;
    }
    return st;
  }

  /** Advance one track to anchor `p`; returns the direction if this completes a counted crossing. */
  private step(st: TrackSide, p: Point): 'in' | 'out' | undefined {
    const s = this.signedDistance(p);
    this.noteLineCrossing(st, p, s);
    st.prev = p;
    st.prevDist = s;

    const side = Math.sign(s);
    if (side === 0 || Math.abs(s) < this.requiredDistance(p, side, st.side === 0)) return undefined;
    if (st.side === 0) {
      st.side = side; // first time clear of the line: commit, counting only a track born on the other side of it
      if (st.bornSide !== -side || !this.onSegment(st.crossT)) return undefined;
      return side === this.inSign ? 'in' : 'out';
    }
    if (side === st.side) return undefined;
    st.side = side;
    if (!this.onSegment(st.crossT)) return undefined; // went around the end of the segment
    return side === this.inSign ? 'in' : 'out';
  }

  /** Remember where the anchor's path (prev → p) crossed the infinite line, if it did. */
  private noteLineCrossing(st: TrackSide, p: Point, s: number): void {
    const prev = st.prev;
    if (!prev || Math.sign(st.prevDist) === Math.sign(s)) return;
    const f = st.prevDist / (st.prevDist - s); // fraction of the way from prev to p
    st.crossT = this.projection([prev[0] + f * (p[0] - prev[0]), prev[1] + f * (p[1] - prev[1])]);
  }

  private signedDistance(p: Point): number {
    return this.normal[0] * (p[0] - this.a[0]) + this.normal[1] * (p[1] - this.a[1]);
  }

  /** Position of p's foot point along the segment: 0 at A, 1 at B. */
  private projection(p: Point): number {
    return (this.dir[0] * (p[0] - this.a[0]) + this.dir[1] * (p[1] - this.a[1])) / this.length;
  }

  private onSegment(t: number): boolean {
    const m = this.margin / this.length;
    return t >= -m && t <= 1 + m;
  }

  /** Distance beyond the line needed on `side`: the hysteresis, unless that side is border-limited. */
  private requiredDistance(p: Point, side: number, firstSight: boolean): number {
    const t = Math.min(1, Math.max(0, this.projection(p)));
    const foot: Point = [this.a[0] + t * this.length * this.dir[0], this.a[1] + t * this.length * this.dir[1]];
    const room = distanceToBorder(foot, [side * this.normal[0], side * this.normal[1]]);
    if (room >= 2 * this.hysteresis) return this.hysteresis;
    return firstSight ? 0 : room / 2;
  }

  private evictStale(): void {
    for (const [id, st] of this.sides) if (this.calls - st.lastCall > this.staleFrames) this.sides.delete(id);
  }
}

function anchorOf(b: Box, anchor: Anchor): Point {
  const cx = (b[0] + b[2]) / 2;
  if (anchor === 'center') return [cx, (b[1] + b[3]) / 2];
  return [cx, anchor === 'top-center' ? b[1] : b[3]];
}

function inSignFor(direction: InDirection, normal: Point): number {
  if (direction === 'positive') return 1;
  if (direction === 'negative') return -1;
  const axis = AXES[direction];
  if (!axis) throw new RangeError(`LineCounter: unknown inDirection ${String(direction)}`);
  const along = normal[0] * axis[0] + normal[1] * axis[1];
  if (Math.abs(along) < MIN_AXIS_COMPONENT) {
    throw new RangeError(`LineCounter: inDirection '${direction}' runs along the line; use positive/negative`);
  }
  return Math.sign(along);
}

/** Distance from p (inside the unit square) along unit vector u to the square's border; 0 if outside. */
function distanceToBorder(p: Point, u: Point): number {
  let d = Infinity;
  for (let i = 0; i < 2; i++) {
    if (u[i] > 0) d = Math.min(d, (1 - p[i]) / u[i]);
    else if (u[i] < 0) d = Math.min(d, -p[i] / u[i]);
  }
  return Math.max(0, d);
}

function nonNegative(name: string, v: number): number {
  if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`LineCounter: ${name} must be ≥ 0, got ${v}`);
  return v;
}

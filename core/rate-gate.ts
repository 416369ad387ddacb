/**
 * Lets through at most `perSecond` events a second on average, tolerating half a period of jitter: a
 * frame that arrives a millisecond early is not skipped (a plain "gap ≥ period" check drops ~40 % of a
 * stream whose rate equals the cap).
 */
export class RateGate {
  private readonly period: number;
  private next = -Infinity;

  constructor(perSecond: number) {
    this.period = 1000 / perSecond;
  }

  allow(nowMs: number): boolean {
    if (nowMs < this.next - this.period / 2) return false;
    this.next = Math.max(this.next, nowMs - this.period / 2) + this.period;
    return true;
  }
}

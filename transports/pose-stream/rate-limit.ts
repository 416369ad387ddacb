/**
 * Sliding-window message limits (the document's "Message Rate Limits" table). A small slack on the
 * window lets a client that sends exactly at the documented pace (e.g. a heartbeat every 30 s by
 * setInterval) through despite timer jitter.
 */
export interface LimitRule { limit: number; windowMs: number; window: string }

/** The document's table: Subscribe/Unsubscribe 10/min, Heartbeat 1/30 s, General Commands 60/min. */
export const MESSAGE_LIMITS = {
  subscription: { limit: 10, windowMs: 60_000, window: '1_minute' },
  heartbeat: { limit: 1, windowMs: 30_000, window: '30_seconds' },
  general: { limit: 60, windowMs: 60_000, window: '1_minute' },
} satisfies Record<string, LimitRule>;

export interface LimitVerdict { ok: boolean; currentRate: number; retryAfterS: number }

export class WindowLimiter {
  private readonly accepted: number[] = [];
  /** Every attempt in the window (accepted or not), to report the client's actual rate; capped. */
  private readonly attempts: number[] = [];
  private readonly effectiveWindow: number;

  constructor(readonly rule: LimitRule, slack = 0.05) {
    this.effectiveWindow = rule.windowMs * (1 - slack);
  }

  hit(nowMs: number): LimitVerdict {
    const since = nowMs - this.effectiveWindow;
    while (this.accepted.length && this.accepted[0] <= since) this.accepted.shift();
    while (this.attempts.length && this.attempts[0] <= nowMs - this.rule.windowMs) this.attempts.shift();
    if (this.attempts.length < this.rule.limit * 100) this.attempts.push(nowMs);
    if (this.accepted.length < this.rule.limit) {
      this.accepted.push(nowMs);
      return { ok: true, currentRate: this.attempts.length, retryAfterS: 0 };
    }
    const retryAfterS = Math.max(1, Math.ceil((this.accepted[0] + this.effectiveWindow - nowMs) / 1000));
    return { ok: false, currentRate: this.attempts.length, retryAfterS };
  }
}

/** Data-rate caps per stream (the document's "Data Rate Limits" table): events per window. */
export class EventBudget {
  private readonly times: number[] = [];
  constructor(private readonly limit: number, private readonly windowMs: number) {}
  allow(nowMs: number): boolean {
    while (this.times.length && this.times[0] <= nowMs - this.windowMs) this.times.shift();
    if (this.times.length >= this.limit) return false;
    this.times.push(nowMs);
    return true;
  }
}

/** The People Counter protocol's messages (people-counter.md), as pure mappings from bus events. */
import type { BusEvents } from '../../core/events.js';

const p2 = (n: number): string => String(n).padStart(2, '0');

/** `HH:MM:SS` in local time. */
export function clockTime(ms: number): string {
  const d = new Date(ms);
  return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
}

/** `YYYY-MM-DD HH:MM:SS.mmm` in local time, as the document's timestamps. */
export function timestamp(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${clockTime(ms)}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

export const frameMessage = (jpeg: ArrayBuffer, nowMs: number) =>
  ({ type: 'frame', data: Buffer.from(jpeg).toString('base64'), timestamp: timestamp(nowMs) });

export const statsMessage = (s: BusEvents['count.stats']) => ({
  type: 'stats',
  data: {
    count_in: s.countIn, count_out: s.countOut, face_count: s.faceCount, daily_event_count: s.dailyEventCount,
    event_active: s.eventActive, current_event_count_in: s.currentEventCountIn,
  },
  timestamp: timestamp(s.atMs),
});

export function eventMessage(e: BusEvents['traffic.event'], nowMs: number) {
  const data = e.status === 'started'
    ? { status: 'started', start_time: clockTime(e.startMs) }
    : { status: 'ended', start_time: clockTime(e.startMs), end_time: clockTime(e.endMs ?? nowMs), count_in: e.countIn };
  return { type: 'event', data, timestamp: timestamp(nowMs) };
}

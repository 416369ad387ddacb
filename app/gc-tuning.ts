/**
 * The main thread's garbage collector, tuned for a stream of frames. Packets live for the tens of milliseconds a
 * frame spends in its stages, so each scavenge promotes the ones in flight, and V8's default old-space limit (a
 * small factor over a live heap of about 20 MB) then starts a full mark-compact every 150–250 ms: at 12 cameras,
 * about 4 a second, a fifth of a core in marking. Letting the old space grow to five times its live size before the
 * next full collection costs at most a few tens of megabytes and took the counting chain at 12 cameras from 17.5–20.5
 * to 15.7 ms of CPU per frame (bench/capacity). The flag is read at every collection, so setting it at start-up works.
 */
import v8 from 'node:v8';

export const HEAP_GROWING_PERCENT = 400;

export function tuneGc(): void {
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

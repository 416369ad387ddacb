/**
 * glibc's allocator, set for a stream of frames. Frames are about a megabyte each; sources reuse the buffers of frames
 * that are done (pipeline/sources/frame-pool.ts), but copies of a frame (a second pipeline on the same source, crops,
 * images) are fresh buffers of that size. With glibc's defaults such a buffer is either mmapped and unmapped every
 * time or, once the dynamic threshold has risen, carved from the heap whose top is trimmed back to the kernel after
 * every free, so the next one faults its pages in again. Measured when every frame was a fresh buffer: decoding the
 * sample video with no stages spent 1.9 s in the kernel for 795 frames and ran at 236 fps; buffers under 4 MiB kept
 * in the arenas, and up to 64 MiB of free memory kept at the heap's top, took that to 0.5 s and 637 fps; at 14
 * counting cameras, 12.9 → 12.2 ms of CPU per frame. Two arenas instead of one per thread keep the native threads of
 * GStreamer and ONNX Runtime from fragmenting memory (RSS crept up with every reconnect).
 *
 * glibc reads these when the process starts, so they are set by whatever starts it: `npm start`, the test and
 * benchmark harnesses, a service's unit file (README, Settings).
 */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: String(4 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(64 * 1024 * 1024),
};

/** The settings missing from an environment, as `NAME=value` (none on a process started with them, or off glibc). */
export function missingAllocatorEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  if (process.platform !== 'linux') return [];
  return Object.entries(ALLOCATOR_ENV).filter(([k]) => env[k] === undefined).map(([k, v]) => `${k}=${v}`);
}

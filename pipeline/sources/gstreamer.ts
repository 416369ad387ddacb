/** Loads the native GStreamer binding (its package "main" is a .node file, which ESM cannot import). */
import { createRequire } from 'node:module';
import type gstreamerModule from 'gstreamer-superficial';

const require = createRequire(import.meta.url);
export const gstreamer = require('gstreamer-superficial') as typeof gstreamerModule;

/**
 * Every source parks two blocking calls on libuv's thread pool (the appsink pull and the bus poll), which fs, DNS
 * and sqlite work share; a pool too small for the sources starves some of them without an error. The pool is
 * sized once, from UV_THREADPOOL_SIZE at its first use (the CLI sets it before anything else runs).
 */
export const POOL_THREADS_PER_SOURCE = 2;
const POOL_RESERVE = 2;

/** The most sources the thread pool serves with room for other work. */
export function sourcesThePoolServes(poolSize = Number(process.env.UV_THREADPOOL_SIZE) || 4): number {
  return Math.max(0, Math.floor((Math.min(1024, poolSize) - POOL_RESERVE) / POOL_THREADS_PER_SOURCE));
}

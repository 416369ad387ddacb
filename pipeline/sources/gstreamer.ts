/** Loads the native GStreamer binding (its package "main" is a .node file, which ESM cannot import). */
import { createRequire } from 'node:module';
import type gstreamerModule from 'gstreamer-superficial';

const require = createRequire(import.meta.url);
export const gstreamer = require('gstreamer-superficial') as typeof gstreamerModule;

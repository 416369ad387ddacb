#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';

// CommonJS on purpose: each GStreamer source parks up to two blocking calls (appsink pull, bus poll) on
// libuv's thread pool, which ONNX Runtime and fs share. The pool size is read once, at its first use, so
// it must be set before any ES module loading (which may already use the pool) happens. 256 serves 127 sources;
// idle threads cost a little address space, not CPU.
process.env.UV_THREADPOOL_SIZE ??= '256';
// A file run keeps the main thread's young generation at its first size (V8 grows it up to 16 MB per semi-space when
// much survives a scavenge, as it does while the modules load, hence here). A file's packets leave in order and
// their frame buffers are recycled, so little is worth keeping young longer: on the sample video, peak RSS
// 251–254 → 243–245 MiB, no slower. Live runs keep V8's growth: there a larger nursery promotes fewer packets.
// The command may follow settings flags (`sightline --workers 2 process …`).
if (process.argv.slice(2).includes('process')) setFlagsFromString('--semi-space-growth-factor=1');
import('./cli.js')
  .then(async ({ main }) => { process.exitCode = await main(process.argv.slice(2)); })
  .catch((err: unknown) => { console.error(err); process.exitCode = 1; });

#!/usr/bin/env node
// CommonJS on purpose: each GStreamer source parks up to two blocking calls (appsink pull, bus poll) on
// libuv's thread pool, which ONNX Runtime and fs share. The pool size is read once, at its first use, so
// it must be set before any ES module loading (which may already use the pool) happens. 256 serves 127 sources;
// idle threads cost a little address space, not CPU.
process.env.UV_THREADPOOL_SIZE ??= '256';
import('./cli.js')
  .then(async ({ main }) => { process.exitCode = await main(process.argv.slice(2)); })
  .catch((err: unknown) => { console.error(err); process.exitCode = 1; });

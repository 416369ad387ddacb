/**
 * Recycled frame buffers: the binding copies a sample into a buffer it is given, a source reuses the buffers of
 * frames that are done, and the pixels every packet carries are still those of its own frame.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { startApp } from '../app/app.js';
import { FramePool } from '../pipeline/sources/frame-pool.js';
import { gstreamer } from '../pipeline/sources/gstreamer.js';
import { decodeImage } from '../inference/image/decode.js';
import { graph, media, memoryLogger, testSettings } from './helpers.js';
import { freePort } from './rtsp-server.js';
import { decodedFrames } from './video-frames.js';

const sha = (data: ArrayBuffer | Uint8Array): string => createHash('sha1').update(data instanceof ArrayBuffer ? new Uint8Array(data) : data).digest('hex');

test('FramePool: gives back what it was given, up to its capacity, and never a buffer twice', (t) => {
  const pool = new FramePool(2);
  t.is(pool.take(), undefined);
  const [a, b, c] = [new ArrayBuffer(12), new ArrayBuffer(12), new ArrayBuffer(12)];
  pool.give(a);
  pool.give(a);
  t.is(pool.size, 1, 'the same buffer is kept once');
  pool.give(b);
  pool.give(c);
  t.is(pool.size, 2, 'capacity bounds what is kept');
  t.is(pool.take(), b);
  t.is(pool.take(), a);
  t.is(pool.take(), undefined);
});

test('FramePool: a transferred (empty) buffer is not kept, and a new frame size replaces the old buffers', (t) => {
  const pool = new FramePool(4);
  const moved = new ArrayBuffer(12);
  structuredClone(moved, { transfer: [moved] });
  t.is(moved.byteLength, 0);
  pool.give(moved);
  t.is(pool.size, 0);
  pool.give(new ArrayBuffer(12));
  pool.give(new ArrayBuffer(12));
  const bigger = new ArrayBuffer(24);
  pool.give(bigger);
  t.is(pool.size, 1);
  t.is(pool.take(), bigger);
});

/** Frames of videotestsrc (the same pixels on every run): each pulled into `into(i)` if it gives a buffer. */
function pullFrames(count: number, into: (i: number) => ArrayBuffer | undefined): Promise<{ copies: Buffer[]; views: Buffer[] }> {
  const p = new gstreamer.Pipeline(`videotestsrc pattern=ball num-buffers=${count} ! video/x-raw,format=RGB,width=64,height=48 ! appsink name=sink sync=false max-buffers=2 drop=false`);
  const sink = p.findChild('sink')!;
  const copies: Buffer[] = [];
  const views: Buffer[] = [];
  p.play();
  return new Promise((resolve) => {
    const pull = (): void => sink.pull((buf) => {
      if (!buf) { p.stop(); resolve({ copies, views }); return; }
      views.push(buf);
      copies.push(Buffer.from(buf)); // what the frame was when pulled, whatever later happens to its buffer
      pull();
    }, into(views.length));
    pull();
  });
}

test('the binding copies a sample into a buffer of its size, and into a new Buffer otherwise', async (t) => {
  const fresh = (await pullFrames(6, () => undefined)).copies;
  const given = Array.from({ length: 6 }, () => new ArrayBuffer(64 * 48 * 3));
  const wrong = new ArrayBuffer(10);
  const { copies, views } = await pullFrames(6, (i) => (i === 5 ? wrong : given[i]));
  t.is(views.length, 6);
  for (let i = 0; i < 5; i++) {
    t.is(views[i].buffer, given[i], `frame ${i} is a view of the buffer given`);
    t.is(sha(given[i]), sha(fresh[i]), `frame ${i}: the same pixels as a fresh pull`);
  }
  t.not(views[5].buffer, wrong, 'a buffer of another size is not used');
  t.deepEqual(new Uint8Array(wrong), new Uint8Array(10), 'and not written to');
  t.is(sha(copies[5]), sha(fresh[5]));
  t.not(sha(fresh[0]), sha(fresh[1]), 'the frames differ from each other (the check means something)');
});

test('a file run reuses a few frame buffers, and every packet carries its own frame\'s pixels', async (t) => {
  const file = media('vtest.avi');
  // The frames as decoded on their own, hashed one by one (the whole file would be 310 MB of pixels).
  const expected = await decodedFrames(file, 416, 312, sha);

  const g = graph(`
sources:
  plaza: { uri: "file://${file}", width: 416, height: 312 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  plaza:
    source: plaza
    stages: [{ id: detect, use: detect, with: { model: people, classes: [person] } }]
`);
  const app = await startApp(g, testSettings(), { serve: false, log: memoryLogger() });
  const seen = new Map<number, string>();
  app.bus.on('packet').subscribe((p) => seen.set(p.frame.seq, sha(p.frame.data)));
  await app.runtime.whenDone();
  const reused = app.runtime.sources.get('plaza')!.framesReused;
  await app.stop();

  t.is(seen.size, expected.length, `${expected.length} frames`);
  const wrong = [...seen].filter(([seq, h]) => expected[seq] !== h).map(([seq]) => seq);
  t.deepEqual(wrong, [], 'every packet has the pixels of its own frame');
  // Only the first few frames (one per frame in flight) need a buffer of their own.
  t.log(`${reused} of ${seen.size} frames pulled into a recycled buffer`);
  t.true(reused >= seen.size - 10, `${reused} of ${seen.size} frames reused a buffer`);
});

test('two pipelines on one source each get every frame with its own pixels', async (t) => {
  const file = media('vtest.avi');
  const g = graph(`
sources:
  plaza: { uri: "file://${file}", width: 208, height: 156 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  a: { source: plaza, stages: [{ id: detect, use: detect, with: { model: people } }] }
  b: { source: plaza, stages: [{ id: detect, use: detect, with: { model: people } }] }
`);
  const app = await startApp(g, testSettings(), { serve: false, log: memoryLogger() });
  const seen = { a: new Map<number, string>(), b: new Map<number, string>() };
  app.bus.on('packet').subscribe((p) => seen[p.pipeline as 'a' | 'b'].set(p.frame.seq, sha(p.frame.data)));
  await app.runtime.whenDone();
  const dropped = (await app.metrics.framesDropped.get()).values.reduce((n, v) => n + v.value, 0);
  await app.stop();
  t.is(dropped, 0);
  t.is(seen.a.size, 795);
  t.is(seen.b.size, 795, 'the second pipeline got every frame (its copy is made before the first transfers the original)');
  t.deepEqual([...seen.b].filter(([seq, h]) => seen.a.get(seq) !== h), [], 'the same pixels in both');
});

test('the console\'s live view serves the frame its results belong to, while buffers are recycled', async (t) => {
  const file = media('vtest.avi');
  const port = await freePort();
  // A file runs as fast as the stages allow: a frame's buffer is pulled into again within milliseconds of its packet.
  const g = graph(`
sources:
  plaza: { uri: "file://${file}", width: 208, height: 156 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  plaza: { source: plaza, stages: [{ id: detect, use: detect, with: { model: people } }] }
transports:
  console: { port: ${port} }
`);
  const frames = await decodedFrames(file, 208, 156, (rgb) => new Uint8Array(rgb));
  const app = await startApp(g, testSettings(), { log: memoryLogger() });
  let after = 0;
  const checked: number[] = [];
  try {
    for (;;) {
      const r = await fetch(`http://127.0.0.1:${port}/api/live/plaza?after=${after}&wait=3000`);
      if (r.status === 204) break; // the file has ended
      t.is(r.status, 200);
      const body = Buffer.from(await r.arrayBuffer());
      const head = JSON.parse(body.subarray(4, 4 + body.readUInt32LE(0)).toString()) as { n: number; seq: number; image: { width: number } | null };
      after = head.n;
      t.truthy(head.image, `packet ${head.n} has an image`);
      const img = await decodeImage(body.subarray(4 + body.readUInt32LE(0)), Number.MAX_SAFE_INTEGER);
      // The served image is closest to its own frame among its neighbours.
      const distance = (seq: number): number => meanDifference(img.rgb, frames[seq]);
      const near = [-3, -2, -1, 0, 1, 2, 3].map((d) => head.seq + d).filter((s) => frames[s]);
      const best = near.reduce((a, b) => (distance(b) < distance(a) ? b : a));
      t.is(best, head.seq, `packet ${head.n} (frame ${head.seq}) shows frame ${best}`);
      checked.push(head.seq);
    }
  } finally {
    await app.stop();
  }
  t.log(`${checked.length} live frames checked`);
  t.true(checked.length >= 10, `${checked.length} live frames checked`);
});

function meanDifference(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

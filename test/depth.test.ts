/**
 * FastDepth on real photos through the worker pool, checked as its manifest entry was verified: metric
 * metres, the persons in two_people.jpg nearer than the wall behind them with the gap between them the
 * farthest region, the player in messi5.jpg nearer than the stands. Also the depth stage in a running
 * graph, and point-cloud fusion of metric and of relative inverse depth.
 */
import { WORKER_OPS } from '../app/catalog.js';
import test from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startApp } from '../app/app.js';
import type { DepthMap, Packet } from '../core/types.js';
import { InferencePool } from '../inference/pool.js';
import type { BusEvents } from '../core/events.js';
import { NodeIO, Primitive } from '@gltf-transform/core';
import type { DepthImageResult } from '../inference/ops/depth.protocol.js';
import { alignedDepths, fuseViews } from '../inference/image/point-cloud.js';
import { registerPair } from '../inference/image/register-views.js';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { graph, media, memoryLogger, testSettings } from './helpers.js';

const MODEL = { path: path.resolve('models/depth_estimation_fastdepth_224x224.onnx'), kind: 'fastdepth' };
const pool = new InferencePool({ workers: 1, ortThreads: 2, ops: WORKER_OPS });
test.after.always(() => pool.close());

async function depthOf(name: string | Buffer, maxSide = 504): Promise<DepthImageResult> {
  const bytes = typeof name === 'string' ? readFileSync(media(name)) : name;
  const image = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return pool.run<DepthImageResult>({ op: 'depth-image', model: MODEL, image, maxSide, maxPixels: 50_000_000 }, [image]);
}

/** Mean depth over a region given in fractions of the image ([x1, y1, x2, y2] in 0..1). */
function regionMean(d: DepthMap, [x1, y1, x2, y2]: [number, number, number, number]): number {
  const v = new Float32Array(d.data);
  let sum = 0;
  let n = 0;
  for (let y = Math.floor(y1 * d.height); y < Math.ceil(y2 * d.height); y++) {
    for (let x = Math.floor(x1 * d.width); x < Math.ceil(x2 * d.width); x++) { sum += v[y * d.width + x]; n++; }
  }
  return sum / n;
}

test('FastDepth gives metric depth, 224x224, over the whole image', async (t) => {
  const { view, inferenceMs } = await depthOf('messi5.jpg');
  t.is(view.depth.kind, 'metric');
  t.deepEqual([view.depth.width, view.depth.height], [224, 224]);
  // The image is scaled to the processing size (longer side 504, aspect kept: 548x342 → 504x315).
  t.deepEqual([view.width, view.height], [504, 315]);
  t.is(view.rgb.byteLength, 504 * 315 * 3);
  const v = new Float32Array(view.depth.data);
  const min = v.reduce((a, b) => Math.min(a, b));
  const max = v.reduce((a, b) => Math.max(a, b));
  // Metres, non-negative (final ReLU); NYU-indoor scale even on this out-of-domain stadium (manifest: about 1–3.5 m).
  t.true(min > 0.3 && max < 10, `depth range ${min}..${max} m`);
  t.true(inferenceMs > 0);
  t.log(`messi5: depth ${min.toFixed(2)}..${max.toFixed(2)} m, inference ${inferenceMs.toFixed(1)} ms`);
});

test('messi5.jpg: the player is nearer than the stands behind him', async (t) => {
  const { view } = await depthOf('messi5.jpg');
  const torso = regionMean(view.depth, [0.32, 0.38, 0.52, 0.65]); // shirt and shorts
  const stands = regionMean(view.depth, [0.3, 0.0, 0.8, 0.18]); // crowd above his head
  t.log(`torso ${torso.toFixed(2)} m, stands ${stands.toFixed(2)} m`);
  t.true(torso + 0.5 < stands);
});

test('two_people.jpg: both persons nearer than the wall, the gap between them the farthest region', async (t) => {
  const { view } = await depthOf('two_people.jpg');
  const d = view.depth;
  const obama = regionMean(d, [0.05, 0.55, 0.22, 0.85]);
  const biden = regionMean(d, [0.58, 0.55, 0.85, 0.85]);
  const gap = regionMean(d, [0.46, 0.05, 0.56, 0.4]);
  const wall = regionMean(d, [0.9, 0.05, 1.0, 0.35]);
  t.log(`Obama ${obama.toFixed(2)} m, Biden ${biden.toFixed(2)} m, gap ${gap.toFixed(2)} m, wall ${wall.toFixed(2)} m`);
  for (const person of [obama, biden]) { t.true(person < wall); t.true(person + 0.5 < gap); }
  // The farthest cell of an 8x8 grid lies in the gap's columns.
  let best = { mean: -Infinity, gx: 0 };
  for (let gy = 0; gy < 8; gy++) {
    for (let gx = 0; gx < 8; gx++) {
      const mean = regionMean(d, [gx / 8, gy / 8, (gx + 1) / 8, (gy + 1) / 8]);
      if (mean > best.mean) best = { mean, gx };
    }
  }
  t.true(best.gx === 3 || best.gx === 4, `farthest cell in column ${best.gx}`);
});

test('fusion: metric depth is back-projected as it is; relative inverse depth is aligned between views', async (t) => {
  const { view } = await depthOf('messi5.jpg', 128);
  const rgb = new Uint8Array(view.rgb);
  const metric = fuseViews([{ ...view, rgb, name: 'a' }], { fovDeg: 60, maxPoints: 1e9, relativeRange: 10 });
  t.is(metric[0].positions.length / 3, view.width * view.height);
  // The centre pixel's point lies on the optical axis at the depth the model gave (−Z forward).
  const d = new Float32Array(view.depth.data);
  const zs = metric[0].positions.filter((_, i) => i % 3 === 2);
  t.true(Math.abs(-Math.max(...zs) - Math.min(...d)) < 0.05 && Math.abs(-Math.min(...zs) - Math.max(...d)) < 0.05);

  // The same map as relative inverse depth, twice, the second scaled and shifted: both views must come out equal,
  // with near things (large disparity) near.
  const inv = d.map((z) => 1 / z);
  const depthA: DepthMap = { ...view.depth, data: inv.slice().buffer, kind: 'inverse-relative' };
  const depthB: DepthMap = { ...view.depth, data: inv.map((x) => 7 * x + 3).buffer, kind: 'inverse-relative' };
  const [a, b] = fuseViews([{ ...view, rgb, name: 'a', depth: depthA }, { ...view, rgb, name: 'b', depth: depthB }],
    { fovDeg: 60, maxPoints: 1e9, relativeRange: 10 });
  t.is(a.positions.length, b.positions.length);
  let maxDiff = 0;
  for (let i = 0; i < a.positions.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.positions[i] - b.positions[i]));
  t.true(maxDiff < 1e-3, `views differ by ${maxDiff}`);
  const nearest = Math.min(...a.positions.filter((_, i) => i % 3 === 2).map((z) => -z));
  t.true(nearest > 0.2 && nearest <= 1.01, `nearest point at ${nearest}`);

  // At most maxPoints, split between the views.
  const capped = fuseViews([{ ...view, rgb, name: 'a' }, { ...view, rgb, name: 'b' }], { fovDeg: 60, maxPoints: 5000, relativeRange: 10 });
  t.is(capped.reduce((s, c) => s + c.positions.length / 3, 0), 5000);
  t.true(capped.every((c) => c.positions.length > 0));
});

test('the depth stage adds a depth map to every packet of a running graph', async (t) => {
  const app = await startApp(graph(`
sources:
  pattern: { uri: "test://ball", width: 320, height: 240, fps: 10 }
models:
  depth: { file: depth_estimation_fastdepth_224x224.onnx, kind: fastdepth }
pipelines:
  pattern:
    source: pattern
    stages: [{ id: depth, use: depth, with: { model: depth, every: 2 } }]
`), testSettings({ workers: 1 }), { serve: false, log: memoryLogger() });
  const packets: Packet[] = [];
  const frameBytes: number[] = [];
  // A live source: take the first six packets that passed the stage, then stop. The frame's size is read in the
  // handler: its buffer is the source's again once the packet is published.
  await new Promise<void>((resolve) => app.bus.on('packet').subscribe((p) => {
    frameBytes.push(p.frame.data.byteLength);
    if (packets.push(p) === 6) resolve();
  }));
  await app.stop();
  for (const [i, p] of packets.entries()) {
    t.falsy(p.errors);
    if (p.frame.seq % 2 === 0) {
      t.deepEqual([p.depth?.width, p.depth?.height, p.depth?.kind], [224, 224, 'metric']);
      t.is(p.depth!.data.byteLength, 224 * 224 * 4);
      t.is(frameBytes[i], 320 * 240 * 3);
    } else {
      t.is(p.depth, undefined);
    }
  }
});

test('a graph refuses a depth stage on a model of another kind', (t) => {
  const err = t.throws(() => graph(`
sources: { s: { uri: "test://ball" } }
models: { people: { file: yolox_nano.onnx, kind: yolox } }
pipelines: { p: { source: s, stages: [{ use: depth, with: { model: people } }] } }
`));
  t.regex(err!.message, /model "people" is of kind "yolox"; depth needs one of fastdepth, midas, depth-anything/);
});

test('the reconstruct stage turns a camera\'s frames and depth into a GLB point cloud', async (t) => {
  const app = await startApp(graph(`
sources:
  plaza: { uri: "file://${media('vtest.avi')}", width: 384, height: 288 }
models:
  depth: { file: depth_estimation_fastdepth_224x224.onnx, kind: fastdepth }
pipelines:
  plaza:
    source: plaza
    stages:
      - { id: depth, use: depth, with: { model: depth, every: 20 } }
      - { id: reconstruct, use: reconstruct, with: { every: 2, views: 3, maxPoints: 30000, intervalSeconds: 0 } }
`), testSettings({ workers: 1 }), { serve: false, log: memoryLogger() });
  const models: BusEvents['reconstruction.model'][] = [];
  app.bus.on('reconstruction.model').subscribe((m) => models.push(m));
  try {
    await app.runtime.whenDone();
    // Let the last model being built finish.
    while (models.length === 0) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await app.stop();
  }
  const last = models.at(-1)!;
  t.like(last, { pipeline: 'plaza', source: 'plaza' });
  t.true(last.numFrames >= 1 && last.numFrames <= 3);
  t.true(last.numPoints <= 30000 && last.numPoints > 0);
  const doc = await new NodeIO().read(last.path);
  const prims = doc.getRoot().listMeshes().flatMap((m) => m.listPrimitives());
  t.is(prims.length, last.numFrames);
  t.true(prims.every((p) => p.getMode() === Primitive.Mode.POINTS && p.getAttribute('COLOR_0') !== null));
  t.is(prims.reduce((n, p) => n + p.getAttribute('POSITION')!.getCount(), 0), last.numPoints);
  t.log(`${models.length} models; the last: ${last.numFrames} views, ${last.numPoints} points, ${last.glbSizeBytes} bytes`);
});

/** A w×h window of a photo, from x0, as PNG: what a camera panning across the scene would see. */
async function crop(name: string, x0: number, w: number, h: number): Promise<Buffer> {
  const img = await loadImage(readFileSync(media(name)));
  const c = createCanvas(w, h);
  c.getContext('2d').drawImage(img, x0, 0, w, h, 0, 0, w, h);
  return c.toBuffer('image/png');
}

test('views that overlap are turned by the rotation between them; unrelated ones are not', async (t) => {
  // two_people.jpg is 1126x661: two 600x460 windows 160 px apart, processed at 300 px wide (so 80 px apart).
  const [a, b] = await Promise.all([crop('two_people.jpg', 100, 600, 460), crop('two_people.jpg', 260, 600, 460)]);
  const [va, vb] = await Promise.all([depthOf(a, 300), depthOf(b, 300)]);
  const viewA = { ...va.view, rgb: new Uint8Array(va.view.rgb), name: 'a' };
  const viewB = { ...vb.view, rgb: new Uint8Array(vb.view.rgb), name: 'b' };
  const shift = registerPair(viewA, viewB);
  t.truthy(shift);
  t.log(`shift ${shift!.dx.toFixed(1)}, ${shift!.dy.toFixed(1)} px (expected 80, 0), correlation ${shift!.score.toFixed(3)}`);
  t.true(Math.abs(shift!.dx - 80) <= 2 && Math.abs(shift!.dy) <= 2);

  const [ca, cb] = fuseViews([viewA, viewB], { fovDeg: 60, maxPoints: 1e9, relativeRange: 10 });
  t.is(ca.yaw, 0);
  const f = 150 / Math.tan(Math.PI / 6);
  t.true(Math.abs(cb.yaw + Math.atan(80 / f)) < 0.01, `yaw ${cb.yaw}`);
  t.true(cb.registration! > 0.75);
  // The same scene point seen by both lands in about the same direction: B's centre column and A's column 80 px right of centre.
  const direction = (c: typeof ca, col: number, w: number) => {
    const angles: number[] = [];
    for (let i = 0; i < c.positions.length / 3; i++) {
      if (i % w !== col) continue;
      angles.push(Math.atan2(c.positions[3 * i], -c.positions[3 * i + 2]));
    }
    return angles.reduce((s, x) => s + x, 0) / angles.length;
  };
  const w = viewA.width;
  t.true(Math.abs(direction(ca, w / 2 + 80, w) - direction(cb, w / 2, w)) < 0.01);

  // Depth is aligned on the overlap: metric by one scale, relative inverse depth (here B's disparity scaled
  // and shifted as a relative model may give it) by scale and shift.
  const [W, H] = [viewA.width, viewA.height];
  const overlapDiff = (za: Float32Array, zb: Float32Array) => {
    const d: number[] = [];
    for (let y = 0; y < H; y += 2) for (let x = 0; x < W - 80; x += 2) d.push(Math.abs(zb[y * W + x] - za[y * W + x + 80]) / za[y * W + x + 80]);
    return d.sort((p, q) => p - q)[Math.floor(d.length / 2)];
  };
  const metricZ = alignedDepths([viewA, viewB], 10, [null, shift]);
  const inverse = (v: typeof viewA, s: number, o: number) => ({ ...v, depth: { ...v.depth, kind: 'inverse-relative' as const, data: new Float32Array(v.depth.data).map((z) => s / z + o).buffer } });
  const relA = inverse(viewA, 1, 0);
  const relB = inverse(viewB, 7, 3);
  const relZ = alignedDepths([relA, relB], 10, [null, shift]);
  const statsZ = alignedDepths([relA, relB], 10, [null, null]);
  const [dm, dr, ds] = [overlapDiff(metricZ[0], metricZ[1]), overlapDiff(relZ[0], relZ[1]), overlapDiff(statsZ[0], statsZ[1])];
  t.log(`median depth difference on the overlap: metric ${(100 * dm).toFixed(1)} %, relative ${(100 * dr).toFixed(1)} % (by statistics alone ${(100 * ds).toFixed(1)} %)`);
  // The two crops went through the model separately, so their depths differ a little to begin with.
  t.true(dm < 0.1 && dr < 0.15);
  t.true(dr < ds);

  // Different photos of the same size do not correlate: no rotation is made up.
  const [m, p] = await Promise.all([crop('messi5.jpg', 0, 500, 340), crop('two_people.jpg', 0, 500, 340)]);
  const [vm, vp] = await Promise.all([depthOf(m, 250), depthOf(p, 250)]);
  const unrelated = registerPair({ ...vm.view, rgb: new Uint8Array(vm.view.rgb) }, { ...vp.view, rgb: new Uint8Array(vp.view.rgb) });
  t.is(unrelated, null);
});

import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import type { Box, Detection } from '../core/types.js';
import { COCO_CLASSES, classIdOf } from '../inference/models/coco-classes.js';
import { iou } from '../core/geometry.js';
import { nms } from '../inference/models/nms.js';
import { decodeYolox, letterbox, YOLOX_INPUT, YOLOX_NMS_IOU, YOLOX_SCORE_THRESHOLD, yoloxColumns, yoloxInputSize } from '../inference/models/yolox.js';
import { decodeImage } from '../inference/image/decode.js';
import { withFreeInputSize } from '../inference/models/onnx-input-size.js';
import { detect as detectOp } from '../inference/ops/detect.js';
import { columnsTensor, fixedInputSize, getSession as workerSession, selectsColumns } from '../inference/sessions.js';
import { COLUMNS_INPUT, withOutputColumns } from '../inference/models/onnx-output-columns.js';
import { prng } from './prng.js';
import { videoFrames } from './video-frames.js';

const MODEL_DIR = path.resolve(process.cwd(), process.env.SIGHTLINE_MODEL_DIR ?? 'models');
const MEDIA_DIR = path.resolve(process.cwd(), process.env.SIGHTLINE_MEDIA_DIR ?? 'media');

// ---------- helpers ----------

/** Packed RGB image where every pixel has the same colour. */
function solidRgb(width: number, height: number, [r, g, b]: [number, number, number]): Uint8Array {
  const px = new Uint8Array(width * height * 3);
  for (let i = 0; i < px.length; i += 3) {
    px[i] = r;
    px[i + 1] = g;
    px[i + 2] = b;
  }
  return px;
}

/** Value of channel plane `c` (0=B, 1=G, 2=R) at (x, y) of a size×size NCHW tensor. */
function at(t: Float32Array, size: number, c: number, x: number, y: number): number {
  return t[c * size * size + y * size + x];
}

const ROWS_416 = 52 * 52 + 26 * 26 + 13 * 13;

/** A zeroed [3549,85] output with one row set; `row` indexes the concatenated stride 8/16/32 grids. */
function fakeOutput(entries: { row: number; t: [number, number, number, number]; obj: number; probs: Record<number, number> }[]): Float32Array {
  const out = new Float32Array(ROWS_416 * 85);
  for (const { row, t, obj, probs } of entries) {
    out.set([...t, obj], row * 85);
    for (const [c, p] of Object.entries(probs)) out[row * 85 + 5 + Number(c)] = p;
  }
  return out;
}

function det(box: Box, score: number, classId: number): Detection {
  return { box, score, classId, label: COCO_CLASSES[classId] };
}

// ---------- classes ----------

test('COCO_CLASSES is the standard 80-class list', (t) => {
  t.is(COCO_CLASSES.length, 80);
  t.is(COCO_CLASSES[0], 'person');
  t.is(COCO_CLASSES[32], 'sports ball');
  t.is(COCO_CLASSES[79], 'toothbrush');
  t.is(classIdOf('tie'), 27);
  t.is(classIdOf('unicorn'), -1);
});

// ---------- iou / nms ----------

test('iou of known boxes', (t) => {
  t.is(iou([0, 0, 10, 10], [0, 0, 10, 10]), 1);
  t.is(iou([0, 0, 10, 10], [5, 0, 15, 10]), 50 / 150);
  t.is(iou([0, 0, 10, 10], [5, 5, 15, 15]), 25 / 175);
  t.is(iou([0, 0, 10, 10], [2, 2, 4, 4]), 4 / 100);
  t.is(iou([0, 0, 10, 10], [10, 0, 20, 10]), 0, 'touching edges do not overlap');
  t.is(iou([0, 0, 10, 10], [20, 20, 30, 30]), 0);
  t.is(iou([0, 0, 0, 0], [0, 0, 0, 0]), 0, 'empty boxes do not divide by zero');
});

test('nms keeps the best of overlapping same-class boxes, sorted by score', (t) => {
  const kept = nms(
    [det([1, 1, 11, 11], 0.7, 0), det([50, 50, 60, 60], 0.5, 0), det([0, 0, 10, 10], 0.9, 0), det([2, 0, 12, 10], 0.8, 0)],
    0.45,
  );
  t.deepEqual(kept.map((d) => d.score), [0.9, 0.5]);
  t.deepEqual(kept[0].box, [0, 0, 10, 10]);
});

test('nms keeps overlapping boxes of different classes only when class-wise', (t) => {
  const dets = [det([0, 0, 10, 10], 0.6, 27), det([0, 0, 10, 10], 0.9, 0), det([1, 0, 10, 10], 0.8, 0)];
  t.deepEqual(nms(dets, 0.45).map((d) => [d.classId, d.score]), [[0, 0.9], [27, 0.6]]);
  t.deepEqual(nms(dets, 0.45, false).map((d) => [d.classId, d.score]), [[0, 0.9]]);
  t.is(dets.length, 3, 'input is not mutated');
});

test('nms suppresses only above the IoU threshold', (t) => {
  const dets = [det([0, 0, 10, 10], 0.9, 0), det([5, 0, 15, 10], 0.8, 0)]; // IoU = 1/3
  t.is(nms(dets, 0.5).length, 2);
  t.is(nms(dets, 0.3).length, 1);
  t.deepEqual(nms([], 0.45), []);
});

// ---------- letterbox ----------

test('letterbox of a wide image: BGR planes, 114 padding at the bottom, scale', (t) => {
  const { tensor, scale } = letterbox(solidRgb(832, 416, [10, 20, 30]), 832, 416);
  t.is(tensor.length, 3 * YOLOX_INPUT * YOLOX_INPUT);
  t.is(scale, 0.5);
  // Image occupies rows 0..207 (416*0.5 = 208), all 416 columns.
  for (const [x, y] of [[0, 0], [415, 0], [200, 207]]) {
    t.deepEqual([0, 1, 2].map((c) => at(tensor, 416, c, x, y)), [30, 20, 10], `pixel ${x},${y} is B,G,R`);
  }
  for (const [x, y] of [[0, 208], [415, 415], [100, 300]]) {
    t.deepEqual([0, 1, 2].map((c) => at(tensor, 416, c, x, y)), [114, 114, 114], `pad ${x},${y}`);
  }
});

test('letterbox of a tall image pads on the right; small size and upscaling work', (t) => {
  const { tensor, scale } = letterbox(solidRgb(2, 4, [200, 100, 50]), 2, 4, 8);
  t.is(scale, 2);
  t.is(tensor.length, 3 * 64);
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      const expected = x < 4 ? [50, 100, 200] : [114, 114, 114];
      t.deepEqual([0, 1, 2].map((c) => at(tensor, 8, c, x, y)), expected, `pixel ${x},${y}`);
    }
  }
});

test('letterbox at scale 1 is an exact RGB→BGR CHW copy', (t) => {
  const w = 16;
  const rgb = new Uint8Array(w * w * 3).map((_, i) => (i * 37) % 256);
  const { tensor, scale } = letterbox(rgb, w, w, w);
  t.is(scale, 1);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * 3;
      t.deepEqual([0, 1, 2].map((c) => at(tensor, w, c, x, y)), [rgb[p + 2], rgb[p + 1], rgb[p]]);
    }
  }
});

test('letterbox 2× downscale averages each 2×2 block (OpenCV half-pixel mapping)', (t) => {
  // 4x2 image, size 2 → r = 0.5, output 2x1, bottom row padded.
  const grey = [0, 40, 80, 120, 20, 60, 100, 140];
  const rgb = new Uint8Array(grey.flatMap((v) => [v, v, v]));
  const { tensor, scale } = letterbox(rgb, 4, 2, 2);
  t.is(scale, 0.5);
  t.is(at(tensor, 2, 0, 0, 0), (0 + 40 + 20 + 60) / 4);
  t.is(at(tensor, 2, 2, 1, 0), (80 + 120 + 100 + 140) / 4);
  t.is(at(tensor, 2, 1, 0, 1), 114);
});

test('letterbox reuses the out buffer and overwrites stale data', (t) => {
  const out = new Float32Array(3 * 416 * 416).fill(-1);
  const first = letterbox(solidRgb(640, 480, [1, 2, 3]), 640, 480, 416, out);
  t.is(first.tensor, out);
  t.false(out.includes(-1));
  const fresh = letterbox(solidRgb(300, 500, [9, 8, 7]), 300, 500);
  letterbox(solidRgb(300, 500, [9, 8, 7]), 300, 500, 416, out);
  t.deepEqual(out, fresh.tensor, 'a reused buffer matches a fresh one for a different aspect ratio');
});

test('letterbox rejects bad input', (t) => {
  t.throws(() => letterbox(new Uint8Array(10), 4, 4), { instanceOf: RangeError });
  t.throws(() => letterbox(solidRgb(4, 4, [0, 0, 0]), 4, 4, 416, new Float32Array(5)), { instanceOf: RangeError });
  t.throws(() => letterbox(solidRgb(4, 4, [0, 0, 0]), 0, 4), { instanceOf: RangeError });
});

// ---------- decode (synthetic) ----------

test('decodeYolox maps grid rows back to clipped source boxes', (t) => {
  // Row 52*5+10 = stride-8 cell (gx=10, gy=5); row 2704+26*3+4 = stride-16 cell (gx=4, gy=3).
  const output = fakeOutput([
    { row: 52 * 5 + 10, t: [0.5, 0.5, Math.log(4), Math.log(2)], obj: 0.9, probs: { 0: 1 } },
    { row: 2704 + 26 * 3 + 4, t: [0, 0, Math.log(2), Math.log(2)], obj: 0.8, probs: { 32: 0.5 } },
  ]);
  const dets = decodeYolox(output, { scoreThreshold: 0.3, nmsIou: 0.45, width: 200, height: 200, scale: 0.5 });
  t.is(dets.length, 2);
  // Person: cx=(10.5*8)=84, cy=44, w=32, h=16 in 416-space → /0.5 → [136,72,200,104].
  t.like(dets[0], { classId: 0, label: 'person' });
  t.true(Math.abs(dets[0].score - 0.9) < 1e-6);
  dets[0].box.forEach((v, i) => t.true(Math.abs(v - [136, 72, 200, 104][i]) < 1e-3, `person box ${dets[0].box}`));
  // Ball: cx=64, cy=48, w=h=32 → [96,64,160,128] in source, score 0.4.
  t.like(dets[1], { classId: 32, label: 'sports ball' });
  dets[1].box.forEach((v, i) => t.true(Math.abs(v - [96, 64, 160, 128][i]) < 1e-3, `ball box ${dets[1].box}`));

  const clipped = decodeYolox(output, { scoreThreshold: 0.3, nmsIou: 0.45, width: 150, height: 100, scale: 0.5 });
  t.deepEqual(clipped[0].box.map((v) => Math.round(v * 1000) / 1000), [136, 72, 150, 100]);
});

test('decodeYolox applies the score threshold to obj*p and honours classIds', (t) => {
  const output = fakeOutput([
    { row: 0, t: [0, 0, 0, 0], obj: 0.6, probs: { 0: 0.4, 2: 0.9 } }, // person 0.24 (<0.3), car 0.54
    { row: 3000, t: [0, 0, 0, 0], obj: 0.2, probs: { 0: 1 } }, // obj below threshold
  ]);
  const base = { scoreThreshold: 0.3, nmsIou: 0.45, width: 416, height: 416, scale: 1 };
  t.deepEqual(decodeYolox(output, base).map((d) => d.label), ['car']);
  t.deepEqual(decodeYolox(output, { ...base, classIds: new Set([0]) }), []);
  t.deepEqual(decodeYolox(output, { ...base, classIds: new Set([0]), scoreThreshold: 0.2 }).map((d) => d.label), ['person', 'person']);
  t.throws(() => decodeYolox(new Float32Array(85), base), { instanceOf: RangeError });
});

// ---------- real model ----------

let session: ort.InferenceSession | undefined;
async function getSession(): Promise<ort.InferenceSession> {
  const file = path.join(MODEL_DIR, 'yolox_nano.onnx');
  if (!existsSync(file)) throw new Error(`model not found: ${file} (set SIGHTLINE_MODEL_DIR)`);
  session ??= await ort.InferenceSession.create(file);
  return session;
}

/** Decode a photo to packed RGB with the server's own decoder (as frames and client images arrive). */
async function loadRgb(name: string): Promise<{ rgb: Uint8Array; width: number; height: number }> {
  return decodeImage(readFileSync(path.join(MEDIA_DIR, name)), Number.MAX_SAFE_INTEGER);
}

async function detect(name: string): Promise<{ dets: Detection[]; width: number; height: number }> {
  const { rgb, width, height } = await loadRgb(name);
  const { tensor, scale } = letterbox(rgb, width, height);
  const s = await getSession();
  const result = await s.run({ images: new ort.Tensor('float32', tensor, [1, 3, YOLOX_INPUT, YOLOX_INPUT]) });
  const output = result.output.data as Float32Array;
  const dets = decodeYolox(output, { scoreThreshold: YOLOX_SCORE_THRESHOLD, nmsIou: YOLOX_NMS_IOU, width, height, scale });
  return { dets, width, height };
}

function assertInside(t: { true(v: boolean, msg?: string): void }, d: Detection, width: number, height: number): void {
  const [x1, y1, x2, y2] = d.box;
  t.true(x1 >= 0 && y1 >= 0 && x2 <= width && y2 <= height && x2 > x1 && y2 > y1, `${d.label} box ${d.box} inside ${width}x${height}`);
}

test('yolox_nano on two_people.jpg finds exactly the two people', async (t) => {
  const { dets, width, height } = await detect('two_people.jpg');
  t.log(dets.map((d) => `${d.label} ${d.score.toFixed(3)} [${d.box.map(Math.round)}]`).join('\n'));
  const people = dets.filter((d) => d.label === 'person');
  t.is(people.length, 2);
  for (const p of people) {
    t.true(p.score >= 0.9, `person score ${p.score}`);
    assertInside(t, p, width, height);
  }
  const [left, right] = [...people].sort((a, b) => a.box[0] - b.box[0]);
  t.true((left.box[0] + left.box[2]) / 2 < width / 2, 'left person centred in the left half');
  t.true((right.box[0] + right.box[2]) / 2 > width / 2, 'right person centred in the right half');
  // Sorted by score desc.
  t.deepEqual(dets.map((d) => d.score), [...dets.map((d) => d.score)].sort((a, b) => b - a));
});

test('yolox_nano on messi5.jpg finds the player and the ball', async (t) => {
  const { dets, width, height } = await detect('messi5.jpg');
  t.log(dets.map((d) => `${d.label} ${d.score.toFixed(3)} [${d.box.map(Math.round)}]`).join('\n'));
  const person = dets.find((d) => d.label === 'person' && d.score >= 0.8);
  const ball = dets.find((d) => d.label === 'sports ball' && d.score >= 0.8);
  t.truthy(person, 'a person >= 0.8');
  t.truthy(ball, 'a sports ball >= 0.8');
  for (const d of dets) assertInside(t, d, width, height);
  if (person && ball) {
    const area = ([x1, y1, x2, y2]: Box) => (x2 - x1) * (y2 - y1);
    t.true(area(ball.box) < area(person.box) / 20, 'the ball is far smaller than the player');
  }
});

// ---------- free-size input ----------

test('yoloxInputSize: the frame at its own aspect, sides rounded up to the stride, never past the square', (t) => {
  t.deepEqual(yoloxInputSize(640, 360), { width: 416, height: 256 });
  t.deepEqual(yoloxInputSize(768, 576), { width: 416, height: 320 });
  t.deepEqual(yoloxInputSize(1920, 1080), { width: 416, height: 256 });
  t.deepEqual(yoloxInputSize(360, 640), { width: 256, height: 416 });
  t.deepEqual(yoloxInputSize(500, 500), { width: 416, height: 416 });
  t.deepEqual(yoloxInputSize(4000, 10), { width: 416, height: 32 });
});

test('letterbox into a free-size input: the image top-left, the rest of the input padded, nothing beyond it written', (t) => {
  const out = new Float32Array(3 * YOLOX_INPUT * YOLOX_INPUT).fill(-1);
  const r = letterbox(solidRgb(640, 360, [10, 20, 30]), 640, 360, YOLOX_INPUT, out, yoloxInputSize(640, 360));
  t.is(r.inputWidth, 416);
  t.is(r.inputHeight, 256);
  t.is(r.tensor.length, 3 * 416 * 256);
  const w = 416;
  const plane = 416 * 256;
  t.is(r.tensor[0], 30); // B plane, (0, 0)
  t.is(r.tensor[plane + 233 * w + 415], 20); // G, last image row (360 × 0.65 = 234 rows)
  t.is(r.tensor[2 * plane + 234 * w], 114); // R, first padding row
  t.is(r.tensor[3 * plane - 1], 114);
  t.is(out[3 * plane], -1);
});

test('the detector loads with a free-size input and finds the same objects as at its fixed 416×416', async (t) => {
  const model = { path: path.join(MODEL_DIR, 'yolox_nano.onnx'), kind: 'yolox' };
  const free = await workerSession(model, 1);
  t.is(fixedInputSize(free), null);
  t.deepEqual(fixedInputSize(await getSession()), [416, 416]);
  const frames = await videoFrames(path.join(MEDIA_DIR, 'vtest.avi'), 100, 100);
  const images = [{ name: 'vtest.avi frame 100', ...frames.get(100)! },
    ...await Promise.all(['two_people.jpg', 'messi5.jpg', 'coco_000000000077.jpg'].map(async (name) => ({ name, ...await loadRgb(name) })))];
  let compared = 0;
  for (const { name, rgb, width, height } of images) {
    const task = { op: 'detect' as const, model, width, height, data: rgb.slice().buffer, scoreThreshold: 0.3, nmsIou: YOLOX_NMS_IOU, classIds: null };
    const freeDets = (await detectOp(task, 1)).detections;
    const { tensor, scale } = letterbox(rgb, width, height);
    const fixedOut = (await (await getSession()).run({ images: new ort.Tensor('float32', tensor, [1, 3, 416, 416]) })).output.data as Float32Array;
    const fixedDets = decodeYolox(fixedOut, { scoreThreshold: 0.3, nmsIou: YOLOX_NMS_IOU, width, height, scale });
    t.log(`${name}: ${fixedDets.length} at 416×416, ${freeDets.length} at ${JSON.stringify(yoloxInputSize(width, height))}`);
    // Every confident detection of one is found by the other: same class, nearly the same box.
    for (const [a, b] of [[fixedDets, freeDets], [freeDets, fixedDets]]) {
      for (const d of a.filter((x) => x.score >= 0.5)) {
        const m = b.find((x) => x.classId === d.classId && iou(x.box, d.box) >= 0.8);
        t.truthy(m, `${name}: ${d.label} ${d.score.toFixed(2)} [${d.box.map(Math.round)}] has a match`);
        compared++;
      }
    }
  }
  t.true(compared >= 10, `${compared} detections compared`);
});

test('withFreeInputSize: never throws on bytes that are not a model, and refuses them', (t) => {
  const rand = prng(7);
  const model = new Uint8Array(readFileSync(path.join(MODEL_DIR, 'yolox_nano.onnx')));
  const inputs: Uint8Array[] = [new Uint8Array(0), Uint8Array.from([0x3a]), Uint8Array.from([0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), model.subarray(0, 1000)];
  for (let i = 0; i < 300; i++) {
    const n = Math.floor(rand() * 2000);
    inputs.push(Uint8Array.from({ length: n }, () => Math.floor(rand() * 256)));
    // The real model with a few bytes changed: must either rewrite or refuse.
    const m = model.slice(0, 20000);
    for (let k = 0; k < 4; k++) m[Math.floor(rand() * m.length)] = Math.floor(rand() * 256);
    inputs.push(m);
  }
  for (const bytes of inputs) t.notThrows(() => withFreeInputSize(bytes));
  t.is(withFreeInputSize(new Uint8Array(0)), null);
  t.is(withFreeInputSize(Uint8Array.from({ length: 64 }, (_, i) => i)), null);
  t.truthy(withFreeInputSize(model));
});

test('withOutputColumns: never throws on bytes that are not a model, refuses them, and refuses to select twice', (t) => {
  const rand = prng(11);
  const model = new Uint8Array(readFileSync(path.join(MODEL_DIR, 'yolox_nano.onnx')));
  const inputs: Uint8Array[] = [new Uint8Array(0), Uint8Array.from([0x3a]), model.subarray(0, 1000)];
  for (let i = 0; i < 300; i++) {
    inputs.push(Uint8Array.from({ length: Math.floor(rand() * 2000) }, () => Math.floor(rand() * 256)));
    const m = model.slice(0, 20000);
    for (let k = 0; k < 4; k++) m[Math.floor(rand() * m.length)] = Math.floor(rand() * 256);
    inputs.push(m);
  }
  for (const bytes of inputs) t.notThrows(() => withOutputColumns(bytes));
  t.is(withOutputColumns(new Uint8Array(0)), null);
  const once = withOutputColumns(model);
  t.truthy(once);
  t.is(withOutputColumns(once!), null);
});

test('the loaded detector answers only the columns asked for, and finds exactly what the full output finds', async (t) => {
  const model = { path: path.join(MODEL_DIR, 'yolox_nano.onnx'), kind: 'yolox' };
  const selecting = await workerSession(model, 1);
  t.true(selectsColumns(selecting));
  // The same model with its whole output (free size only), for reference.
  const full = await ort.InferenceSession.create(withFreeInputSize(readFileSync(model.path))!);
  t.false(selectsColumns(full));
  const frames = await videoFrames(path.join(MEDIA_DIR, 'vtest.avi'), 200, 200);
  const images = [{ name: 'vtest.avi frame 200', ...frames.get(200)! },
    ...await Promise.all(['two_people.jpg', 'messi5.jpg', 'coco_000000000077.jpg'].map(async (name) => ({ name, ...await loadRgb(name) })))];
  let found = 0;
  for (const { name, rgb, width, height } of images) {
    const size = yoloxInputSize(width, height);
    const { tensor, scale } = letterbox(rgb, width, height, YOLOX_INPUT, undefined, size);
    const input = new ort.Tensor('float32', tensor, [1, 3, size.height, size.width]);
    const whole = (await full.run({ [full.inputNames[0]]: input }))[full.outputNames[0]];
    const opts = { scoreThreshold: 0.3, nmsIou: YOLOX_NMS_IOU, width, height, scale, inputWidth: size.width, inputHeight: size.height };
    for (const classIds of [[0], [32, 0], null]) {
      const columns = yoloxColumns(classIds);
      const out = (await selecting.run({ [selecting.inputNames[0]]: input, [COLUMNS_INPUT]: columnsTensor(columns.indices) }))[selecting.outputNames[0]];
      const anchors = whole.dims[1];
      t.deepEqual(out.dims, [1, anchors, columns.indices.length], `${name}, classes ${JSON.stringify(classIds)}: the output's shape`);
      const wanted = classIds ? new Set(classIds) : null;
      const expected = decodeYolox(whole.data as Float32Array, { ...opts, classIds: wanted });
      const got = decodeYolox(out.data as Float32Array, { ...opts, classIds: wanted, scoreColumns: columns.classIds });
      t.deepEqual(got, expected, `${name}, classes ${JSON.stringify(classIds)}: the same detections`);
      // The worker's op, as the detect stage calls it, gives them too.
      const task = { op: 'detect' as const, model, width, height, data: rgb.slice().buffer, scoreThreshold: 0.3, nmsIou: YOLOX_NMS_IOU, classIds };
      t.deepEqual((await detectOp(task, 1)).detections, expected);
      found += expected.length;
    }
  }
  t.true(found >= 10, `${found} detections compared`);
});

test('decodeYolox reads the score columns a selecting model returns', (t) => {
  // One anchor at stride 8 of a 32×32 input (16 + 4 + 1 = 21 rows), columns: box, obj, sports ball (32), person (0).
  const rows = 21;
  const output = new Float32Array(rows * 7);
  output.set([0.5, 0.5, 0, 0, 0.9, 0.1, 0.8], 0);
  const base = { scoreThreshold: 0.3, nmsIou: 0.45, width: 32, height: 32, scale: 1, inputWidth: 32, inputHeight: 32, scoreColumns: [32, 0] };
  t.deepEqual(decodeYolox(output, base).map((d) => d.label), ['person']);
  t.deepEqual(decodeYolox(output, { ...base, classIds: new Set([32]) }), []);
  t.deepEqual(decodeYolox(output, { ...base, classIds: new Set([2]) }), [], 'a class with no column is not decoded');
  t.throws(() => decodeYolox(output, { ...base, scoreColumns: [0] }), { instanceOf: RangeError });
});

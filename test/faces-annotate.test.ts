import test, { type ExecutionContext } from 'ava';
import path from 'node:path';
import { createCanvas, GlobalFonts, loadImage } from '@napi-rs/canvas';
import type { Box } from '../core/types.js';
import type { ModelRef } from '../core/types.js';
import type { AnnotateTask } from '../inference/ops/annotate.protocol.js';
import { annotate } from '../inference/ops/annotate.js';
import type { FacesTask } from '../inference/ops/faces.protocol.js';
import { cropRegion, detectFaces } from '../inference/ops/faces.js';
import { decodeYunet, yunetInput, YUNET_SCORE_THRESHOLD, type Face } from '../inference/models/yunet.js';

const MODEL_DIR = path.resolve(process.cwd(), process.env.SIGHTLINE_MODEL_DIR ?? 'models');
const MEDIA_DIR = path.resolve(process.cwd(), process.env.SIGHTLINE_MEDIA_DIR ?? 'media');
const YUNET: ModelRef = { path: path.join(MODEL_DIR, 'face_detection_yunet_2023mar_dynamic.onnx'), kind: 'yunet' };

// ---------- helpers ----------

interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** Decode a photo to packed RGB the way a frame arrives from GStreamer, optionally stretched to a size. */
async function loadRgb(name: string, size?: { width: number; height: number }): Promise<RgbImage> {
  const image = await loadImage(path.join(MEDIA_DIR, name));
  const { width, height } = size ?? image;
  const ctx = createCanvas(width, height).getContext('2d');
  ctx.drawImage(image, 0, 0, width, height);
  return { rgb: rgbaToRgb(ctx.getImageData(0, 0, width, height).data), width, height };
}

function rgbaToRgb(rgba: Uint8ClampedArray): Uint8Array {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) rgb.set([rgba[i], rgba[i + 1], rgba[i + 2]], j);
  return rgb;
}

/** Decode a JPEG back to RGB pixels. */
async function decodeJpeg(jpeg: ArrayBuffer): Promise<RgbImage> {
  const image = await loadImage(Buffer.from(jpeg));
  const ctx = createCanvas(image.width, image.height).getContext('2d');
  ctx.drawImage(image, 0, 0);
  return { rgb: rgbaToRgb(ctx.getImageData(0, 0, image.width, image.height).data), width: image.width, height: image.height };
}

function pixel(img: RgbImage, x: number, y: number): [number, number, number] {
  const p = (y * img.width + x) * 3;
  return [img.rgb[p], img.rgb[p + 1], img.rgb[p + 2]];
}

/** Packed RGB where pixel (x, y) has every channel set by `f`. */
function patternRgb(width: number, height: number, f: (x: number, y: number, c: number) => number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) rgb[(y * width + x) * 3 + c] = f(x, y, c);
  return rgb;
}

/** Value of plane `c` (0=B, 1=G, 2=R) at (x, y) of an NCHW tensor `w` wide and `h` high. */
function at(t: Float32Array, w: number, h: number, c: number, x: number, y: number): number {
  return t[c * w * h + y * w + x];
}

function near(t: ExecutionContext, actual: number, expected: number, tol: number, what: string): void {
  t.true(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected} ±${tol}`);
}

async function faces(name: string, maxSide = 640): Promise<{ faces: Face[]; width: number; height: number }> {
  const { rgb, width, height } = await loadRgb(name);
  const task: FacesTask = { op: 'faces', model: YUNET, width, height, data: rgb.buffer as ArrayBuffer, scoreThreshold: YUNET_SCORE_THRESHOLD, maxSide };
  const result = await detectFaces(task, 1);
  return { faces: result.faces, width, height };
}

function describe(f: Face): string {
  return `${f.score.toFixed(3)} [${f.box.map(Math.round)}] ${f.landmarks.map((p) => p.map(Math.round).join(',')).join(' ')}`;
}

/** Box inside the frame, landmarks inside the box and in YuNet's order (subject's right = image left). */
function assertFace(t: ExecutionContext, f: Face, width: number, height: number): void {
  const [x1, y1, x2, y2] = f.box;
  t.true(x1 >= 0 && y1 >= 0 && x2 <= width && y2 <= height && x2 > x1 && y2 > y1, `box ${f.box} inside ${width}x${height}`);
  t.is(f.landmarks.length, 5);
  for (const [x, y] of f.landmarks) t.true(x >= x1 && x <= x2 && y >= y1 && y <= y2, `landmark ${x},${y} inside ${f.box}`);
  const [rEye, lEye, nose, rMouth, lMouth] = f.landmarks;
  t.true(rEye[0] < lEye[0], 'right eye is left of the left eye on the image');
  t.true(rMouth[0] < lMouth[0], 'right mouth corner is left of the left one on the image');
  t.true(Math.max(rEye[1], lEye[1]) < nose[1] && nose[1] < Math.min(rMouth[1], lMouth[1]), 'eyes above nose above mouth');
  t.true(nose[0] > rEye[0] && nose[0] < lEye[0], 'nose between the eyes horizontally');
}

// ---------- yunetInput ----------

test('yunetInput at scale 1 is an exact RGB→BGR CHW copy with zero padding to multiples of 32', (t) => {
  const rgb = patternRgb(40, 20, (x, y, c) => (x * 7 + y * 13 + c * 50) % 256);
  const { tensor, inputW, inputH, scale } = yunetInput(rgb, 40, 20);
  t.deepEqual([inputW, inputH, scale], [64, 32, 1]);
  t.is(tensor.length, 3 * 64 * 32);
  for (const [x, y] of [[0, 0], [39, 19], [17, 5]]) {
    const p = (y * 40 + x) * 3;
    t.deepEqual([0, 1, 2].map((c) => at(tensor, 64, 32, c, x, y)), [rgb[p + 2], rgb[p + 1], rgb[p]], `pixel ${x},${y}`);
  }
  for (const [x, y] of [[40, 0], [63, 19], [0, 20], [63, 31]]) {
    t.deepEqual([0, 1, 2].map((c) => at(tensor, 64, 32, c, x, y)), [0, 0, 0], `pad ${x},${y}`);
  }
});

test('yunetInput downscales the longer side to maxSide and never upscales', (t) => {
  const rgb = patternRgb(768, 576, () => 100);
  const at640 = yunetInput(rgb, 768, 576, 640);
  t.deepEqual([at640.inputW, at640.inputH], [640, 480]);
  near(t, at640.scale, 640 / 768, 1e-9, 'scale');
  t.true(at640.tensor.every((v) => v === 100), 'a flat image stays flat after bilinear resampling');
  const at768 = yunetInput(rgb, 768, 576, 768);
  t.deepEqual([at768.inputW, at768.inputH, at768.scale], [768, 576, 1]);
  const tall = yunetInput(patternRgb(300, 1000, () => 7), 300, 1000, 500);
  t.deepEqual([tall.inputW, tall.inputH, tall.scale], [160, 512, 0.5], '150 wide → padded to 160, 500 high → 512');
  t.is(at(tall.tensor, 160, 512, 0, 149, 499), 7);
  t.is(at(tall.tensor, 160, 512, 0, 150, 499), 0);
  t.is(at(tall.tensor, 160, 512, 0, 149, 500), 0);
});

test('yunetInput 2× downscale averages 2×2 blocks (OpenCV half-pixel mapping)', (t) => {
  const grey = [0, 40, 80, 120, 20, 60, 100, 140];
  const rgb = new Uint8Array(grey.flatMap((v) => [v, v, v]));
  const { tensor, inputW, scale } = yunetInput(rgb, 4, 2, 32);
  t.is(scale, 1, 'smaller than maxSide: not resized');
  t.is(at(tensor, inputW, 32, 0, 1, 1), 60);
  const big = patternRgb(128, 64, (x, y) => (x % 2) * 40 + (y % 2) * 20);
  const half = yunetInput(big, 128, 64, 64);
  t.is(half.scale, 0.5);
  t.is(at(half.tensor, 64, 32, 2, 10, 10), (0 + 40 + 20 + 60) / 4);
});

test('yunetInput writes into a larger reused buffer and overwrites stale data', (t) => {
  const out = new Float32Array(3 * 640 * 640).fill(-1);
  const rgb = patternRgb(100, 70, (x, y, c) => (x + y + c) % 256);
  const reused = yunetInput(rgb, 100, 70, 640, out);
  t.is(reused.tensor.buffer, out.buffer);
  t.is(reused.tensor.length, 3 * 128 * 96);
  t.false(reused.tensor.includes(-1));
  t.deepEqual(reused.tensor, yunetInput(rgb, 100, 70, 640).tensor);
});

test('yunetInput rejects bad input', (t) => {
  t.throws(() => yunetInput(new Uint8Array(10), 4, 4), { instanceOf: RangeError });
  t.throws(() => yunetInput(new Uint8Array(48), 4, 4, 640, new Float32Array(5)), { instanceOf: RangeError });
  t.throws(() => yunetInput(new Uint8Array(48), 0, 4), { instanceOf: RangeError });
  t.throws(() => yunetInput(new Uint8Array(48), 4, 4, 16), { instanceOf: RangeError });
});

// ---------- decodeYunet (synthetic) ----------

/** Zeroed outputs for an inputW×inputH input, with the given cells of one stride set. */
function fakeOutputs(
  inputW: number,
  inputH: number,
  cells: { stride: number; r: number; c: number; cls: number; obj: number; bbox: number[]; kps: number[] }[],
): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const s of [8, 16, 32]) {
    const n = (inputW / s) * (inputH / s);
    out[`cls_${s}`] = new Float32Array(n);
    out[`obj_${s}`] = new Float32Array(n);
    out[`bbox_${s}`] = new Float32Array(n * 4);
    out[`kps_${s}`] = new Float32Array(n * 10);
  }
  for (const { stride, r, c, cls, obj, bbox, kps } of cells) {
    const i = r * (inputW / stride) + c;
    out[`cls_${stride}`][i] = cls;
    out[`obj_${stride}`][i] = obj;
    out[`bbox_${stride}`].set(bbox, i * 4);
    out[`kps_${stride}`].set(kps, i * 10);
  }
  return out;
}

test('decodeYunet maps cells to source boxes and landmarks, score = sqrt(cls*obj)', (t) => {
  const kps = [0, 0, 1, 0, 0.5, 0.5, 0, 1, 1, 1];
  const outputs = fakeOutputs(64, 32, [
    // stride 8, cell (r=1, c=2): cx=(2+0.5)*8=20, cy=(1+0.5)*8=12, w=exp(ln 2)*8=16, h=8 → model [12,8,28,16]
    { stride: 8, r: 1, c: 2, cls: 0.9, obj: 1, bbox: [0.5, 0.5, Math.log(2), 0], kps },
    { stride: 16, r: 0, c: 3, cls: 0.5, obj: 0.5, bbox: [0, 0, 0, 0], kps }, // score 0.5: below 0.8
  ]);
  const faces = decodeYunet(outputs, { inputW: 64, inputH: 32, scale: 0.5, width: 200, height: 100 });
  t.is(faces.length, 1);
  near(t, faces[0].score, Math.sqrt(0.9), 1e-6, 'score');
  faces[0].box.forEach((v, i) => near(t, v, [24, 16, 56, 32][i], 1e-4, `box[${i}]`)); // model / 0.5
  const expected = [[32, 16], [48, 16], [40, 24], [32, 32], [48, 32]]; // ((kx + 2) * 8, (ky + 1) * 8) / 0.5
  faces[0].landmarks.forEach((p, i) => p.forEach((v, j) => near(t, v, expected[i][j], 1e-4, `landmark ${i}`)));
  t.deepEqual(Object.keys(faces[0]).sort(), ['box', 'landmarks', 'score'], 'no internal fields leak');

  const low = decodeYunet(outputs, { inputW: 64, inputH: 32, scale: 0.5, width: 200, height: 100, scoreThreshold: 0.4 });
  t.is(low.length, 2);
  const clipped = decodeYunet(outputs, { inputW: 64, inputH: 32, scale: 0.5, width: 40, height: 20 });
  t.deepEqual(clipped[0].box.map((v) => Math.round(v * 1e4) / 1e4), [24, 16, 40, 20]);
});

test('decodeYunet suppresses overlapping faces (IoU > 0.3) and honours topK', (t) => {
  const same = { bbox: [0, 0, Math.log(2), Math.log(2)], kps: new Array(10).fill(0) };
  const outputs = fakeOutputs(64, 64, [
    { stride: 8, r: 2, c: 2, cls: 0.81, obj: 1, ...same },
    { stride: 8, r: 2, c: 3, cls: 0.95, obj: 1, ...same }, // 8 px right of the first, 16 px wide: IoU 1/3
    { stride: 8, r: 6, c: 6, cls: 0.9, obj: 1, ...same },
  ]);
  const base = { inputW: 64, inputH: 64, scale: 1, width: 64, height: 64 };
  t.deepEqual(decodeYunet(outputs, base).map((f) => Math.round(f.score ** 2 * 100)), [95, 90]);
  t.is(decodeYunet(outputs, { ...base, nmsIou: 0.5 }).length, 3);
  t.is(decodeYunet(outputs, { ...base, topK: 1 }).length, 1);
});

test('decodeYunet rejects missing or mis-sized outputs and bad sizes', (t) => {
  const outputs = fakeOutputs(64, 32, []);
  const base = { inputW: 64, inputH: 32, scale: 1, width: 64, height: 32 };
  t.throws(() => decodeYunet(outputs, { ...base, inputW: 96 }), { instanceOf: RangeError, message: /cls_8/ });
  t.throws(() => decodeYunet(outputs, { ...base, inputW: 50 }), { instanceOf: RangeError, message: /multiple of 32/ });
  t.throws(() => decodeYunet(outputs, { ...base, scale: 0 }), { instanceOf: RangeError });
  const { kps_32: _dropped, ...missing } = outputs;
  t.throws(() => decodeYunet(missing, base), { message: /kps_32 is missing/ });
});

// ---------- YuNet on real photos ----------

for (const name of ['obama.jpg', 'obama2.jpg', 'biden.jpg', 'biden2.jpg']) {
  test(`YuNet finds exactly one face with landmarks in ${name}`, async (t) => {
    const { faces: found, width, height } = await faces(name);
    t.log(found.map(describe).join('\n'));
    t.is(found.length, 1);
    t.true(found[0].score >= 0.9, `score ${found[0].score}`);
    assertFace(t, found[0], width, height);
  });
}

test('YuNet finds the two faces in two_people.jpg, one in each half', async (t) => {
  const { faces: found, width, height } = await faces('two_people.jpg');
  t.log(found.map(describe).join('\n'));
  t.is(found.length, 2);
  for (const f of found) assertFace(t, f, width, height);
  const [left, right] = [...found].sort((a, b) => a.box[0] - b.box[0]);
  t.true(left.box[2] < width / 2, 'left face in the left half');
  t.true(right.box[0] > width / 2, 'right face in the right half');
  t.true(found[0].score >= found[1].score, 'best first');
});

test('YuNet finds the one face in messi5.jpg (smaller than maxSide: not resized)', async (t) => {
  const { faces: found, width, height } = await faces('messi5.jpg');
  t.log(found.map(describe).join('\n'));
  t.is(found.length, 1);
  t.true(found[0].score >= 0.85, `score ${found[0].score}`);
  assertFace(t, found[0], width, height);
});

test('detectFaces hands the frame back and rejects a frame of the wrong size', async (t) => {
  const { rgb, width, height } = await loadRgb('messi5.jpg');
  const data = rgb.buffer as ArrayBuffer;
  const result = await detectFaces({ op: 'faces', model: YUNET, width, height, data, scoreThreshold: 0.8, maxSide: 640 }, 1);
  t.is(result.data, data);
  t.true(result.inferenceMs > 0);
  t.deepEqual(result.crops, []);
  await t.throwsAsync(
    detectFaces({ op: 'faces', model: YUNET, width: width + 1, height, data, scoreThreshold: 0.8, maxSide: 640 }, 1),
    { message: /expected 549x342x3 RGB/ },
  );
});

// ---------- crops ----------

test('cropRegion enlarges by 20 % around the centre, snaps outward and clips', (t) => {
  t.deepEqual(cropRegion([100, 100, 200, 150], 1000, 1000), { x: 90, y: 95, w: 120, h: 60 });
  t.deepEqual(cropRegion([-50, 10, 50, 60], 100, 100), { x: 0, y: 5, w: 60, h: 60 });
  t.is(cropRegion([200, 200, 300, 300], 100, 100), null);
  t.is(cropRegion([10, 10, 10, 20], 100, 100), null);
});

test('detectFaces encodes requested crops as JPEGs of the enlarged boxes', async (t) => {
  const { rgb, width, height } = await loadRgb('obama.jpg');
  const first = await detectFaces({ op: 'faces', model: YUNET, width, height, data: rgb.buffer as ArrayBuffer, scoreThreshold: 0.8, maxSide: 640 }, 1);
  const face = first.faces[0].box;
  const offFrame: Box = [width + 10, 0, width + 50, 40];
  const result = await detectFaces({
    op: 'faces', model: YUNET, width, height, data: first.data, scoreThreshold: 0.8, maxSide: 640,
    crops: [{ key: 7, box: face }, { key: 8, box: offFrame }, { key: 9, box: [0, 0, 100, 50] }],
    cropQuality: 90,
  }, 1);
  t.deepEqual(result.crops.map((c) => c.key), [7, 9], 'an empty region yields no crop');
  t.true(result.crops.every((c) => c.jpeg instanceof ArrayBuffer));

  const crop = await decodeJpeg(result.crops[0].jpeg);
  const region = cropRegion(face, width, height);
  if (!region) return t.fail('face region is empty');
  near(t, crop.width, (face[2] - face[0]) * 1.2, 2, 'crop width');
  near(t, crop.height, (face[3] - face[1]) * 1.2, 2, 'crop height');
  t.deepEqual([crop.width, crop.height], [region.w, region.h]);
  // Same pixels as the frame region, up to JPEG loss: catches stride/offset mistakes.
  let diff = 0;
  for (let y = 0; y < crop.height; y++) {
    for (let x = 0; x < crop.width; x++) {
      const p = ((region.y + y) * width + region.x + x) * 3;
      const q = (y * crop.width + x) * 3;
      for (let c = 0; c < 3; c++) diff += Math.abs(rgb[p + c] - crop.rgb[q + c]);
    }
  }
  const meanDiff = diff / (crop.width * crop.height * 3);
  t.log(`crop ${crop.width}x${crop.height}, ${result.crops[0].jpeg.byteLength} bytes, mean abs diff ${meanDiff.toFixed(2)}`);
  t.true(meanDiff < 4, `mean abs diff ${meanDiff}`);
  const corner = await decodeJpeg(result.crops[1].jpeg);
  t.deepEqual([corner.width, corner.height], [110, 55], 'box at the corner: enlarged then clipped at 0');
});

// ---------- annotate ----------

const RED = '#ff0000';
const BLUE = '#0000ff';

async function vtestLikeFrame(): Promise<RgbImage> {
  return loadRgb('messi5.jpg', { width: 768, height: 576 });
}

function annotateTask(frame: RgbImage, extra: Partial<AnnotateTask> = {}): AnnotateTask {
  return {
    op: 'annotate', width: frame.width, height: frame.height, data: frame.rgb.slice().buffer, quality: 70,
    boxes: [{ box: [100, 100, 300, 250], label: '42', color: RED }],
    lines: [{ from: [400, 300], to: [700, 300], color: BLUE }],
    texts: [],
    ...extra,
  };
}

/** Red after JPEG loss: 4:2:0 chroma subsampling desaturates a 2 px line a little. */
function isRed([r, g, b]: [number, number, number]): boolean {
  return r > 150 && g < 80 && b < 80;
}

test('fonts are available to @napi-rs/canvas (else labels are invisible)', (t) => {
  t.log(`${GlobalFonts.families.length} families: ${GlobalFonts.families.map((f) => f.family).join(', ')}`);
  t.true(GlobalFonts.families.length > 0, 'no fonts under /usr/share/fonts: install fonts-dejavu-core');
});

test('annotate draws the box, its label tab and the line, and encodes a JPEG of the frame size', async (t) => {
  const frame = await vtestLikeFrame();
  const task = annotateTask(frame);
  const data = task.data;
  const result = await annotate(task);
  t.is(result.data, data, 'the frame buffer is handed back');
  t.deepEqual([result.width, result.height], [768, 576]);
  t.log(`768x576 q70: ${result.jpeg.byteLength} bytes`);
  t.true(result.encodeMs > 0);
  const img = await decodeJpeg(result.jpeg);
  t.deepEqual([img.width, img.height], [768, 576]);
  for (const [x, y] of [[100, 175], [299, 175], [200, 249], [200, 100]]) t.true(isRed(pixel(img, x, y)), `box edge ${x},${y} is red: ${pixel(img, x, y)}`);
  t.true(isRed(pixel(img, 104, 92)), `label tab above the box is red: ${pixel(img, 104, 92)}`);
  const [r, g, b] = pixel(img, 550, 300);
  t.true(b > 150 && r < 80 && g < 80, `line pixel is blue: ${[r, g, b]}`);
  // Away from every overlay the frame is unchanged up to JPEG loss.
  for (const [x, y] of [[200, 175], [600, 500]]) {
    pixel(img, x, y).forEach((v, c) => near(t, v, pixel(frame, x, y)[c], 40, `untouched pixel ${x},${y}`));
  }
});

test('annotate scales to outWidth keeping the aspect ratio and scales the overlays with it', async (t) => {
  const frame = await vtestLikeFrame();
  const result = await annotate(annotateTask(frame, { outWidth: 640 }));
  t.deepEqual([result.width, result.height], [640, 480]);
  t.log(`640x480 q70: ${result.jpeg.byteLength} bytes`);
  const img = await decodeJpeg(result.jpeg);
  t.deepEqual([img.width, img.height], [640, 480]);
  // Box left edge at 100 * 640/768 ≈ 83.3, its vertical middle at 175 * 5/6 ≈ 146.
  t.true(isRed(pixel(img, 83, 146)), `scaled box edge is red: ${pixel(img, 83, 146)}`);
  const odd = await annotate(annotateTask(frame, { outWidth: 333 }));
  t.deepEqual([odd.width, odd.height], [333, 250]);
});

test('annotate renders text on a dark panel', async (t) => {
  const frame = await vtestLikeFrame();
  const text = { text: 'persons 88\nline A 12', x: 20, y: 400, color: '#ff00ff', size: 20 };
  const withText = await decodeJpeg((await annotate(annotateTask(frame, { texts: [text], quality: 90 }))).jpeg);
  const without = await decodeJpeg((await annotate(annotateTask(frame, { quality: 90 }))).jpeg);
  const magenta = (img: RgbImage): number => {
    let n = 0;
    for (let y = 400; y < 470; y++) {
      for (let x = 20; x < 160; x++) {
        const [r, g, b] = pixel(img, x, y);
        if (r > 150 && b > 150 && g < 110) n++;
      }
    }
    return n;
  };
  t.log(`magenta text pixels: ${magenta(withText)} with text, ${magenta(without)} without`);
  t.true(magenta(withText) > 100, 'glyphs were drawn (needs a font)');
  t.is(magenta(without), 0);
  // The panel darkens the frame behind it: its top-left corner area is darker than the original.
  const lum = (p: [number, number, number]): number => p[0] + p[1] + p[2];
  t.true(lum(pixel(withText, 22, 402)) < lum(pixel(without, 22, 402)) * 0.6, 'translucent dark background');
});

test('annotate quality changes the JPEG size; an empty overlay list is fine', async (t) => {
  const frame = await vtestLikeFrame();
  const empty = { boxes: [], lines: [], texts: [] };
  const low = await annotate(annotateTask(frame, { ...empty, quality: 10 }));
  const high = await annotate(annotateTask(frame, { ...empty, quality: 95 }));
  t.true(low.jpeg.byteLength < high.jpeg.byteLength / 2, `${low.jpeg.byteLength} vs ${high.jpeg.byteLength}`);
});

test('annotate rejects a frame-size mismatch and bad options with clear errors', async (t) => {
  const frame = await vtestLikeFrame();
  await t.throwsAsync(annotate(annotateTask(frame, { width: 640, height: 480 })), {
    instanceOf: RangeError,
    message: 'annotate: frame is 1327104 bytes, expected 640x480x3 = 921600 RGB bytes',
  });
  await t.throwsAsync(annotate(annotateTask(frame, { quality: 0 })), { message: /quality must be an integer 1-100/ });
  await t.throwsAsync(annotate(annotateTask(frame, { outWidth: 0 })), { message: /outWidth must be a positive integer/ });
});

test('overlapping annotate calls of the same size do not mix frames (shared canvases)', async (t) => {
  const frame = await vtestLikeFrame();
  const grey: RgbImage = { rgb: new Uint8Array(frame.rgb.length).fill(128), width: frame.width, height: frame.height };
  const empty = { boxes: [], lines: [], texts: [] };
  const [a, b] = await Promise.all([annotate(annotateTask(frame, empty)), annotate(annotateTask(grey, empty))]);
  const [imgA, imgB] = await Promise.all([decodeJpeg(a.jpeg), decodeJpeg(b.jpeg)]);
  for (const [x, y] of [[600, 500], [200, 175], [50, 50]]) {
    pixel(imgA, x, y).forEach((v, c) => near(t, v, pixel(frame, x, y)[c], 40, `frame A pixel ${x},${y}`));
    pixel(imgB, x, y).forEach((v) => near(t, v, 128, 3, `frame B pixel ${x},${y}`));
  }
});

import test, { type ExecutionContext } from 'ava';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import type { ModelRef } from '../core/types.js';
import { cosineSimilarity, FACE_EMBEDDING_SIZE, type EmbedFacesResult, type EmbedFacesTask, type FaceInput } from '../inference/ops/embed-faces.protocol.js';
import { embedFaces } from '../inference/ops/embed-faces.js';
import {
  alignFace,
  applyAffine,
  ARCFACE_TEMPLATE,
  FACE_SIZE,
  FACE_TENSOR_SIZE,
  invert,
  similarityTransform,
  type Affine,
} from '../inference/image/face-align.js';
import { YUNET_MAX_SIDE, YUNET_SCORE_THRESHOLD } from '../inference/models/yunet.js';
import { decodeImage } from '../inference/image/decode.js';

const MODEL_DIR = path.resolve(process.cwd(), process.env.SIGHTLINE_MODEL_DIR ?? 'models');
const MEDIA_DIR = path.resolve(process.cwd(), process.env.SIGHTLINE_MEDIA_DIR ?? 'media');
const YUNET: ModelRef = { path: path.join(MODEL_DIR, 'face_detection_yunet_2023mar_dynamic.onnx'), kind: 'yunet' };
const MOBILEFACENET: ModelRef = { path: path.join(MODEL_DIR, 'face_recognition_mobilefacenet_128d.onnx'), kind: 'mobilefacenet' };
const THREADS = 1;

// ---------- helpers ----------

type Point = [number, number];

interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** Decode a photo to packed RGB with the server's own decoder (as frames and client images arrive). */
async function loadRgb(name: string): Promise<{ rgb: Uint8Array; width: number; height: number }> {
  return decodeImage(readFileSync(path.join(MEDIA_DIR, name)), Number.MAX_SAFE_INTEGER);
}

/** Packed RGB where pixel (x, y) channel c is `f(x, y, c)`. */
function patternRgb(width: number, height: number, f: (x: number, y: number, c: number) => number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) rgb[(y * width + x) * 3 + c] = f(x, y, c);
  return rgb;
}

function task(img: RgbImage, faces?: FaceInput[]): EmbedFacesTask {
  // A copy, so the image can be reused after its buffer was handed to a task.
  const data = img.rgb.slice().buffer as ArrayBuffer;
  return {
    op: 'embed-faces', detector: YUNET, embedder: MOBILEFACENET, width: img.width, height: img.height, data,
    scoreThreshold: YUNET_SCORE_THRESHOLD, maxSide: YUNET_MAX_SIDE, ...(faces ? { faces } : {}),
  };
}

function near(t: ExecutionContext, actual: number, expected: number, tol: number, what: string): void {
  t.true(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected} ±${tol}`);
}

function affineNear(t: ExecutionContext, actual: Affine, expected: Affine, tol: number, what: string): void {
  actual.forEach((v, i) => near(t, v, expected[i], tol, `${what}[${i}]`));
}

/** s·R(θ) then + (tx, ty), as an Affine. */
function similarity(s: number, theta: number, tx: number, ty: number): Affine {
  const c = s * Math.cos(theta);
  const n = s * Math.sin(theta);
  return [c, -n, tx, n, c, ty];
}

function residual(m: Affine, src: readonly Point[], dst: readonly Point[]): number {
  return src.reduce((sum, p, i) => {
    const [x, y] = applyAffine(m, p);
    return sum + (x - dst[i][0]) ** 2 + (y - dst[i][1]) ** 2;
  }, 0);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const TEMPLATE = ARCFACE_TEMPLATE.map(([x, y]): Point => [x, y]);
/** Value of plane c (0=R, 1=G, 2=B) at (u, v) of the aligned face starting at `offset`. */
const crop = (out: Float32Array, offset: number, c: number, u: number, v: number): number =>
  out[offset + c * FACE_SIZE * FACE_SIZE + v * FACE_SIZE + u];
const norm = (v: number): number => (v - 127.5) / 128;

// ---------- similarityTransform / invert ----------

test('similarityTransform recovers a known rotation + scale + translation exactly', (t) => {
  for (const [s, theta, tx, ty] of [[1.7, 0.4, 12, -5], [0.25, -2.9, 300.5, 81], [3, Math.PI / 2, 0, 0]]) {
    const truth = similarity(s, theta, tx, ty);
    const dst = TEMPLATE.map((p) => applyAffine(truth, p));
    affineNear(t, similarityTransform(TEMPLATE, dst), truth, 1e-9, `s=${s} θ=${theta}`);
  }
});

test('similarityTransform maps the template to itself as the identity', (t) => {
  affineNear(t, similarityTransform(TEMPLATE, TEMPLATE), [1, 0, 0, 0, 1, 0], 1e-12, 'identity');
});

test('similarityTransform is the least-squares fit and never reflects', (t) => {
  // Noisy landmarks: every small change of (p, q, tx, ty) must increase the squared residual.
  const noisy = TEMPLATE.map(([x, y], i): Point => [x * 2.1 + 40 + Math.sin(i * 7) * 1.5, y * 2.1 + 90 + Math.cos(i * 5) * 1.5]);
  const m = similarityTransform(noisy, TEMPLATE);
  const best = residual(m, noisy, TEMPLATE);
  const [p, mq, tx, q, , ty] = m;
  for (const [dp, dq, dx, dy] of [[1e-4, 0, 0, 0], [-1e-4, 0, 0, 0], [0, 1e-4, 0, 0], [0, -1e-4, 0, 0], [0, 0, 1e-3, 0], [0, 0, 0, -1e-3]]) {
    const moved: Affine = [p + dp, mq - dq, tx + dx, q + dq, p + dp, ty + dy];
    t.true(residual(moved, noisy, TEMPLATE) > best, `perturbation ${[dp, dq, dx, dy]}`);
  }
  // A mirrored face: the best proper similarity, with det > 0, not a reflection.
  const mirrored = TEMPLATE.map(([x, y]): Point => [200 - x, y]);
  const [a, b, , c, d] = similarityTransform(mirrored, TEMPLATE);
  t.true(a * d - b * c > 0, 'positive determinant');
  t.is(a, d);
  t.is(b, -c);
});

test('invert undoes an affine and rejects singular ones', (t) => {
  const m = similarity(0.37, 1.1, -20, 44);
  const inv = invert(m);
  for (const p of TEMPLATE) {
    const [x, y] = applyAffine(inv, applyAffine(m, p));
    near(t, x, p[0], 1e-9, 'x');
    near(t, y, p[1], 1e-9, 'y');
  }
  affineNear(t, invert(inv), m, 1e-12, 'double inverse');
  t.throws(() => invert([1, 2, 0, 2, 4, 0]), { instanceOf: RangeError });
  t.throws(() => similarityTransform([[1, 1], [1, 1]], [[0, 0], [1, 1]]), { instanceOf: RangeError });
  t.throws(() => similarityTransform([[1, 1]], [[0, 0]]), { instanceOf: RangeError });
});

// ---------- alignFace (synthetic) ----------

test('alignFace samples the source through the inverse transform, writes normalised RGB planes at the offset', (t) => {
  // Channels linear in x and y are reproduced exactly by bilinear sampling, so every crop pixel is known.
  const width = 400;
  const height = 300;
  const rgb = patternRgb(width, height, (x, y, c) => (c === 0 ? x % 256 : c === 1 ? y : 77));
  // A face 1.5× the template size, turned 20°, placed where R = x stays below 256.
  const toSource = similarity(1.5, (20 * Math.PI) / 180, 70, 40);
  const landmarks = TEMPLATE.map((p) => applyAffine(toSource, p));
  const out = new Float32Array(2 * FACE_TENSOR_SIZE).fill(-9);
  const forward = alignFace(rgb, width, height, landmarks, out, FACE_TENSOR_SIZE);
  affineNear(t, invert(forward), toSource, 1e-9, 'returned transform');
  t.true(out.subarray(0, FACE_TENSOR_SIZE).every((v) => v === -9), 'nothing written before the offset');
  let worst = 0;
  for (let v = 0; v < FACE_SIZE; v++) {
    for (let u = 0; u < FACE_SIZE; u++) {
      const [x, y] = applyAffine(toSource, [u, v]);
      worst = Math.max(
        worst,
        Math.abs(crop(out, FACE_TENSOR_SIZE, 0, u, v) - norm(x)),
        Math.abs(crop(out, FACE_TENSOR_SIZE, 1, u, v) - norm(y)),
        Math.abs(crop(out, FACE_TENSOR_SIZE, 2, u, v) - norm(77)),
      );
    }
  }
  t.true(worst < 1e-4, `max error ${worst}`);
});

test('alignFace keeps the eyes level: the template landmarks land on their template pixels', (t) => {
  // Bright dots at the landmarks of a tilted face; after alignment they sit at the template positions.
  const width = 320;
  const height = 240;
  const toSource = similarity(1.2, -0.5, 90, 80);
  const landmarks = TEMPLATE.map((p) => applyAffine(toSource, p));
  const rgb = patternRgb(width, height, (x, y) => (landmarks.some(([lx, ly]) => Math.hypot(x - lx, y - ly) < 3) ? 255 : 0));
  const out = new Float32Array(FACE_TENSOR_SIZE);
  alignFace(rgb, width, height, landmarks, out, 0);
  for (const [u, v] of TEMPLATE) {
    t.true(crop(out, 0, 1, Math.round(u), Math.round(v)) > 0.9, `dot at template ${u},${v}`);
  }
  t.true(crop(out, 0, 1, 56, 10) < -0.99, 'forehead is dark');
});

test('alignFace reads black (0) outside the frame and a flat colour inside', (t) => {
  const width = 200;
  const height = 200;
  const rgb = patternRgb(width, height, (_x, _y, c) => [200, 100, 50][c]);
  // The face centre sits on the top-left corner, so the crop's top-left quarter lies outside the frame.
  const toSource = similarity(1, 0, -56, -56);
  const out = new Float32Array(FACE_TENSOR_SIZE);
  alignFace(rgb, width, height, TEMPLATE.map((p) => applyAffine(toSource, p)), out, 0);
  for (let c = 0; c < 3; c++) {
    near(t, crop(out, 0, c, 10, 10), norm(0), 1e-6, `outside, channel ${c}`);
    near(t, crop(out, 0, c, 100, 100), norm([200, 100, 50][c]), 1e-6, `inside, channel ${c}`);
  }
  t.throws(() => alignFace(rgb, width, height, TEMPLATE, new Float32Array(FACE_TENSOR_SIZE), 1), { instanceOf: RangeError });
  t.throws(() => alignFace(rgb, width, height, TEMPLATE.slice(0, 4), out, 0), { instanceOf: RangeError });
  t.throws(() => alignFace(rgb.subarray(1), width, height, TEMPLATE, out, 0), { instanceOf: RangeError });
});

// ---------- embedFaces on real photos ----------

const PHOTOS = ['obama.jpg', 'obama2.jpg', 'obama3.jpg', 'biden.jpg', 'biden2.jpg', 'messi5.jpg'] as const;
type Photo = (typeof PHOTOS)[number];

interface Embedded {
  images: Record<string, RgbImage>;
  single: Record<Photo, EmbedFacesResult>;
  two: EmbedFacesResult;
}

let cached: Promise<Embedded> | undefined;
/** Every photo through embedFaces once, shared by the tests below. */
function embedAll(): Promise<Embedded> {
  cached ??= (async () => {
    const images: Record<string, RgbImage> = {};
    for (const name of [...PHOTOS, 'two_people.jpg']) images[name] = await loadRgb(name);
    const single = {} as Record<Photo, EmbedFacesResult>;
    for (const name of PHOTOS) single[name] = await embedFaces(task(images[name]), THREADS);
    const two = await embedFaces(task(images['two_people.jpg']), THREADS);
    return { images, single, two };
  })();
  return cached;
}

const cos = (a: EmbedFacesResult, b: EmbedFacesResult): number => cosineSimilarity(a.faces[0].embedding, b.faces[0].embedding);

test('embedFaces: one face per portrait, unit-length 128-d embeddings each over its own buffer', async (t) => {
  const { single, two } = await embedAll();
  for (const name of PHOTOS) {
    const r = single[name];
    t.is(r.faces.length, 1, name);
    const e = r.faces[0].embedding;
    t.is(e.length, FACE_EMBEDDING_SIZE);
    t.is(e.byteOffset, 0);
    t.is(e.buffer.byteLength, FACE_EMBEDDING_SIZE * 4, 'its own transferable buffer');
    near(t, Math.hypot(...e), 1, 1e-5, `${name} norm`);
    t.true(r.detectMs > 0 && r.embedMs > 0);
  }
  t.not(two.faces[0].embedding.buffer, two.faces[1].embedding.buffer);
});

test('embedFaces: same person close, different people far (similarity matrix)', async (t) => {
  const { single, two } = await embedAll();
  const left = two.faces.reduce((a, b) => (a.box[0] < b.box[0] ? a : b));
  const right = two.faces.reduce((a, b) => (a.box[0] < b.box[0] ? b : a));
  const rows: [string, Float32Array][] = [
    ...PHOTOS.map((n): [string, Float32Array] => [n.replace('.jpg', ''), single[n].faces[0].embedding]),
    ['two:left', left.embedding],
    ['two:right', right.embedding],
  ];
  const pad = (s: string): string => s.padStart(10);
  const lines = [pad('') + rows.map(([n]) => pad(n)).join('')];
  for (const [n, a] of rows) lines.push(pad(n) + rows.map(([, b]) => pad(cosineSimilarity(a, b).toFixed(3))).join(''));
  t.log(`cosine similarity\n${lines.join('\n')}`);

  const obama = ['obama.jpg', 'obama2.jpg', 'obama3.jpg'] as const;
  const biden = ['biden.jpg', 'biden2.jpg'] as const;
  t.true(cos(single['obama.jpg'], single['obama2.jpg']) >= 0.6, 'obama vs obama2');
  t.true(cos(single['obama.jpg'], single['obama3.jpg']) >= 0.6, 'obama vs obama3');
  t.true(cos(single['biden.jpg'], single['biden2.jpg']) >= 0.45, 'biden vs biden2');
  for (const o of obama) for (const b of biden) t.true(cos(single[o], single[b]) <= 0.25, `${o} vs ${b}`);
  for (const o of [...obama, ...biden]) t.true(cos(single['messi5.jpg'], single[o]) < 0.3, `messi5 vs ${o}`);

  // two_people.jpg is a crop of the same photo as obama3/biden, so compare against the other photos too.
  t.is(two.faces.length, 2);
  for (const o of ['obama.jpg', 'obama2.jpg', 'obama3.jpg'] as const) {
    t.true(cosineSimilarity(left.embedding, single[o].faces[0].embedding) >= 0.5, `left face vs ${o}`);
  }
  for (const b of biden) t.true(cosineSimilarity(right.embedding, single[b].faces[0].embedding) >= 0.45, `right face vs ${b}`);
  for (const o of obama) t.true(cosineSimilarity(right.embedding, single[o].faces[0].embedding) <= 0.25, `right face vs ${o}`);
  for (const b of biden) t.true(cosineSimilarity(left.embedding, single[b].faces[0].embedding) <= 0.25, `left face vs ${b}`);
});

test('embedFaces: a batch gives the same embeddings as single runs, and given faces skip detection', async (t) => {
  const { images, two } = await embedAll();
  const img = images['two_people.jpg'];
  const faces: FaceInput[] = two.faces.map(({ box, score, landmarks }) => ({ box, score, landmarks }));
  const pair = await embedFaces(task(img, faces), THREADS);
  t.is(pair.detectMs, 0);
  t.deepEqual(pair.faces.map((f) => f.box), faces.map((f) => f.box), 'given order kept');
  for (let i = 0; i < 2; i++) {
    const alone = await embedFaces(task(img, [faces[i]]), THREADS);
    const diff = Math.max(...alone.faces[0].embedding.map((v, k) => Math.abs(v - pair.faces[i].embedding[k])));
    t.true(diff <= 1e-4, `face ${i}: max |batch - single| = ${diff}`);
    const detected = Math.max(...two.faces[i].embedding.map((v, k) => Math.abs(v - pair.faces[i].embedding[k])));
    t.true(detected <= 1e-4, `face ${i}: same as with detection, ${detected}`);
  }
});

test('embedFaces: no face, an empty list and a wrong frame size', async (t) => {
  const blank: RgbImage = { rgb: new Uint8Array(320 * 240 * 3).fill(128), width: 320, height: 240 };
  const none = await embedFaces(task(blank), THREADS);
  t.deepEqual([none.faces, none.embedMs], [[], 0]);
  t.is(none.data.byteLength, 320 * 240 * 3, 'frame handed back');
  const empty = await embedFaces(task(blank, []), THREADS);
  t.deepEqual([empty.faces, empty.detectMs, empty.embedMs], [[], 0, 0]);
  await t.throwsAsync(embedFaces({ ...task(blank), width: 321 }, THREADS), { message: /expected 321x240x3/ });
  const bad: FaceInput = { box: [0, 0, 10, 10], score: 1, landmarks: [[1, 1], [2, 2]] };
  await t.throwsAsync(embedFaces(task(blank, [bad]), THREADS), { message: /5 landmarks/ });
});

test('timings: alignment per face, embedding batches of 1 and 5', async (t) => {
  const { images, two } = await embedAll();
  const img = images['two_people.jpg'];
  const faces: FaceInput[] = two.faces.map(({ box, score, landmarks }) => ({ box, score, landmarks }));

  const out = new Float32Array(FACE_TENSOR_SIZE);
  for (let i = 0; i < 50; i++) alignFace(img.rgb, img.width, img.height, faces[i % 2].landmarks, out, 0); // warm-up
  const reps = 500;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) alignFace(img.rgb, img.width, img.height, faces[i % 2].landmarks, out, 0);
  const alignMs = (performance.now() - t0) / reps;

  const runs = async (n: number): Promise<number> => {
    const batch = Array.from({ length: n }, (_, i) => faces[i % 2]);
    const ms: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await embedFaces(task(img, batch), THREADS);
      t.is(r.faces.length, n);
      if (i >= 2) ms.push(r.embedMs);
    }
    return median(ms);
  };
  const one = await runs(1);
  const five = await runs(5);
  t.log(`align ${alignMs.toFixed(3)} ms/face; embed (align + MobileFaceNet + normalise, ${THREADS} thread) batch 1: ${one.toFixed(1)} ms, batch 5: ${five.toFixed(1)} ms (${(five / 5).toFixed(1)} ms/face)`);
  t.log(`detect (YuNet, maxSide ${YUNET_MAX_SIDE}): two_people ${two.detectMs.toFixed(1)} ms (first call includes session load)`);
  t.true(alignMs < 5, 'alignment is cheap');
});

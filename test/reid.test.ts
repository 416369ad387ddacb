/**
 * Person re-identification: reidInput on synthetic images (clipping, BGR order, NHWC layout, resampling), and
 * person-reidentification-retail-0287 on real vtest.avi frames, with YOLOX boxes and an IoU chain for ground truth.
 */
import test, { type ExecutionContext } from 'ava';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { gstreamer } from '../pipeline/sources/gstreamer.js';
import type { Box } from '../core/types.js';
import type { ModelRef } from '../core/types.js';
import { iou } from '../core/geometry.js';
import { clipReidBox, REID_HEIGHT, REID_TENSOR_SIZE, REID_WIDTH, reidInput } from '../inference/models/reid.js';
import { cosineSimilarity, REID_EMBEDDING_SIZE, type ReidTask } from '../inference/ops/reid.protocol.js';
import { reidEmbed } from '../inference/ops/reid.js';
import { decodeYolox, letterbox, YOLOX_INPUT, YOLOX_NMS_IOU, YOLOX_SCORE_THRESHOLD } from '../inference/models/yolox.js';

const MODEL_DIR = path.resolve(process.cwd(), process.env.SIGHTLINE_MODEL_DIR ?? 'models');
const MEDIA_DIR = path.resolve(process.cwd(), process.env.SIGHTLINE_MEDIA_DIR ?? 'media');
const REID: ModelRef = { path: path.join(MODEL_DIR, 'person-reidentification-retail-0287.onnx'), kind: 'reid' };
const YOLOX: ModelRef = { path: path.join(MODEL_DIR, 'yolox_nano.onnx'), kind: 'yolox' };
const THREADS = 1;

/** vtest.avi is 10 fps: frame 110 is one second after frame 100. */
const FIRST = 100;
const LAST = 110;
/**
 * Minimum IoU between consecutive frames (0.1 s apart) for the ground-truth chain to continue. Small, fast
 * walkers far from the camera move a third of their width per frame (IoU ≈ 0.4), so 0.5 would lose them.
 */
const CHAIN_IOU = 0.3;
/** A chain whose box barely moved in that second is a static object (YOLOX takes a sign for a person), not a walker. */
const STATIC_IOU = 0.9;

// ---------- helpers ----------

interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** Packed RGB where pixel (x, y) channel c is `f(x, y, c)`. */
function patternRgb(width: number, height: number, f: (x: number, y: number, c: number) => number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) rgb[(y * width + x) * 3 + c] = f(x, y, c);
  return rgb;
}

/** Channel c (0=B, 1=G, 2=R) of crop pixel (x, y) of the crop starting at `offset` (NHWC). */
const at = (out: Float32Array, offset: number, x: number, y: number, c: number): number => out[offset + (y * REID_WIDTH + x) * 3 + c];

function near(t: ExecutionContext, actual: number, expected: number, tol: number, what: string): boolean {
  const ok = Math.abs(actual - expected) <= tol;
  if (!ok) t.fail(`${what}: ${actual} vs ${expected} ±${tol}`);
  return ok;
}

/** Decoded RGB frames `first..last` (0-based) of a video, pulled with GStreamer the way a source delivers them. */
function videoFrames(file: string, first: number, last: number): Promise<Map<number, RgbImage>> {
  // A bounded, non-dropping appsink: decoding waits for the pulls instead of queueing the whole file.
  const p = new gstreamer.Pipeline(
    `filesrc location="${file}" ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=4 drop=false`,
  );
  const sink = p.findChild('sink');
  if (!sink) throw new Error('pipeline has no appsink');
  const frames = new Map<number, RgbImage>();
  let n = 0;
  p.play();
  return new Promise((resolve, reject) => {
    const pull = (): void => sink.pull((buf, caps) => {
      if (!buf) {
        p.stop();
        reject(new Error(`${file}: stream ended after ${n} frames, before frame ${last}`));
        return;
      }
      if (n >= first) {
        const width = Number(caps.width);
        const height = Number(caps.height);
        if (buf.length !== width * height * 3) {
          p.stop();
          reject(new Error(`frame ${n} is ${buf.length} bytes, expected ${width}x${height}x3 (padded rows?)`));
          return;
        }
        frames.set(n, { rgb: new Uint8Array(buf), width, height }); // a copy: the sample's memory is not ours
      }
      if (n++ >= last) {
        p.stop();
        resolve(frames);
      } else pull();
    });
    pull();
  });
}

let yolox: ort.InferenceSession | undefined;
async function detectPersons({ rgb, width, height }: RgbImage): Promise<Box[]> {
  yolox ??= await ort.InferenceSession.create(YOLOX.path);
  const { tensor, scale } = letterbox(rgb, width, height);
  const result = await yolox.run({ images: new ort.Tensor('float32', tensor, [1, 3, YOLOX_INPUT, YOLOX_INPUT]) });
  const dets = decodeYolox(result.output.data as Float32Array, {
    scoreThreshold: YOLOX_SCORE_THRESHOLD, nmsIou: YOLOX_NMS_IOU, classIds: new Set([0]), width, height, scale,
  });
  return dets.map((d) => d.box);
}

/** Greedy one-to-one matching of `from` to `to` by IoU (best pairs first), pairs below `minIou` left out. */
function greedyMatch(from: Box[], to: Box[], minIou: number): Map<number, number> {
  const pairs: [number, number, number][] = [];
  from.forEach((a, i) => to.forEach((b, j) => pairs.push([iou(a, b), i, j])));
  pairs.sort((p, q) => q[0] - p[0]);
  const match = new Map<number, number>();
  const taken = new Set<number>();
  for (const [v, i, j] of pairs) {
    if (v < minIou) break;
    if (match.has(i) || taken.has(j)) continue;
    match.set(i, j);
    taken.add(j);
  }
  return match;
}

function task(img: RgbImage, boxes: Box[], model: ModelRef = REID): ReidTask {
  // A copy, so the image can be reused after its buffer was handed to a task.
  return { op: 'reid', model, width: img.width, height: img.height, data: img.rgb.slice().buffer as ArrayBuffer, boxes };
}

const fmtBox = (b: Box): string => `[${b.map((v) => Math.round(v)).join(',')}]`;

// ---------- reidInput (synthetic) ----------

test('reidInput of a box exactly 128×256 is a plain copy in BGR NHWC order at the offset', (t) => {
  const width = 200;
  const height = 300;
  const rgb = patternRgb(width, height, (x, y, c) => (c === 0 ? x : c === 1 ? y % 256 : (x * 7 + y * 3) % 256));
  const offset = 5;
  const out = new Float32Array(offset + REID_TENSOR_SIZE + 7).fill(-1);
  reidInput(rgb, width, height, [30, 20, 30 + REID_WIDTH, 20 + REID_HEIGHT], out, offset);
  let ok = true;
  for (let y = 0; y < REID_HEIGHT && ok; y++) {
    for (let x = 0; x < REID_WIDTH && ok; x++) {
      const p = ((20 + y) * width + 30 + x) * 3;
      ok = near(t, at(out, offset, x, y, 0), rgb[p + 2], 0, `B at ${x},${y}`) &&
        near(t, at(out, offset, x, y, 1), rgb[p + 1], 0, `G at ${x},${y}`) &&
        near(t, at(out, offset, x, y, 2), rgb[p], 0, `R at ${x},${y}`);
    }
  }
  t.true(ok);
  // NHWC: the three channels of a pixel are adjacent, pixels run along the row, rows follow each other.
  t.is(out[offset], (30 * 7 + 20 * 3) % 256, 'first float is B of the top-left pixel (30,20)');
  t.is(out[offset + 2], 30, 'third float is R (= x) of the top-left pixel');
  t.is(out[offset + 3 + 2], 31, 'next pixel along the row');
  t.is(out[offset + REID_WIDTH * 3 + 1], 21, 'next row: G (= y) one larger');
  t.deepEqual([...out.subarray(0, offset)], Array(offset).fill(-1), 'nothing written before the offset');
  t.deepEqual([...out.subarray(offset + REID_TENSOR_SIZE)], Array(7).fill(-1), 'nothing written after the crop');
});

test('reidInput samples fractional boxes sub-pixel with half-pixel centres (linear ramps are exact)', (t) => {
  // R = x, G = y: bilinear sampling reproduces linear ramps, so every output is known in closed form.
  const width = 256;
  const height = 256;
  const rgb = patternRgb(width, height, (x, y, c) => (c === 0 ? x : c === 1 ? y : 0));
  const box: Box = [40, 20.25, 104, 250.25]; // 64 × 230: 2× upscale in x, fractional 1.11× in y
  const out = new Float32Array(REID_TENSOR_SIZE);
  reidInput(rgb, width, height, box, out, 0);
  // Half-pixel mapping, clamped to the pixels the box covers: columns 40..103, rows 20..250.
  const sx = (d: number) => Math.min(Math.max(box[0] + (d + 0.5) * (64 / REID_WIDTH) - 0.5, 40), 103);
  const sy = (d: number) => Math.min(Math.max(box[1] + (d + 0.5) * (230 / REID_HEIGHT) - 0.5, 20), 250);
  let ok = true;
  for (let x = 0; x < REID_WIDTH && ok; x++) ok = near(t, at(out, 0, x, 100, 2), sx(x), 1e-3, `R (= source x) at column ${x}`);
  for (let y = 0; y < REID_HEIGHT && ok; y++) ok = near(t, at(out, 0, 10, y, 1), sy(y), 1e-3, `G (= source y) at row ${y}`);
  t.true(ok);
  t.is(at(out, 0, 0, 0, 2), 40, 'column 0 (x = 39.75) is clamped to the first covered pixel');
  t.is(at(out, 0, REID_WIDTH - 1, 0, 2), 103, 'the last column (x = 103.25) to the last');
  t.true(out.every((v, i) => i % 3 !== 0 || v === 0), 'B (source blue = 0) is channel 0 everywhere');
});

test('reidInput 2× downscale averages 2×2 blocks (OpenCV INTER_LINEAR on the crop)', (t) => {
  const width = 300;
  const height = 600;
  const rgb = patternRgb(width, height, (x, y, c) => (x * 13 + y * 7 + c * 50) % 256);
  const out = new Float32Array(REID_TENSOR_SIZE);
  reidInput(rgb, width, height, [10, 30, 10 + 2 * REID_WIDTH, 30 + 2 * REID_HEIGHT], out, 0);
  const px = (x: number, y: number, c: number) => rgb[(y * width + x) * 3 + c];
  let ok = true;
  for (const [x, y] of [[0, 0], [5, 9], [127, 255], [64, 128], [100, 3]]) {
    for (const c of [0, 1, 2]) {
      const sx = 10 + 2 * x;
      const sy = 30 + 2 * y;
      const expected = (px(sx, sy, 2 - c) + px(sx + 1, sy, 2 - c) + px(sx, sy + 1, 2 - c) + px(sx + 1, sy + 1, 2 - c)) / 4;
      ok &&= near(t, at(out, 0, x, y, c), expected, 1e-3, `channel ${c} at ${x},${y}`);
    }
  }
  t.true(ok);
});

test('reidInput clips the box to the frame and never reads outside the box', (t) => {
  // A 40×100 red person on blue, at the top-left corner of the frame.
  const width = 160;
  const height = 240;
  const inside = (x: number, y: number) => x < 40 && y < 100;
  const rgb = patternRgb(width, height, (x, y, c) => (inside(x, y) ? [200, 10, 20][c] : [0, 0, 255][c]));
  const clipped = new Float32Array(REID_TENSOR_SIZE);
  const exact = new Float32Array(REID_TENSOR_SIZE);
  reidInput(rgb, width, height, [-30, -50, 40, 100], clipped, 0);
  reidInput(rgb, width, height, [0, 0, 40, 100], exact, 0);
  t.deepEqual(clipped, exact, 'a box sticking out of the frame is the clipped box');
  for (let i = 0; i < REID_TENSOR_SIZE; i += 3) {
    if (clipped[i] !== 20 || clipped[i + 1] !== 10 || clipped[i + 2] !== 200) {
      t.fail(`pixel ${i / 3} is B,G,R ${[...clipped.subarray(i, i + 3)]}, expected 20,10,200: the blue outside leaked in`);
      return;
    }
  }
  // The same at the bottom-right corner.
  const br = patternRgb(width, height, (x, y, c) => (x >= 120 && y >= 140 ? [1, 2, 3][c] : [250, 250, 250][c]));
  reidInput(br, width, height, [120, 140, 400, 900], clipped, 0);
  t.true(clipped.every((v, i) => v === [3, 2, 1][i % 3]), 'bottom-right box clipped to the frame, BGR');
  t.deepEqual(clipReidBox([-30, -50, 40, 100], width, height), [0, 0, 40, 100]);
  t.deepEqual(clipReidBox([120, 140, 400, 900], width, height), [120, 140, 160, 240]);
});

test('reidInput handles tiny boxes and rejects empty boxes, bad buffers and bad sizes', (t) => {
  const rgb = patternRgb(10, 10, (x, y, c) => x * 10 + y + c);
  const out = new Float32Array(REID_TENSOR_SIZE);
  reidInput(rgb, 10, 10, [3.2, 4.1, 3.6, 4.3], out, 0); // inside one pixel: that pixel, stretched
  t.true(out.every((v, i) => v === [2, 1, 0][i % 3] + 34), 'a sub-pixel box is its single pixel');
  t.is(clipReidBox([20, 0, 30, 10], 10, 10), null, 'entirely right of the frame');
  t.is(clipReidBox([5, 5, 5, 9], 10, 10), null, 'zero width');
  t.throws(() => reidInput(rgb, 10, 10, [20, 0, 30, 10], out, 0), { instanceOf: RangeError, message: /no area/ });
  t.throws(() => reidInput(rgb, 10, 10, [0, 0, Number.NaN, 5], out, 0), { instanceOf: RangeError, message: /non-finite/ });
  t.throws(() => reidInput(rgb, 10, 10, [0, 0, 5, 5], out, 1), { instanceOf: RangeError, message: /no room/ });
  t.throws(() => reidInput(rgb, 10, 10, [0, 0, 5, 5], new Float32Array(10), 0), { instanceOf: RangeError });
  t.throws(() => reidInput(rgb, 11, 10, [0, 0, 5, 5], out, 0), { instanceOf: RangeError, message: /RGB bytes/ });
  t.throws(() => reidInput(rgb, 0, 10, [0, 0, 5, 5], out, 0), { instanceOf: RangeError });
});

// ---------- real model on vtest.avi ----------

const vtest = (async () => {
  const frames = await videoFrames(path.join(MEDIA_DIR, 'vtest.avi'), FIRST, LAST);
  const boxes = new Map<number, Box[]>();
  for (const [n, img] of frames) boxes.set(n, await detectPersons(img));
  // Ground truth: follow every person of frame FIRST through each frame to LAST by greedy IoU matching.
  const start = boxes.get(FIRST)!;
  let chains = start.map((_, i) => ({ from: i, at: i }));
  for (let n = FIRST + 1; n <= LAST; n++) {
    const prev = boxes.get(n - 1)!;
    const match = greedyMatch(chains.map((c) => prev[c.at]), boxes.get(n)!, CHAIN_IOU);
    chains = chains.flatMap((c, k) => (match.has(k) ? [{ from: c.from, at: match.get(k)! }] : []));
  }
  const followed = chains.map((c) => ({ first: c.from, last: c.at, moved: iou(start[c.from], boxes.get(LAST)![c.at]) < STATIC_IOU }));
  return { frames, boxes, chains: followed };
})();
vtest.catch(() => {}); // reported by the tests that await it

test.serial('reid on vtest.avi: the same person 1 s later is similar, different people are not, rank-1', async (t) => {
  const { frames, boxes, chains } = await vtest;
  const a = boxes.get(FIRST)!;
  const b = boxes.get(LAST)!;
  t.log(`frame ${FIRST}: ${a.length} persons ${a.map(fmtBox).join(' ')}`);
  t.log(`frame ${LAST}: ${b.length} persons ${b.map(fmtBox).join(' ')}`);
  t.log(`IoU chain ${FIRST}→${LAST}: ${chains.map((c) => `${c.first}→${c.last}${c.moved ? '' : ' (static)'}`).join(', ')}`);
  // Probes: the walkers followed from frame FIRST (a static false positive matching itself proves nothing).
  // Gallery: every person detected in frame LAST, static ones included as distractors.
  const walkers = chains.filter((c) => c.moved);
  t.true(walkers.length >= 3, `at least 3 walkers followed for ground truth, got ${walkers.length}`);
  const probes = walkers.map((c) => a[c.first]);
  const ra = await reidEmbed(task(frames.get(FIRST)!, probes), THREADS);
  const rb = await reidEmbed(task(frames.get(LAST)!, b), THREADS);
  const sim = ra.embeddings.map((p) => rb.embeddings.map((g) => cosineSimilarity(p, g)));

  const header = `probe\\gallery ${b.map((_, j) => `  #${j}  `).join('')}`;
  const rows = sim.map((row, i) => `#${walkers[i].first} (→#${walkers[i].last})`.padEnd(14) +
    row.map((v, j) => (j === walkers[i].last ? `[${v.toFixed(2)}]` : ` ${v.toFixed(2)} `).padStart(7)).join(''));
  t.log(`cosine similarity, frame ${FIRST} persons × frame ${LAST} persons ([same person] by IoU chain):\n${header}\n${rows.join('\n')}`);

  const same: number[] = [];
  const different: number[] = [];
  let rank1 = 0;
  sim.forEach((row, i) => {
    row.forEach((v, j) => (j === walkers[i].last ? same : different).push(v));
    const best = row.indexOf(Math.max(...row));
    if (best === walkers[i].last) rank1++;
  });
  const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;
  t.log(`mean cosine: same person ${mean(same).toFixed(3)} (min ${Math.min(...same).toFixed(3)}), ` +
    `different people ${mean(different).toFixed(3)} (max ${Math.max(...different).toFixed(3)}); rank-1 ${rank1}/${walkers.length}`);
  t.true(mean(same) >= 0.7, `mean same-person cosine ${mean(same)}`);
  t.true(mean(different) <= 0.45, `mean different-people cosine ${mean(different)}`);
  t.true(rank1 >= 3, `rank-1 for ${rank1} persons`);
  t.log(`timing: ${probes.length} crops in ${ra.inferenceMs.toFixed(1)} ms, ${b.length} crops in ${rb.inferenceMs.toFixed(1)} ms ` +
    '(first task includes the first-run warm-up)');
});

test.serial('reidEmbed returns unit, independent embeddings in box order and hands the frame back', async (t) => {
  const { frames, boxes } = await vtest;
  const img = frames.get(FIRST)!;
  const persons = boxes.get(FIRST)!;
  const [p0, p1] = persons;
  const shifted: Box = [p0[0] + 1, p0[1] + 1, p0[2] + 1, p0[3] + 1];
  const outside: Box = [img.width + 10, 0, img.width + 50, 100];
  const tk = task(img, [p0, p1, p0, outside, shifted]);
  const data = tk.data;
  const r = await reidEmbed(tk, THREADS);
  t.is(r.data, data, 'the frame buffer is handed back');
  t.is(r.embeddings.length, 5);
  const buffers = new Set(r.embeddings.map((e) => e.buffer));
  t.is(buffers.size, 5, 'every embedding has its own buffer');
  for (const [i, e] of r.embeddings.entries()) {
    t.is(e.length, REID_EMBEDDING_SIZE);
    t.is(e.byteOffset, 0);
    t.is(e.buffer.byteLength, REID_EMBEDDING_SIZE * 4, `embedding ${i} is a whole buffer`);
  }
  for (const i of [0, 1, 2, 4]) near(t, cosineSimilarity(r.embeddings[i], r.embeddings[i]), 1, 1e-5, `|e${i}|²`);
  t.deepEqual(r.embeddings[2], r.embeddings[0], 'the same box twice gives the same embedding');
  t.true(r.embeddings[3].every((v) => v === 0), 'a box outside the frame gives a zero embedding');
  t.true(cosineSimilarity(r.embeddings[0], r.embeddings[4]) > 0.95, 'a 1-pixel shift barely changes the embedding');
  t.true(cosineSimilarity(r.embeddings[0], r.embeddings[1]) < cosineSimilarity(r.embeddings[0], r.embeddings[4]));

  // Overlapping calls each get their own input buffer and still agree.
  const both = await Promise.all([reidEmbed(task(img, [p0, p1]), THREADS), reidEmbed(task(img, [p1, p0]), THREADS)]);
  t.deepEqual(both[0].embeddings[0], r.embeddings[0]);
  t.deepEqual(both[1].embeddings[1], r.embeddings[0]);
  t.deepEqual(both[1].embeddings[0], r.embeddings[1]);

  const none = await reidEmbed(task(img, []), THREADS);
  t.deepEqual(none.embeddings, []);
  t.is(none.inferenceMs, 0);

  // Per-crop cost with a warm session.
  const n = Math.max(persons.length, 1);
  const times: number[] = [];
  for (let k = 0; k < 5; k++) times.push((await reidEmbed(task(img, persons), THREADS)).inferenceMs);
  times.sort((x, y) => x - y);
  t.log(`warm: ${persons.length} crops per task, median ${times[2].toFixed(1)} ms per task, ${(times[2] / n).toFixed(2)} ms per crop ` +
    `(${THREADS} ORT thread)`);
});

test.serial('reidEmbed rejects a wrong frame size, a non-finite box and a model that is not a ReID model', async (t) => {
  const { frames, boxes } = await vtest;
  const img = frames.get(FIRST)!;
  const box = boxes.get(FIRST)![0];
  await t.throwsAsync(reidEmbed({ ...task(img, [box]), width: img.width - 1 }, THREADS), { message: /bytes, expected/ });
  await t.throwsAsync(reidEmbed(task(img, [[0, 0, Number.POSITIVE_INFINITY, 10]]), THREADS), { message: /non-finite/ });
  await t.throwsAsync(reidEmbed(task(img, [box], YOLOX), THREADS), { message: /expected a person ReID model with NHWC input \[1,256,128,3\]/ });
  await t.throwsAsync(reidEmbed(task(img, [box], { path: path.join(MODEL_DIR, 'no-such.onnx'), kind: 'reid' }), THREADS), { message: /not found/ });
});

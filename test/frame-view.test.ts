/**
 * The detector's view: a source that feeds `detect` delivers each frame with a copy scaled by GStreamer to fit the
 * model, the detector reads only that, and reports boxes in the frame's pixels. A file run whose stages read no full
 * frame gets views alone.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { startApp, type AppOptions } from '../app/app.js';
import type { Detection, Packet } from '../core/types.js';
import { graph, media, memoryLogger, testSettings } from './helpers.js';
import { decodedFrames } from './video-frames.js';

const sha = (data: ArrayBuffer | Uint8Array): string => createHash('sha1').update(data instanceof ArrayBuffer ? new Uint8Array(data) : data).digest('hex');
const VTEST = media('vtest.avi');

interface Seen { width: number; height: number; bytes: number; view?: { width: number; height: number; sha: string }; detections: Detection[] }

/** Runs `stages` on `source` to the end, keeping what each packet carried (read in its handler, as the pixel rule asks). */
async function run(source: string, stages: string, opts: AppOptions = {}): Promise<Map<number, Seen>> {
  const g = graph(`
sources:
  cam: ${source}
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  cam: { source: cam, stages: ${stages} }
`);
  const app = await startApp(g, testSettings(), { serve: false, log: memoryLogger(), ...opts });
  const seen = new Map<number, Seen>();
  app.bus.on('packet').subscribe(({ frame: f, detections }: Packet) => seen.set(f.seq, {
    width: f.width, height: f.height, bytes: f.data.byteLength, detections: detections ?? [],
    view: f.view && { width: f.view.width, height: f.view.height, sha: sha(f.view.data) },
  }));
  await app.runtime.whenDone();
  await app.stop();
  return seen;
}

const DETECT = '[{ id: detect, use: detect, with: { model: people, classes: [person] } }]';
let atFileSize: Map<number, Seen> | undefined;

test.serial('each frame comes with its view, made by GStreamer, and boxes come in the frame\'s pixels', async (t) => {
  const expected = await decodedFrames(VTEST, 416, 312, sha);
  const seen = atFileSize = await run(`{ uri: "file://${VTEST}" }`, DETECT);
  t.is(seen.size, 795);
  const wrong = [...seen].filter(([seq, s]) => s.width !== 768 || s.height !== 576 || s.bytes !== 768 * 576 * 3
    || s.view?.width !== 416 || s.view.height !== 312 || s.view.sha !== expected[seq]).map(([seq]) => seq);
  t.deepEqual(wrong, [], 'every frame is whole and its view is that frame scaled to 416×312');

  // The same pictures with the source configured at the view's size: the same detections, scaled by 768/416.
  const small = await run(`{ uri: "file://${VTEST}", width: 416, height: 312 }`, DETECT);
  t.true([...small.values()].every((s) => s.view === undefined && s.bytes === 416 * 312 * 3), 'a source at the detector\'s size makes no view');
  const k = 768 / 416;
  let boxes = 0;
  for (const [seq, s] of seen) {
    const other = small.get(seq)!.detections;
    t.is(s.detections.length, other.length, `frame ${seq}`);
    s.detections.forEach((d, i) => {
      boxes++;
      t.is(d.score, other[i].score);
      d.box.forEach((v, j) => t.true(Math.abs(v - other[i].box[j] * k) < 1e-3, `frame ${seq} box ${i}: ${d.box} vs ${other[i].box}`));
    });
  }
  t.true(boxes > 5000, `${boxes} boxes compared`);
});

test.serial('a file run whose stages read no full frame gets views alone; one with a stage that reads frames gets frames', async (t) => {
  const viewsAlone = await run(`{ uri: "file://${VTEST}" }`, `[${DETECT.slice(1, -1)}, { id: track, use: track }]`, { fileRun: true });
  t.is(viewsAlone.size, 795);
  t.true([...viewsAlone.values()].every((s) => s.width === 768 && s.height === 576 && s.bytes === 0 && s.view?.width === 416),
    'frames of the file\'s size, no pixels of their own, a 416-wide view');
  const same = atFileSize && [...viewsAlone].every(([seq, s]) => s.view!.sha === atFileSize!.get(seq)!.view!.sha
    && JSON.stringify(s.detections) === JSON.stringify(atFileSize!.get(seq)!.detections));
  t.true(same, 'the same views and detections as with full frames');

  const annotated = await run(`{ uri: "file://${VTEST}" }`, `[${DETECT.slice(1, -1)}, { id: annotate, use: annotate }]`, { fileRun: true });
  t.true([...annotated.values()].every((s) => s.bytes === 768 * 576 * 3 && s.view?.width === 416), 'annotate reads frames: they are whole');
});

test.serial('a live source pairs each frame with the view of the same picture', async (t) => {
  // A ball going round once a second, seen 5 times a second: a view paired with another frame shows it far away.
  const g = graph(`
sources:
  cam: { uri: "test://ball?motion=sweep", width: 640, height: 480, fps: 5 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  cam: { source: cam, stages: ${DETECT} }
`);
  const app = await startApp(g, testSettings(), { serve: false, log: memoryLogger() });
  let withView = 0;
  let without = 0;
  const mismatched: number[] = [];
  const distances: number[] = [];
  app.bus.on('packet').subscribe(({ frame: f }: Packet) => {
    if (!f.view) { without++; return; }
    withView++;
    const d = ballDistance(new Uint8Array(f.data), f.width, f.height, new Uint8Array(f.view.data), f.view.width, f.view.height);
    // Paired right, the two centroids differ by scaling alone (~2 px); a view one frame off is 4.7 px or more away.
    if (!(d < 3.5)) mismatched.push(f.seq);
    distances.push(d);
  });
  // A live source does not end: five seconds of it (25 frames).
  await new Promise((r) => setTimeout(r, 5000));
  await app.stop();
  t.log(`${withView} frames with their view, ${without} without; the ball ${Math.max(...distances).toFixed(1)} px apart at most`);
  t.true(withView >= 15, `${withView} frames with a view`);
  t.true(without <= withView / 10, `${without} frames without a view`);
  t.deepEqual(mismatched, [], 'every view shows its own frame');
});

/** Where the ball is: the centroid of the bright pixels, in the picture's own pixels. */
function ball(rgb: Uint8Array, width: number, height: number): [number, number] {
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      if (rgb[i] + rgb[i + 1] + rgb[i + 2] > 384) { sx += x; sy += y; n++; }
    }
  }
  return n ? [sx / n, sy / n] : [NaN, NaN];
}

/** How far apart the ball is in a frame and in its view (in frame pixels). */
function ballDistance(a: Uint8Array, aw: number, ah: number, b: Uint8Array, bw: number, bh: number): number {
  const [ax, ay] = ball(a, aw, ah);
  const [bx, by] = ball(b, bw, bh);
  return Math.hypot(ax - (bx + 0.5) * (aw / bw) + 0.5, ay - (by + 0.5) * (ah / bh) + 0.5);
}

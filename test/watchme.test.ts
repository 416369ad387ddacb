/**
 * WatchMe against a running server on real video: a reference photo cropped from one pedestrian of vtest.avi is
 * uploaded, then found again by live tracking on a vtest source (checked against the tracker's own tracks) and in
 * frames the client sends; every error case; encrypted tokens; session ids, limits, a session taken over after an
 * unclean drop; the document's HTML page and RealTimeTracker in Chromium, read from the document.
 */
import test from 'ava';
import http from 'node:http';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import ort from 'onnxruntime-node';
import WebSocket from 'ws';
import { startApp, type App } from '../app/app.js';
import { loadOrCreateKey, openVectors, sealVectors } from '../services/looks/embedding-token.js';
import type { Box, TrackedObject } from '../core/types.js';
import { iou } from '../core/geometry.js';
import { decodeYolox, letterbox, YOLOX_INPUT } from '../inference/models/yolox.js';
import { graph, media, memoryLogger, metric, scrape, testSettings } from './helpers.js';
import { CuttingProxy } from './cutting-proxy.js';
import { block, substitute } from './docs/blocks.js';
import { encode, videoFrames, y4m, type RgbImage } from './video-frames.js';

/** vtest.avi frame 20: the pedestrian in the red jacket on the right (YOLOX box), walking up the road for ~9 s. */
const REF_FRAME = 20;
const REF_BOX: Box = [684, 271, 725, 379];
/** Ground truth is computed for the file frames up to this one. */
const LAST_TRUTH_FRAME = 110;
const MAX_IMAGE = 2 * 1024 * 1024;
const RATE = 20;

type Msg = Record<string, unknown> & { type: string; status?: string; message?: string };
interface MatchesMsg {
  type: 'matches';
  matches: { bbox: Box; distance: number; confidence: number }[];
  timestamp: number;
  frame_info: { frame_number: number; width: number; height: number; processed_at: number; processing_time: number };
}

/** A client that records every message and can wait for one that matches. */
class Client {
  readonly messages: Msg[] = [];
  readonly closed: Promise<number>;
  private waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as Msg;
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => (w.match(m) ? (w.resolve(m), false) : true));
    });
    this.closed = new Promise((r) => ws.once('close', (code) => r(code)));
  }
  static async connect(session: string): Promise<Client> {
    const ws = new WebSocket(`${wsBase}/video-stream/${session}`);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return new Client(ws);
  }
  /** The next message (from now on) that matches. */
  next(match: (m: Msg) => boolean, ms = 60_000): Promise<Msg> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching message in time')), ms);
      this.waiters.push({ match, resolve: (m) => { clearTimeout(timer); resolve(m); } });
    });
  }
  ask(request: unknown, match: (m: Msg) => boolean = () => true): Promise<Msg> {
    const reply = this.next(match);
    this.ws.send(typeof request === 'string' ? request : JSON.stringify(request));
    return reply;
  }
  close(): void { this.ws.close(); }
}

const isError = (m: Msg): boolean => m.type === 'status' && m.status === 'error';

let app: App;
let base: string;
let wsBase: string;
/** Decoded file frames 0-40 (reference crop, client frames, camera clip). */
let frames: Map<number, RgbImage>;
/** YOLOX persons of file frames 0-LAST_TRUTH_FRAME, and the reference pedestrian's box among them where visible. */
let persons: Map<number, { boxes: Box[]; pedestrian?: Box }>;
let reference: Buffer;
/** The tracker's tracks of every frame the live pipeline finished, by index in the file. */
const tracksAt = new Map<number, TrackedObject[]>();
/**
 * Frame number (sequence of the frames the source delivered) → the frame's index in the file, from its
 * timestamp. They differ once a realtime source has dropped frames on a busy machine; the pedestrian's ground
 * truth is by file index (the client sends file frames), the live `frame_number` by sequence.
 */
const fileIndexOf = new Map<number, number>();
const VTEST_FRAME_NS = 1e8;

test.before(async () => {
  ({ frames, persons } = await groundTruth());
  const img = frames.get(REF_FRAME)!;
  // A loose crop around the pedestrian, as a user would cut one out of a picture.
  reference = await encode(img, [REF_BOX[0] - 8, REF_BOX[1] - 10, REF_BOX[2] + 8, REF_BOX[3] + 8]);
  app = await startApp(graph(`
sources:
  plaza: { uri: "file://${media('vtest.avi')}", realtime: true }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  reid: { file: person-reidentification-retail-0287.onnx, kind: reid }
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  arcface: { file: face_recognition_mobilefacenet_128d.onnx, kind: mobilefacenet }
pipelines:
  plaza:
    source: plaza
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.1 } }
      - { id: track, use: track }
transports:
  watchme: { port: 0, detector: people, reid: reid, faceDetector: faces, faceEmbedder: arcface, maxImageBytes: ${MAX_IMAGE}, maxSessions: 6, maxMessagesPerSecond: ${RATE} }
  metrics: { port: 0 }
`), testSettings(), { log: memoryLogger() });
  app.bus.on('packet').subscribe((p) => {
    if (!p.tracks) return;
    const index = Math.round(p.frame.ptsNs / VTEST_FRAME_NS);
    fileIndexOf.set(p.frame.seq, index);
    tracksAt.set(index, p.tracks);
  });
  const port = app.portOf('watchme')!;
  base = `http://127.0.0.1:${port}`;
  wsBase = `ws://127.0.0.1:${port}`;
});
test.after.always(() => app?.stop());

const upload = (body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  fetch(`${base}/upload-embedding`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });

async function referenceToken(): Promise<string> {
  const res = await upload({ image: reference.toString('base64') });
  if (res.status !== 200) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { embedding: string }).embedding;
}


/**
 * Ground truth without the server: YOLOX persons in every file frame up to LAST_TRUTH_FRAME, and the reference
 * pedestrian followed from the reference box both ways by the best IoU with the previous frame's box.
 */
async function groundTruth(): Promise<{ frames: Map<number, RgbImage>; persons: Map<number, { boxes: Box[]; pedestrian?: Box }> }> {
  const all = await videoFrames(media('vtest.avi'), 0, LAST_TRUTH_FRAME);
  const session = await ort.InferenceSession.create(path.resolve(process.env.SIGHTLINE_MODEL_DIR ?? 'models', 'yolox_nano.onnx'));
  const out = new Map<number, { boxes: Box[]; pedestrian?: Box }>();
  for (const [n, { rgb, width, height }] of all) {
    const { tensor, scale } = letterbox(rgb, width, height);
    const r = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', tensor, [1, 3, YOLOX_INPUT, YOLOX_INPUT]) });
    const dets = decodeYolox(r[session.outputNames[0]].data as Float32Array, { scoreThreshold: 0.3, nmsIou: 0.45, classIds: new Set([0]), width,
      height, scale });
    out.set(n, { boxes: dets.map((d) => d.box) });
  }
  for (const step of [1, -1]) {
    let prev = REF_BOX;
    for (let n = REF_FRAME, misses = 0; n >= 0 && n <= LAST_TRUTH_FRAME && misses < 3; n += step) {
      const best = out.get(n)!.boxes.reduce<Box | undefined>((a, b) => (iou(b, prev) > (a ? iou(a, prev) : 0.3) ? b : a), undefined);
      if (!best) { misses++; continue; }
      misses = 0;
      out.get(n)!.pedestrian = best;
      prev = best;
    }
  }
  await session.release();
  return { frames: new Map([...all].filter(([n]) => n <= 40)), persons: out };
}

/** Whether `box` is the pedestrian in file frame `n`: on its box, and nearer to it than to anyone else. */
function onPedestrian(box: Box, n: number): boolean {
  const f = persons.get(n);
  if (!f?.pedestrian) return false;
  const nearest = f.boxes.reduce((a, b) => (iou(box, b) > iou(box, a) ? b : a));
  return nearest === f.pedestrian && iou(box, f.pedestrian) > 0.5;
}

const pedestrianAt = (n: number): Box | undefined => persons.get(n)?.pedestrian;

/** Checks a `matches` message has exactly the documented fields and types. */
function checkShape(t: import('ava').ExecutionContext, m: MatchesMsg, width: number, height: number): void {
  t.deepEqual(Object.keys(m).sort(), ['frame_info', 'matches', 'timestamp', 'type']);
  t.deepEqual(Object.keys(m.frame_info).sort(), ['frame_number', 'height', 'processed_at', 'processing_time', 'width']);
  // Seconds from the frame's arrival (capture, or receipt of a client's frame) to the answer.
  t.true(m.frame_info.processing_time >= 0 && m.frame_info.processing_time < 30, `processing_time ${m.frame_info.processing_time}`);
  t.true(Math.abs(m.frame_info.processing_time - (m.frame_info.processed_at - m.timestamp)) < 0.002);
  t.true(Number.isInteger(m.frame_info.frame_number));
  t.is(m.frame_info.width, width);
  t.is(m.frame_info.height, height);
  t.true(m.timestamp > 1.6e9 && m.timestamp < 1e11 && m.frame_info.processed_at >= m.timestamp - 1, 'seconds since the epoch');
  for (const x of m.matches) {
    t.deepEqual(Object.keys(x).sort(), ['bbox', 'confidence', 'distance']);
    t.is(x.bbox.length, 4);
    t.true(x.bbox.every(Number.isInteger) && x.bbox[0] < x.bbox[2] && x.bbox[1] < x.bbox[3] && x.bbox[2] <= width && x.bbox[3] <= height);
    t.true(x.distance >= 0 && x.distance <= 0.4 && x.confidence >= 0.5 && x.confidence <= 1);
  }
}

test.serial('live tracking on a vtest source follows the reference pedestrian\'s track, and nobody else', async (t) => {
  const token = await referenceToken();
  const c = await Client.connect('live_1');
  const started = await c.ask({ type: 'start_tracking', person_embed: token, video_source: 0, fps_limit: 5 });
  t.deepEqual({ ...started, timestamp: 0 }, { type: 'status', status: 'tracking_started', message: 'Started tracking on source: 0', timestamp: 0 });
  t.is(typeof started.timestamp, 'number');
  const received: MatchesMsg[] = [];
  // Until the pedestrian has walked for 3 s of video after the reference frame.
  await new Promise<void>((resolve) => c.ws.on('message', (raw) => {
    const m = JSON.parse(raw.toString()) as MatchesMsg;
    if (m.type !== 'matches') return;
    received.push(m);
    if (m.frame_info.frame_number >= REF_FRAME + 30) resolve();
  }));
  t.is((await c.ask({ type: 'stop_tracking' })).status, 'tracking_stopped');
  const after = received.length;
  await new Promise((r) => setTimeout(r, 1000));
  c.close();
  t.is(received.length, after, 'no matches after tracking_stopped');

  // Each match must be a live track (its box, exactly) on the pedestrian; where the tracker has the pedestrian,
  // it must be matched; and the matches keep to the pedestrian's track id.
  let present = 0;
  let followed = 0;
  const matchedIds = new Set<number>();
  const log: string[] = [];
  for (const m of received) {
    checkShape(t, m, 768, 576);
    const index = fileIndexOf.get(m.frame_info.frame_number)!;
    const tracks = tracksAt.get(index) ?? [];
    for (const x of m.matches) {
      const track = tracks.find((tr) => iou(x.bbox, tr.box) > 0.9);
      t.truthy(track, `frame ${index}: [${x.bbox}] is a track's box`);
      if (track) matchedIds.add(track.id);
      t.true(onPedestrian(x.bbox, index), `frame ${index}: [${x.bbox}] is the pedestrian at [${pedestrianAt(index)?.map(Math.round)}]`);
    }
    const truth = pedestrianAt(index);
    if (truth && tracks.some((tr) => iou(tr.box, truth) > 0.5)) {
      present++;
      if (m.matches.length) followed++;
    }
    log.push(`${index}:${m.matches.map((x) => x.distance).join('/') || '-'}(${tracks.length} tracks)`);
  }
  t.log(`matched track ids ${[...matchedIds].join(', ')}; matches per file frame (distance, tracks in frame): ${log.join(' ')}`);
  t.log(`the pedestrian was tracked in ${present} of ${received.length} frames sent and matched in ${followed}`);
  t.true(present >= 5, `pedestrian tracked in ${present} frames`);
  t.true(followed >= present * 0.9, `followed in ${followed} of ${present} frames`);
  t.true(matchedIds.size <= 2, 'the matches follow the track (one id, two if the tracker lost it once)');
  // fps_limit 5 on a 10 fps source: about every other frame is sent.
  const numbers = received.map((m) => m.frame_info.frame_number);
  t.true(numbers.every((n, i) => i === 0 || n > numbers[i - 1]), 'in frame order');
  const gaps = (numbers[numbers.length - 1] - numbers[0]) / (numbers.length - 1);
  t.true(gaps >= 1.5, `mean gap of ${gaps.toFixed(2)} frames between matches messages`);
});

test.serial('single_frame finds the reference pedestrian in frames the client sends, and nobody else', async (t) => {
  const token = await referenceToken();
  const c = await Client.connect('frames_1');
  let found = 0;
  const log: string[] = [];
  const latencies: number[] = [];
  const sent = [4, 12, 20, 26, 32, 38];
  for (const [i, n] of sent.entries()) {
    const frame = (await encode(frames.get(n)!, undefined, 'jpeg')).toString('base64');
    const t0 = performance.now();
    const m = await c.ask({ type: 'single_frame', frame, person_embed: token }) as unknown as MatchesMsg;
    latencies.push(performance.now() - t0);
    t.is(m.type, 'matches');
    checkShape(t, m, 768, 576);
    t.is(m.frame_info.frame_number, i, 'frames of a session are numbered from 0');
    const truth = pedestrianAt(n);
    log.push(`frame ${n}: ${m.matches.map((x) => `[${x.bbox}] ${x.distance}`).join(', ') || 'none'}; pedestrian ${truth ? `[${truth.map(Math.round)}]` : 'not seen'}`);
    if (!truth) continue;
    t.is(m.matches.length, 1, `frame ${n}: exactly the one person`);
    if (m.matches[0] && onPedestrian(m.matches[0].bbox, n)) found++;
  }
  t.log(log.join('\n'));
  t.log(`single_frame round trips (768x576 JPEG, live pipeline running beside): ${latencies.map((v) => v.toFixed(0)).join(', ')} ms`);
  t.true(found >= 4, `found in ${found} frames`);
  c.close();
});

test.serial('a visible face is kept in the token and fused in: the same man in another photo matches, another does not', async (t) => {
  const photo = (name: string) => readFileSync(media(name)).toString('base64');
  const res = await upload({ image: photo('obama.jpg') });
  t.is(res.status, 200);
  const { embedding } = await res.json() as { embedding: string };
  const keyFile = path.join(app.settings.dataDir, 'watchme.key');
  t.is(statSync(keyFile).mode & 0o777, 0o600, 'the server key is private');
  const vectors = openVectors(loadOrCreateKey(app.settings.dataDir), embedding);
  t.deepEqual(Object.keys(vectors).sort(), ['body', 'face']);
  t.is(vectors.body.length, 256);
  t.is(vectors.face.length, 128);
  const c = await Client.connect('faces_1');
  const results: string[] = [];
  const distances: Record<string, number[]> = {};
  for (const name of ['obama3.jpg', 'biden.jpg', 'two_people.jpg']) {
    const m = await c.ask({ type: 'single_frame', frame: photo(name), person_embed: embedding }) as unknown as MatchesMsg;
    distances[name] = m.matches.map((x) => x.distance);
    if (name === 'two_people.jpg') {
      t.is(m.matches.length, 1);
      t.true(m.matches[0].bbox[2] < m.frame_info.width * 0.6, 'Obama is the man on the left');
    }
    results.push(`${name}: ${JSON.stringify(m.matches)}`);
  }
  t.log(results.join('\n'));
  t.is(distances['obama3.jpg'].length, 1, 'Obama standing in the Blue Room');
  t.is(distances['biden.jpg'].length, 0, 'Biden standing in the same room, also in a dark suit');
  c.close();
});

test.serial('tokens are encrypted and authenticated: altered, truncated and foreign tokens are refused', async (t) => {
  const token = await referenceToken();
  t.regex(token, /^[A-Za-z0-9_-]+$/);
  t.false(token.includes(Buffer.from(new Float32Array(4).buffer).toString('base64url')), 'no run of zero floats in the clear');
  const raw = Buffer.from(token, 'base64url');
  const flipped = Buffer.from(raw);
  flipped[raw.length - 7] ^= 0x01;
  const foreign = sealVectors(Buffer.alloc(32, 7), { body: new Float32Array(256).fill(1 / 16) });
  const c = await Client.connect('tokens_1');
  const frame = (await encode(frames.get(REF_FRAME)!, undefined, 'jpeg')).toString('base64');
  const cases: [string, unknown][] = [
    ['one flipped byte', flipped.toString('base64url')],
    ['another server key', foreign],
    ['truncated', token.slice(0, token.length - 12)],
    ['garbage', 'not-a-token'],
    ['a number', 42],
    ['missing', undefined],
  ];
  for (const [what, bad] of cases) {
    for (const request of [
      { type: 'start_tracking', person_embed: bad, video_source: 0, fps_limit: 5 },
      { type: 'single_frame', frame, person_embed: bad },
    ]) {
      const m = await c.ask(request);
      t.true(isError(m), `${what} (${request.type}): ${JSON.stringify(m)}`);
      t.regex(String(m.message), /person_embed/, what);
    }
  }
  t.is((await c.ask({ type: 'ping' })).status, 'pong', 'the socket stays open');
  const metrics = await scrape(app.portOf('metrics')!);
  t.true(metric(metrics, 'sightline_ws_errors_total', { protocol: 'watchme', kind: 'bad_token' })! >= cases.length * 2);
  c.close();
});

test.serial('ping answers pong with a timestamp, and every bad message gets an error status on an open socket', async (t) => {
  const c = await Client.connect('errors_1');
  const pong = await c.ask({ type: 'ping' });
  t.deepEqual(Object.keys(pong).sort(), ['status', 'timestamp', 'type']);
  t.is(pong.status, 'pong');
  t.true(Math.abs(Number(pong.timestamp) - Date.now() / 1000) < 60);
  const token = await referenceToken();
  const cases: [unknown, RegExp][] = [
    ['{not json', /not valid JSON/],
    ['[1,2]', /JSON object/],
    [{ type: 'dance' }, /unknown message type "dance"/],
    [{ hello: 1 }, /unknown message type null/],
    [{ type: 'start_tracking', person_embed: token, video_source: 99, fps_limit: 5 }, /unknown video_source 99; configured sources: 0 \(plaza\)/],
    [{ type: 'start_tracking', person_embed: token, video_source: 'lobby', fps_limit: 5 }, /unknown video_source "lobby"/],
    [{ type: 'start_tracking', person_embed: token, video_source: 0, fps_limit: -1 }, /fps_limit/],
    [{ type: 'single_frame', frame: '%%%', person_embed: token }, /"frame" is not valid base64/],
    [{ type: 'single_frame', frame: Buffer.from('not an image at all').toString('base64'), person_embed: token }, /"frame" is not a readable image/],
    [{ type: 'single_frame', person_embed: token }, /"frame" must be a base64 string/],
  ];
  for (const [request, expected] of cases) {
    const m = await c.ask(request);
    t.true(isError(m), JSON.stringify(m));
    t.regex(String(m.message), expected);
    t.deepEqual(Object.keys(m).sort(), ['message', 'status', 'timestamp', 'type']);
  }
  const binary = c.next(() => true);
  c.ws.send(Buffer.from([1, 2, 3]));
  t.regex(String((await binary).message), /not valid JSON/);
  t.is((await c.ask({ type: 'ping' })).status, 'pong', 'the socket stays open');
  // A frame beyond the size limit closes the socket (the protocol has no message for it: 1009, message too big).
  c.ws.send(JSON.stringify({ type: 'single_frame', frame: 'A'.repeat(MAX_IMAGE * 2), person_embed: token }));
  t.is(await c.closed, 1009);
  const metrics = await scrape(app.portOf('metrics')!);
  for (const kind of ['invalid_json', 'unknown_type', 'unknown_source', 'bad_base64', 'bad_image', 'bad_format']) {
    t.true(metric(metrics, 'sightline_ws_errors_total', { protocol: 'watchme', kind })! >= 1, kind);
  }
});

test.serial('POST /upload-embedding errors: bad JSON, bad base64, not an image, no person, too large, wrong type', async (t) => {
  const blank = createCanvas(320, 240);
  blank.getContext('2d').fillRect(0, 0, 320, 240);
  const cases: [Promise<Response>, number, RegExp][] = [
    [upload('{bad json'), 400, /not valid JSON/],
    [upload([1]), 400, /JSON object/],
    [upload({ picture: 'x' }), 400, /"image" must be a base64 string/],
    [upload({ image: '%%%' }), 400, /"image" is not valid base64/],
    [upload({ image: Buffer.from('not an image').toString('base64') }), 422, /"image" is not a readable image/],
    [upload({ image: (await blank.encode('png')).toString('base64') }), 422, /no person found in the image/],
    [upload({ image: Buffer.alloc(MAX_IMAGE + 10).toString('base64') }), 413, /larger than/],
    [upload('x'.repeat(MAX_IMAGE * 2)), 413, /larger than/],
    [upload('image=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, /application\/json/],
  ];
  for (const [pending, status, detail] of cases) {
    const res = await pending;
    t.is(res.status, status);
    t.regex(res.headers.get('content-type') ?? '', /^application\/json(; charset=utf-8)?$/);
    const body = await res.json() as { detail: string };
    t.deepEqual(Object.keys(body), ['detail']);
    t.regex(body.detail, detail);
  }
  // The reference also works as a data URL, and a whole frame gives its most prominent person.
  t.is((await upload({ image: `data:image/png;base64,${reference.toString('base64')}` })).status, 200);
  t.is((await upload({ image: (await encode(frames.get(REF_FRAME)!)).toString('base64') })).status, 200);
  const metrics = await scrape(app.portOf('metrics')!);
  for (const kind of ['no_person', 'too_large', 'bad_base64', 'bad_image']) {
    t.true(metric(metrics, 'sightline_ws_errors_total', { protocol: 'watchme', kind })! >= 1, kind);
  }
});

test.serial('session ids are validated, a connected id cannot be taken twice, and sessions are limited', async (t) => {
  const refused = async (id: string): Promise<[Msg, number]> => {
    const ws = new WebSocket(`${wsBase}/video-stream/${id}`);
    const c = new Client(ws);
    const first = await c.next(() => true, 10_000);
    return [first, await c.closed];
  };
  for (const id of ['bad$id', 'a'.repeat(129), '..%2F..%2Fetc', 'sp%20ace']) {
    const [m, code] = await refused(id);
    t.true(isError(m), id);
    t.regex(String(m.message), /session id must be 1-128 characters/);
    t.is(code, 1008);
  }
  const a = await Client.connect('limit_0');
  const [dup, dupCode] = await refused('limit_0');
  t.regex(String(dup.message), /already connected/);
  t.is(dupCode, 1008);
  const more = [a];
  for (let i = 1; i < 6; i++) more.push(await Client.connect(`limit_${i}`));
  const [full, fullCode] = await refused('limit_6');
  t.regex(String(full.message), /too many sessions \(at most 6\)/);
  t.is(fullCode, 1013);
  const token = await referenceToken();
  await Promise.all(more.map((c) => c.ask({ type: 'start_tracking', person_embed: token, video_source: 'plaza', fps_limit: 2 })));
  more[0].close();
  await more[0].closed;
  const again = await Client.connect('limit_6');
  t.is((await again.ask({ type: 'ping' })).status, 'pong', 'a freed place is taken again');
  for (const c of [...more, again]) c.close();
  await Promise.all([...more, again].map((c) => c.closed));
  await new Promise((r) => setTimeout(r, 200));
  const metrics = await scrape(app.portOf('metrics')!);
  t.is(metric(metrics, 'sightline_ws_clients', { protocol: 'watchme' }), 0, 'every session freed on disconnect');
  t.true(metric(metrics, 'sightline_ws_errors_total', { protocol: 'watchme', kind: 'session_limit' })! >= 1);
});

test.serial('a connection with the id of a session whose socket is dead takes the session over, its watch included', async (t) => {
  const token = await referenceToken();
  const proxy = await CuttingProxy.start(app.portOf('watchme')!);
  t.teardown(() => proxy.close());
  const through = async (): Promise<Client> => {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/video-stream/resume_1`);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return new Client(ws);
  };
  const first = await through();
  t.is((await first.ask({ type: 'start_tracking', person_embed: token, video_source: 'plaza', fps_limit: 5 })).status, 'tracking_started');
  const before = await first.next((m) => m.type === 'matches') as unknown as MatchesMsg;
  // The network drops the connection: the client sees its socket close, the server's stays open and silent.
  t.is(proxy.cut(), 1);
  t.is(await first.closed, 1006);
  const started = Date.now();
  const second = await through();
  const waited = Date.now() - started;
  // No start_tracking on the new socket: the session's watch goes on, its frames numbered on from the first socket's.
  const after = await second.next((m) => m.type === 'matches') as unknown as MatchesMsg;
  t.true(after.frame_info.frame_number > before.frame_info.frame_number);
  t.true(waited < 5000, `handshake after ${waited} ms (the old socket had 2 s to answer a ping)`);
  // The session's socket is alive now: a third connection with its id is refused, as before.
  const third = new Client(new WebSocket(`${wsBase}/video-stream/resume_1`));
  t.regex(String((await third.next(() => true, 10_000)).message), /already connected/);
  t.is(await third.closed, 1008);
  second.close();
  await second.closed;
  await new Promise((r) => setTimeout(r, 200));
  t.is(metric(await scrape(app.portOf('metrics')!), 'sightline_ws_clients', { protocol: 'watchme' }), 0, 'both sockets of the session are gone');
  t.log(`taken over ${waited} ms after the drop; frames ${before.frame_info.frame_number} → ${after.frame_info.frame_number}`);
});

test.serial('a session sending faster than its message rate gets one error a second and stays usable', async (t) => {
  const c = await Client.connect('rate_1');
  for (let i = 0; i < RATE * 3; i++) c.ws.send(JSON.stringify({ type: 'ping' }));
  await c.ask({ type: 'ping' }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 500));
  const pongs = c.messages.filter((m) => m.status === 'pong').length;
  const errors = c.messages.filter(isError);
  t.log(`${RATE * 3 + 1} pings in a burst: ${pongs} pongs, ${errors.length} error(s)`);
  t.true(pongs >= RATE && pongs < RATE * 2, `${pongs} pongs`);
  t.true(errors.length >= 1 && errors.length <= 2);
  t.regex(String(errors[0].message), new RegExp(`rate limit exceeded: at most ${RATE} messages per second`));
  await new Promise((r) => setTimeout(r, 1100));
  t.is((await c.ask({ type: 'ping' })).status, 'pong');
  const metrics = await scrape(app.portOf('metrics')!);
  t.true(metric(metrics, 'sightline_ws_errors_total', { protocol: 'watchme', kind: 'rate_limited' })! >= RATE);
  c.close();
});

/**
 * After this frame the pedestrian walks away from the camera beside another walker of the same size and dark
 * clothes: from behind, at 25 pixels wide, one detection's crop tells them apart no better than chance (tracks
 * carry the identity through, detections cannot).
 */
const LAST_SIDE_VIEW = 75;

test.serial('a source without a tracker is matched per detection', async (t) => {
  // A second server with the first one's key: its tokens are good here too, so tracking starts right away.
  const token = await referenceToken();
  const key = loadOrCreateKey(app.settings.dataDir).toString('hex');
  const other = await startApp(graph(`
sources:
  raw: { uri: "file://${media('vtest.avi')}", realtime: true }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  reid: { file: person-reidentification-retail-0287.onnx, kind: reid }
pipelines:
  raw:
    source: raw
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person] } }
transports:
  watchme: { port: 0, detector: people, reid: reid, key: "${key}" }
  metrics: { port: 0 }
`), testSettings(), { log: memoryLogger() });
  t.teardown(() => other.stop());
  const indexOf = new Map<number, number>();
  other.bus.on('packet').subscribe((p) => indexOf.set(p.frame.seq, Math.round(p.frame.ptsNs / VTEST_FRAME_NS)));
  const ws = new WebSocket(`ws://127.0.0.1:${other.portOf('watchme')}/video-stream/untracked`);
  await new Promise((r) => ws.once('open', r));
  const c = new Client(ws);
  t.is((await c.ask({ type: 'start_tracking', person_embed: token, video_source: 'raw', fps_limit: 10 })).status, 'tracking_started');
  const received: MatchesMsg[] = [];
  await new Promise<void>((resolve) => ws.on('message', (raw) => {
    const m = JSON.parse(raw.toString()) as MatchesMsg;
    if (m.type === 'matches') received.push(m);
    if (m.frame_info?.frame_number >= LAST_SIDE_VIEW) resolve();
  }));
  c.close();
  let checked = 0;
  let found = 0;
  for (const m of received) {
    checkShape(t, m, 768, 576);
    const index = indexOf.get(m.frame_info.frame_number) ?? -1;
    for (const x of m.matches) t.true(onPedestrian(x.bbox, index), `file frame ${index}: [${x.bbox}] is the pedestrian at [${pedestrianAt(index)?.map(Math.round)}]`);
    // Recall while the pedestrian is seen whole, from the side (not cut by the frame's edge, not from behind).
    const truth = pedestrianAt(index);
    if (index > LAST_SIDE_VIEW || !truth || truth[2] > 760) continue;
    checked++;
    if (m.matches.length === 1) found++;
  }
  t.true(found >= checked * 0.8, `matched in ${found} of ${checked} frames`);
  t.log(`${received.length} matches messages; the pedestrian seen whole in ${checked} of their frames and matched in ${found}`);
  t.true(checked >= 5);
});

/** The index of the decoded frame (0-40) an image is closest to, by mean absolute difference on a pixel grid. */
async function nearestFrame(jpeg: Buffer): Promise<number> {
  const img = await loadImage(jpeg);
  const c = createCanvas(768, 576);
  c.getContext('2d').drawImage(img, 0, 0, 768, 576);
  const seen = c.getContext('2d').getImageData(0, 0, 768, 576).data;
  let best = -1;
  let bestDiff = Infinity;
  for (const [n, f] of frames) {
    let diff = 0;
    for (let y = 2; y < 576; y += 8) for (let x = 2; x < 768; x += 8) {
      const i = y * 768 + x;
      for (let ch = 0; ch < 3; ch++) diff += Math.abs(seen[i * 4 + ch] - f.rgb[i * 3 + ch]);
    }
    if (diff < bestDiff) { bestDiff = diff; best = n; }
  }
  return best;
}

test.serial("the document's HTML page and RealTimeTracker work unchanged in Chromium (fake camera playing vtest.avi)", async (t) => {
  const { chromium } = await import('playwright-core');
  // A server of its own whose source 0 is a test pattern: its live results are empty, so every match the page
  // receives answers one of its camera frames.
  const server = await startApp(graph(`
sources:
  pattern: { uri: "test://ball", width: 320, height: 240, fps: 5 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  reid: { file: person-reidentification-retail-0287.onnx, kind: reid }
pipelines:
  pattern:
    source: pattern
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person] } }
transports:
  watchme: { port: 0, detector: people, reid: reid }
  metrics: { port: 0 }
`), testSettings(), { log: memoryLogger() });
  t.teardown(() => server.stop());
  const port = server.portOf('watchme')!;
  const camera = path.join(os.tmpdir(), `watchme-camera-${process.pid}.y4m`);
  writeFileSync(camera, y4m([...frames.values()], 10));
  const personFile = path.join(os.tmpdir(), `watchme-person-${process.pid}.png`);
  writeFileSync(personFile, reference);
  t.teardown(() => { rmSync(camera, { force: true }); rmSync(personFile, { force: true }); });
  // The document's page and script, read from it, from an origin of their own as the document's page would be
  // (uploads go through CORS); only the server's address is replaced.
  const doc = 'watchme-person-tracking.rst';
  const html = block(doc, 'Real-time Webcam Tracking #1').code;
  const js = substitute(block(doc, 'Real-time Webcam Tracking #2'), [['localhost:5000', `127.0.0.1:${port}`]]);
  const page = http.createServer((req, res) => {
    if (req.url === '/websocket-tracker.js') res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(js);
    else res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
  });
  await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
  t.teardown(() => page.close());
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${camera}`],
  });
  t.teardown(() => browser.close());
  const tab = await browser.newPage();
  // Records the boxes the page draws (the live results clear the overlay between camera frames).
  await tab.addInitScript(() => {
    const strokes: { style: string; rect: number[] }[] = [];
    (window as unknown as { strokes: typeof strokes }).strokes = strokes;
    const original = CanvasRenderingContext2D.prototype.strokeRect;
    CanvasRenderingContext2D.prototype.strokeRect = function (x: number, y: number, w: number, h: number) {
      strokes.push({ style: String(this.strokeStyle), rect: [x, y, w, h] });
      original.call(this, x, y, w, h);
    };
  });
  const console: string[] = [];
  tab.on('console', (m) => console.push(m.text()));
  const received: MatchesMsg[] = [];
  const sentFrames: string[] = [];
  tab.on('websocket', (ws) => {
    ws.on('framereceived', (f) => {
      const m = JSON.parse(String(f.payload)) as MatchesMsg;
      if (m.type === 'matches') received.push(m);
    });
    ws.on('framesent', (f) => {
      const m = JSON.parse(String(f.payload)) as { type: string; frame?: string };
      if (m.type === 'single_frame') sentFrames.push(m.frame!);
    });
  });
  await tab.goto(`http://127.0.0.1:${(page.address() as { port: number }).port}/`);
  await tab.waitForFunction(() => (document.getElementById('webcam') as HTMLVideoElement).readyState >= 2);
  await tab.setInputFiles('#personImage', personFile);
  await tab.waitForFunction(() => document.getElementById('status')!.textContent!.includes('Person embedding created'));
  await tab.click('text=Start Tracking');
  // The page sends its camera frame every second: wait for 4 answers that found the pedestrian.
  const deadline = Date.now() + 90_000;
  const single = () => received.filter((m) => m.matches.length > 0);
  while (single().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  const strokes = await tab.evaluate(() => (window as unknown as { strokes: { style: string; rect: number[] }[] }).strokes);
  const green = strokes.filter((x) => x.style === '#00ff00').length;
  await tab.click('text=Stop Tracking');
  t.log(`console: ${console.filter((l) => /Status|✓|WebSocket/.test(l)).slice(0, 5).join(' | ')}`);
  t.log(`frames answered: ${received.map((m) => `${m.frame_info.frame_number}:${m.matches.length}`).join(' ')}`);
  t.log(`${received.length} matches messages, ${single().length} with a match on a camera frame; ${green} green boxes drawn, e.g. ${JSON.stringify(strokes[0]?.rect.map(Math.round))}`);
  t.true(console.some((l) => l === 'Status: tracking_started - Started tracking on source: 0'));
  t.true(received.some((m) => m.matches.length === 0 && m.frame_info.width === 320), 'live results of the test pattern: nobody');
  t.true(single().length >= 4, 'the pedestrian is found in the camera frames');
  t.is(green, single().reduce((n, m) => n + m.matches.length, 0), 'the page drew every match as a green box (distance < 0.5)');
  // The camera plays file frames 0-40 in a loop at its own pace: which one a reply answers is found from the
  // JPEG the page sent (the file frame it is closest to), and the match must be on the pedestrian there.
  let checked = 0;
  for (const m of single()) {
    const k = await nearestFrame(Buffer.from(sentFrames[m.frame_info.frame_number], 'base64'));
    if (!pedestrianAt(k)) continue;
    checked++;
    for (const x of m.matches) t.true(onPedestrian(x.bbox, k), `camera frame ${k}: [${x.bbox}] is the pedestrian at [${pedestrianAt(k)!.map(Math.round)}]`);
  }
  t.true(checked >= 3, `${checked} replies checked`);
  // stopTracking() says "Tracking stopped", then the socket's close handler says it was disconnected.
  t.regex(await tab.textContent('#status') ?? '', /Tracking stopped|Disconnected from tracking service/);
});

test('the graph checks the watchme transport: required models, their kinds, optional face models, limits', (t) => {
  const models = `
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  reid: { file: person-reidentification-retail-0287.onnx, kind: reid }
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
transports:
`;
  t.notThrows(() => graph(`${models}  watchme: { detector: people, reid: reid }\n`));
  const problems = (transport: string): string => {
    try { graph(`${models}  watchme: ${transport}\n`); return ''; } catch (err) { return (err as Error).message; }
  };
  t.regex(problems('{ detector: people }'), /transports\.watchme: missing required key "reid"/);
  t.regex(problems('{ detector: people, reid: people }'), /transports\.watchme\.reid: model "people" is of kind "yolox"; watchme reid needs kind "reid"/);
  t.regex(problems('{ detector: people, reid: reid, faceDetector: reid, faceEmbedder: reid }'), /faceDetector: model "reid" is of kind "reid"; watchme faceDetector needs kind "yunet"/);
  t.regex(problems('{ detector: people, reid: reid, faceDetector: faces, faceEmbedder: nope }'), /faceEmbedder: unknown model "nope"/);
  t.regex(problems('{ detector: people, reid: reid, faceDetector: faces }'), /must have property faceEmbedder when property faceDetector is present/);
  t.regex(problems('{ detector: people, reid: reid, maxSessions: 0 }'), /maxSessions: must be >= 1/);
  t.regex(problems('{ detector: people, reid: reid, key: "abc" }'), /key: must match/);
});

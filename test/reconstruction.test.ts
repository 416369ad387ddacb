/**
 * The reconstruction protocol against a running server with real photos: sessions over REST, images over
 * WS, progress then a GLB point cloud that parses with glTF-Transform, incremental previews, finalize,
 * every error case (the socket stays open), expiry and a restart on the same data directory. The document's own
 * clients run in docs-reconstruction.test.ts.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { NodeIO, Primitive, type Document } from '@gltf-transform/core';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import WebSocket from 'ws';
import { startApp, type App } from '../app/app.js';
import { graph, media, memoryLogger, metric, scrape, testSettings, openQueuedSocket } from './helpers.js';

const GRAPH = (extra = '') => graph(`
models:
  depth: { file: depth_estimation_fastdepth_224x224.onnx, kind: fastdepth }
transports:
  reconstruction: { port: 0, model: depth, fov: 60${extra} }
  metrics: { port: 0 }
`);

let app: App;
let base: string;
let wsBase: string;
test.before(async () => {
  app = await startApp(GRAPH(), testSettings({ workers: 2, ortThreads: 1 }), { log: memoryLogger() });
  const port = app.portOf('reconstruction')!;
  base = `http://127.0.0.1:${port}`;
  wsBase = `ws://127.0.0.1:${port}`;
});
test.after.always(() => app?.stop());

type Msg = Record<string, unknown> & { type: string };
const b64 = (name: string) => readFileSync(media(name)).toString('base64');

const connect = (url: string) => openQueuedSocket<Msg>(url, 512 * 1024 * 1024);

async function createSession(query = ''): Promise<Record<string, unknown> & { session_id: string }> {
  const res = await fetch(`${base}/ws/session/create${query}`, { method: 'POST' });
  if (res.status !== 200) throw new Error(`create answered ${res.status}: ${await res.text()}`);
  return res.json() as Promise<Record<string, unknown> & { session_id: string }>;
}

/** Messages until `complete` (or an error), progress included. */
async function untilComplete(next: () => Promise<Msg>): Promise<{ progress: Msg[]; complete: Msg }> {
  const progress: Msg[] = [];
  for (;;) {
    const m = await next();
    if (m.type === 'progress') progress.push(m);
    else if (m.type === 'complete') return { progress, complete: m };
    else throw new Error(`unexpected message ${JSON.stringify(m).slice(0, 200)}`);
  }
}

const io = new NodeIO();
const readGlb = (b64data: string): Promise<Document> => io.readBinary(new Uint8Array(Buffer.from(b64data, 'base64')));

/** sRGB byte of a linear 0–1 value. */
const toSrgb = (c: number) => Math.round(255 * (c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055));

async function rgbOf(name: string, width: number, height: number): Promise<Uint8ClampedArray> {
  const img = await loadImage(readFileSync(media(name)));
  const c = createCanvas(width, height);
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height).data;
}

test.serial('whole protocol with real photos: progress, then a GLB point cloud with colours from the images and plausible depth', async (t) => {
  const MAX_POINTS = 60_000;
  const session = await createSession(`?max_images=5&process_res=320&num_max_points=${MAX_POINTS}`);
  t.is(typeof session.session_id, 'string');
  t.like(session, { status: 'created', max_images: 5, process_res: 320, num_max_points: MAX_POINTS, num_images: 0, has_model: false });

  const { ws, next, send } = await connect(`${wsBase}/ws/reconstruct/${session.session_id}`);
  t.like(await next(), { type: 'connected', session_id: session.session_id, num_images: 0, max_images: 5 });
  const photos = ['messi5.jpg', 'two_people.jpg', 'coco_000000000077.jpg'];
  for (const name of photos) {
    send({ type: 'image', data: b64(name), filename: name });
    const ack = await next();
    t.is(ack.type, 'ack');
    // The path is relative to the data directory (which is the server's business); what is kept is a JPEG of the
    // image scaled to process_res, never larger than the upload.
    t.true(typeof ack.image_path === 'string' && !path.isAbsolute(ack.image_path as string), String(ack.image_path));
    const stored = path.join(app.settings.dataDir, ack.image_path as string);
    t.true(existsSync(stored));
    const [kept, sent] = await Promise.all([loadImage(readFileSync(stored)), loadImage(readFileSync(media(name)))]);
    t.is(Math.max(kept.width, kept.height), Math.min(320, Math.max(sent.width, sent.height)), name);
  }
  send({ type: 'generate', incremental: false });
  const { progress, complete } = await untilComplete(next);
  t.true(progress.length >= 4, `${progress.length} progress messages`);
  const values = progress.map((p) => p.progress as number);
  t.deepEqual(values, [...values].sort((a, b) => a - b));
  t.is(values.at(-1), 1);
  t.true(progress.every((p) => typeof p.message === 'string' && (p.message as string).length > 0));
  const glbBytes = Buffer.from(complete.glb_base64 as string, 'base64');
  t.like(complete.metadata, { num_frames: 3, glb_size_bytes: glbBytes.length });

  // The GLB: one POINTS primitive per photo with POSITION and COLOR_0, at most num_max_points in all.
  const doc = await readGlb(complete.glb_base64 as string);
  const meshes = doc.getRoot().listMeshes();
  t.deepEqual(meshes.map((m) => m.getName()), photos);
  let total = 0;
  for (const mesh of meshes) {
    for (const prim of mesh.listPrimitives()) {
      t.is(prim.getMode(), Primitive.Mode.POINTS);
      t.is(prim.getAttribute('POSITION')!.getCount(), prim.getAttribute('COLOR_0')!.getCount());
      total += prim.getAttribute('POSITION')!.getCount();
    }
  }
  t.is((complete.metadata as { num_points: number }).num_points, total);
  t.true(total <= MAX_POINTS);
  // The message fits in the 1 MiB a default websockets client accepts; the whole model is served beside it.
  t.true(JSON.stringify(complete).length <= 1024 * 1024);
  const full = (complete.metadata as { full_model: { url: string; num_points: number; glb_size_bytes: number } }).full_model;
  const fullGlb = Buffer.from(await (await fetch(`${base}${full.url}`)).arrayBuffer());
  t.is(fullGlb.length, full.glb_size_bytes);
  const fullDoc = await io.readBinary(new Uint8Array(fullGlb));
  const fullCount = fullDoc.getRoot().listMeshes().reduce((n, m) => n + m.listPrimitives()[0].getAttribute('POSITION')!.getCount(), 0);
  t.is(fullCount, full.num_points);
  t.true(fullCount <= MAX_POINTS && fullCount > MAX_POINTS * 0.95, `${fullCount} points in the full model`);
  t.true(total < fullCount);

  // messi5 (548x342 → 320x200): project every point back into the image with the same intrinsics.
  const prim = meshes[0].listPrimitives()[0];
  const pos = prim.getAttribute('POSITION')!.getArray() as Float32Array;
  const col = prim.getAttribute('COLOR_0')!.getArray() as Float32Array;
  const [W, H] = [320, 200];
  const f = W / 2 / Math.tan(Math.PI / 6);
  const rgb = await rgbOf('messi5.jpg', W, H);
  let colourError = 0;
  const depthIn = { torso: [] as number[], stands: [] as number[] };
  for (let i = 0; i < pos.length / 3; i++) {
    const z = -pos[3 * i + 2];
    const u = (f * pos[3 * i]) / z + W / 2;
    const v = (-f * pos[3 * i + 1]) / z + H / 2;
    const px = Math.min(W - 1, Math.floor(u));
    const py = Math.min(H - 1, Math.floor(v));
    for (let c = 0; c < 3; c++) colourError += Math.abs(toSrgb(col[3 * i + c]) - rgb[4 * (py * W + px) + c]);
    const [x, y] = [u / W, v / H];
    if (x > 0.32 && x < 0.52 && y > 0.38 && y < 0.65) depthIn.torso.push(z);
    if (x > 0.3 && x < 0.8 && y < 0.18) depthIn.stands.push(z);
  }
  const meanColourError = colourError / pos.length;
  const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
  t.log(`${total} points; messi5: mean colour difference ${meanColourError.toFixed(1)}/255, torso ${mean(depthIn.torso).toFixed(2)} m, stands ${mean(depthIn.stands).toFixed(2)} m`);
  t.true(meanColourError < 12, `colours differ by ${meanColourError} on average`);
  t.true(depthIn.torso.length > 100 && depthIn.stands.length > 100);
  t.true(mean(depthIn.torso) + 0.5 < mean(depthIn.stands), 'the player is nearer than the stands');

  // The session reports its model, lists it, and the dashboard serves the same GLB.
  const info = await (await fetch(`${base}/ws/session/${session.session_id}`)).json() as Record<string, unknown>;
  t.like(info, { session_id: session.session_id, status: 'completed', num_images: 3, has_model: true, num_points: fullCount, glb_size_bytes: fullGlb.length, images: photos, model_url: full.url });
  const list = await (await fetch(`${base}/ws/sessions`)).json() as { sessions: { session_id: string }[] };
  t.true(list.sessions.some((s) => s.session_id === session.session_id));
  ws.close();
});

test.serial('incremental: delta previews as images arrive, then finalize', async (t) => {
  const session = await createSession('?max_images=4&process_res=160&num_max_points=20000');
  const { ws, next, send } = await connect(`${wsBase}/ws/reconstruct/${session.session_id}`);
  t.is((await next()).type, 'connected');
  send({ type: 'image', data: b64('messi5.jpg'), filename: 'messi5.jpg' });
  t.is((await next()).type, 'ack');
  send({ type: 'generate', incremental: true });
  const first = await untilComplete(next);
  t.like(first.complete.metadata, { num_frames: 1 });
  for (const [i, name] of ['two_people.jpg', 'obama.jpg'].entries()) {
    send({ type: 'image', data: b64(name), filename: name });
    t.like(await next(), { type: 'ack', num_images: i + 2 });
    const delta = await next();
    t.is(delta.type, 'delta');
    t.like(delta.metadata, { num_frames: i + 2 });
    const doc = await readGlb(delta.glb_base64 as string);
    t.is(doc.getRoot().listMeshes().length, i + 2);
    t.true(doc.getRoot().listMeshes().every((m) => m.listPrimitives()[0].getAttribute('COLOR_0') !== null));
  }
  send({ type: 'finalize' });
  // The model is brought up to date with every image, then the session is closed for new images.
  const final = await untilComplete(next);
  t.like(final.complete.metadata, { num_frames: 3 });
  t.like(await next(), { type: 'finalized', session_id: session.session_id, num_frames: 3 });
  send({ type: 'image', data: b64('biden.jpg'), filename: 'biden.jpg' });
  t.regex((await next()).message as string, /finalized/);
  const info = await (await fetch(`${base}/ws/session/${session.session_id}`)).json() as Record<string, unknown>;
  t.like(info, { status: 'finalized', num_images: 3, num_frames: 3 });
  ws.close();
});

test.serial('errors get {type: error, message} and the socket stays open; they are counted', async (t) => {
  const before = await scrape(app.portOf('metrics')!);
  const errorsOf = (text: string, kind: string) => metric(text, 'sightline_ws_errors_total', { protocol: 'reconstruction', kind }) ?? 0;

  // Unknown session: the first message is the error, and the socket stays open for more answers.
  const ghost = await connect(`${wsBase}/ws/reconstruct/no-such-session`);
  const e0 = await ghost.next();
  t.is(e0.type, 'error');
  t.regex(e0.message as string, /not found/);
  ghost.send({ type: 'generate' });
  t.like(await ghost.next(), { type: 'error' });
  t.is(ghost.ws.readyState, WebSocket.OPEN);
  ghost.ws.close();

  const session = await createSession('?max_images=1&process_res=128&num_max_points=5000');
  const { ws, next, send } = await connect(`${wsBase}/ws/reconstruct/${session.session_id}`);
  t.is((await next()).type, 'connected');
  const expectError = async (msg: unknown, pattern: RegExp) => {
    send(msg);
    const m = await next();
    t.is(m.type, 'error', JSON.stringify(m));
    t.regex(m.message as string, pattern);
    t.deepEqual(Object.keys(m).sort(), ['message', 'type']);
  };
  await expectError({ type: 'generate' }, /no images/);
  await expectError({ type: 'image', data: '%%% not base64 %%%', filename: 'x.jpg' }, /not valid base64/);
  await expectError({ type: 'image', data: Buffer.from('hello, this is text and not a picture').toString('base64') }, /not an image/);
  // JPEG magic but no image behind it: refused by the decoder in the worker, nothing stored.
  const jpeg = readFileSync(media('messi5.jpg'));
  await expectError({ type: 'image', data: Buffer.concat([jpeg.subarray(0, 3), Buffer.alloc(500, 7)]).toString('base64') }, /could not be decoded/);
  await expectError({ type: 'image' }, /"data" must be/);
  await expectError({ type: 'teleport' }, /unknown message type "teleport"/);
  await expectError('{not json', /not valid JSON/);
  await expectError([1, 2], /JSON object/);
  // The first valid image is taken; the second is one too many.
  send({ type: 'image', data: b64('messi5.jpg'), filename: 'messi5.jpg' });
  t.like(await next(), { type: 'ack', num_images: 1 });
  await expectError({ type: 'image', data: b64('two_people.jpg'), filename: 'two_people.jpg' }, /maximum of 1 images/);
  t.is(ws.readyState, WebSocket.OPEN);
  // Still usable after all that.
  send({ type: 'generate' });
  const { complete } = await untilComplete(next);
  t.like(complete.metadata, { num_frames: 1 });
  const info = await (await fetch(`${base}/ws/session/${session.session_id}`)).json() as Record<string, unknown>;
  t.like(info, { num_images: 1 });
  ws.close();

  const after = await scrape(app.portOf('metrics')!);
  for (const [kind, n] of Object.entries({ unknown_session: 2, no_images: 1, bad_base64: 1, bad_image: 2, bad_format: 2, unknown_type: 1,
    invalid_json: 1, too_many_images: 1 })) {
    t.is(errorsOf(after, kind) - errorsOf(before, kind), n, kind);
  }

  // REST: unknown ids, bad parameters, delete removes the files.
  t.is((await fetch(`${base}/ws/session/nope`)).status, 404);
  t.deepEqual(await (await fetch(`${base}/ws/session/nope`, { method: 'DELETE' })).json(), { detail: 'Session not found' });
  const bad = await fetch(`${base}/ws/session/create?max_images=lots`, { method: 'POST' });
  t.is(bad.status, 422);
  t.regex(((await bad.json()) as { detail: string }).detail, /max_images must be an integer/);
  const dir = path.join(app.settings.dataDir, 'reconstruction', session.session_id);
  t.true(existsSync(dir));
  const del = await fetch(`${base}/ws/session/${session.session_id}`, { method: 'DELETE' });
  t.deepEqual(await del.json(), { status: 'deleted', session_id: session.session_id });
  t.false(existsSync(dir));
  t.is((await fetch(`${base}/ws/session/${session.session_id}`)).status, 404);
  // CORS: the document's HTML client runs on another origin.
  t.is((await fetch(`${base}/ws/sessions`)).headers.get('access-control-allow-origin'), '*');
});

test.serial('sessions expire after the idle time, with their files', async (t) => {
  const short = await startApp(GRAPH(', sessionTtl: 1, maxImageBytes: 200000'), testSettings({ workers: 1 }), { log: memoryLogger() });
  try {
    const url = `http://127.0.0.1:${short.portOf('reconstruction')!}`;
    const s = await (await fetch(`${url}/ws/session/create?max_images=2`, { method: 'POST' })).json() as { session_id: string };
    const c = await connect(`${url.replace('http', 'ws')}/ws/reconstruct/${s.session_id}`);
    await c.next();
    // An image over maxImageBytes (two_people.jpg is 488 kB) is refused; the socket stays open.
    c.send({ type: 'image', data: b64('two_people.jpg'), filename: 'two_people.jpg' });
    t.regex((await c.next()).message as string, /larger than 200000 bytes/);
    c.send({ type: 'image', data: b64('messi5.jpg'), filename: 'messi5.jpg' });
    t.like(await c.next(), { type: 'ack', num_images: 1 });
    const dir = path.join(short.settings.dataDir, 'reconstruction', s.session_id);
    t.true(existsSync(dir));
    // An open socket keeps the session alive; once it closes, the session goes after a second idle.
    c.ws.close();
    let status = 200;
    while (status === 200) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await fetch(`${url}/ws/session/${s.session_id}`)).status;
    }
    t.is(status, 404);
    t.false(existsSync(dir));
    const c2 = await connect(`${url.replace('http', 'ws')}/ws/reconstruct/${s.session_id}`);
    t.like(await c2.next(), { type: 'error' });
    c2.ws.close();
  } finally {
    await short.stop();
  }
});

test.serial('a restart on the same data directory keeps sessions, images and models', async (t) => {
  const settings = testSettings({ workers: 1 });
  const first = await startApp(GRAPH(), settings, { log: memoryLogger() });
  let id: string;
  let glb: Buffer;
  try {
    const url = `http://127.0.0.1:${first.portOf('reconstruction')!}`;
    id = ((await (await fetch(`${url}/ws/session/create?process_res=128&num_max_points=3000`, { method: 'POST' })).json()) as { session_id: string }).session_id;
    const c = await connect(`${url.replace('http', 'ws')}/ws/reconstruct/${id}`);
    await c.next();
    c.send({ type: 'image', data: b64('two_people.jpg'), filename: 'two_people.jpg' });
    await c.next();
    c.send({ type: 'generate' });
    glb = Buffer.from((await untilComplete(c.next)).complete.glb_base64 as string, 'base64');
    c.ws.close();
  } finally {
    await first.stop();
  }
  const second = await startApp(GRAPH(), settings, { log: memoryLogger() });
  try {
    const url = `http://127.0.0.1:${second.portOf('reconstruction')!}`;
    const info = await (await fetch(`${url}/ws/session/${id}`)).json() as Record<string, unknown>;
    t.like(info, { session_id: id, status: 'completed', num_images: 1, has_model: true, glb_size_bytes: glb.length, num_points: 3000, num_max_points: 3000, process_res: 128 });
    t.deepEqual(Buffer.from(await (await fetch(`${url}${info.model_url as string}`)).arrayBuffer()), glb);
    // More images go on from where the session was; generate recomputes depth from the stored files.
    const c = await connect(`${url.replace('http', 'ws')}/ws/reconstruct/${id}`);
    t.like(await c.next(), { type: 'connected', num_images: 1 });
    c.send({ type: 'image', data: b64('messi5.jpg'), filename: 'messi5.jpg' });
    t.like(await c.next(), { type: 'ack', image_index: 1 });
    c.send({ type: 'generate' });
    const { complete } = await untilComplete(c.next);
    t.like(complete.metadata, { num_frames: 2 });
    const doc = await readGlb(complete.glb_base64 as string);
    t.deepEqual(doc.getRoot().listMeshes().map((m) => m.getName()), ['two_people.jpg', 'messi5.jpg']);
    c.ws.close();
  } finally {
    await second.stop();
  }
});

test.serial('reconstruction and DDFR share one port, told apart by path', async (t) => {
  const both = await startApp(graph(`
models:
  depth: { file: depth_estimation_fastdepth_224x224.onnx, kind: fastdepth }
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  arcface: { file: face_recognition_mobilefacenet_128d.onnx, kind: mobilefacenet }
transports:
  reconstruction: { port: 0, model: depth }
  ddfr: { port: 0, detector: faces, embedder: arcface }
`), testSettings({ workers: 1 }), { log: memoryLogger() });
  try {
    t.is(both.portOf('reconstruction'), both.portOf('ddfr'));
    const url = `http://127.0.0.1:${both.portOf('ddfr')!}`;
    t.deepEqual(await (await fetch(`${url}/persons`)).json(), []);
    const { session_id: id } = await (await fetch(`${url}/ws/session/create`, { method: 'POST' })).json() as { session_id: string };
    const recon = await connect(`${url.replace('http', 'ws')}/ws/reconstruct/${id}`);
    t.like(await recon.next(), { type: 'connected', session_id: id });
    recon.ws.close();
    // DDFR's /ws answers a binary frame with its own reply.
    const ddfr = new WebSocket(`${url.replace('http', 'ws')}/ws`);
    await new Promise((r) => ddfr.once('open', r));
    const reply = new Promise<string>((r) => ddfr.once('message', (m) => r(m.toString())));
    ddfr.send(readFileSync(media('obama.jpg')));
    t.like(JSON.parse(await reply), { status: 'ok' });
    ddfr.close();
  } finally {
    await both.stop();
  }
});

/**
 * DDFR against a running server with real photos: enrolment through the REST API, identification over
 * `/ws` with exactly the documented fields, and every error case. The document's own clients run in docs-ddfr.test.ts.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import WebSocket from 'ws';
import { startApp, type App } from '../app/app.js';
import { gstreamer } from '../pipeline/sources/gstreamer.js';
import { graph, media, memoryLogger, testSettings } from './helpers.js';

const MAX_IMAGE = 2 * 1024 * 1024;
let app: App;
const log = memoryLogger();
let base: string;
let wsUrl: string;

test.before(async () => {
  app = await startApp(graph(`
models:
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  arcface: { file: face_recognition_mobilefacenet_128d.onnx, kind: mobilefacenet }
transports:
  ddfr: { port: 0, detector: faces, embedder: arcface, maxImageBytes: ${MAX_IMAGE} }
  metrics: { port: 0 }
`), testSettings(), { log });
  const port = app.portOf('ddfr')!;
  base = `http://127.0.0.1:${port}`;
  wsUrl = `ws://127.0.0.1:${port}/ws`;
});
test.after.always(() => app?.stop());

type Face = { id: string; top: number; right: number; bottom: number; left: number; name: string; surname: string | null; age: number;
  relationship: string | null; role: string | null };
type Reply = { status: string; faces: Face[] } | null;

/** Sends frames on one connection, each after the previous reply (as the document's Python client does). */
async function recognize(frames: (Buffer | string)[], url = wsUrl): Promise<unknown[]> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const replies: unknown[] = [];
  for (const f of frames) {
    const reply = new Promise<unknown>((resolve) => ws.once('message', (m) => resolve(JSON.parse(m.toString()))));
    ws.send(f);
    replies.push(await reply);
  }
  ws.close();
  return replies;
}

const photo = (name: string) => readFileSync(media(name));
const api = (path: string, init?: RequestInit) => fetch(`${base}${path}`, init);
const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function toPng(jpeg: Buffer): Promise<Buffer> {
  const img = await loadImage(jpeg);
  const c = createCanvas(img.width, img.height);
  c.getContext('2d').drawImage(img, 0, 0);
  return c.encode('png');
}

/** JPEG frames from a video, taken with GStreamer every `every` frames. */
function videoJpegs(file: string, every: number, count: number): Promise<Buffer[]> {
  const p = new gstreamer.Pipeline(`filesrc location="${file}" ! decodebin ! videoconvert ! jpegenc quality=85 ! appsink name=sink sync=false`);
  const sink = p.findChild('sink')!;
  const out: Buffer[] = [];
  let n = 0;
  p.play();
  return new Promise((resolve) => {
    const pull = (): void => sink.pull((buf) => {
      if (buf && n++ % every === 0) out.push(Buffer.from(buf));
      if (!buf || out.length >= count) { p.stop(); resolve(out); } else pull();
    });
    pull();
  });
}

test.serial('with nobody enrolled, faces are detected and all Unknown', async (t) => {
  const [r] = await recognize([photo('obama2.jpg')]) as Reply[];
  t.is(r!.status, 'ok');
  t.is(r!.faces.length, 1);
  t.deepEqual({ ...r!.faces[0], id: 'x', top: 0, right: 0, bottom: 0, left: 0 },
    { id: 'x', top: 0, right: 0, bottom: 0, left: 0, name: 'Unknown', surname: null, age: 0, relationship: null, role: null });
  await recognize([photo('biden2.jpg')]);
  t.is(log.lines.filter((l) => l.includes('no known persons enrolled; detection only')).length, 1, 'logged once');
});

test.serial('enrol through the REST API, then identify the same people in other photos', async (t) => {
  let res = await api('/persons', json({ name: 'Barack', surname: 'Obama', birthday: '1961-08-04', relationship: 'amico', role: 'user' }));
  t.is(res.status, 201);
  const obama = await res.json() as { id: number; age: number; photos: number };
  t.is(obama.photos, 0);
  const today = new Date();
  t.is(obama.age, today.getFullYear() - 1961 - (today.getMonth() < 7 || (today.getMonth() === 7 && today.getDate() < 4) ? 1 : 0));
  res = await api(`/persons/${obama.id}/photos`, json({ image: photo('obama.jpg').toString('base64') }));
  t.is(res.status, 201, await res.clone().text());

  res = await api('/persons', json({ name: 'Joe', surname: 'Biden', birthday: '1942-11-20', role: 'guest' }));
  const biden = await res.json() as { id: number };
  // The same endpoint takes a multipart upload.
  const form = new FormData();
  form.append('file', new Blob([photo('biden.jpg')], { type: 'image/jpeg' }), 'biden.jpg');
  res = await api(`/persons/${biden.id}/photos`, { method: 'POST', body: form });
  t.is(res.status, 201, await res.clone().text());
  t.is(((await (await api(`/persons/${biden.id}`)).json()) as { photos: number }).photos, 1);

  const replies = await recognize([photo('obama2.jpg'), photo('obama3.jpg'), photo('biden2.jpg'), await toPng(photo('obama2.jpg'))]) as Reply[];
  const names = replies.map((r) => r!.faces.map((f) => `${f.name} ${f.surname}`));
  t.deepEqual(names, [['Barack Obama'], ['Barack Obama'], ['Joe Biden'], ['Barack Obama']], 'in order, PNG as well as JPEG');
  const f = replies[0]!.faces[0];
  t.deepEqual(Object.keys(f).sort(), ['age', 'bottom', 'id', 'left', 'name', 'relationship', 'right', 'role', 'surname', 'top']);
  for (const k of ['top', 'right', 'bottom', 'left', 'age'] as const) t.true(Number.isInteger(f[k]), k);
  t.is(f.id, `${f.top}_${f.left}`);
  t.true(f.left < f.right && f.top < f.bottom && f.right <= 626 && f.bottom <= 1200, 'box in the sent image\'s pixels');
  t.is(f.relationship, 'amico');
  t.is(f.role, 'user');
  t.is(replies[2]!.faces[0].role, 'guest');

  const [two] = await recognize([photo('two_people.jpg')]) as Reply[];
  const byX = [...two!.faces].sort((a, b) => a.left - b.left);
  t.deepEqual(byX.map((x) => x.name), ['Barack', 'Joe'], 'left and right in two_people.jpg');
});

test.serial('strangers stay Unknown at the default threshold (no false accept)', async (t) => {
  const frames = [photo('messi5.jpg'), ...await videoJpegs(media('short_hamilton_clip.mp4'), 30, 10)];
  const replies = await recognize(frames) as Reply[];
  const faces = replies.flatMap((r) => r!.faces);
  t.true(faces.length >= 5, `${faces.length} faces in messi5.jpg and 10 clip frames`);
  t.deepEqual([...new Set(faces.map((f) => f.name))], ['Unknown']);
});

test.serial('corrupt frames get null and the socket answers the next one; text frames get an error', async (t) => {
  const replies = await recognize([Buffer.from('definitely not a jpeg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]), photo('biden2.jpg'), 'hello']);
  t.is(replies[0], null);
  t.is(replies[1], null);
  t.is((replies[2] as Reply)!.faces[0].name, 'Joe');
  t.deepEqual(replies[3], { status: 'error', message: 'send each frame as a binary message holding a JPEG or PNG image' });
});

test.serial('a burst of frames is answered in full and in order: beyond 8 waiting the socket is not read, no frame is refused', async (t) => {
  const ws = new WebSocket(wsUrl);
  await new Promise((r) => ws.once('open', r));
  const replies: Reply[] = [];
  const all = new Promise<void>((resolve) => ws.on('message', (m) => { replies.push(JSON.parse(m.toString()) as Reply); if (replies.length === 20) resolve(); }));
  for (let i = 0; i < 20; i++) ws.send(photo('biden2.jpg'));
  await all;
  ws.close();
  // The document's own JavaScript example reads result.faces of every answer: a null for being fast would break it.
  t.true(replies.every((r) => r?.faces[0].name === 'Joe'), 'every frame processed, in order');
});

test.serial('a frame over the size limit closes the socket with 1009', async (t) => {
  const ws = new WebSocket(wsUrl);
  await new Promise((r) => ws.once('open', r));
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  ws.send(Buffer.alloc(MAX_IMAGE + 1024, 1));
  t.is(await closed, 1009);
});

test.serial('REST errors have clear statuses and messages', async (t) => {
  const detail = async (res: Response) => ((await res.json()) as { detail: string }).detail;
  let res = await api('/persons', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{bad json' });
  t.is(res.status, 400);
  t.is(await detail(res), 'request body is not valid JSON');
  res = await api('/persons', json({ surname: 'Nobody' }));
  t.is(res.status, 400);
  t.is(await detail(res), '"name" is required');
  res = await api('/persons', json({ name: 'X', role: 'admin' }));
  t.is(await detail(res), '"role" must be "user" or "guest"');
  res = await api('/persons', json({ name: 'X', birthday: '31/12/1990' }));
  t.is(await detail(res), '"birthday" must be a past date as YYYY-MM-DD, or null');
  res = await api('/persons/999999');
  t.is(res.status, 404);
  t.is(await detail(res), 'person 999999 not found');
  res = await api('/persons/999999/photos', json({ image: photo('obama.jpg').toString('base64') }));
  t.is(res.status, 404);

  const { id } = await (await api('/persons', json({ name: 'Test' }))).json() as { id: number };
  const blank = createCanvas(320, 240);
  blank.getContext('2d').fillRect(0, 0, 320, 240);
  res = await api(`/persons/${id}/photos`, json({ image: (await blank.encode('png')).toString('base64') }));
  t.is(res.status, 422);
  t.is(await detail(res), 'no face found in the photo; send a photo with exactly one clearly visible face');
  res = await api(`/persons/${id}/photos`, json({ image: photo('two_people.jpg').toString('base64') }));
  t.is(res.status, 422);
  t.is(await detail(res), '2 faces found in the photo; send a photo with exactly one face');
  res = await api(`/persons/${id}/photos`, json({ image: Buffer.from('not an image').toString('base64') }));
  t.is(res.status, 422);
  t.regex(await detail(res), /^the photo is not a readable image/);
  res = await api(`/persons/${id}/photos`, json({ image: '%%%' }));
  t.is(res.status, 400);
  res = await api(`/persons/${id}/photos`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
  t.is(res.status, 415);
  res = await api(`/persons/${id}/photos`, json({ image: Buffer.alloc(MAX_IMAGE + 10).toString('base64') }));
  t.is(res.status, 413);
  t.is((await api(`/persons/${id}`, { method: 'DELETE' })).status, 204);
  t.is((await api(`/persons/${id}`)).status, 404);
});

test.serial('updates and deletions reach the search at once', async (t) => {
  const list = await (await api('/persons')).json() as { id: number; name: string }[];
  const biden = list.find((p) => p.name === 'Joe')!;
  const res = await api(`/persons/${biden.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Joseph', relationship: 'collega' }) });
  t.is(res.status, 200);
  let [r] = await recognize([photo('biden2.jpg')]) as Reply[];
  t.is(r!.faces[0].name, 'Joseph');
  t.is(r!.faces[0].relationship, 'collega');
  const photos = await (await api(`/persons/${biden.id}/photos`)).json() as { id: number }[];
  t.is((await api(`/persons/${biden.id}/photos/${photos[0].id}`, { method: 'DELETE' })).status, 204);
  [r] = await recognize([photo('biden2.jpg')]) as Reply[];
  t.is(r!.faces[0].name, 'Unknown');
});

test('`sightline enroll` fills the store from a folder, and a running server sees it without a restart', async (t) => {
  const { mkdtempSync, mkdirSync, copyFileSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sightline-enroll-'));
  mkdirSync(path.join(dir, 'Barack_Obama'));
  mkdirSync(path.join(dir, 'Joe_Biden'));
  copyFileSync(media('obama.jpg'), path.join(dir, 'Barack_Obama', 'portrait.jpg'));
  copyFileSync(media('two_people.jpg'), path.join(dir, 'Barack_Obama', 'with-joe.jpg'));
  copyFileSync(media('biden.jpg'), path.join(dir, 'Joe_Biden', 'blue-room.jpg'));
  const settings = testSettings();
  const server = await startApp(graph(`
models:
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  arcface: { file: face_recognition_mobilefacenet_128d.onnx, kind: mobilefacenet }
transports:
  ddfr: { port: 0, detector: faces, embedder: arcface }
  metrics: { port: 0 }
`), settings, { log: memoryLogger() });
  t.teardown(() => server.stop());
  const url = `ws://127.0.0.1:${server.portOf('ddfr')}/ws`;
  t.is(((await recognize([photo('obama2.jpg')], url))[0] as Reply)!.faces[0].name, 'Unknown');

  const run = promisify(execFile);
  const { stdout } = await run(process.execPath, ['dist/bin/sightline.cjs', 'enroll', dir, '--data-dir', settings.dataDir], { timeout: 120_000 });
  t.regex(stdout, /add {5}Barack_Obama\/portrait\.jpg → person \d+ \(Barack Obama\)/);
  t.regex(stdout, /refuse {2}Barack_Obama\/with-joe\.jpg: 2 faces \(need exactly one\)/);
  t.regex(stdout, /enrolled 2 photo\(s\) of 2 person\(s\); 0 already enrolled; 1 refused/);
  // Enrolling again adds nothing.
  t.regex((await run(process.execPath, ['dist/bin/sightline.cjs', 'enroll', dir, '--data-dir', settings.dataDir])).stdout, /skip {4}Joe_Biden\/blue-room\.jpg \(already enrolled\)/);

  const names = (await recognize([photo('obama2.jpg'), photo('biden2.jpg')], url) as Reply[]).map((r) => `${r!.faces[0].name} ${r!.faces[0].surname}`);
  t.deepEqual(names, ['Barack Obama', 'Joe Biden']);
});

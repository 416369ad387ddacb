/**
 * The People Counter protocol with a real ws client against a running pipeline (detect → track → count →
 * faces → annotate) on real video: every message type and every documented error shape.
 */
import { CountsTable } from '../services/counting/counts.js';
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { firstValueFrom, filter, timeout } from 'rxjs';
import WebSocket from 'ws';
import { startApp, type App } from '../app/app.js';
import { Store } from '../services/store/store.js';
import { graph, media, memoryLogger, testSettings } from './helpers.js';
import { freePort } from './rtsp-server.js';

const TS = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/;

type Msg = Record<string, unknown> & { type?: string; data?: Record<string, unknown> };

/** A client that records every message and can wait for one that matches. */
class Client {
  readonly messages: Msg[] = [];
  private waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as Msg;
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => (w.match(m) ? (w.resolve(m), false) : true));
    });
  }
  static async connect(port: number): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return new Client(ws);
  }
  next(match: (m: Msg) => boolean, ms = 20_000): Promise<Msg> {
    const seen = this.messages.find(match);
    if (seen) { this.messages.splice(this.messages.indexOf(seen), 1); return Promise.resolve(seen); }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching message in time')), ms);
      this.waiters.push({ match: (m) => { if (!match(m)) return false; this.messages.splice(this.messages.indexOf(m), 1); return true; },
        resolve: (m) => { clearTimeout(timer); resolve(m); } });
    });
  }
  async ask(request: unknown, match: (m: Msg) => boolean): Promise<Msg> {
    const reply = this.next(match);
    this.ws.send(typeof request === 'string' ? request : JSON.stringify(request));
    return reply;
  }
  close(): void { this.ws.terminate(); }
}

const PIPELINE = (uri: string, extra = '') => `
sources:
  stage: { uri: "${uri}", realtime: true, loop: true, fps: 10 ${extra} }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
pipelines:
  stage:
    source: stage
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.1 } }
      - { id: track, use: track }
      - { id: count, use: count, with: { line: [[0.5, 0], [0.5, 1]], in: left-to-right } }
      - { id: faces, use: faces, with: { model: faces, save: true, score: 0.6, minSaveHeight: 16 } }
      - { id: annotate, use: annotate, with: { quality: 60, fps: 10 } }
transports:
  people-counter: { port: 0, pipeline: stage, fps: 10 }
  metrics: { port: 0 }
`;

let app: App;
let port: number;

test.before(async () => {
  app = await startApp(graph(PIPELINE(`file://${media('short_hamilton_clip.mp4')}`)), testSettings(), { log: memoryLogger() });
  port = app.portOf('people-counter')!;
});
test.after.always(() => app?.stop());

test.serial('pushes frame and stats messages exactly as documented', async (t) => {
  const c = await Client.connect(port);
  t.teardown(() => c.close());
  const frame = await c.next((m) => m.type === 'frame');
  t.deepEqual(Object.keys(frame).sort(), ['data', 'timestamp', 'type']);
  t.regex(frame.timestamp as string, TS);
  const jpeg = Buffer.from(frame.data as unknown as string, 'base64');
  t.deepEqual([...jpeg.subarray(0, 3)], [0xff, 0xd8, 0xff], 'base64 of a JPEG');

  const stats = await c.next((m) => m.type === 'stats');
  t.deepEqual(Object.keys(stats).sort(), ['data', 'timestamp', 'type']);
  t.regex(stats.timestamp as string, TS);
  const d = stats.data!;
  t.deepEqual(Object.keys(d).sort(), ['count_in', 'count_out', 'current_event_count_in', 'daily_event_count', 'event_active', 'face_count']);
  for (const k of ['count_in', 'count_out', 'face_count', 'daily_event_count', 'current_event_count_in']) t.true(Number.isInteger(d[k]), k);
  t.is(typeof d.event_active, 'boolean');

  // They keep coming (on the stage's clock; their period is checked in virtual time in stage-harness.test.ts).
  for (let i = 0; i < 4; i++) await c.next((m) => m.type === 'stats');
});

test.serial('get_face and get_all_faces return saved face crops; errors have the documented shapes', async (t) => {
  const saved = await firstValueFrom(app.bus.on('face.saved').pipe(filter((f) => f.pipeline === 'stage'), timeout(60_000)));
  const c = await Client.connect(port);
  t.teardown(() => c.close());

  const face = await c.ask({ type: 'get_face', face_id: saved.faceId }, (m) => m.type === 'face_image');
  t.is(face.face_id, saved.faceId);
  t.is(face.filename, `face_${saved.faceId}.jpg`);
  t.deepEqual([...Buffer.from(face.image_data as string, 'base64').subarray(0, 2)], [0xff, 0xd8]);
  t.deepEqual(Object.keys(face).sort(), ['face_id', 'filename', 'image_data', 'type']);

  const missing = await c.ask({ type: 'get_face', face_id: 987654321 }, (m) => m.type === 'face_image');
  t.deepEqual(missing, { type: 'face_image', face_id: 987654321, error: 'Face ID not found' });

  const all = await c.ask({ type: 'get_all_faces' }, (m) => m.type === 'all_faces');
  const faces = all.faces as { face_id: number; filename: string; image_data: string }[];
  t.true(faces.length >= 1 && faces.length <= 50);
  t.true(faces.some((f) => f.face_id === saved.faceId));
  for (const f of faces) t.deepEqual(Object.keys(f).sort(), ['face_id', 'filename', 'image_data']);
  const one = await c.ask({ type: 'get_all_faces', limit: 1 }, (m) => m.type === 'all_faces');
  t.is((one.faces as unknown[]).length, 1);
  t.is((one.faces as { face_id: number }[])[0].face_id, faces[0].face_id, 'newest first');

  const stats = await c.next((m) => m.type === 'stats' && (m.data!.face_count as number) >= 1);
  t.true((stats.data!.face_count as number) >= 1);

  const err = (m: Msg) => 'error' in m && m.type === undefined;
  for (const bad of [{ type: 'get_face', face_id: '../../etc/passwd' }, { type: 'get_face', face_id: -1 }, { type: 'get_face', face_id: 1.5 },
    { type: 'get_face' }, { type: 'get_all_faces', limit: 0 }, { type: 'get_all_faces', limit: 'ten' }]) {
    t.deepEqual(await c.ask(bad, err), { error: 'Invalid face_id or limit format' }, JSON.stringify(bad));
  }
  t.deepEqual(await c.ask('{not json', err), { error: 'Invalid JSON message' });
  t.deepEqual(await c.ask('"a string"', err), { error: 'Unknown request type: null' });
  t.deepEqual(await c.ask({ type: 'get_faces' }, err), { error: 'Unknown request type: get_faces' });
  c.ws.send(Buffer.from([1, 2, 3]));
  t.deepEqual(await c.next(err), { error: 'Invalid JSON message' });
  // The socket is still served after all that.
  t.truthy(await c.next((m) => m.type === 'stats'));
});

test.serial('traffic events go out as documented event messages', async (t) => {
  const c = await Client.connect(port);
  t.teardown(() => c.close());
  const start = new Date(2026, 10, 23, 14, 5, 9).getTime();
  const started = c.next((m) => m.type === 'event' && m.data!.status === 'started');
  app.bus.publish('traffic.event', { pipeline: 'stage', source: 'stage', status: 'started', startMs: start, countIn: 5 });
  const s = await started;
  t.deepEqual(s.data, { status: 'started', start_time: '14:05:09' });
  t.regex(s.timestamp as string, TS);
  const ended = c.next((m) => m.type === 'event' && m.data!.status === 'ended');
  app.bus.publish('traffic.event', { pipeline: 'stage', source: 'stage', status: 'ended', startMs: start, endMs: start + 61_000, countIn: 12 });
  t.deepEqual((await ended).data, { status: 'ended', start_time: '14:05:09', end_time: '14:06:10', count_in: 12 });
  // Another pipeline's events are not this port's business.
  app.bus.publish('traffic.event', { pipeline: 'other', source: 'x', status: 'started', startMs: start, countIn: 1 });
  await new Promise((r) => setTimeout(r, 300));
  t.false(c.messages.some((m) => m.type === 'event'));
});

test.serial('a client that stops reading does not delay the others, and its frames are dropped', async (t) => {
  const stuck = await Client.connect(port);
  // Stop reading at the TCP level: the server's queue for this client grows until frames are dropped.
  (stuck.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const reader = await Client.connect(port);
  t.teardown(() => { stuck.close(); reader.close(); });
  const droppedNow = async () => (await app.metrics.wsDropped.get()).values.find((v) => v.labels.protocol === 'people-counter')?.value ?? 0;
  // Kernel socket buffers take several MB before the server's own queue for the stuck client grows;
  // keep reading stats on the other client until frames start being dropped for the stuck one.
  const gaps: number[] = [];
  let last = Date.now();
  let dropped = 0;
  for (let i = 0; i < 240 && (dropped === 0 || i < 16); i++) {
    await reader.next((m) => m.type === 'stats');
    gaps.push(Date.now() - last);
    last = Date.now();
    dropped = await droppedNow();
  }
  t.true(Math.max(...gaps.slice(1)) < 2000, `stats gaps ${gaps.join(',')} ms`);
  t.true(dropped > 0, `frames dropped for the stuck client: ${dropped}`);
});

test('counts and events persist in SQLite: a restart, even after SIGKILL, continues from the stored totals', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sightline-pc-'));
  const pcPort = await freePort();
  const file = path.join(dir, 'graph.yaml');
  writeFileSync(file, `
sources:
  plaza: { uri: "file://${media('vtest.avi')}", loop: true }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  plaza:
    source: plaza
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.1 } }
      - { id: track, use: track }
      - { id: count, use: count, with: { line: [[0.5, 0], [0.5, 1]], in: left-to-right } }
transports:
  people-counter: { port: ${pcPort}, pipeline: plaza }
  metrics: { port: 0 }
`);
  const run = () => spawn(process.execPath, [path.resolve('dist/bin/sightline.cjs'), 'run', file, '--data-dir', dir, '--host', '127.0.0.1'], { stdio: 'ignore' });
  const connect = async (): Promise<Client> => {
    for (let i = 0; i < 100; i++) {
      try { return await Client.connect(pcPort); } catch { await new Promise((r) => setTimeout(r, 200)); }
    }
    throw new Error('server did not come up');
  };
  const first = run();
  t.teardown(() => first.kill('SIGKILL'));
  let c = await connect();
  const before = await c.next((m) => m.type === 'stats' && (m.data!.count_in as number) + (m.data!.count_out as number) >= 3, 120_000);
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  c.close();

  // What the killed process had reported is in the database.
  const store = new Store(path.join(dir, 'sightline.db'));
  const day = (await import('../services/counting/day.js')).dayKey(Date.now(), '00:00');
  const stored = new CountsTable(store).dayCounters('plaza', day);
  store.close();
  t.true(stored.countIn >= (before.data!.count_in as number) && stored.countOut >= (before.data!.count_out as number),
    `stored ${JSON.stringify(stored)} vs reported ${JSON.stringify(before.data)}`);

  const second = run();
  t.teardown(() => second.kill('SIGKILL'));
  c = await connect();
  const after = await c.next((m) => m.type === 'stats');
  c.close();
  t.true((after.data!.count_in as number) >= stored.countIn && (after.data!.count_out as number) >= stored.countOut,
    `after restart ${JSON.stringify(after.data)}`);
});

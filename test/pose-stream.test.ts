/**
 * Pose stream v1 (/ws/v1) against the real app: a detect → track pipeline on vtest.avi, a fast synthetic
 * camera (in an environment of its own) for throttles, and a camera that keeps going down and coming back for
 * hardware events. Real JWTs (jose), real ws clients; the default stream of a client that has not subscribed; a
 * client that stops reading. The document's own clients run in docs-pose-stream.test.ts.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { filter, firstValueFrom, take, timeout, toArray } from 'rxjs';
import WebSocket, { WebSocketServer } from 'ws';
import { parseGraph } from '../app/catalog.js';
import { startApp, type App } from '../app/app.js';
import { systemClock } from '../core/clock.js';
import { COCO_KEYPOINTS } from '../core/types.js';
import { Connection, type ConnectionHooks } from '../transports/pose-stream/connection.js';
import { media, memoryLogger, metric, scrape, testSettings } from './helpers.js';

const SECRET = 'pose-stream-test-secret-0123456789abcdef';
const SECRET_ENV = 'SIGHTLINE_TEST_POSE_SECRET';
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

type Msg = { type: string; timestamp: string; data: Record<string, any>; metadata: { client_id: string; sequence: number }; message?: string; at: number };

const hs256 = (claims: Record<string, unknown> = {}, exp: string | number = '10m', secret = SECRET) =>
  new SignJWT({ scope: 'pose:read', ...claims }).setProtectedHeader({ alg: 'HS256' }).setSubject('tester').setIssuedAt()
    .setExpirationTime(exp).sign(new TextEncoder().encode(secret));

/** A client that records every message (with its arrival time) and can wait for one that matches. */
class Client {
  readonly messages: Msg[] = [];
  readonly all: Msg[] = [];
  closed: Promise<{ code: number; reason: string }>;
  private waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      const m = { ...JSON.parse(raw.toString()), at: performance.now() } as Msg;
      this.all.push(m);
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => (w.match(m) ? (w.resolve(m), false) : true));
    });
    this.closed = new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  }
  static async connect(url: string, opts: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<Client> {
    const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers });
    const c = new Client(ws);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return c;
  }
  next(match: (m: Msg) => boolean, ms = 30_000): Promise<Msg> {
    const seen = this.messages.find(match);
    if (seen) { this.messages.splice(this.messages.indexOf(seen), 1); return Promise.resolve(seen); }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching message in time')), ms);
      this.waiters.push({ match: (m) => { if (!match(m)) return false; this.messages.splice(this.messages.indexOf(m), 1); return true; },
        resolve: (m) => { clearTimeout(timer); resolve(m); } });
    });
  }
  send(type: string, data: unknown = {}): void {
    this.ws.send(JSON.stringify({ type, timestamp: new Date().toISOString(), data }));
  }
  ask(type: string, data: unknown, reply: (m: Msg) => boolean = (m) => m.type === 'ack' || m.type === 'error'): Promise<Msg> {
    const r = this.next(reply);
    this.send(type, data);
    // What the default stream brought before a subscription replaced it is of no interest to what follows.
    if (type === 'subscribe') {
      void r.then((ack) => {
        if (ack.type === 'ack') this.messages.splice(0, this.messages.length, ...this.messages.filter((m) => m.metadata.sequence > ack.metadata.sequence));
      }, () => undefined);
    }
    return r;
  }
  close(): void { this.ws.terminate(); }
}

/** The HTTP status a refused handshake answered with, and its JSON body. */
function refused(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => { ws.terminate(); reject(new Error('handshake was accepted')); });
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }); ws.terminate(); });
    });
    ws.on('error', () => undefined);
  });
}

const GRAPH = (extra = '') => `
sources:
  hall: { uri: "file://${media('vtest.avi')}", realtime: true, loop: true, fps: 10 }
  fast: { uri: "test://ball", width: 160, height: 120, fps: 30, environment: court }
  blinker: { uri: "test://smpte?num-buffers=20", width: 160, height: 120, fps: 10 }
${extra ? '  door: { uri: "test://snow", width: 160, height: 120, fps: 5 }' : ''}
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  pose: { file: pose_ultralight_nano_simplepose_256x192.onnx, kind: simplepose }
pipelines:
  hall:
    source: hall
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.3 } }
      - { id: track, use: track }
      - { id: pose, use: pose, with: { model: pose, maxPersons: 12 } }
      - { id: activity, use: activity }
  fast: { source: fast, stages: [] }
  blinker: { source: blinker, stages: [] }
${extra ? '  door: { source: door, stages: [] }' : ''}
transports:
  pose-stream-v1: { port: 0, auth: { secretEnv: ${SECRET_ENV} }, heartbeatSeconds: 2 }
  metrics: { port: 0 }
`;

let app: App;
let base: string;
let graphFile: string;

test.before(async () => {
  process.env[SECRET_ENV] = SECRET;
  graphFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'sightline-pose-stream-')), 'graph.yaml');
  writeFileSync(graphFile, GRAPH());
  app = await startApp(parseGraph(GRAPH(), graphFile), testSettings(), { log: memoryLogger(), graphFile });
  base = `ws://127.0.0.1:${app.portOf('pose-stream-v1')}/ws/v1`;
  // Wait for the person pipeline to deliver, so every test meets a running server.
  await firstValueFrom(app.bus.on('packet').pipe(filter((p) => p.pipeline === 'hall'), timeout(120_000)));
});
test.after.always(() => app?.stop());

const connect = async (clientId = 'c1', opts: { protocols?: string[] } = {}) =>
  Client.connect(`${base}?token=${await hs256()}&client_id=${clientId}`, opts);

test.serial('handshakes without a valid token are refused with 401; the reason is in the body and counted; an expired one gets token_expired', async (t) => {
  const before = await scrape(app.portOf('metrics')!);
  t.deepEqual(await refused(base), { status: 401, body: { error: 'missing_token', message: 'A JWT is required: pass ?token=<jwt> or an Authorization: Bearer header' } });

  const wrongKey = await hs256({}, '10m', 'another-secret-of-at-least-32-bytes-length');
  const r1 = await refused(`${base}?token=${wrongKey}`);
  t.is(r1.status, 401);
  t.is(r1.body.error, 'invalid_token');
  t.regex(r1.body.message, /signature verification failed/);

  // alg "none": an unsigned token with a plausible payload.
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 })}.`;
  const r2 = await refused(`${base}?token=${none}`);
  t.is(r2.status, 401);
  t.is(r2.body.error, 'invalid_token');

  // A valid token past its expiry is told so the documented way: the token_expired event, then the close.
  const expired = await Client.connect(`${base}?token=${await hs256({}, Math.floor(Date.now() / 1000) - 60)}&client_id=late`);
  t.deepEqual(await expired.closed, { code: 4001, reason: 'token_expired' });
  t.deepEqual(expired.all.map((m) => [m.type, m.message, m.metadata.sequence]), [['token_expired', 'JWT token has expired. Please refresh and reconnect.', 1]]);
  // Expired and signed with another key: refused as invalid, as any token with a bad signature.
  const expiredElsewhere = await hs256({}, Math.floor(Date.now() / 1000) - 60, 'another-secret-of-at-least-32-bytes-length');
  t.is((await refused(`${base}?token=${expiredElsewhere}`)).body.error, 'invalid_token');

  const garbage = await refused(base, { authorization: 'Bearer not.a.jwt' });
  t.is(garbage.status, 401);

  // A token that would never expire is refused (requireExpiry defaults to true).
  const forever = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('tester').sign(new TextEncoder().encode(SECRET));
  const r3 = await refused(`${base}?token=${forever}`);
  t.is(r3.status, 401);
  t.regex(r3.body.message, /"exp" claim/);

  const after = await scrape(app.portOf('metrics')!);
  const kinds = { auth_missing_token: 1, auth_invalid_token: 5, token_expired: 1 };
  for (const [kind, n] of Object.entries(kinds)) {
    const delta = metric(after, 'sightline_ws_errors_total', { protocol: 'pose-stream-v1', kind })! - (metric(before, 'sightline_ws_errors_total', { protocol: 'pose-stream-v1', kind }) ?? 0);
    t.is(delta, n, kind);
  }
});

test.serial('a token in the Authorization header is accepted; the subprotocol is echoed when offered', async (t) => {
  const token = await hs256();
  const withHeader = await Client.connect(`${base}?client_id=header_client`, { headers: { Authorization: `Bearer ${token}` }, protocols: ['wifi-densepose-v1'] });
  t.teardown(() => withHeader.close());
  t.is(withHeader.ws.protocol, 'wifi-densepose-v1');
  const status = await withHeader.next((m) => m.type === 'connection_status');
  t.is(status.data.client_id, 'header_client');
  t.is(status.data.status, 'connected');
  t.regex(status.data.session_id, /^session_/);
  t.regex(status.data.connected_since, ISO);
  t.is(status.data.active_subscriptions, 0);
  t.deepEqual(Object.keys(status).sort(), ['at', 'data', 'metadata', 'timestamp', 'type']);
  t.deepEqual(status.metadata, { client_id: 'header_client', sequence: 1 });

  const plain = await connect('plain');
  t.teardown(() => plain.close());
  t.is(plain.ws.protocol, '', 'no subprotocol when none was offered');
  // ?compression= negotiates permessage-deflate and says so in every message's metadata.
  const zipped = await Client.connect(`${base}?token=${token}&client_id=zipped&compression=gzip`);
  t.teardown(() => zipped.close());
  t.is(zipped.ws.extensions, 'permessage-deflate');
  t.deepEqual((await zipped.next((m) => m.type === 'connection_status')).metadata, { client_id: 'zipped', sequence: 1, compression: 'deflate' });
  t.is(plain.ws.extensions, '');
  t.is((await refused(`${base}?token=${token}&compression=brotli`)).status, 400);
  // Without client_id in the URL the server names the client.
  const anon = await Client.connect(`${base}?token=${token}`);
  t.teardown(() => anon.close());
  t.regex((await anon.next((m) => m.type === 'connection_status')).metadata.client_id, /^client_[0-9a-f]{12}$/);
});

test.serial('a token that expires during the connection gets token_expired and a close', async (t) => {
  const token = await hs256({}, Math.floor(Date.now() / 1000) + 2);
  const c = await Client.connect(`${base}?token=${token}&client_id=short_lived`);
  const expired = await c.next((m) => m.type === 'token_expired', 10_000);
  t.is(expired.message, 'JWT token has expired. Please refresh and reconnect.');
  t.is(expired.data.message, expired.message);
  t.regex(expired.timestamp, ISO);
  t.deepEqual(await c.closed, { code: 4001, reason: 'token_expired' });
});

test.serial('pose_data: persons with boxes, track ids, activity, processing time; filters and dense-pose note; sequence strictly increasing', async (t) => {
  const c = await connect('pose_client');
  t.teardown(() => c.close());
  const ack = await c.ask('subscribe', {
    subscriptions: [{
      event_type: 'pose_data',
      filters: { environment_id: 'hall', min_confidence: 0.5, include_keypoints: true, include_dense_pose: true },
      throttle: { max_fps: 10, buffer_size: 5 },
    }],
  });
  t.is(ack.type, 'ack');
  t.is(ack.data.message_type, 'subscribe');
  t.is(ack.data.status, 'success');
  const [sub] = ack.data.active_subscriptions;
  t.regex(sub.subscription_id, /^sub_\d+$/);
  t.is(sub.event_type, 'pose_data');
  t.is(sub.status, 'active');
  t.regex(sub.notes[0], /dense UV maps are not produced/);

  let withPersons: Msg | undefined;
  for (let i = 0; i < 100 && !withPersons; i++) {
    const m = await c.next((x) => x.type === 'pose_data');
    t.is(m.data.environment_id, 'hall');
    t.true(Number.isInteger(m.data.frame_id));
    t.true(m.data.processing_time_ms > 0, 'processing time = now - capture time');
    t.true(m.data.metadata.csi_quality >= 0 && m.data.metadata.csi_quality <= 1);
    t.is(typeof m.data.metadata.frame_rate, 'number');
    t.regex(m.data.metadata.model_version, /yolox_nano\.onnx\+pose_ultralight_nano_simplepose_256x192\.onnx/);
    for (const p of m.data.persons) t.true(p.confidence >= 0.5, 'min_confidence applied');
    if (m.data.persons.length) withPersons = m;
  }
  t.truthy(withPersons, 'persons on vtest.avi');
  const p = withPersons!.data.persons[0];
  t.deepEqual(Object.keys(p).sort(), ['activity', 'bounding_box', 'confidence', 'dense_pose', 'keypoints', 'person_id', 'track_id']);
  t.is(p.person_id, p.track_id);
  t.true(Number.isInteger(p.track_id));
  for (const k of ['x', 'y', 'width', 'height']) t.true(Number.isInteger(p.bounding_box[k]), k);
  t.true(p.bounding_box.width > 0 && p.bounding_box.height > p.bounding_box.width / 2);
  t.is(p.dense_pose, null);
  // Keypoints from the pose stage: the 17 COCO names in order, in source pixels near the box.
  const withKeypoints = withPersons!.data.persons.filter((q: any) => q.keypoints.length > 0);
  t.true(withKeypoints.length > 0, 'keypoints for tracked persons');
  for (const q of withKeypoints) {
    t.deepEqual(q.keypoints.map((k: any) => k.name), [...COCO_KEYPOINTS]);
    const b = q.bounding_box;
    for (const k of q.keypoints) {
      t.deepEqual(Object.keys(k).sort(), ['confidence', 'name', 'visible', 'x', 'y']);
      t.true(k.confidence >= 0 && k.confidence <= 1 && typeof k.visible === 'boolean');
      // The pose crop is 1.4 × width and 1.2 × height of the box, so keypoints stay within that.
      t.true(k.x >= b.x - 0.2 * b.width - 1 && k.x <= b.x + 1.2 * b.width + 1, `${k.name} x inside the crop`);
      t.true(k.y >= b.y - 0.1 * b.height - 1 && k.y <= b.y + 1.1 * b.height + 1, `${k.name} y inside the crop`);
    }
  }
  t.true(['standing', 'walking', 'running', 'sitting', 'lying', 'unknown'].includes(p.activity.type));
  t.true(p.activity.confidence >= 0 && p.activity.confidence <= 1);
  t.deepEqual(Object.keys(p.activity.velocity).sort(), ['x', 'y']);

  // update_subscription: the document puts max_fps among the filters; keypoints off.
  const upd = await c.ask('update_subscription', { subscription_id: sub.subscription_id, filters: { min_confidence: 0.8, max_fps: 15, include_keypoints: false } });
  t.is(upd.type, 'ack');
  t.is(upd.data.message_type, 'update_subscription');
  t.is(upd.data.active_subscriptions[0].subscription_id, sub.subscription_id);
  t.is(upd.data.active_subscriptions[0].throttle.max_fps, 15);
  const updatedSeq = upd.metadata.sequence;
  const later = await c.next((m) => m.type === 'pose_data' && m.metadata.sequence > updatedSeq);
  for (const q of later.data.persons) {
    t.false('keypoints' in q);
    t.true(q.confidence >= 0.8);
  }

  const unsub = await c.ask('unsubscribe', { subscription_ids: [sub.subscription_id] });
  t.is(unsub.data.message_type, 'unsubscribe');
  t.deepEqual(unsub.data.removed_subscriptions, [sub.subscription_id]);
  t.deepEqual(unsub.data.active_subscriptions, []);
  // Five more frames through the pipeline: none reaches this client any more.
  await firstValueFrom(app.bus.on('packet').pipe(filter((x) => x.pipeline === 'hall'), take(5), toArray(), timeout(60_000)));
  t.false(c.all.some((m) => m.type === 'pose_data' && m.metadata.sequence > unsub.metadata.sequence));

  const seqs = c.all.map((m) => m.metadata.sequence);
  t.true(seqs.every((s, i) => s === i + 1), 'sequence 1, 2, 3, ... in arrival order');
  t.true(c.all.every((m) => m.metadata.client_id === 'pose_client' && ISO.test(m.timestamp)));
});

test.serial('invalid subscriptions get SUBSCRIPTION_ERROR with field and reason; bad messages get INVALID_MESSAGE', async (t) => {
  const c = await connect('bad_client');
  t.teardown(() => c.close());
  const sub = (s: object) => c.ask('subscribe', { subscriptions: [s] });
  const cases: [object, string, RegExp][] = [
    [{ event_type: 'pose_data', filters: { min_confidence: 1.5 } }, 'min_confidence', /^Value must be between 0 and 1/],
    [{ event_type: 'pose_data', filters: { min_confidence: -0.1 } }, 'min_confidence', /^Value must be between 0 and 1/],
    [{ event_type: 'bogus_stream' }, 'event_type', /^Unknown event_type "bogus_stream"/],
    [{ event_type: 'pose_data', filters: { environment_id: 'room_001' } }, 'environment_id', /^Unknown environment "room_001"; known: hall, court, fast, blinker/],
    [{ event_type: 'activity_event', filters: { event_types: ['fall_detected', 'dance_detected'] } }, 'event_types', /^Unknown value "dance_detected"/],
    [{ event_type: 'system_event', filters: { severity: ['loud'] } }, 'severity', /^Unknown value "loud"/],
    [{ event_type: 'pose_data', throttle: { max_fps: 0 } }, 'max_fps', /^Value must be a number above 0/],
  ];
  for (const [s, field, reason] of cases) {
    const e = await sub(s);
    t.is(e.type, 'error');
    t.is(e.data.error_code, 'SUBSCRIPTION_ERROR');
    t.is(e.data.message, 'Invalid subscription filter');
    t.is(e.data.details.field, field);
    t.regex(e.data.details.reason, reason);
  }
  // Subscription-rate budget is 10 a minute: two left for unsubscribe and update of unknown ids.
  const u = await c.ask('unsubscribe', { subscription_ids: ['sub_999999'] });
  t.is(u.data.error_code, 'SUBSCRIPTION_ERROR');
  t.is(u.data.details.field, 'subscription_ids');
  t.is(u.data.details.subscription_id, 'sub_999999');
  const up = await c.ask('update_subscription', { subscription_id: 'sub_999999', filters: {} });
  t.is(up.data.details.field, 'subscription_id');

  c.ws.send('{not json');
  const bad = await c.next((m) => m.type === 'error');
  t.is(bad.data.error_code, 'INVALID_MESSAGE');
  t.is(bad.data.details.reason, 'invalid_json');
  const unknown = await c.ask('dance', {}, (m) => m.type === 'error');
  t.is(unknown.data.details.reason, 'unknown_type');
  // Still connected and answering.
  const status = await c.ask('connection_status', {}, (m) => m.type === 'connection_status');
  t.is(status.data.status, 'connected');

  // A message above the size limit (64 KiB) closes that connection only, with 1009, counted.
  const big = await connect('big_client');
  big.ws.send(JSON.stringify({ type: 'subscribe', data: { pad: 'x'.repeat(100_000) } }));
  t.is((await big.closed).code, 1009);
  const text = await scrape(app.portOf('metrics')!);
  t.true(metric(text, 'sightline_ws_errors_total', { protocol: 'pose-stream-v1', kind: 'protocol_error' })! >= 1);
  t.is((await c.ask('connection_status', {}, (m) => m.type === 'connection_status')).data.status, 'connected');

  // A client_id with characters outside letters, digits and . : @ _ - is refused at the handshake.
  const r = await refused(`${base}?token=${await hs256()}&client_id=${encodeURIComponent('<script>')}`);
  t.deepEqual([r.status, r.body.error], [400, 'invalid_client_id']);
});

test.serial('max_fps is honoured on a source that produces more; high quality gets up to 30 fps', async (t) => {
  const slow = await connect('slow_sub');
  const quick = await connect('quick_sub');
  t.teardown(() => { slow.close(); quick.close(); });
  await slow.ask('subscribe', { subscriptions: [{ event_type: 'pose_data', filters: { environment_id: 'fast' }, throttle: { max_fps: 4, buffer_size: 5 } }] });
  const ack = await quick.ask('subscribe', { subscriptions: [{ event_type: 'pose_data', filters: { environment_id: 'fast' }, quality: 'high' }] });
  t.deepEqual(ack.data.active_subscriptions[0].throttle, { max_fps: 30, buffer_size: 1 });
  // Measure on the client side, from arrival times, over about five seconds of the slow stream.
  const slowTimes: number[] = [];
  for (let i = 0; i < 21; i++) slowTimes.push((await slow.next((m) => m.type === 'pose_data')).at);
  const quickTimes = quick.all.filter((m) => m.type === 'pose_data' && m.at >= slowTimes[0] && m.at <= slowTimes[20]).map((m) => m.at);
  const slowRate = 20 / ((slowTimes[20] - slowTimes[0]) / 1000);
  const quickRate = (quickTimes.length - 1) / ((quickTimes[quickTimes.length - 1] - quickTimes[0]) / 1000);
  t.log(`max_fps 4 → ${slowRate.toFixed(2)} msg/s; unthrottled subscriber on the same source → ${quickRate.toFixed(2)} msg/s`);
  t.true(slowRate <= 4 * 1.15, `slow subscriber at ${slowRate.toFixed(2)} msg/s`);
  t.true(slowRate >= 2, `slow subscriber at ${slowRate.toFixed(2)} msg/s`);
  t.true(quickRate > slowRate * 1.5, 'the source produces more than the throttle lets through');
});

test.serial('rate limits: subscribe 10/min, heartbeat 1/30 s, general commands 60/min → RATE_LIMIT_EXCEEDED with retry_after', async (t) => {
  const before = metric(await scrape(app.portOf('metrics')!), 'sightline_ws_errors_total', { protocol: 'pose-stream-v1', kind: 'rate_limited' })!;
  const c = await connect('limited');
  t.teardown(() => c.close());
  await c.next((m) => m.type === 'connection_status');
  for (let i = 0; i < 10; i++) {
    const a = await c.ask('subscribe', { subscriptions: [{ event_type: 'system_event' }] });
    t.is(a.type, 'ack', `subscribe ${i + 1}`);
  }
  const over = await c.ask('subscribe', { subscriptions: [{ event_type: 'system_event' }] });
  t.is(over.data.error_code, 'RATE_LIMIT_EXCEEDED');
  t.is(over.data.message, 'Subscription rate limit exceeded');
  t.like(over.data.details, { current_rate: 11, limit: 10, window: '1_minute' });
  t.true(over.data.details.retry_after >= 1 && over.data.details.retry_after <= 60);

  const hb = await c.ask('heartbeat', { client_id: 'limited' }, (m) => m.type === 'heartbeat' || m.type === 'error');
  t.is(hb.type, 'heartbeat');
  t.is(hb.data.client_id, 'limited');
  t.regex(hb.data.last_message, ISO);
  const hb2 = await c.ask('heartbeat', { client_id: 'limited' }, (m) => m.type === 'error');
  t.like(hb2.data.details, { limit: 1, window: '30_seconds' });
  t.true(hb2.data.details.retry_after >= 1 && hb2.data.details.retry_after <= 30);

  let last: Msg | undefined;
  for (let i = 0; i < 61; i++) last = await c.ask('connection_status', {}, (m) => m.type === 'connection_status' || m.type === 'error');
  t.is(last!.data.error_code, 'RATE_LIMIT_EXCEEDED');
  t.like(last!.data.details, { limit: 60, window: '1_minute' });
  const after = metric(await scrape(app.portOf('metrics')!), 'sightline_ws_errors_total', { protocol: 'pose-stream-v1', kind: 'rate_limited' })!;
  t.is(after - before, 3);
});

test.serial('server heartbeats arrive periodically with uptime', async (t) => {
  const c = await connect('hb_client');
  t.teardown(() => c.close());
  const a = await c.next((m) => m.type === 'heartbeat');
  const b = await c.next((m) => m.type === 'heartbeat');
  t.deepEqual(Object.keys(a.data).sort(), ['client_id', 'last_message', 'uptime']);
  t.is(a.data.client_id, 'hb_client');
  t.is(a.data.last_message, null);
  t.true(b.data.uptime >= a.data.uptime);
  t.true(b.metadata.sequence > a.metadata.sequence);
  // Graceful disconnect asked by the client.
  const bye = await c.ask('disconnect', {}, (m) => m.type === 'disconnect');
  t.deepEqual(bye.data, { reason: 'client_requested', message: 'Graceful disconnect initiated by client' });
  t.is((await c.closed).code, 1000);
});

test.serial('pose_data_trajectory: track history and a predicted next position', async (t) => {
  const c = await connect('traj_client');
  t.teardown(() => c.close());
  await c.ask('subscribe', { subscriptions: [{ event_type: 'pose_data_trajectory', filters: { environment_id: 'hall' }, throttle: { max_fps: 2 } }] });
  const m = await c.next((x) => x.type === 'pose_data_trajectory' && x.data.trajectory.length >= 3, 60_000);
  t.is(m.data.environment_id, 'hall');
  t.is(m.data.person_id, m.data.track_id);
  const times = m.data.trajectory.map((q: any) => Date.parse(q.timestamp));
  t.true(times.every((v: number, i: number) => i === 0 || v >= times[i - 1]), 'oldest first');
  for (const q of m.data.trajectory) {
    t.regex(q.timestamp, ISO);
    t.true(Number.isInteger(q.position.x) && Number.isInteger(q.position.y));
    t.true(q.confidence > 0 && q.confidence <= 1);
  }
  const pr = m.data.prediction;
  t.true(Number.isInteger(pr.next_position.x) && Number.isInteger(pr.next_position.y));
  t.true(pr.confidence > 0 && pr.confidence <= 1);
  t.true(pr.time_horizon > 0);
});

test.serial('activity_event: falls and recoveries from the bus, filtered by event_types', async (t) => {
  const all = await connect('act_all');
  const recoveries = await connect('act_recover');
  t.teardown(() => { all.close(); recoveries.close(); });
  await all.ask('subscribe', { subscriptions: [{ event_type: 'activity_event', filters: { event_types: ['fall_detected', 'alert_triggered'] } }] });
  await recoveries.ask('subscribe', { subscriptions: [{ event_type: 'activity_event', filters: { environment_id: 'hall', event_types: ['recovery_detected'] } }] });
  // The activity stage's bus contract (its fall logic is tested on keypoint sequences in the activity tests).
  const atMs = Date.now();
  app.bus.publish('activity.fall', { pipeline: 'hall', source: 'hall', trackId: 15, box: [200, 100, 260, 140], fallDuration: 2.3, impactSeverity: 0.85, confidence: 0.92, recoveryDetected: false, atMs });
  app.bus.publish('activity.recovered', { pipeline: 'hall', source: 'hall', trackId: 15, lyingSeconds: 4.2, atMs: atMs + 4200 });
  const fall = await all.next((m) => m.type === 'activity_event');
  t.deepEqual(fall.data, {
    event_type: 'fall_detected', severity: 'high', environment_id: 'hall', person_id: 15, track_id: 15, confidence: 0.92,
    location: { x: 230, y: 120 }, details: { fall_duration: 2.3, impact_severity: 0.85, recovery_detected: false }, actions: ['alert_triggered'],
  });
  const rec = await recoveries.next((m) => m.type === 'activity_event');
  t.like(rec.data, { event_type: 'recovery_detected', track_id: 15, details: { recovery_detected: true, lying_duration: 4.2 } });
  // Each saw only what its filter asked for.
  const heartbeat = all.next((m) => m.type === 'heartbeat');
  all.send('heartbeat');
  await heartbeat;
  t.is(all.all.filter((m) => m.type === 'activity_event').length, 1);
  t.is(recoveries.all.filter((m) => m.type === 'activity_event').length, 1);
});

test.serial('hardware_event: a camera going down and coming back', async (t) => {
  const c = await connect('hw_client');
  t.teardown(() => c.close());
  await c.ask('subscribe', { subscriptions: [{ event_type: 'hardware_event', filters: { environment_id: 'blinker' } }] });
  const down = await c.next((m) => m.type === 'hardware_event' && m.data.event === 'router_disconnected', 60_000);
  t.like(down.data, { router_id: 'blinker', environment_id: 'blinker', device_type: 'camera', severity: 'warning', state: 'retrying' });
  t.regex(down.data.message, /connection lost.*Attempting reconnection/);
  t.true(down.data.metadata.reconnect_attempts >= 1);
  t.regex(down.data.metadata.last_seen, ISO);
  const back = await c.next((m) => m.type === 'hardware_event' && m.data.event === 'router_reconnected', 60_000);
  t.like(back.data, { router_id: 'blinker', severity: 'info', state: 'running' });
  t.false(c.all.some((m) => m.type === 'hardware_event' && m.data.router_id !== 'blinker'), 'environment filter');
});

test.serial('tracking_update and occupancy_update follow the persons on vtest.avi', async (t) => {
  const c = await connect('track_client');
  t.teardown(() => c.close());
  await c.ask('subscribe', { subscriptions: [{ event_type: 'tracking_update', filters: { environment_id: 'hall' } }, { event_type: 'occupancy_update', filters: { environment_id: 'hall' } }] });
  const started = await c.next((m) => m.type === 'tracking_update' && m.data.event === 'track_started', 60_000);
  t.true(Number.isInteger(started.data.track_id));
  t.is(started.data.person_id, started.data.track_id);
  t.true(Number.isInteger(started.data.position.x) && Number.isInteger(started.data.position.y));
  t.regex(started.data.metadata.first_detection, ISO);
  t.is(typeof started.data.metadata.track_quality, 'number');
  const occ = await c.next((m) => m.type === 'occupancy_update', 60_000);
  t.is(occ.data.environment_id, 'hall');
  t.is(occ.data.change_type, occ.data.current_occupancy > occ.data.previous_occupancy ? 'person_entered' : 'person_left');
  t.is(occ.data.persons.length, occ.data.current_occupancy);
  for (const p of occ.data.persons) t.true(['active', 'new'].includes(p.status));
  const lost = await c.next((m) => m.type === 'tracking_update' && m.data.event === 'track_lost', 60_000);
  t.true(Number.isInteger(lost.data.track_id));
});

test.serial('performance_update and analytics_stream carry live figures', async (t) => {
  const c = await connect('perf_client');
  t.teardown(() => c.close());
  await c.ask('subscribe', { subscriptions: [{ event_type: 'performance_update', throttle: { max_fps: 1 } }, { event_type: 'analytics_stream', filters: { environment_id: 'hall' } }] });
  const perf = await c.next((m) => m.type === 'performance_update');
  const m = perf.data.metrics;
  t.true(m.frames_per_second > 0);
  t.true(m.average_latency_ms > 0);
  t.true(Number.isInteger(m.processing_queue_size));
  t.true(m.cpu_usage >= 0 && m.cpu_usage <= 100);
  t.true(m.memory_usage > 0 && m.memory_usage < 100);
  t.is(m.gpu_usage, null);
  t.true(Array.isArray(perf.data.alerts));
  const an = await c.next((x) => x.type === 'analytics_stream');
  // The document's other name for the stream is answered under that name.
  const alias = await c.ask('subscribe', { subscriptions: [{ event_type: 'analytics_update', filters: { environment_id: 'hall' } }] });
  t.is(alias.data.active_subscriptions[0].event_type, 'analytics_update');
  t.is((await c.next((x) => x.type === 'analytics_update')).data.window, '1_minute');
  t.is(an.data.window, '1_minute');
  t.is(an.data.environment_id, 'hall');
  const { occupancy, activity, detection } = an.data.metrics;
  t.true(occupancy.peak >= occupancy.current && occupancy.average <= occupancy.peak);
  t.true(detection.total_detections > 0);
  t.true(detection.average_confidence > 0.3 && detection.average_confidence <= 1);
  t.true(detection.tracking_accuracy > 0 && detection.tracking_accuracy <= 1);
  t.true(activity.activity_level >= 0 && activity.activity_level <= 1);
  t.true(Number.isInteger(activity.movement_events));
  for (const k of ['occupancy_trend', 'activity_trend', 'confidence_trend']) t.is(typeof an.data.trends[k], 'string');
});

test.serial('config_update on a graph reload; system_event for the new pipeline and for a rejected file', async (t) => {
  const c = await connect('cfg_client');
  t.teardown(() => c.close());
  await c.ask('subscribe', { subscriptions: [{ event_type: 'config_update' }, { event_type: 'system_event' }] });
  // A new system_event subscriber first gets the state of every pipeline.
  const status = await c.next((m) => m.type === 'system_event' && m.data.event === 'system_status' && m.data.configuration.pipeline === 'hall');
  t.like(status.data, { status: 'running', severity: 'info', configuration: { environment_id: 'hall' }, components: { tracker: 'healthy', csi_processor: 'healthy' } });
  writeFileSync(graphFile, GRAPH('door'));
  t.is(await app.reload(), 'applied');
  const cfg = await c.next((m) => m.type === 'config_update');
  t.deepEqual(cfg.data.changed_fields.sort(), ['pipelines.door', 'sources.door']);
  t.like(cfg.data.new_values['sources.door'], { uri: 'test://snow', fps: 5 });
  t.is(cfg.data.requires_restart, false);
  t.is(cfg.data.applied_by, 'config_file:graph.yaml');
  const started = await c.next((m) => m.type === 'system_event' && m.data.event === 'system_started' && m.data.configuration.pipeline === 'door');
  t.like(started.data, { status: 'running', severity: 'info', configuration: { pipeline: 'door', environment_id: 'door' } });
  t.regex(started.data.session_id, /^session_/);
  t.deepEqual(Object.keys(started.data.components).sort(), ['csi_processor', 'neural_network', 'tracker']);
  // The new source is now a known environment.
  const ok = await c.ask('subscribe', { subscriptions: [{ event_type: 'pose_data', filters: { environment_id: 'door' } }] });
  t.is(ok.type, 'ack');

  writeFileSync(graphFile, 'sources: [not, a, map]\n');
  t.is(await app.reload(), 'invalid');
  const rejected = await c.next((m) => m.type === 'system_event' && m.data.event === 'config_rejected');
  t.is(rejected.data.severity, 'error');
  t.true(rejected.data.errors.length > 0);
  writeFileSync(graphFile, GRAPH('door'));
});

test.serial('a client that stops reading gets frames dropped, counted, and is never queued without bound', async (t) => {
  const droppedBefore = metric(await scrape(app.portOf('metrics')!), 'sightline_ws_dropped_total', { protocol: 'pose-stream-v1' })!;
  const c = await connect('stalled');
  t.teardown(() => c.close());
  // Many high-rate subscriptions on the fast camera, buffer_size 1, then stop reading the socket.
  const subs = Array.from({ length: 10 }, () => ({ event_type: 'pose_data', filters: { environment_id: 'fast' }, quality: 'high', throttle: { buffer_size: 1 } }));
  await c.ask('subscribe', { subscriptions: subs });
  await c.ask('subscribe', { subscriptions: subs });
  (c.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
  let dropped = droppedBefore;
  for (let i = 0; i < 120 && dropped === droppedBefore; i++) {
    await new Promise((r) => setTimeout(r, 500));
    dropped = metric(await scrape(app.portOf('metrics')!), 'sightline_ws_dropped_total', { protocol: 'pose-stream-v1' })!;
  }
  t.true(dropped > droppedBefore, 'frames dropped for the stalled client');
  (c.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
  const reply = c.next((m) => m.type === 'connection_status', 60_000);
  c.send('connection_status');
  const status = await reply;
  t.is(status.data.status, 'connected');
  const seqs = c.all.map((m) => m.metadata.sequence);
  t.true(seqs.every((s, i) => s === i + 1), 'dropped frames leave no hole in the sequence');
  t.log(`${dropped - droppedBefore} frames dropped while the client was not reading`);
});

test.serial('until it subscribes, a connection gets the default stream: pose data of every environment, activity and system events', async (t) => {
  const c = await connect('listener');
  t.teardown(() => c.close());
  const status = await c.next((m) => m.type === 'connection_status');
  t.is(status.data.active_subscriptions, 0);
  t.deepEqual(status.data.default_stream, ['pose_data', 'activity_event', 'system_event']);
  // The state of each pipeline at once, as a new system_event subscriber gets it.
  const state = await c.next((m) => m.type === 'system_event' && m.data.configuration.pipeline === 'hall');
  t.like(state.data, { event: 'system_status', status: 'running', configuration: { environment_id: 'hall' } });
  // Pose data of every environment, at the low-quality default rate (10 fps) each.
  const court: number[] = [];
  let withKeypoints: Msg | undefined;
  while (court.length < 21 || !withKeypoints) {
    const m = await c.next((x) => x.type === 'pose_data', 60_000);
    if (m.data.environment_id === 'court') court.push(m.at);
    if (m.data.environment_id === 'hall' && m.data.persons.some((p: any) => p.keypoints?.length === 17)) withKeypoints = m;
  }
  const rate = 20 / ((court[20] - court[0]) / 1000);
  // The default rate is a cap: a loaded machine only lowers it (21 messages arrived, so the stream flows).
  t.true(rate <= 10 * 1.15, `court at ${rate.toFixed(2)} msg/s`);
  t.true(withKeypoints!.data.persons.every((p: any) => 'velocity' in p.activity), 'the default filters: keypoints and velocity');
  app.bus.publish('activity.fall', { pipeline: 'hall', source: 'hall', trackId: 3, box: [10, 10, 50, 90], fallDuration: 1.2, impactSeverity: 0.5, confidence: 0.8, recoveryDetected: false, atMs: Date.now() });
  t.is((await c.next((m) => m.type === 'activity_event')).data.event_type, 'fall_detected');

  // The first subscription replaces the default stream, and it does not come back when that subscription goes.
  const ack = await c.ask('subscribe', { subscriptions: [{ event_type: 'tracking_update', filters: { environment_id: 'court' } }] });
  t.is(ack.type, 'ack');
  await c.ask('unsubscribe', { subscription_ids: [ack.data.active_subscriptions[0].subscription_id] });
  const after = await c.ask('connection_status', {}, (m) => m.type === 'connection_status');
  t.deepEqual([after.data.active_subscriptions, after.data.default_stream], [0, []]);
  await firstValueFrom(app.bus.on('packet').pipe(filter((x) => x.pipeline === 'fast'), take(10), toArray(), timeout(60_000)));
  t.false(c.all.some((m) => m.type === 'pose_data' && m.metadata.sequence > ack.metadata.sequence));
  t.log(`default stream: court at ${rate.toFixed(2)} pose_data/s, hall with keypoints, the state of ${c.all.filter((m) => m.type === 'system_event').length} pipelines`);
});

test.serial('an environment filter takes the environment or its source; messages name the environment', async (t) => {
  const c = await connect('env_client');
  t.teardown(() => c.close());
  const ack = await c.ask('subscribe', { subscriptions: [{ event_type: 'pose_data', filters: { environment_id: 'court' } }, { event_type: 'pose_data', filters: { environment_id: 'fast' } }] });
  t.is(ack.type, 'ack');
  const seen: string[] = [];
  for (let i = 0; i < 10; i++) seen.push((await c.next((m) => m.type === 'pose_data')).data.environment_id);
  t.deepEqual([...new Set(seen)], ['court']);
});

test('a client that stops reading gets CONNECTION_ERROR last in its queue, then the close (1008)', async (t) => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  t.teardown(() => wss.close());
  await new Promise((r) => wss.once('listening', r));
  const accepted = new Promise<WebSocket>((r) => wss.once('connection', r));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  const received: any[] = [];
  client.on('message', (raw) => received.push(JSON.parse(raw.toString())));
  const closed = new Promise<number>((r) => client.once('close', (code) => r(code)));
  await new Promise((r) => client.once('open', r));
  const errors: string[] = [];
  const hooks: ConnectionHooks = {
    clock: systemClock, validation: { environments: () => [] }, periodic: () => ({ type: 'none', data: {} }),
    onSent: () => undefined, onDropped: () => undefined, onError: (kind) => errors.push(kind), onClose: () => undefined,
    log: () => undefined, onSubscribed: () => undefined, closeAboveBytes: 256 * 1024, heartbeatMs: 3_600_000, maxSubscriptions: 32,
  };
  const connection = new Connection(await accepted, 'slow_reader', hooks);
  (client as unknown as { _socket: import('node:net').Socket })._socket.pause();
  // Events (never skipped) pile up behind the paused reader until its queue passes the cap.
  const filler = 'x'.repeat(16 * 1024);
  let sent = 0;
  for (let i = 0; i < 10_000 && connection.send('activity_event', { filler }, { droppable: false }); i++) {
    sent++;
    await new Promise((r) => setImmediate(r));
  }
  t.deepEqual(errors, ['not_reading']);
  t.false(connection.send('activity_event', { filler }, { droppable: false }), 'nothing more is queued');
  (client as unknown as { _socket: import('node:net').Socket })._socket.resume();
  t.is(await closed, 1008);
  const last = received[received.length - 1];
  t.is(last.type, 'error');
  t.is(last.data.error_code, 'CONNECTION_ERROR');
  t.like(last.data.details, { reason: 'client_too_slow', limit_bytes: 256 * 1024, retry_after: 5, max_retries: 3 });
  t.true(last.data.details.queued_bytes > 256 * 1024);
  t.is(received.filter((m) => m.type === 'activity_event').length, sent, 'everything queued before it was delivered');
  t.log(`${sent} events of 16 KiB queued before the cap; the client read them, the error, then the close`);
});

test('RS/ES public keys: an ES256 token is accepted, an HS256 token keyed with the public key is not', async (t) => {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const pem = await exportSPKI(publicKey);
  const yaml = `
sources:
  cam: { uri: "test://ball", width: 64, height: 48, fps: 5 }
models:
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  arcface: { file: face_recognition_mobilefacenet_128d.onnx, kind: mobilefacenet }
pipelines:
  cam: { source: cam, stages: [] }
transports:
  pose-stream-v1: { port: 0, auth: { publicKey: ${JSON.stringify(pem)}, issuer: sightline-test } }
  ddfr: { port: 0, detector: faces, embedder: arcface }
  metrics: { port: 0 }
`;
  const app2 = await startApp(parseGraph(yaml, 'es.yaml'), testSettings(), { log: memoryLogger() });
  t.teardown(() => app2.stop());
  const url = `ws://127.0.0.1:${app2.portOf('pose-stream-v1')}/ws/v1`;
  // DDFR's /ws and the pose stream's /ws/v1 share one port, told apart by path.
  t.is(app2.portOf('ddfr'), app2.portOf('pose-stream-v1'));
  const ddfr = new WebSocket(`ws://127.0.0.1:${app2.portOf('ddfr')}/ws`);
  const ddfrReply = new Promise<string>((r) => ddfr.once('message', (m) => r(m.toString())));
  await new Promise((r) => ddfr.once('open', r));
  // A real frame: its answer also means both face models finished loading before the app stops.
  ddfr.send(readFileSync(media('obama.jpg')));
  t.is(JSON.parse(await ddfrReply).status, 'ok');
  ddfr.terminate();
  const good = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer('sightline-test').setExpirationTime('5m').sign(privateKey);
  const c = await Client.connect(`${url}?token=${good}&client_id=es`);
  t.is((await c.next((m) => m.type === 'connection_status')).data.client_id, 'es');
  const wrongIssuer = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer('elsewhere').setExpirationTime('5m').sign(privateKey);
  t.is((await refused(`${url}?token=${wrongIssuer}`)).status, 401);
  // Algorithm confusion: HS256 with the public key's PEM as the shared secret.
  const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuer('sightline-test').setExpirationTime('5m').sign(new TextEncoder().encode(pem));
  const r = await refused(`${url}?token=${confused}`);
  t.is(r.status, 401);
  t.is(r.body.error, 'invalid_token');
  // A server going away tells its clients.
  await app2.stop();
  const bye = await c.next((m) => m.type === 'disconnect');
  t.is(bye.data.reason, 'server_shutdown');
  t.is((await c.closed).code, 1001);
});

test('a secret that cannot be loaded refuses handshakes with 503 instead of failing the server', async (t) => {
  const yaml = `
sources:
  cam: { uri: "test://ball", width: 64, height: 48, fps: 5 }
pipelines:
  cam: { source: cam, stages: [] }
transports:
  pose-stream-v1: { port: 0, auth: { secretEnv: SIGHTLINE_TEST_UNSET_SECRET } }
  metrics: { port: 0 }
`;
  delete process.env.SIGHTLINE_TEST_UNSET_SECRET;
  const log = memoryLogger();
  const app3 = await startApp(parseGraph(yaml, 'unset.yaml'), testSettings(), { log });
  t.teardown(() => app3.stop());
  const r = await refused(`ws://127.0.0.1:${app3.portOf('pose-stream-v1')}/ws/v1?token=${await hs256()}`);
  t.is(r.status, 503);
  t.is(r.body.error, 'auth_not_configured');
  t.regex(r.body.message, /SIGHTLINE_TEST_UNSET_SECRET, which is not set/);
  t.true(log.lines.some((l) => /SIGHTLINE_TEST_UNSET_SECRET/.test(l)));
});

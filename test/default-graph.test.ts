/**
 * The default graph (what `npm start` serves), run as shipped with only its ports moved: every protocol
 * answers on the sample video with real models. The pose-stream token comes from `sightline token`.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { loadGraph } from '../app/catalog.js';
import { startApp, type App } from '../app/app.js';
import { COCO_KEYPOINTS } from '../core/types.js';
import { media, memoryLogger, scrape, testSettings } from './helpers.js';
import { freePort } from './rtsp-server.js';

const GRAPH = 'config/examples/default.yaml';
const settings = testSettings();
let app: App;

test.before(async () => {
  const graph = loadGraph(GRAPH);
  // One free port shared by the protocols, and one of its own for the console (whose page is `/`, as the People
  // Counter's socket is).
  for (const [id, t] of Object.entries(graph.transports)) t.port = id === 'console' ? await freePort() : 0;
  app = await startApp(graph, settings, { log: memoryLogger() });
});
test.after.always(() => app?.stop());

/** Opens a socket and resolves with the first JSON message that matches. */
function firstMessage(url: string, match: (m: any) => boolean, send?: (ws: WebSocket) => void, protocols: string[] = []): Promise<any> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`nothing matching from ${url}`)); }, 90_000);
    ws.on('open', () => send?.(ws));
    ws.on('message', (raw, binary) => {
      if (binary) return;
      const m = JSON.parse(raw.toString());
      if (match(m)) { clearTimeout(timer); ws.close(); resolve(m); }
    });
    ws.on('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

test('people counter: stats and annotated frames of the sample video', async (t) => {
  const url = `ws://127.0.0.1:${app.portOf('people-counter')}/`;
  const frame = await firstMessage(url, (m) => m.type === 'frame');
  t.true(typeof frame.data === 'string' && frame.data.length > 1000, 'a base64 JPEG');
  const stats = await firstMessage(url, (m) => m.type === 'stats');
  t.is(typeof stats.data.count_in, 'number');
});

test('DDFR answers a photo with its face', async (t) => {
  const url = `ws://127.0.0.1:${app.portOf('ddfr')}/ws`;
  const reply = await firstMessage(url, (m) => m?.status === 'ok', (ws) => ws.send(readFileSync(media('obama.jpg'))));
  t.is(reply.faces.length, 1);
  t.is(reply.faces[0].name, 'Unknown');
});

test('pose stream: a token from `sightline token` opens /ws/v1 and pose_data carries COCO keypoints', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath,
    ['dist/bin/sightline.cjs', 'token', GRAPH, '--data-dir', settings.dataDir, '--subject', 'default-graph-test']);
  const token = stdout.trim();
  t.regex(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const url = `ws://127.0.0.1:${app.portOf('pose-stream-v1')}/ws/v1?token=${token}&client_id=default-test`;
  const msg = await firstMessage(url, (m) => m.type === 'pose_data' && m.data.persons?.some((p: any) => p.keypoints?.length),
    (ws) => ws.send(JSON.stringify({ type: 'subscribe', timestamp: new Date().toISOString(), data: { subscriptions: [{ event_type: 'pose_data', filters: { include_keypoints: true } }] } })),
    ['wifi-densepose-v1']);
  const person = msg.data.persons.find((p: any) => p.keypoints?.length);
  t.deepEqual(person.keypoints.map((k: any) => k.name), [...COCO_KEYPOINTS]);
  t.is(msg.metadata.client_id, 'default-test');
});

test('reconstruction sessions and the dashboard are served', async (t) => {
  const base = `http://127.0.0.1:${app.portOf('reconstruction')}`;
  const created = await fetch(`${base}/ws/session/create?max_images=4`, { method: 'POST' });
  t.is(created.status, 200);
  const { session_id: id } = await created.json() as { session_id: string };
  const listed = await (await fetch(`${base}/ws/sessions`)).json() as { sessions: { session_id: string }[] };
  t.true(listed.sessions.some((s) => s.session_id === id));
  const page = await fetch(`${base}/dashboard`);
  t.is(page.status, 200);
  t.regex(await page.text(), /<html/i);
});

test('WatchMe: a photo becomes a token that start_tracking accepts on the first source', async (t) => {
  const base = `127.0.0.1:${app.portOf('watchme')}`;
  const res = await fetch(`http://${base}/upload-embedding`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ image: readFileSync(media('obama.jpg')).toString('base64') }),
  });
  t.is(res.status, 200);
  const { embedding } = await res.json() as { embedding: string };
  const started = await firstMessage(`ws://${base}/video-stream/default_test`, (m) => m.type === 'status' && m.status !== 'pong',
    (ws) => ws.send(JSON.stringify({ type: 'start_tracking', person_embed: embedding, video_source: 0, fps_limit: 2 })));
  t.is(started.status, 'tracking_started');
});

test('metrics and health', async (t) => {
  const processed = (text: string): boolean => text.split('\n').some((l) => l.startsWith('sightline_frames_processed_total{') && l.includes('pipeline="plaza"') && Number(l.split(' ').pop()) > 0);
  let text = await scrape(app.portOf('metrics')!);
  for (let i = 0; i < 120 && !processed(text); i++) {
    await new Promise((r) => setTimeout(r, 500));
    text = await scrape(app.portOf('metrics')!);
  }
  t.true(processed(text),
    text.split('\n').filter((l) => l.startsWith('sightline_frames')).join('\n'));
  const health = await (await fetch(`http://127.0.0.1:${app.portOf('metrics')}/health`)).json() as Record<string, unknown>;
  t.truthy(health);
});

/**
 * watchme-person-tracking.rst's own code against the default graph, read from the document at test time, with only
 * the server's address, session ids and file names replaced: the basic JavaScript and Python connections, the HTML
 * page with RealTimeTracker in Chromium (a fake camera playing vtest.avi), the Python AsyncPersonTracker, and the
 * RobustWebSocketClient family (which the document shows without a use: the test uses them) through a connection that
 * the network drops; and its client messages as printed, whose answers must have the fields of its examples.
 *
 * What the document's code does, and what the server does about it:
 * - AsyncPersonTracker reads frames from the webcam (OpenCV device 0): there is none here, so it says it cannot open
 *   the video source and goes on listening to the live tracking it started on the server's source 0.
 * - RobustWebSocketClient reconnects with the same session id a second after its socket drops, before the server can
 *   know that the old socket is dead: the server probes the old socket and hands the session over.
 * - MonitoredWebSocketClient prints `frame_info.processing_time`, a field the document's message example lacks.
 * - The document's text has its emoji and check marks mangled (UTF-8 read as Latin-1); the code prints them as they are.
 */
import test from 'ava';
import http from 'node:http';
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import type { Box } from '../core/types.js';
import { CuttingProxy } from './cutting-proxy.js';
import { block, blocksIn, substitute } from './docs/blocks.js';
import { startDefaultGraph, type DefaultGraph } from './docs/default-graph.js';
import { count, runNode, runPython, scratchDir, transcript } from './docs/run.js';
import { media } from './helpers.js';
import { encode, videoFrames, y4m, type RgbImage } from './video-frames.js';

const DOC = 'watchme-person-tracking.rst';
/** vtest.avi frame 20: a pedestrian in a red jacket (YOLOX box), the reference person. */
const REF_FRAME = 20;
const REF_BOX: Box = [684, 271, 725, 379];

let server: DefaultGraph;
let address: string;
let frames: Map<number, RgbImage>;
let reference: Buffer;
let token: string;

test.before(async () => {
  frames = await videoFrames(media('vtest.avi'), 0, 40);
  reference = await encode(frames.get(REF_FRAME)!, [REF_BOX[0] - 8, REF_BOX[1] - 10, REF_BOX[2] + 8, REF_BOX[3] + 8], 'jpeg');
  server = await startDefaultGraph();
  address = server.address('watchme');
  const res = await fetch(`http://${address}/upload-embedding`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: reference.toString('base64') }),
  });
  token = ((await res.json()) as { embedding: string }).embedding;
});
test.after.always(() => server?.app.stop());

test('every JavaScript, HTML and Python block of the document is run by a test here', (t) => {
  t.deepEqual(blocksIn(DOC, ['javascript', 'js', 'python', 'html']).map((b) => b.id), [
    'Basic WebSocket Connection #1', 'Basic WebSocket Connection #2', 'Real-time Webcam Tracking #1', 'Real-time Webcam Tracking #2',
    'Python Async Example #1', 'Robust WebSocket Implementation #1', 'Frame Rate Control #1', 'Monitoring and Debugging #1',
  ]);
});

test.serial("the document's basic connections: JavaScript opens, Python's ping gets a pong", async (t) => {
  const js = substitute(block(DOC, 'Basic WebSocket Connection #1'), [['localhost:5000', address]]);
  const r = await runNode(js, { until: (out) => /WebSocket connected/.test(out), timeoutMs: 30_000 });
  t.true(r.stopped, transcript(r));
  t.regex(r.lines[0], /^âœ“ WebSocket connected$/, 'the document\'s check mark, as mangled as in the document');
  t.notRegex(r.stderr, /error/i, transcript(r));

  const py = substitute(block(DOC, 'Basic WebSocket Connection #2'), [['localhost:5000', address]]);
  const p = await runPython(py, { timeoutMs: 30_000 });
  t.is(p.code, 0, transcript(p));
  const reply = JSON.parse(/^Server response: (.*)$/m.exec(p.stdout)![1]);
  t.like(reply, { type: 'status', status: 'pong' });
  t.true(reply.timestamp > 1.6e9, 'seconds since the epoch');
});

test.serial("the document's Python AsyncPersonTracker, unchanged: upload, live tracking on source 0, matches printed", async (t) => {
  const cwd = scratchDir('watchme-py');
  // The file the document's usage names.
  writeFileSync(path.join(cwd, 'reference_person.jpg'), reference);
  const code = substitute(block(DOC, 'Python Async Example #1'), [['localhost:5000', address]]);
  const found = (out: string) => (out.match(/Found \d+ matches in frame \d+/g) ?? []).length;
  const r = await runPython(code, { cwd, timeoutMs: 90_000, until: (out) => found(out) >= 5 });
  t.true(r.stopped, transcript(r));
  t.is(r.lines[0], 'Starting async person tracker...');
  t.regex(r.stdout, new RegExp(`Connected to ws://${address.replace(/\./g, '\\.')}/video-stream/python_session_\\d+`));
  t.regex(r.stdout, /Person embedding created/);
  t.regex(r.stdout, /Live tracking started/);
  t.regex(r.stdout, /Status: tracking_started - Started tracking on source: 0/);
  // No webcam here: the client's own frames stop at once, the server's live results go on.
  t.regex(r.stdout, /Cannot open video source/);
  const matches = [...r.stdout.matchAll(/Found (\d+) matches in frame (\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  t.true(matches.every(([, frame], i) => i === 0 || frame > matches[i - 1][1]), 'live frames in order');
  t.log(`${matches.length} matches messages printed (matches per frame: ${matches.map(([n]) => n).join(' ')})`);
});

test.serial("the document's HTML page and RealTimeTracker in Chromium: upload, tracking, matches drawn on the overlay", async (t) => {
  const camera = path.join(os.tmpdir(), `docs-watchme-camera-${process.pid}.y4m`);
  writeFileSync(camera, y4m([...frames.values()], 10));
  const personFile = path.join(os.tmpdir(), `docs-watchme-person-${process.pid}.jpg`);
  writeFileSync(personFile, reference);
  t.teardown(() => { rmSync(camera, { force: true }); rmSync(personFile, { force: true }); });
  const html = block(DOC, 'Real-time Webcam Tracking #1').code;
  const js = substitute(block(DOC, 'Real-time Webcam Tracking #2'), [['localhost:5000', address]]);
  // The page's own origin, as the document's page would have (its upload goes through CORS).
  const site = http.createServer((req, res) => {
    if (req.url === '/websocket-tracker.js') res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(js);
    else res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
  });
  await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
  t.teardown(() => site.close());
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${camera}`],
  });
  t.teardown(() => browser.close());
  const tab = await browser.newPage();
  // Records the boxes the page draws.
  await tab.addInitScript(() => {
    const strokes: number[][] = [];
    (window as unknown as { strokes: number[][] }).strokes = strokes;
    const original = CanvasRenderingContext2D.prototype.strokeRect;
    CanvasRenderingContext2D.prototype.strokeRect = function (x: number, y: number, w: number, h: number) {
      strokes.push([x, y, w, h]);
      original.call(this, x, y, w, h);
    };
  });
  const logged: string[] = [];
  const problems: string[] = [];
  tab.on('console', (m) => logged.push(m.text()));
  tab.on('pageerror', (e) => problems.push(e.message));
  await tab.goto(`http://127.0.0.1:${(site.address() as { port: number }).port}/`);
  await tab.waitForFunction(() => (document.getElementById('webcam') as HTMLVideoElement).readyState >= 2);
  await tab.setInputFiles('#personImage', personFile);
  await tab.waitForFunction(() => document.getElementById('status')!.textContent!.includes('Person embedding created'));
  await tab.click('text=Start Tracking');
  // The page sends its camera frame every second and draws what comes back (its frames and the server's source 0).
  await tab.waitForFunction(() => (window as unknown as { strokes: number[][] }).strokes.length >= 3, undefined, { timeout: 90_000 });
  const strokes = await tab.evaluate(() => (window as unknown as { strokes: number[][] }).strokes);
  await tab.click('text=Stop Tracking');
  t.true(logged.includes('Status: tracking_started - Started tracking on source: 0'), logged.join('\n'));
  t.true(strokes.every(([x, y, w, h]) => x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 640 && y + h <= 480), 'boxes scaled onto the 640×480 overlay');
  t.regex(await tab.textContent('#status') ?? '', /Tracking stopped|Disconnected from tracking service/);
  t.deepEqual(problems, []);
  t.log(`${strokes.length} boxes drawn, e.g. ${JSON.stringify(strokes[0].map(Math.round))}`);
});

/** The document's three client classes, in its order: a page would include them together. */
const robustFamily = (url: string): string => [
  substitute(block(DOC, 'Robust WebSocket Implementation #1'), [['ws://localhost:5000', url]]),
  block(DOC, 'Frame Rate Control #1').code,
  block(DOC, 'Monitoring and Debugging #1').code,
].join('\n\n');

test.serial("the document's MonitoredWebSocketClient prints processing times, and its reconnection after a dropped network resumes the session", async (t) => {
  const proxy = await CuttingProxy.start(server.app.portOf('watchme')!);
  t.teardown(() => proxy.close());
  const usage = `
const client = new MonitoredWebSocketClient();
client.connect('robust_session_' + Date.now()).then(() => {
  client.send({ type: 'start_tracking', person_embed: ${JSON.stringify(token)}, video_source: 0, fps_limit: 2 });
});`;
  const times = (out: string) => [...out.matchAll(/Processing time: (\S+)/g)].map((m) => m[1]);
  const connections = (out: string) => (out.match(/WebSocket connected/g) ?? []).length;
  let cutAt = -1;
  const r = await runNode(robustFamily(`ws://127.0.0.1:${proxy.port}`), {
    usage, timeoutMs: 90_000,
    // Once live results flow, the network drops the connection.
    onOutput: (out) => { if (cutAt < 0 && times(out).length >= 2) { cutAt = times(out).length; proxy.cut(); } },
    until: (out) => cutAt >= 0 && connections(out) >= 2 && times(out).length >= cutAt + 3,
  });
  t.true(r.stopped, transcript(r, 80));
  t.regex(r.stdout, /WebSocket closed: 1006 - /);
  t.regex(r.stdout, /Attempting to reconnect \(1\/5\)/);
  t.notRegex(r.stdout, /Attempting to reconnect \(2\/5\)/, 'the first reconnection succeeds');
  t.notRegex(r.stdout + r.stderr, /Reconnection failed|Max reconnection attempts/);
  const all = times(r.stdout);
  t.true(all.every((v) => Number.isFinite(Number(v)) && Number(v) >= 0), `processing times: ${all.join(' ')}`);
  // The live results after the reconnection come without a new start_tracking: the session was taken over.
  t.true(all.length >= cutAt + 3);
  t.log(`processing times (s): ${all.join(' ')}; the network dropped after ${cutAt}, the session resumed on the first reconnection`);
});

test.serial("the document's OptimizedTracker sends at most 5 frames a second, and each is answered", async (t) => {
  const frame = (await encode(frames.get(REF_FRAME)!, undefined, 'jpeg')).toString('base64');
  const usage = `
const tracker = new OptimizedTracker();
tracker.connect('optimized_session_' + Date.now()).then(() => {
  // A camera offering 20 frames a second for 4 seconds.
  const camera = setInterval(() => tracker.sendFrame(${JSON.stringify(frame)}, ${JSON.stringify(token)}), 50);
  setTimeout(() => clearInterval(camera), 4000);
  setTimeout(() => { console.log('DONE'); tracker.close(); }, 15000);
});`;
  const r = await runNode(robustFamily(`ws://${address}`), { usage, timeoutMs: 60_000, until: (out) => out.includes('DONE') });
  t.true(r.stopped, transcript(r));
  const answers = (r.stdout.match(/Received message: \{\s+type: '(matches|status)'/g) ?? []);
  const matched = (r.stdout.match(/Received message: \{\s+type: 'matches'/g) ?? []).length;
  // 4 s at 5 frames a second: 20 frames, and one at the start.
  t.true(answers.length <= 21, `${answers.length} answers`);
  t.true(matched >= 3, transcript(r));
  // Node prints the answers two levels deep: a match shows its distance (its box is [Array]).
  t.regex(r.stdout, /matches: \[ \{ bbox: \[Array\], distance: 0\.\d+/, 'the reference pedestrian found in the frame');
  t.log(`${answers.length} answers to the frames sent in 4 s (${matched} matches messages, ${answers.length - matched} busy)`);
  t.is(count(r, /Max reconnection attempts/), 0);
});

test.serial("the document's client messages, as printed (with a real token and frame), get answers of the shapes it shows", async (t) => {
  const { default: WebSocket } = await import('ws');
  const frame = (await encode(frames.get(REF_FRAME)!, undefined, 'jpeg')).toString('base64');
  const message = (id: string) => substitute(block(DOC, id), [['base64_encrypted_embedding', token], ['base64_encoded_frame_data', frame]].filter(
    ([from]) => block(DOC, id).code.includes(from)) as [string, string][]);
  const ws = new WebSocket(`ws://${address}/video-stream/document_messages`);
  const got: any[] = [];
  let wake = (): void => undefined;
  ws.on('message', (raw) => { got.push(JSON.parse(raw.toString())); wake(); });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const answer = async (text: string, match: (m: any) => boolean): Promise<any> => {
    const from = got.length;
    ws.send(text);
    for (;;) {
      const m = got.slice(from).find(match);
      if (m) return m;
      await new Promise<void>((r) => { wake = r; });
    }
  };
  /** The documented keys with their types, which a server message must have (it may have more). */
  const documented = (id: string) => Object.entries(JSON.parse(block(DOC, id).code) as Record<string, unknown>).map(([k, v]) => `${k}:${typeof v}`);
  const keys = (m: Record<string, unknown>) => Object.entries(m).map(([k, v]) => `${k}:${typeof v}`);

  const pong = await answer(message('Client to Server Messages #4'), (m) => m.status === 'pong');
  t.deepEqual(keys(pong).sort(), documented('Server to Client Messages #3').sort());
  const started = await answer(message('Client to Server Messages #1'), (m) => m.type === 'status');
  t.deepEqual(keys(started).sort(), documented('Server to Client Messages #2').sort());
  t.is(started.message, 'Started tracking on source: 0');
  const matches = await answer(message('Client to Server Messages #2'), (m) => m.type === 'matches' && m.frame_info.frame_number === 0 && m.frame_info.width === 768);
  t.deepEqual(keys(matches).sort(), documented('Server to Client Messages #1').sort());
  const example = JSON.parse(block(DOC, 'Server to Client Messages #1').code);
  t.deepEqual(Object.keys(matches.matches[0]).sort(), Object.keys(example.matches[0]).sort());
  t.true(Object.keys(example.frame_info).every((k) => k in matches.frame_info), 'every documented frame_info field, and processing_time besides');
  const stopped = await answer(message('Client to Server Messages #3'), (m) => m.type === 'status' && m.status === 'tracking_stopped');
  t.is(stopped.message, 'Tracking stopped');
  ws.close();
  t.false(got.some((m) => m.status === 'error'), JSON.stringify(got.filter((m) => m.status === 'error')));
});

/**
 * pose-stream-v1.md's own code against the default graph, read from the document at test time: its JavaScript
 * client (under Node, `ws` as the WebSocket) and its Python client, with only the address and the token replaced,
 * and its client messages sent as the document prints them. The default graph's camera answers to the document's
 * environment, `room_001`.
 *
 * What the document's code does, and what the server does about it:
 * - the JavaScript usage calls subscribeToPoseData() right after connect(), while the socket is still connecting:
 *   its own send() drops the message. The Python usage subscribes after connect() returns, which is after the socket
 *   has closed. Both clients therefore get the default stream a connection receives until it subscribes.
 * - the JavaScript usage hands pose data to updatePoseVisualization() and falls to showFallAlert(), which a page
 *   defines: here they print what they are given.
 * - the authentication block declares `const ws` twice (one script cannot run it): each method runs as a script of
 *   its own, unchanged. Its header method needs a WebSocket that takes headers (Node's `ws`; a browser's does not).
 */
import test from 'ava';
import WebSocket from 'ws';
import { block, blocksIn, substitute } from './docs/blocks.js';
import { startDefaultGraph, type DefaultGraph } from './docs/default-graph.js';
import { count, runNode, runPython, transcript } from './docs/run.js';

const DOC = 'pose-stream-v1.md';
const DOC_URL = 'wss://api.wifi-densepose.com/ws/v1';

let server: DefaultGraph;
let url: string;
test.before(async () => {
  server = await startDefaultGraph();
  url = `ws://${server.address('pose-stream-v1')}/ws/v1`;
});
test.after.always(() => server?.app.stop());

test('every JavaScript and Python block of the document is run by a test here', (t) => {
  const run = ['JWT Token Authentication #1', 'JavaScript Client #1', 'Python Client #1'];
  t.deepEqual(blocksIn(DOC, ['javascript', 'js', 'python', 'html']).map((b) => b.id), run);
});

test.serial("the document's JavaScript client, unchanged: pose data of room_001 with keypoints, and system events", async (t) => {
  const b = block(DOC, 'JavaScript Client #1');
  const code = substitute(b, [[DOC_URL, url], ['your_jwt_token', await server.token()]]);
  // What the page of the usage example would define.
  const prelude = `
function updatePoseVisualization(data) {
  const withKeypoints = data.persons.filter((p) => p.keypoints && p.keypoints.length === 17).length;
  console.log('POSE ' + JSON.stringify({ environment_id: data.environment_id, frame_id: data.frame_id, persons: data.persons.length, withKeypoints }));
}
function showFallAlert(data) { console.log('FALL ' + JSON.stringify(data)); }`;
  const poses = (out: string) => out.split('\n').filter((l) => l.startsWith('POSE ')).map((l) => JSON.parse(l.slice(5)));
  const r = await runNode(code, {
    prelude, timeoutMs: 90_000,
    until: (out) => poses(out).length >= 10 && poses(out).some((p) => p.withKeypoints > 0),
  });
  t.true(r.stopped, transcript(r));
  t.is(r.lines[0], 'Connected to WiFi-DensePose WebSocket', transcript(r));
  const seen = poses(r.stdout);
  t.true(seen.every((p) => p.environment_id === 'room_001'), 'the camera answers to the document\'s environment');
  t.true(seen.some((p) => p.persons > 0 && p.withKeypoints > 0), 'persons with their 17 keypoints');
  t.true(seen.every((p, i) => i === 0 || p.frame_id > seen[i - 1].frame_id), 'frames in order');
  t.true(count(r, /^System event: /) >= 1, 'the pipeline\'s state, a system event');
  t.notRegex(r.stderr, /WebSocket error/, transcript(r));
  t.log(`${seen.length} pose_data handed to updatePoseVisualization, up to ${Math.max(...seen.map((p) => p.persons))} persons; `
    + `${count(r, /^System event: /)} system event(s) printed`);
});

test.serial("the document's Python client, unchanged: pose data and system events until it is stopped", async (t) => {
  const b = block(DOC, 'Python Client #1');
  const code = substitute(b, [[DOC_URL, url], ['your_jwt_token', await server.token()]]);
  const persons = (out: string) => [...out.matchAll(/^Received pose data: (\d+) persons detected$/gm)].map((m) => Number(m[1]));
  const r = await runPython(code, { timeoutMs: 90_000, until: (out) => persons(out).length >= 10 && persons(out).some((n) => n > 0) });
  t.true(r.stopped, transcript(r));
  t.is(r.lines[0], 'Connected to WiFi-DensePose WebSocket', transcript(r));
  t.true(r.lines.some((l) => /^System event: system_status - /.test(l)), transcript(r));
  t.false(r.lines.some((l) => l.startsWith('WebSocket error')), transcript(r));
  const n = persons(r.stdout);
  t.log(`${n.length} "Received pose data" lines, persons per frame: ${n.slice(0, 12).join(' ')}…`);
});

test.serial("the document's authentication block: each method, as its own script, gets the connection's status", async (t) => {
  const b = block(DOC, 'JWT Token Authentication #1');
  const token = await server.token();
  const code = substitute(b, [[`${DOC_URL}?token=your_jwt_token`, `${url}?token=${token}`], [DOC_URL, url], ['your_jwt_token', token]]);
  // The smallest fix: the block declares `const ws` twice, so its two methods run as two scripts.
  const methods = code.split(/\n(?=\/\/ Header method)/);
  t.is(methods.length, 2);
  const watch = 'ws.onmessage = (event) => { console.log(event.data); ws.close(); };';
  for (const method of methods) {
    const r = await runNode(method, { usage: watch, timeoutMs: 30_000 });
    const first = JSON.parse(r.lines[0] ?? 'null');
    t.is(first?.type, 'connection_status', transcript(r));
    t.is(first?.data.status, 'connected');
  }
});

/** A raw client that keeps what arrives and can wait for a message that matches. */
async function open(query: string): Promise<{ ws: WebSocket; next: (match: (m: any) => boolean) => Promise<any>; all: any[] }> {
  const ws = new WebSocket(`${url}?${query}`);
  const all: any[] = [];
  let waiters: { match: (m: any) => boolean; resolve: (m: any) => void }[] = [];
  ws.on('message', (raw) => {
    const m = JSON.parse(raw.toString());
    all.push(m);
    waiters = waiters.filter((w) => (w.match(m) ? (w.resolve(m), false) : true));
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return {
    ws, all,
    next: (match) => {
      const seen = all.find(match);
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ match, resolve }));
    },
  };
}

test.serial("the document's client messages, as printed: subscribe (room_001), update, unsubscribe, heartbeat, disconnect", async (t) => {
  const c = await open(`token=${await server.token()}&client_id=document_messages`);
  const message = (id: string, pairs: [string, string][] = []) => JSON.parse(substitute(block(DOC, id), pairs));
  const ask = async (m: unknown, type = 'ack') => {
    const sent = c.all.length;
    c.ws.send(JSON.stringify(m));
    return c.next((x) => c.all.indexOf(x) >= sent && (x.type === type || x.type === 'error'));
  };

  const ack = await ask(message('Subscribe to Events #1'));
  t.is(ack.type, 'ack', JSON.stringify(ack.data));
  t.deepEqual(ack.data.active_subscriptions.map((s: any) => s.event_type), ['pose_data', 'system_event', 'activity_event']);
  const afterAck = ack.metadata.sequence;
  const pose = await c.next((m) => m.type === 'pose_data' && m.metadata.sequence > afterAck);
  t.is(pose.data.environment_id, 'room_001');
  for (const p of pose.data.persons) t.true(p.confidence >= 0.7, 'the document\'s min_confidence');
  const [poseSub, systemSub] = ack.data.active_subscriptions.map((s: any) => s.subscription_id);

  const updated = await ask(message('Update Subscription Filters #1', [['sub_123', poseSub]]));
  t.is(updated.type, 'ack', JSON.stringify(updated.data));
  t.is(updated.data.active_subscriptions[0].throttle.max_fps, 15);

  const high = await ask(message('High-Frequency Pose Data #1'));
  t.is(high.type, 'ack', JSON.stringify(high.data));
  t.deepEqual(high.data.active_subscriptions[0].throttle, { max_fps: 30, buffer_size: 1 });

  // The source's own id is an environment name too.
  const bySource = await ask({ type: 'subscribe', data: { subscriptions: [{ event_type: 'tracking_update', filters: { environment_id: 'plaza' } }] } });
  t.is(bySource.type, 'ack', JSON.stringify(bySource.data));

  const removed = await ask(message('Unsubscribe from Events #1', [['sub_123', poseSub], ['sub_124', systemSub]]));
  t.is(removed.type, 'ack', JSON.stringify(removed.data));
  t.deepEqual(removed.data.removed_subscriptions, [poseSub, systemSub]);

  const beat = await ask(message('Heartbeat #1'), 'heartbeat');
  t.is(beat.type, 'heartbeat');
  const bye = await ask(message('Graceful Disconnect #1'), 'disconnect');
  t.is(bye.data.reason, 'client_requested');
  t.false(c.all.some((m) => m.type === 'error'), JSON.stringify(c.all.filter((m) => m.type === 'error')));
});

/**
 * Client-sent images of every protocol on a real NATS cluster (one gateway, two workers as processes): WatchMe
 * photos and `single_frame`s and reconstruction images sent to the gateway have their model work done by the
 * workers through the `sightline.infer` queue group, answered in order; a depth view too large for one NATS
 * message is computed on the gateway instead. No sources run: the workers only answer requests (CPU stays low).
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { NodeIO } from '@gltf-transform/core';
import { media, openQueuedSocket } from './helpers.js';
import { Cluster, until } from './cluster-harness.js';
import { freePort } from './rtsp-server.js';

const GRAPH = (watchmePort: number, reconPort: number): string => `
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  reid: { file: person-reidentification-retail-0287.onnx, kind: reid }
  depth: { file: depth_estimation_fastdepth_224x224.onnx, kind: fastdepth }
transports:
  watchme: { port: ${watchmePort}, detector: people, reid: reid }
  reconstruction: { port: ${reconPort}, model: depth }
`;

type Msg = Record<string, unknown> & { type: string };

let cluster: Cluster;
let watchmePort: number;
let reconPort: number;

const open = (url: string) => openQueuedSocket<Msg>(url);

const b64 = (name: string): string => readFileSync(media(name)).toString('base64');

/** A counter summed over both workers. */
const onWorkers = async (name: string, labels: Record<string, string>): Promise<number> =>
  (await cluster.value('w1', name, labels)) + (await cluster.value('w2', name, labels));
const OPS = 'sightline_cluster_inference_ops_total';
const RESULTS = 'sightline_cluster_inference_total';

test.before(async () => {
  watchmePort = await freePort();
  reconPort = await freePort();
  cluster = await Cluster.start(GRAPH(watchmePort, reconPort));
  await Promise.all([cluster.spawn('gw', 'gateway'), cluster.spawn('w1', 'worker'), cluster.spawn('w2', 'worker')]);
});

test.after.always(async () => {
  await cluster?.stop();
});

test.serial('WatchMe upload and single_frames through the gateway are answered, in order, by the workers', async (t) => {
  const base = `http://127.0.0.1:${watchmePort}`;
  // The workers may still be subscribing to the queue group just after start: the first upload is retried.
  const photo = b64('obama.jpg');
  const token = await until('an embedding from POST /upload-embedding', async () => {
    const res = await fetch(`${base}/upload-embedding`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: photo }) });
    return res.status === 200 ? ((await res.json()) as { embedding: string }).embedding : false;
  }, 120_000, 1000);
  t.is(typeof token, 'string');

  const { ws, next, send } = await open(`ws://127.0.0.1:${watchmePort}/video-stream/cluster-frames`);
  // Alternately the reference photo itself (a small distance) and other photos, in two bursts of three sent
  // before any answer (a session may have four frames waiting).
  const frames = ['obama.jpg', 'messi5.jpg', 'obama.jpg', 'coco_000000000113.jpg', 'obama.jpg', 'two_people.jpg'];
  const answers: Msg[] = [];
  for (const burst of [frames.slice(0, 3), frames.slice(3)]) {
    for (const f of burst) send({ type: 'single_frame', frame: b64(f), person_embed: token });
    for (let i = 0; i < burst.length; i++) answers.push(await next());
  }
  ws.close();
  t.deepEqual(answers.map((a) => a.type), frames.map(() => 'matches'), JSON.stringify(answers.find((a) => a.type !== 'matches')));
  t.deepEqual(answers.map((a) => (a.frame_info as { frame_number: number }).frame_number), frames.map((_, i) => i), 'answered in the order sent');
  frames.forEach((f, i) => {
    const matches = answers[i].matches as { distance: number }[];
    if (f === 'obama.jpg') t.true(matches.length >= 1 && matches[0].distance < 0.25, `${f}: ${JSON.stringify(matches)}`);
  });
  const sizes = answers.map((a) => [(a.frame_info as { width: number }).width, (a.frame_info as { height: number }).height]);
  t.deepEqual(sizes[0], [910, 1137], 'the worker decoded the frame the client sent');

  // Every person-embed crossed the queue group: sent by the gateway, served by the workers, none run locally.
  const sent = await cluster.value('gw', OPS, { side: 'sent', op: 'person-embed' });
  const served = await onWorkers(OPS, { side: 'served', op: 'person-embed' });
  t.log(`person-embed: ${sent} sent by the gateway, served by w1 ${await cluster.value('w1', OPS, { side: 'served', op: 'person-embed' })}, w2 ${await cluster.value('w2', OPS, { side: 'served', op: 'person-embed' })}`);
  // A request sent before any worker had joined the queue group finds no responder (and is retried above).
  const unanswered = await cluster.value('gw', RESULTS, { side: 'sent', result: 'unanswered' });
  t.true(sent - unanswered >= 1 + frames.length);
  t.is(served, sent - unanswered);
  t.is(await cluster.value('gw', RESULTS, { side: 'sent', result: 'local' }), 0);
  t.is(await cluster.value('gw', OPS, { side: 'served', op: 'person-embed' }), 0, 'the gateway serves no inference requests');
});

test.serial('a reconstruction session through the gateway gets its depth from the workers and a valid GLB back', async (t) => {
  const base = `http://127.0.0.1:${reconPort}`;
  const before = await cluster.value('gw', OPS, { side: 'sent', op: 'depth-image' });
  const session = await (await fetch(`${base}/ws/session/create?max_images=3&process_res=256&num_max_points=20000`, { method: 'POST' })).json() as { session_id: string };
  const { ws, next, send } = await open(`ws://127.0.0.1:${reconPort}/ws/reconstruct/${session.session_id}`);
  t.like(await next(), { type: 'connected', session_id: session.session_id });
  const photos = ['messi5.jpg', 'coco_000000000077.jpg'];
  for (const name of photos) send({ type: 'image', data: b64(name), filename: name });
  send({ type: 'generate' });
  const acks = [await next(), await next()];
  t.deepEqual(acks.map((a) => [a.type, a.filename, a.image_index]), [['ack', 'messi5.jpg', 0], ['ack', 'coco_000000000077.jpg', 1]]);
  let complete: Msg;
  for (;;) {
    const m = await next();
    if (m.type === 'progress') continue;
    complete = m;
    break;
  }
  t.is(complete.type, 'complete', JSON.stringify(complete).slice(0, 200));
  const glb = new Uint8Array(Buffer.from(complete.glb_base64 as string, 'base64'));
  const doc = await new NodeIO().readBinary(glb);
  t.deepEqual(doc.getRoot().listMeshes().map((m) => m.getName()), photos);
  const points = doc.getRoot().listMeshes().reduce((n, m) => n + m.listPrimitives()[0].getAttribute('POSITION')!.getCount(), 0);
  t.true(points > 1000 && points <= 20_000, `${points} points`);
  t.like(complete.metadata, { num_frames: 2, glb_size_bytes: glb.byteLength, num_points: points });

  // Both depth views were computed by the workers (generate found them done: no depth request of its own).
  t.is((await cluster.value('gw', OPS, { side: 'sent', op: 'depth-image' })) - before, 2);
  t.is(await onWorkers(OPS, { side: 'served', op: 'depth-image' }), 2);
  t.is(await cluster.value('gw', RESULTS, { side: 'sent', result: 'local' }), 0);
  // Fusion (no model; its task holds every view) is not sent to the workers.
  t.is(await onWorkers(OPS, { side: 'served', op: 'reconstruct' }), 0);

  // A view too large for one NATS message (a 1434×2333 photo at process_res 2048: ~7.7 MB of pixels back) is
  // refused by the worker as too large and computed on the gateway: still answered.
  const big = await (await fetch(`${base}/ws/session/create?max_images=1&process_res=2048`, { method: 'POST' })).json() as { session_id: string };
  const c2 = await open(`ws://127.0.0.1:${reconPort}/ws/reconstruct/${big.session_id}`);
  t.like(await c2.next(), { type: 'connected' });
  c2.send({ type: 'image', data: b64('obama3.jpg'), filename: 'obama3.jpg' });
  t.like(await c2.next(), { type: 'ack', filename: 'obama3.jpg', image_index: 0 });
  t.is(await onWorkers(RESULTS, { side: 'served', result: 'too_large' }), 1);
  t.is(await cluster.value('gw', RESULTS, { side: 'sent', result: 'local' }), 1);
  c2.ws.close();
  ws.close();
});

/**
 * WatchMe live tracking across a real NATS cluster, on two `--role all` nodes (each runs pipelines and serves
 * every protocol on its own ports): the camera runs on exactly one of them; a client tracking the reference
 * pedestrian on the other node gets matches described by the node with the pixels (its `person.looks` cross the
 * results bridge); when that node is killed, the survivor takes the camera over and the same client keeps
 * getting matches, now described locally.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Box } from '../core/types.js';
import { media, openQueuedSocket } from './helpers.js';
import { Cluster, until } from './cluster-harness.js';
import { freePort } from './rtsp-server.js';
import { encode, videoFrames } from './video-frames.js';

/** vtest.avi frame 20: the pedestrian in the red jacket on the right, walking up the road for ~9 s. */
const REF_FRAME = 20;
const REF_BOX: Box = [684, 271, 725, 379];
/** The camera plays the first 12 s of vtest.avi (the pedestrian's walk) in a loop. */
const CLIP_FRAMES = 120;
const THRESHOLD = 0.4;

const GRAPH = (clip: string, watchme: number): string => `
sources:
  street: { uri: "file://${clip}", realtime: true, loop: true }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  reid: { file: person-reidentification-retail-0287.onnx, kind: reid }
pipelines:
  street:
    source: street
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.3 } }
      - { id: track, use: track }
transports:
  watchme: { port: ${watchme}, detector: people, reid: reid, threshold: ${THRESHOLD} }
`;

interface MatchesMsg {
  type: 'matches';
  matches: { bbox: Box; distance: number; confidence: number }[];
  frame_info: { frame_number: number; width: number; height: number };
}
type Msg = Record<string, unknown> & { type: string };

let cluster: Cluster;
const ports = new Map<string, number>();
let token: string;
const LOOKS = 'sightline_person_looks_frames_total';

test.before(async () => {
  cluster = await Cluster.start('{}');
  const clip = path.join(cluster.dir, 'street.avi');
  await promisify(execFile)('gst-launch-1.0', ['-q', 'filesrc', `location=${media('vtest.avi')}`, '!', 'decodebin', '!', 'videoconvert', '!',
    'identity', `eos-after=${CLIP_FRAMES}`, '!', 'jpegenc', 'quality=90', '!', 'avimux', '!', 'filesink', `location=${clip}`]);
  for (const name of ['a1', 'a2']) {
    ports.set(name, await freePort());
    const file = path.join(cluster.dir, `${name}.yaml`);
    writeFileSync(file, GRAPH(clip, ports.get(name)!));
    await cluster.spawn(name, 'all', ['--lease-seconds', '3'], file);
  }
  const frame = (await videoFrames(media('vtest.avi'), REF_FRAME, REF_FRAME)).get(REF_FRAME)!;
  const res = await until('an embedding from POST /upload-embedding', async () => {
    const r = await fetch(`http://127.0.0.1:${ports.get('a1')}/upload-embedding`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: (await encode(frame, REF_BOX)).toString('base64') }),
    });
    return r.status === 200 ? r : false;
  }, 60_000, 1000);
  token = ((await res.json()) as { embedding: string }).embedding;
});

test.after.always(async () => {
  await cluster?.stop();
});

/** The node running the camera, once exactly one does. */
const holder = (): Promise<string> => until('exactly one node to run the camera', async () => {
  const running = await Promise.all([...cluster.nodes.keys()].map(async (n) => ((await cluster.running(n)).includes('street') ? [n] : [])));
  const holders = running.flat();
  return holders.length === 1 ? holders[0] : false;
}, 60_000);

/** Collects `matches` until `n` of them found someone. */
async function matchedFrames(next: () => Promise<Msg>, n: number): Promise<{ all: MatchesMsg[]; matched: MatchesMsg[] }> {
  const all: MatchesMsg[] = [];
  const matched: MatchesMsg[] = [];
  while (matched.length < n) {
    const m = await next();
    if (m.type !== 'matches') throw new Error(`unexpected ${JSON.stringify(m)}`);
    all.push(m as unknown as MatchesMsg);
    if ((m as unknown as MatchesMsg).matches.length) matched.push(m as unknown as MatchesMsg);
  }
  return { all, matched };
}

/** Every match is the reference pedestrian: in the single-node test he is at 0.04–0.12, everyone else ≥ 0.6. */
function checkMatches(t: import('ava').ExecutionContext, got: { all: MatchesMsg[]; matched: MatchesMsg[] }, label: string): void {
  t.log(`${label}: ${got.matched.length} of ${got.all.length} frames matched, distances ${got.matched.map((m) => m.matches.map((x) => x.distance).join('/')).join(' ')}`);
  for (const m of got.all) {
    t.deepEqual([m.frame_info.width, m.frame_info.height], [768, 576]);
    t.true(m.matches.length <= 1, `one person matched at most: ${JSON.stringify(m.matches)}`);
    for (const x of m.matches) t.true(x.distance < 0.25, `${label}: a match at distance ${x.distance} is not the pedestrian`);
  }
}

test.serial('the camera runs on one `all` node; a client on the other is matched from looks described where the pixels are, and keeps them after a failover', async (t) => {
  const first = await holder();
  const other = first === 'a1' ? 'a2' : 'a1';
  t.log(`camera on ${first}; client on ${other}`);
  const { ws, next, send } = await openQueuedSocket<Msg>(`ws://127.0.0.1:${ports.get(other)}/video-stream/across`);
  send({ type: 'start_tracking', person_embed: token, video_source: 'street', fps_limit: 5 });
  const started = await next();
  t.is(started.status, 'tracking_started', JSON.stringify(started));

  const remote = await matchedFrames(next, 8);
  checkMatches(t, remote, `described on ${first}`);
  t.true(await cluster.value(other, 'sightline_cluster_bridge_messages_total', { direction: 'in', topic: 'person.looks' }) >= 8, 'looks came over the bridge');
  t.true(await cluster.value(first, LOOKS, { pipeline: 'street' }) > 0, 'the node with the camera described the frames');
  t.is(await cluster.value(other, LOOKS, { pipeline: 'street' }), 0, 'the client\'s node has no pixels to describe');

  // The node with the camera dies: the survivor takes the camera over (its lease lapses in 3 s) and already
  // holds the watch of its own client, so matches go on without the client asking again.
  const killedAt = Date.now();
  await cluster.kill(first);
  t.is(await holder(), other);
  t.log(`${other} runs the camera ${Date.now() - killedAt} ms after ${first} was killed`);
  const before = await cluster.value(other, LOOKS, { pipeline: 'street' });
  const local = await matchedFrames(next, 8);
  checkMatches(t, local, `described on ${other}`);
  t.true(await cluster.value(other, LOOKS, { pipeline: 'street' }) > before, 'the survivor describes its camera\'s frames now');

  send({ type: 'stop_tracking' });
  // Matches already sent may come first.
  await until('tracking_stopped', async () => (await next()).status === 'tracking_stopped', 30_000, 0);
  ws.close();
});

test.serial('a watch ends with its session: no looks are computed once nobody tracks', async (t) => {
  const node = await holder();
  const settled = await until('looks to stop', async () => {
    const a = await cluster.value(node, LOOKS, { pipeline: 'street' });
    await new Promise((r) => setTimeout(r, 1500));
    return (await cluster.value(node, LOOKS, { pipeline: 'street' })) === a ? a : false;
  }, 20_000, 0);
  await new Promise((r) => setTimeout(r, 2000));
  t.is(await cluster.value(node, LOOKS, { pipeline: 'street' }), settled);
});

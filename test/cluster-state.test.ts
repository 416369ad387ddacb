/**
 * State shared by the gateways of a cluster, on a real NATS server with JetStream: known persons enrolled
 * through one gateway's DDFR API are recognised through another, a delete reaches every gateway, a gateway
 * started later replays them; a WatchMe token issued by one gateway opens on another. One worker answers
 * the DDFR inference and runs one small, slow source (the WatchMe `start_tracking` target).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import path from 'node:path';
import { connect } from 'nats';
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { media, openQueuedSocket } from './helpers.js';
import { Cluster, until } from './cluster-harness.js';
import { freePort } from './rtsp-server.js';
import { PERSONS_STREAM } from '../cluster/shared-persons.js';

interface Ports { ddfr: number; watchme: number; pose: number }

const POSE_SECRET = 'cluster-state-pose-secret-0123456789abcdef';

const GRAPH = (p: Ports): string => `
sources:
  plaza: { uri: "file://${media('vtest.avi')}", realtime: true, loop: true, fps: 2, width: 320, height: 240 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
  reid: { file: person-reidentification-retail-0287.onnx, kind: reid }
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  embedder: { file: face_recognition_mobilefacenet_128d.onnx, kind: mobilefacenet }
pipelines:
  plaza:
    source: plaza
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.3 } }
transports:
  ddfr: { port: ${p.ddfr}, detector: faces, embedder: embedder }
  watchme: { port: ${p.watchme}, detector: people, reid: reid }
  pose-stream-v1: { port: ${p.pose}, auth: { secret: ${POSE_SECRET} } }
`;

interface Face { name: string; surname: string; id: string }
interface PersonJson { id: number; name: string; surname: string; photos: number }

let cluster: Cluster;
const ports = new Map<string, Ports>();
const photo = (name: string): Buffer => readFileSync(media(name));

async function gateway(name: string): Promise<void> {
  const p = { ddfr: await freePort(), watchme: await freePort(), pose: await freePort() };
  ports.set(name, p);
  const file = path.join(cluster.dir, `${name}.yaml`);
  writeFileSync(file, GRAPH(p));
  await cluster.spawn(name, 'gateway', [], file);
  await until(`${name} to serve DDFR`, () => fetch(`http://127.0.0.1:${p.ddfr}/persons`).then((r) => r.ok), 60_000);
}

const api = (gw: string, route: string, init?: RequestInit): Promise<Response> =>
  fetch(`http://127.0.0.1:${ports.get(gw)!.ddfr}${route}`, init);
const json = (body: unknown, method = 'POST'): RequestInit => ({ method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** The faces a gateway's DDFR WebSocket finds in one frame. */
async function recognize(gw: string, image: Buffer): Promise<Face[]> {
  const ws = new WebSocket(`ws://127.0.0.1:${ports.get(gw)!.ddfr}/ws`);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const reply = new Promise<string>((resolve) => ws.once('message', (m) => resolve(m.toString())));
  ws.send(image);
  const r = JSON.parse(await reply) as { faces: Face[] } | null;
  ws.close();
  if (!r) throw new Error(`${gw} answered null`);
  return r.faces;
}

test.before(async () => {
  const first = { ddfr: await freePort(), watchme: await freePort(), pose: await freePort() };
  cluster = await Cluster.start(GRAPH(first));
  await cluster.spawn('w1', 'worker');
  await gateway('gA');
  await gateway('gB');
});

test.after.always(async () => {
  await cluster?.stop();
});

let obamaId = 0;

test.serial('a person enrolled through gateway A is recognised through gateway B; both answer the same', async (t) => {
  let res = await api('gA', '/persons', json({ name: 'Barack', surname: 'Obama', birthday: '1961-08-04', relationship: 'amico', role: 'user' }));
  t.is(res.status, 201);
  const created = await res.json() as PersonJson;
  obamaId = created.id;
  t.true(Number.isInteger(obamaId) && obamaId > 0, 'the id is an integer, as the DDFR protocol wants');
  res = await api('gA', `/persons/${obamaId}/photos`, json({ image: photo('obama.jpg').toString('base64') }));
  t.is(res.status, 201);
  const ph = await res.json() as { id: number; person_id: number };
  t.is(ph.person_id, obamaId);
  const enrolledAt = Date.now();

  // Gateway B has applied the change by the time it is asked (it follows the stream as it comes).
  const onB = await until('the person on gateway B', async () => {
    const r = await api('gB', `/persons/${obamaId}`);
    const p = r.ok ? await r.json() as PersonJson : undefined;
    return p && p.photos === 1 ? p : undefined;
  }, 20_000, 20);
  t.log(`person and photo visible on B ${Date.now() - enrolledAt} ms after A answered`);
  const onA = await (await api('gA', `/persons/${obamaId}`)).json();
  t.deepEqual(onB, onA, 'the same person, id and fields on both gateways');
  t.deepEqual(await (await api('gB', '/persons')).json(), await (await api('gA', '/persons')).json());
  t.deepEqual(await (await api('gB', `/persons/${obamaId}/photos`)).json(), await (await api('gA', `/persons/${obamaId}/photos`)).json());

  const faces = await recognize('gB', photo('obama2.jpg'));
  t.is(faces.length, 1);
  t.is(`${faces[0].name} ${faces[0].surname}`, 'Barack Obama', 'a frame on B is identified with the photo enrolled on A');
  t.is((await recognize('gB', photo('biden2.jpg')))[0].name, 'Unknown', 'someone else stays Unknown');

  // An update on B reaches A.
  res = await api('gB', `/persons/${obamaId}`, json({ relationship: 'collega' }, 'PATCH'));
  t.is(res.status, 200);
  await until('the update on gateway A', async () => ((await (await api('gA', `/persons/${obamaId}`)).json()) as { relationship: string }).relationship === 'collega', 20_000, 100);
});

test.serial('a gateway started after the enrolment knows the person', async (t) => {
  await gateway('gC');
  // No polling: the gateway replays the stream before it serves.
  const p = await (await api('gC', `/persons/${obamaId}`)).json() as PersonJson;
  t.is(p.name, 'Barack');
  t.is(p.photos, 1);
  const faces = await recognize('gC', photo('obama3.jpg'));
  t.is(faces[0]?.name, 'Barack', 'the late gateway identifies the person from the replayed embedding');
  t.true(cluster.nodes.get('gC')!.log.some((l) => /known persons: 1 from sightline-persons/.test(l)));
  await cluster.kill('gC', 'SIGTERM');
});

test.serial('a delete on gateway B makes the person Unknown on gateway A, and removes his messages from the stream', async (t) => {
  const photoIds = (await (await api('gB', `/persons/${obamaId}/photos`)).json() as { id: number }[]).map((ph) => ph.id);
  t.is(photoIds.length, 1);
  t.is((await api('gB', `/persons/${obamaId}`, { method: 'DELETE' })).status, 204);
  t.is((await api('gB', `/persons/${obamaId}`)).status, 404);
  const deletedAt = Date.now();
  await until('the delete on gateway A', async () => (await api('gA', `/persons/${obamaId}`)).status === 404, 20_000, 20);
  t.log(`delete visible on A ${Date.now() - deletedAt} ms after B answered`);
  const faces = await recognize('gA', photo('obama2.jpg'));
  t.is(faces[0].name, 'Unknown');
  t.deepEqual(await (await api('gA', '/persons')).json(), []);
  t.is((await api('gA', `/persons/${obamaId}`, { method: 'DELETE' })).status, 404, 'a second delete finds nothing');

  // Compaction: his create and photo messages (the embedding) are gone from the stream; the delete stays.
  const nc = await connect({ servers: cluster.nats.url });
  const jsm = await nc.jetstreamManager();
  const held = async (seq: number): Promise<string | null> => {
    try { return (await jsm.streams.getMessage(PERSONS_STREAM, { seq })).json<{ op: string }>().op; } catch { return null; }
  };
  t.deepEqual(await Promise.all([obamaId, ...photoIds].map(held)), [null, null]);
  const last = (await jsm.streams.info(PERSONS_STREAM)).state.last_seq;
  t.is(await held(last), 'delete-person');
  // Nothing else about him either (his update on B carried his name): only the delete names him.
  const about: string[] = [];
  for (let seq = 1; seq <= last; seq++) {
    try {
      const c = (await jsm.streams.getMessage(PERSONS_STREAM, { seq })).json<{ op: string; id?: number; personId?: number }>();
      if (c.id === obamaId || c.personId === obamaId) about.push(c.op);
    } catch { /* removed */ }
  }
  t.deepEqual(about, ['delete-person']);
  await nc.close();
  // A gateway replaying the compacted stream from the start ends with the same persons as the others.
  await gateway('gD');
  t.deepEqual(await (await api('gD', '/persons')).json(), await (await api('gA', '/persons')).json());
  t.is((await api('gD', `/persons/${obamaId}`)).status, 404);
  await cluster.kill('gD', 'SIGTERM');
});

test.serial('persons created at the same time on two gateways get distinct ids, the same on both', async (t) => {
  const made = await Promise.all(['gA', 'gB', 'gA', 'gB', 'gA', 'gB'].map(async (gw, i) => {
    const res = await api(gw, '/persons', json({ name: `Guest ${i}` }));
    t.is(res.status, 201);
    return (await res.json() as PersonJson).id;
  }));
  t.is(new Set(made).size, 6, `six distinct ids: ${made.join(', ')}`);
  const lists = await until('both gateways to list the six', async () => {
    const [a, b] = await Promise.all(['gA', 'gB'].map(async (gw) => await (await api(gw, '/persons')).json() as PersonJson[]));
    return a.length === 6 && b.length === 6 ? [a, b] : undefined;
  }, 20_000, 100);
  t.deepEqual(lists[0], lists[1]);
  t.deepEqual(lists[0].map((p) => p.id), [...made].sort((x, y) => x - y));
  // A photo for a person deleted meanwhile (on the other gateway) is refused, not stored for nobody.
  t.is((await api('gB', `/persons/${made[0]}`, { method: 'DELETE' })).status, 204);
  await until('the delete on gateway A', async () => (await api('gA', `/persons/${made[0]}`)).status === 404, 20_000, 100);
  t.is((await api('gA', `/persons/${made[0]}/photos`, json({ image: photo('biden.jpg').toString('base64') }))).status, 404);
});

test.serial('a WatchMe token uploaded on gateway A is accepted by single_frame and start_tracking on gateway B', async (t) => {
  const res = await fetch(`http://127.0.0.1:${ports.get('gA')!.watchme}/upload-embedding`, json({ image: photo('obama.jpg').toString('base64') }));
  t.is(res.status, 200);
  const token = (await res.json() as { embedding: string }).embedding;
  // Each gateway made a key of its own in its data directory: only the shared one lets B open A's token.
  const keyFile = (gw: string): string => readFileSync(path.join(cluster.dir, gw, 'watchme.key'), 'utf8');
  t.not(keyFile('gA'), keyFile('gB'));

  const ws = new WebSocket(`ws://127.0.0.1:${ports.get('gB')!.watchme}/video-stream/shared-key`);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const replies: Record<string, unknown>[] = [];
  ws.on('message', (m) => replies.push(JSON.parse(m.toString()) as Record<string, unknown>));
  // The same photo as a frame: its person matches the token's vectors once B can open them.
  ws.send(JSON.stringify({ type: 'single_frame', person_embed: token, frame: photo('obama.jpg').toString('base64') }));
  ws.send(JSON.stringify({ type: 'start_tracking', person_embed: token, video_source: 'plaza', fps_limit: 1 }));
  // A token altered by one character is still refused: the key is shared, not the check relaxed.
  const altered = token.slice(0, 40) + (token[40] === 'A' ? 'B' : 'A') + token.slice(41);
  ws.send(JSON.stringify({ type: 'single_frame', person_embed: altered, frame: photo('obama2.jpg').toString('base64') }));
  await until('three replies', () => replies.length >= 3, 60_000, 50);
  ws.close();
  t.log(replies.map((r) => `${String(r.type)} ${String(r.status ?? '')} ${String(r.message ?? '')}`.trim()));
  t.is(replies[0].type, 'matches');
  const matches = replies[0].matches as { distance: number }[];
  t.log('distance of the photo to its own token', matches.map((m) => m.distance));
  t.true(matches.length >= 1, 'the person of the token is found in the frame');
  t.is(replies[1].status, 'tracking_started');
  t.is(replies[2].status, 'error');
  t.regex(String(replies[2].message), /authentication/);
});

test.serial('a pose-stream client on a gateway started after the worker gets the state of the pipeline the worker runs', async (t) => {
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('tester').setExpirationTime('5m')
    .sign(new TextEncoder().encode(POSE_SECRET));
  await gateway('gE');
  const { ws, next, send } = await openQueuedSocket<{ type: string; data: Record<string, any> }>(`ws://127.0.0.1:${ports.get('gE')!.pose}/ws/v1?token=${token}`);
  send({ type: 'subscribe', timestamp: new Date().toISOString(), data: { subscriptions: [{ event_type: 'system_event' }] } });
  let m = await next();
  while (m.type !== 'system_event') m = await next();
  ws.close();
  // gE runs no pipeline and started long after the worker's pipeline did (no state event since): this is the
  // worker's state, asked for when gE started.
  t.like(m.data, { event: 'system_status', status: 'running', configuration: { pipeline: 'plaza', environment_id: 'plaza' },
    components: { neural_network: 'healthy', csi_processor: 'healthy' } });
  t.true(cluster.nodes.get('gB')!.log.some((l) => /states of 1 node\(s\)/.test(l)));
});

test.serial('`sightline enroll --cluster` enrols for every gateway; run again it skips what the cluster has', async (t) => {
  const folder = path.join(cluster.dir, 'enroll');
  mkdirSync(path.join(folder, 'Joe_Biden'), { recursive: true });
  copyFileSync(media('biden.jpg'), path.join(folder, 'Joe_Biden', 'portrait.jpg'));
  const enroll = () => promisify(execFile)(process.execPath, ['dist/bin/sightline.cjs', 'enroll', folder, '--cluster', cluster.nats.url,
    '--data-dir', path.join(cluster.dir, 'enroll-data'), '--workers', '1'], { timeout: 120_000 });
  t.regex((await enroll()).stdout, /enrolled 1 photo\(s\) of 1 person\(s\); 0 already enrolled; 0 refused/);
  const faces = await until('Joe on both gateways', async () => {
    const [a, b] = await Promise.all(['gA', 'gB'].map((gw) => recognize(gw, photo('biden2.jpg'))));
    return a[0]?.name === 'Joe' && b[0]?.name === 'Joe' ? [a, b] : undefined;
  }, 20_000, 100);
  t.is(faces[1][0].surname, 'Biden');
  t.regex((await enroll()).stdout, /skip {4}Joe_Biden\/portrait\.jpg \(already enrolled\)/);
});

test.serial('messages on the persons stream that no gateway wrote are skipped and counted; the next change applies', async (t) => {
  const nc = await connect({ servers: cluster.nats.url });
  const js = nc.jetstream();
  for (const junk of ['not json', '{"op":"photo","personId":1,"vector":"AAAA"}', '{"op":"person","id":"x"}', '{"op":"drop-table"}', 'null']) {
    await js.publish('sightline.persons', junk);
  }
  // A well-formed update of a person deleted earlier (a late update racing a delete) does not bring it back.
  await js.publish('sightline.persons', JSON.stringify({ op: 'person', id: obamaId, name: 'Barack', surname: null, birthday: null, relationship: null, role: 'guest', createdMs: 1 }));
  await nc.drain();
  const res = await api('gB', '/persons', json({ name: 'After', surname: 'Junk' }));
  t.is(res.status, 201, 'B applied the junk (skipping it) before its own change');
  const { id } = await res.json() as PersonJson;
  await until('A past the junk', async () => (await api('gA', `/persons/${id}`)).ok, 20_000, 100);
  for (const gw of ['gA', 'gB']) t.is((await api(gw, `/persons/${obamaId}`)).status, 404, `the deleted person stays deleted on ${gw}`);
  for (const gw of ['gA', 'gB']) t.is(await cluster.value(gw, 'sightline_cluster_shared_changes_total', { state: 'persons', result: 'skipped' }), 5, gw);
});

test.serial('NATS away: a change is answered 503 and counted; after a restart the gateways agree again and follow new changes', async (t) => {
  await cluster.nats.stop();
  const res = await api('gA', '/persons', json({ name: 'During', surname: 'Outage' }));
  t.is(res.status, 503);
  t.regex((await res.json() as { detail: string }).detail, /did not confirm the change/);
  t.true(await cluster.value('gA', 'sightline_cluster_shared_changes_total', { state: 'persons', result: 'failed' }) >= 1);
  await cluster.nats.start();
  // Whatever the outage left (a buffered publish may land after the restart), both gateways end up equal.
  const res2 = await until('a create once NATS is back', async () => {
    const r = await api('gA', '/persons', json({ name: 'After', surname: 'Restart' }));
    return r.status === 201 ? r : undefined;
  }, 60_000, 500);
  const after = await res2.json() as PersonJson;
  await until('gateway B to follow the stream again', async () => (await api('gB', `/persons/${after.id}`)).ok, 30_000, 200);
  t.deepEqual(await (await api('gB', '/persons')).json(), await (await api('gA', '/persons')).json());
  t.true(await cluster.value('gB', 'sightline_cluster_shared_changes_total', { state: 'persons', result: 'applied' }) >= 10);
});

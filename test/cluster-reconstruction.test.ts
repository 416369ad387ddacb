/**
 * Reconstruction sessions shared by the gateways of a real NATS cluster (two gateways and one worker as
 * processes; the worker answers the `depth-image` requests): a session made and modelled on gateway A is
 * the same on gateway B, which serves its model and takes more images; a delete on B reaches A; a gateway
 * started later replays the session; records no gateway wrote are skipped and counted.
 */
import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { NodeIO } from '@gltf-transform/core';
import { connect } from 'nats';
import { media, openQueuedSocket } from './helpers.js';
import { Cluster, until } from './cluster-harness.js';
import { freePort } from './rtsp-server.js';

const GRAPH = (port: number, extra = ''): string => `
models:
  depth: { file: depth_estimation_fastdepth_224x224.onnx, kind: fastdepth }
transports:
  reconstruction: { port: ${port}, model: depth${extra} }
`;

type Msg = Record<string, unknown> & { type: string };
type SessionJson = Record<string, unknown> & { session_id: string; num_images: number; status: string; has_model: boolean; model_url: string };

let cluster: Cluster;
const ports = new Map<string, number>();
const b64 = (name: string): string => readFileSync(media(name)).toString('base64');
const url = (gw: string, route: string): string => `http://127.0.0.1:${ports.get(gw)!}${route}`;
const open = (gw: string, id: string) => openQueuedSocket<Msg>(`ws://127.0.0.1:${ports.get(gw)!}/ws/reconstruct/${id}`);
const getSession = async (gw: string, id: string): Promise<SessionJson | undefined> => {
  const res = await fetch(url(gw, `/ws/session/${id}`));
  return res.ok ? await res.json() as SessionJson : undefined;
};
const model = async (gw: string, id: string): Promise<Buffer> => Buffer.from(await (await fetch(url(gw, `/dashboard/models/${id}.glb`))).arrayBuffer());
const meshNames = async (glb: Uint8Array): Promise<string[]> => (await new NodeIO().readBinary(glb)).getRoot().listMeshes().map((m) => m.getName());

async function gateway(name: string, extra = ''): Promise<void> {
  ports.set(name, await freePort());
  const file = path.join(cluster.dir, `${name}.yaml`);
  writeFileSync(file, GRAPH(ports.get(name)!, extra));
  await cluster.spawn(name, 'gateway', [], file);
  await until(`${name} to serve reconstruction`, () => fetch(url(name, '/ws/sessions')).then((r) => r.ok), 60_000);
}

/** Messages until `complete` (progress skipped), then that message. */
async function complete(next: () => Promise<Msg>): Promise<Msg> {
  for (;;) {
    const m = await next();
    if (m.type !== 'progress') return m;
  }
}

const SHARED = 'sightline_cluster_shared_changes_total';

test.before(async () => {
  cluster = await Cluster.start(GRAPH(await freePort()));
  await cluster.spawn('w1', 'worker');
  await gateway('gA');
  await gateway('gB');
});

test.after.always(async () => {
  await cluster?.stop();
});

let id = '';

test.serial('a session made on gateway A is the same on gateway B, which serves its model and takes more images', async (t) => {
  const created = await (await fetch(url('gA', '/ws/session/create?max_images=4&process_res=256&num_max_points=20000'), { method: 'POST' })).json() as SessionJson;
  id = created.session_id;
  const a = await open('gA', id);
  t.like(await a.next(), { type: 'connected', session_id: id, num_images: 0 });
  // The worker may still be joining the queue group just after start: the first image is retried.
  const first = await until('the first image acknowledged', async () => {
    a.send({ type: 'image', data: b64('messi5.jpg'), filename: 'messi5.jpg' });
    const m = await a.next();
    return m.type === 'ack' ? m : undefined;
  }, 60_000, 1000);
  t.like(first, { image_index: 0 });
  a.send({ type: 'image', data: b64('two_people.jpg'), filename: 'two_people.jpg' });
  t.like(await a.next(), { type: 'ack', filename: 'two_people.jpg', image_index: 1, num_images: 2 });
  a.send({ type: 'generate' });
  const doneOnA = await complete(a.next);
  t.is(doneOnA.type, 'complete', JSON.stringify(doneOnA).slice(0, 200));
  const glbA = Buffer.from(doneOnA.glb_base64 as string, 'base64');
  t.deepEqual(await meshNames(glbA), ['messi5.jpg', 'two_people.jpg']);
  a.ws.close();
  const answeredAt = Date.now();

  // B has applied A's changes (image bytes and the model from the object store) by the time it is asked.
  const onB = await until('the session and its model on gateway B', async () => {
    const s = await getSession('gB', id);
    return s?.has_model ? s : undefined;
  }, 20_000, 20);
  t.log(`session with its model visible on B ${Date.now() - answeredAt} ms after A answered; model ${glbA.length} bytes`);
  t.deepEqual(onB, await getSession('gA', id), 'the same session, field by field, on both gateways');
  t.like(onB, { status: 'completed', num_images: 2, images: ['messi5.jpg', 'two_people.jpg'], glb_size_bytes: glbA.length });
  t.deepEqual(await model('gB', id), glbA, 'B serves the very model A built');
  t.deepEqual((await (await fetch(url('gB', '/ws/sessions'))).json() as { count: number }).count, 1);
  for (const [i, name] of ['messi5.jpg', 'two_people.jpg'].entries()) {
    // What a gateway keeps is the image scaled to process_res; B holds the same bytes as A.
    const file = (g: string) => path.join(cluster.dir, g, 'reconstruction', id, 'images', `000${i}_${name}`);
    t.deepEqual(readFileSync(file('gB')), readFileSync(file('gA')), `B holds ${name} as A stored it`);
  }

  // On B: one more image, then finalize (the model is rebuilt from the three images, depth from B's copies).
  const b = await open('gB', id);
  t.like(await b.next(), { type: 'connected', num_images: 2, max_images: 4, status: 'completed' });
  b.send({ type: 'image', data: b64('coco_000000000077.jpg'), filename: 'coco_000000000077.jpg' });
  t.like(await b.next(), { type: 'ack', image_index: 2, num_images: 3 });
  b.send({ type: 'finalize' });
  const doneOnB = await complete(b.next);
  t.is(doneOnB.type, 'complete', JSON.stringify(doneOnB).slice(0, 200));
  t.like(doneOnB.metadata, { num_frames: 3 });
  const glbB = Buffer.from(doneOnB.glb_base64 as string, 'base64');
  t.deepEqual(await meshNames(glbB), ['messi5.jpg', 'two_people.jpg', 'coco_000000000077.jpg']);
  t.like(await b.next(), { type: 'finalized', session_id: id, num_frames: 3, has_model: true });
  b.ws.close();

  const onA = await until('B\'s changes on gateway A', async () => {
    const s = await getSession('gA', id);
    return s?.status === 'finalized' && s.num_frames === 3 ? s : undefined;
  }, 20_000, 20);
  t.deepEqual(onA, await getSession('gB', id));
  t.deepEqual(await model('gA', id), glbB, 'A serves the model B built');
  const served = await cluster.value('w1', 'sightline_cluster_inference_ops_total', { side: 'served', op: 'depth-image' });
  t.log(`depth-image requests served by the worker: ${served} (2 on A, 1 + 2 on B)`);
  t.true(served >= 5);
  for (const gw of ['gA', 'gB']) t.is(await cluster.value(gw, SHARED, { state: 'reconstruction', result: 'skipped' }), 0);
});

test.serial('a gateway started after the changes knows the session; a delete on B removes it everywhere', async (t) => {
  await gateway('gC');
  // No polling: a gateway replays the stream before it serves.
  t.deepEqual(await getSession('gC', id), await getSession('gA', id));
  t.deepEqual(await model('gC', id), await model('gA', id));
  t.true(cluster.nodes.get('gC')!.log.some((l) => /reconstruction sessions: 1 from sightline-reconstruction/.test(l)));

  const a = await open('gA', id);
  t.like(await a.next(), { type: 'connected', num_images: 3, status: 'finalized' });
  const del = await fetch(url('gB', `/ws/session/${id}`), { method: 'DELETE' });
  t.deepEqual(await del.json(), { status: 'deleted', session_id: id });
  t.is((await fetch(url('gB', `/ws/session/${id}`))).status, 404);
  const deletedAt = Date.now();
  t.regex((await a.next()).message as string, /was deleted/, 'a socket open on A hears of the delete');
  await until('the delete on gateways A and C', async () => !(await getSession('gA', id)) && !(await getSession('gC', id)), 20_000, 20);
  t.log(`delete visible on A and C ${Date.now() - deletedAt} ms after B answered`);
  for (const gw of ['gA', 'gB', 'gC']) t.false(existsSync(path.join(cluster.dir, gw, 'reconstruction', id)), `${gw} removed the files`);
  a.send({ type: 'generate' });
  t.regex((await a.next()).message as string, /not found/);
  a.ws.close();
  await cluster.kill('gC', 'SIGTERM');

  // What stays in the cluster: the session's tombstone, and none of its images or models.
  const nc = await connect({ servers: cluster.nats.url });
  const info = await (await nc.jetstreamManager()).streams.info('sightline-reconstruction', { subjects_filter: '>' });
  t.deepEqual(info.state.subjects, { [`sightline.reconstruction.session.${id}`]: 1 });
  const objects = await until('the objects removed', async () => {
    const list = await (await nc.jetstream().views.os('sightline-reconstruction')).list();
    return list.some((o) => o.name.startsWith(id)) ? undefined : list;
  }, 10_000, 100);
  t.is(objects.length, 0);
  await nc.drain();
});

test.serial('records no gateway wrote are skipped and counted; an expiry that lost to activity is not applied', async (t) => {
  const s = await (await fetch(url('gA', '/ws/session/create?max_images=2'), { method: 'POST' })).json() as SessionJson;
  await until('the session on B', () => getSession('gB', s.session_id), 20_000, 20);
  const nc = await connect({ servers: cluster.nats.url });
  const js = nc.jetstream();
  const subject = `sightline.reconstruction.session.${s.session_id}`;
  const junk = ['not json', 'null', '{"op":"create","id":"../../etc","maxImages":1,"processRes":1,"numMaxPoints":1,"atMs":1}',
    JSON.stringify({ op: 'image', id: s.session_id, filename: 'x.jpg', object: 'another/x', size: 1, atMs: 1 }),
    JSON.stringify({ op: 'status', id: s.session_id, status: 'deleted', message: null, atMs: 1 }), JSON.stringify({ op: 'drop', id: s.session_id })];
  for (const j of junk) await js.publish(subject, j);
  // Well formed, from an "other gateway" that saw the session idle earlier than its last activity: no effect.
  await js.publish(subject, JSON.stringify({ op: 'expire', id: s.session_id, idleSince: Date.parse(s.last_activity as string) - 1 }));
  await nc.drain();
  const res = await fetch(url('gB', '/ws/session/create'), { method: 'POST' });
  t.is(res.status, 200, 'B applied the junk (skipping it) before its own change');
  const after = await res.json() as SessionJson;
  await until('A past the junk', () => getSession('gA', after.session_id), 20_000, 20);
  for (const gw of ['gA', 'gB']) {
    t.is(await cluster.value(gw, SHARED, { state: 'reconstruction', result: 'skipped' }), junk.length, gw);
    t.like(await getSession(gw, s.session_id), { status: 'created', num_images: 0 }, `the session stays on ${gw}`);
  }
});

test.serial('a session kept open on one gateway is not expired by another; once idle, it expires on both', async (t) => {
  // Two gateways with a short idle time (6 s): activity is shared every 1.5 s, so E sees it at most about 3 s old
  // and a loaded machine has 3 s of margin (4 s left only 2, which a full test run once used up).
  await Promise.all([gateway('gD', ', sessionTtl: 6'), gateway('gE', ', sessionTtl: 6')]);
  const s = await (await fetch(url('gD', '/ws/session/create'), { method: 'POST' })).json() as SessionJson;
  const d = await open('gD', s.session_id);
  t.like(await d.next(), { type: 'connected' });
  // Idle but connected on D for two and a half idle times: E, which has no socket on it, keeps it too.
  await new Promise((r) => setTimeout(r, 15_000));
  for (const gw of ['gD', 'gE']) t.truthy(await getSession(gw, s.session_id), `still on ${gw}`);
  const seenOnE = await getSession('gE', s.session_id);
  t.log(`after 15 s connected on D: last activity on E ${Date.now() - Date.parse(seenOnE!.last_activity as string)} ms ago`);
  d.ws.close();
  await until('the idle session expired on both', async () => !(await getSession('gD', s.session_id)) && !(await getSession('gE', s.session_id)), 30_000, 100);
  // The gateway that expired it logs that once its rollup and object clean-up are done, a moment after the
  // session is gone everywhere; a second gateway logging it too would show within that moment as well.
  const loggers = (): string[] => ['gD', 'gE'].filter((gw) => cluster.nodes.get(gw)!.log.some((l) => l.includes(`session ${s.session_id} expired`)));
  await until('the expiring gateway to log it', () => loggers().length > 0, 15_000, 100);
  await new Promise((r) => setTimeout(r, 1000));
  const expiredBy = loggers();
  t.log(`expired by ${expiredBy.join(', ')}`);
  t.is(expiredBy.length, 1, 'one gateway expired it; the other applied that');
  for (const gw of ['gD', 'gE']) t.false(existsSync(path.join(cluster.dir, gw, 'reconstruction', s.session_id)));
});

/**
 * 1:N face search in its worker thread, on synthetic embeddings in a real SQLite store: HNSW recall against
 * the exact scan, changes searchable at once (also while a graph is being built), persistence across a
 * restart, re-reading a store another connection wrote, and the Prometheus series. A low exact threshold
 * puts HNSW to work at a few thousand rows, so every test runs in seconds.
 */
import test from 'ava';
import Database from 'better-sqlite3';
import { existsSync, readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startApp } from '../app/app.js';
import path from 'node:path';
import { FaceIndex } from '../services/persons/face-index.js';
import { KnownPersons, type SearchSettings } from '../services/persons/known-persons.js';
import { Metrics } from '../core/metrics.js';
import { Store } from '../services/store/store.js';
import { graph, media, memoryLogger, metric, scrape, testSettings } from './helpers.js';
import { prng as rng } from './prng.js';

const DIM = 128;

function gaussian(seed: number): () => number {
  const rand = rng(seed);
  return () => Math.sqrt(-2 * Math.log(rand() || 1e-12)) * Math.cos(2 * Math.PI * rand());
}

const unit = (v: Float32Array): Float32Array => {
  let sq = 0;
  for (const x of v) sq += x * x;
  return v.map((x) => x / Math.sqrt(sq));
};
const randomUnit = (g: () => number): Float32Array => unit(Float32Array.from({ length: DIM }, g));
/** `base` plus noise, at cosine ≈ `cos` to it. */
const near = (base: Float32Array, cos: number, g: () => number): Float32Array => {
  const sigma = Math.sqrt((1 / cos ** 2 - 1) / DIM);
  return unit(base.map((x) => x + sigma * g()));
};

/** A store in a fresh data directory with `n` random embeddings over `n / perPerson` persons. */
function seededStore(n: number, perPerson: number, seed: number) {
  const settings = testSettings();
  const store = Store.open(settings.dataDir);
  const g = gaussian(seed);
  const rows: { label: number; personId: number; vector: Float32Array }[] = [];
  const addPerson = store.db.prepare("INSERT INTO persons (name, role, created_ms) VALUES (?, 'guest', 0)");
  const addRow = store.db.prepare("INSERT INTO person_embeddings (person_id, vector, photo_sha256, created_ms) VALUES (?, ?, 'x', 0)");
  store.db.transaction(() => {
    let personId = 0;
    for (let i = 0; i < n; i++) {
      if (i % perPerson === 0) personId = Number(addPerson.run(`p${i}`).lastInsertRowid);
      const vector = randomUnit(g);
      const label = Number(addRow.run(personId, Buffer.from(vector.buffer)).lastInsertRowid);
      rows.push({ label, personId, vector });
    }
  })();
  return { settings, store, rows };
}

const searchSettings = (dataDir: string, exactBelow: number): SearchSettings => ({
  dataDir, faceIndexExactBelow: exactBelow, faceIndexEf: 400, faceIndexM: 16, faceIndexEfConstruction: 100,
});

test('HNSW finds the planted near-duplicates and agrees with the exact scan (20 k random embeddings)', async (t) => {
  const { settings, store, rows } = seededStore(20_000, 4, 1);
  const log = memoryLogger();
  const persons = new KnownPersons(store, searchSettings(settings.dataDir, 1000), log);
  t.teardown(async () => { await persons.close(); store.close(); });
  const search = persons.search!;
  await search.whenHnswReady();
  t.is(search.status.size, 20_000);
  t.true(log.lines.some((l) => /building an HNSW index of 20000 embeddings/.test(l)), log.lines.join('\n'));
  t.true(log.lines.some((l) => /HNSW index of 20000 embeddings built in/.test(l)));

  const exact = new FaceIndex(DIM);
  exact.load(rows);
  const g = gaussian(2);
  const pick = rng(3);
  const planted = Array.from({ length: 200 }, () => rows[Math.floor(pick() * rows.length)]);
  // Near-duplicates (cosine ≈ 0.9, a second photo of the same face) and returning faces (≈ 0.6, the hard case).
  for (const [cos, minRecall] of [[0.9, 1], [0.6, 0.98]] as const) {
    const queries = planted.map((r) => near(r.vector, cos, g));
    const got = await search.search(queries);
    t.is(search.lastEngine, 'hnsw');
    const right = got.filter((m, i) => m?.personId === planted[i].personId).length;
    const agree = got.filter((m, i) => m?.personId === exact.search(queries[i])!.personId).length;
    t.log(`cosine ${cos}: planted person ${right}/200, same person as the exact scan ${agree}/200`);
    t.true(agree / 200 >= minRecall, `recall@1 vs exact ${agree}/200 at cosine ${cos}`);
    if (cos === 0.9) {
      t.is(right, 200);
      for (const [i, m] of got.entries()) t.true(Math.abs(m!.similarity - exact.search(queries[i])!.similarity) < 1e-4);
    }
  }
});

test('enrolment is searchable at once and deletion removes it, while the graph builds and after', async (t) => {
  const { settings, store } = seededStore(3000, 1, 4);
  const persons = new KnownPersons(store, searchSettings(settings.dataDir, 1000), memoryLogger());
  t.teardown(async () => { await persons.close(); store.close(); });
  const search = persons.search!;
  const g = gaussian(5);

  // Right after start the graph is still being built: the exact scan answers, and sees a new face at once.
  const early = persons.create({ name: 'Early' });
  const earlyFace = randomUnit(g);
  const earlyPhoto = persons.addPhoto(early.id, earlyFace, 'a');
  let [m] = await persons.identify([near(earlyFace, 0.8, g)], 0.4);
  t.is(m?.person.name, 'Early');
  t.is(search.lastEngine, 'exact', 'answered by the exact scan: the graph was not ready yet');

  await search.whenHnswReady();
  // Added while the graph was built: replayed onto it.
  [m] = await persons.identify([near(earlyFace, 0.8, g)], 0.4);
  t.is(search.lastEngine, 'hnsw');
  t.is(m?.person.name, 'Early');

  const late = persons.create({ name: 'Late', surname: 'Comer' });
  const lateFace = randomUnit(g);
  persons.addPhoto(late.id, lateFace, 'b');
  const [a, b] = await persons.identify([near(lateFace, 0.7, g), near(earlyFace, 0.7, g)], 0.4);
  t.is(search.lastEngine, 'hnsw');
  t.deepEqual([a?.person.surname, b?.person.name], ['Comer', 'Early']);

  t.true(persons.deletePhoto(early.id, earlyPhoto.id));
  [m] = await persons.identify([earlyFace], 0.4);
  t.is(m, null, 'a deleted photo no longer matches');
  t.true(persons.delete(late.id));
  [m] = await persons.identify([lateFace], 0.4);
  t.is(m, null, 'a deleted person no longer matches');
  t.is(search.status.size, 3000);
  t.is(search.status.deleted, 2);
});

test('a restart loads the persisted graph (patched when the store changed meanwhile), and rebuilds it for other HNSW settings', async (t) => {
  const { settings, store, rows } = seededStore(3000, 1, 6);
  const g = gaussian(7);
  const log1 = memoryLogger();
  const first = new KnownPersons(store, searchSettings(settings.dataDir, 1000), log1);
  await first.search!.whenHnswReady();
  // A change after the build: written back on close, so the next start still loads instead of rebuilding.
  const extra = first.create({ name: 'Extra' });
  const extraFace = randomUnit(g);
  first.addPhoto(extra.id, extraFace, 'e');
  const queries = [near(extraFace, 0.7, g), ...rows.slice(0, 50).map((r) => near(r.vector, 0.7, g))];
  const before = await first.identify(queries, 0.4);
  await first.close();
  t.true(existsSync(path.join(settings.dataDir, 'face-index.hnsw')));
  t.true(existsSync(path.join(settings.dataDir, 'face-index.json')));

  const log2 = memoryLogger();
  const metrics = new Metrics();
  const second = new KnownPersons(store, searchSettings(settings.dataDir, 1000), log2, metrics);
  await second.search!.whenHnswReady();
  t.true(log2.lines.some((l) => /loaded the persisted HNSW index \(3001 embeddings\)/.test(l)), log2.lines.join('\n'));
  t.false(log2.lines.some((l) => /building an HNSW index/.test(l)), 'not rebuilt');
  const after = await second.identify(queries, 0.4);
  t.is(second.search!.lastEngine, 'hnsw');
  t.deepEqual(after.map((m) => m?.person.id), before.map((m) => m?.person.id));
  t.is(after[0]?.person.name, 'Extra');
  const text = await metrics.render();
  t.is(metric(text, 'sightline_face_index_builds_total', { how: 'loaded' }), 1);
  t.is(metric(text, 'sightline_face_index_hnsw_state', { state: 'ready' }), 1);
  t.is(metric(text, 'sightline_face_index_embeddings'), 3001);
  t.is(metric(text, 'sightline_face_index_build_progress'), 1);
  t.true(metric(text, 'sightline_face_search_seconds_count', { engine: 'hnsw' })! >= 1);
  await second.close();

  // A row written and one deleted while no server ran: the fingerprint no longer matches, so the loaded
  // graph is compared with the store and patched, not rebuilt.
  const offline = randomUnit(g);
  store.db.prepare("INSERT INTO person_embeddings (person_id, vector, photo_sha256, created_ms) VALUES (?, ?, 'y', 0)")
    .run(extra.id, Buffer.from(offline.buffer));
  store.db.prepare('DELETE FROM person_embeddings WHERE id = ?').run(rows[0].label);
  const log3 = memoryLogger();
  const third = new KnownPersons(store, searchSettings(settings.dataDir, 1000), log3);
  await third.search!.whenHnswReady();
  t.true(log3.lines.some((l) => /does not match the stored embeddings; loading it and applying the difference/.test(l)), log3.lines.join('\n'));
  t.true(log3.lines.some((l) => /added 1 embeddings the persisted HNSW index lacked/.test(l)));
  t.false(log3.lines.some((l) => /building an HNSW index/.test(l)), 'not rebuilt');
  const [found, gone] = await third.identify([near(offline, 0.7, g), rows[0].vector], 0.4);
  t.is(third.search!.lastEngine, 'hnsw');
  t.is(found?.person.name, 'Extra');
  t.not(gone?.person.id, rows[0].personId, 'the row deleted offline is not found');
  t.is(third.search!.status.size, 3001);
  await third.close();

  // Other graph settings: the persisted graph does not fit, so it is rebuilt.
  const log4 = memoryLogger();
  const fourth = new KnownPersons(store, { ...searchSettings(settings.dataDir, 1000), faceIndexM: 8 }, log4);
  await fourth.search!.whenHnswReady();
  await fourth.close();
  store.close();
  t.true(log4.lines.some((l) => /building an HNSW index of 3001 embeddings \(M 8,/.test(l)), log4.lines.join('\n'));
});

test('deleting many rows rebuilds the graph without them, while the old graph keeps answering', async (t) => {
  const { settings, store, rows } = seededStore(3000, 1500, 10);
  const log = memoryLogger();
  const persons = new KnownPersons(store, searchSettings(settings.dataDir, 1000), log);
  t.teardown(async () => { await persons.close(); store.close(); });
  const search = persons.search!;
  await search.whenHnswReady();
  const g = gaussian(11);
  t.true(persons.delete(rows[0].personId), 'the first person owns rows 0-1499');
  // The old graph still answers (deleted rows skipped) while the new one is built.
  const [m] = await persons.identify([near(rows[2000].vector, 0.8, g)], 0.4);
  t.is(search.lastEngine, 'hnsw');
  t.is(m?.person.id, rows[2000].personId);
  t.is((await persons.identify([rows[10].vector], 0.4))[0], null);
  await new Promise<void>((resolve) => {
    const poll = () => (log.lines.some((l) => /HNSW index of 1500 embeddings built/.test(l)) && search.status.hnsw === 'ready' ? resolve() : setTimeout(poll, 50));
    poll();
  });
  t.true(log.lines.some((l) => /building an HNSW index of 1500 embeddings/.test(l)));
  await search.search([rows[2000].vector]);
  t.is(search.status.deleted, 0, 'the new graph holds no deleted rows');
  t.is(search.status.size, 1500);
});

test('rows another connection writes are found on the next search (SQLite data_version); a bulk write rebuilds', async (t) => {
  const { settings, store } = seededStore(3000, 1, 8);
  const log = memoryLogger();
  const persons = new KnownPersons(store, searchSettings(settings.dataDir, 1000), log);
  t.teardown(async () => { await persons.close(); store.close(); });
  const search = persons.search!;
  await search.whenHnswReady();
  const g = gaussian(9);
  const face = randomUnit(g);
  t.is((await persons.identify([face], 0.4))[0], null);

  const other = new Database(store.file);
  t.teardown(() => other.close());
  const id = Number(other.prepare("INSERT INTO persons (name, role, created_ms) VALUES ('Other', 'user', 0)").run().lastInsertRowid);
  const insert = other.prepare("INSERT INTO person_embeddings (person_id, vector, photo_sha256, created_ms) VALUES (?, ?, 'z', 0)");
  insert.run(id, Buffer.from(face.buffer));
  let [m] = await persons.identify([near(face, 0.8, g)], 0.4);
  t.is(m?.person.name, 'Other');
  t.is(search.lastEngine, 'hnsw');
  t.is(search.status.size, 3001);
  t.true(log.lines.some((l) => /re-read the store: 1 added or changed, 0 removed, 3001 in all/.test(l)), 'only the new row is applied');

  // 2500 rows at once: the graph is dropped and rebuilt; the exact scan answers meanwhile, new rows included.
  const bulk = Array.from({ length: 2500 }, () => randomUnit(g));
  other.transaction(() => { for (const v of bulk) insert.run(id, Buffer.from(v.buffer)); })();
  [m] = await persons.identify([near(bulk[1234], 0.8, g)], 0.4);
  t.is(m?.person.name, 'Other');
  t.is(search.lastEngine, 'exact');
  t.true(log.lines.some((l) => /2500 embeddings changed by another writer; rebuilding the HNSW index/.test(l)));
  await search.whenHnswReady();
  [m] = await persons.identify([near(bulk[2000], 0.8, g)], 0.4);
  t.is(search.lastEngine, 'hnsw');
  t.is(m?.person.name, 'Other');
  t.is(search.status.size, 5501);
});

test('a DDFR server with a low exact threshold answers real photos through its HNSW graph, and exports the series', async (t) => {
  const log = memoryLogger();
  const app = await startApp(graph(`
models:
  faces: { file: face_detection_yunet_2023mar_dynamic.onnx, kind: yunet }
  arcface: { file: face_recognition_mobilefacenet_128d.onnx, kind: mobilefacenet }
transports:
  ddfr: { port: 0, detector: faces, embedder: arcface }
  metrics: { port: 0 }
`), testSettings({ faceIndexExactBelow: 2 }), { log });
  t.teardown(() => app.stop());
  const base = `http://127.0.0.1:${app.portOf('ddfr')}`;
  const post = (p: string, body: unknown) => fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  for (const [name, file] of [['Barack', 'obama.jpg'], ['Joe', 'biden.jpg']]) {
    const { id } = await (await post('/persons', { name })).json() as { id: number };
    t.is((await post(`/persons/${id}/photos`, { image: readFileSync(media(file)).toString('base64') })).status, 201);
  }
  await app.persons.search!.whenHnswReady();

  const ws = new WebSocket(`ws://127.0.0.1:${app.portOf('ddfr')}/ws`);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const names: string[][] = [];
  for (const file of ['obama2.jpg', 'biden2.jpg', 'two_people.jpg', 'messi5.jpg']) {
    const reply = new Promise<{ faces: { name: string; left: number }[] }>((resolve) => ws.once('message', (m) => resolve(JSON.parse(m.toString()))));
    ws.send(readFileSync(media(file)));
    names.push((await reply).faces.sort((a, b) => a.left - b.left).map((f) => f.name));
  }
  ws.close();
  t.deepEqual(names.slice(0, 3), [['Barack'], ['Joe'], ['Barack', 'Joe']]);
  t.true(names[3].every((n) => n === 'Unknown'));
  t.is(app.persons.search!.lastEngine, 'hnsw');

  const text = await scrape(app.portOf('metrics')!);
  t.is(metric(text, 'sightline_face_index_embeddings'), 2);
  t.is(metric(text, 'sightline_face_index_hnsw_state', { state: 'ready' }), 1);
  t.is(metric(text, 'sightline_face_index_builds_total', { how: 'built' }), 1);
  t.true(metric(text, 'sightline_face_search_seconds_count', { engine: 'hnsw' })! >= 3, 'one search per frame with faces');
});

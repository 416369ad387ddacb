/**
 * The bounded fuzz run of `npm test`: the default graph in a child process, every class of hostile input (about
 * 13,000 inputs), and after each batch the server alive, every protocol answering a good request, documented answer
 * shapes with no internals, RSS within 1.5× of where it started. Then the regressions: each defect once found by
 * fuzzing, replayed as the exact request that showed it. The long run is `node dist/bench/fuzz.js`.
 */
import test from 'ava';
import { Campaign, internalsIn, rssMiB, startTarget, type Target } from './campaign.js';
import { sendRaw, upgradeRaw } from './raw-http.js';
import { gifHugeDims, svgHugeDims, svgNested } from './images.js';
import { nestedJson } from './inputs.js';

let target: Target;

test.before(async () => {
  target = await startTarget();
});
test.after.always(async () => {
  await target?.stop();
});

test.serial('regressions: the requests that once took the server down are answered, and it stays up', async (t) => {
  const { ports } = target;
  const raw = (port: number, request: string) => sendRaw(port, request, { timeoutMs: 3000, untilAnswered: true });
  // An absolute-form or empty-authority target on any port (new URL() threw in the old hub).
  for (const port of Object.values(ports)) {
    for (const tgt of ['//', 'https://', 'http://[::1', '//x%00']) {
      const r = await raw(port, `GET ${tgt} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      t.true(r.status !== undefined && r.status < 500, `GET ${tgt} on ${port}: ${r.statusLine}`);
      const u = await upgradeRaw(port, tgt, {}, { timeoutMs: 2000 });
      t.not(u.status, 101, `upgrade ${tgt}`);
    }
  }
  // A bad percent-encoding in a WebSocket path (decodeURIComponent threw) and in a REST path (answered 500).
  t.is((await upgradeRaw(ports.main, '/ws/reconstruct/%', {}, { timeoutMs: 2000 })).status, 400);
  const bad = await fetch(`http://127.0.0.1:${ports.main}/ws/session/%E0%A4%A`);
  t.true(bad.status === 400 || bad.status === 404, String(bad.status));
  t.truthy(((await bad.json()) as { detail?: string }).detail);
  // A 5000-deep `type` in a WatchMe message (JSON.stringify overflowed the stack).
  const ws = await import('ws');
  const c = new ws.default(`ws://127.0.0.1:${ports.watchme}/video-stream/deep_1`);
  const answer = new Promise<string>((resolve) => c.once('message', (d) => resolve(d.toString())));
  await new Promise((r) => c.once('open', r));
  c.send(`{"type":${nestedJson(5000)}}`);
  const m = JSON.parse(await answer) as { status: string; message: string };
  t.is(m.status, 'error');
  t.is(internalsIn(m.message), null, m.message);
  c.close();
  // SVGs (Skia aborted on 100000×100000 and crashed on 5000 nested groups) and a 43-byte GIF declaring 20000×20000.
  for (const [name, bytes] of [['svg-huge', svgHugeDims()], ['svg-nested', svgNested(5000)], ['gif-huge', gifHugeDims()]] as const) {
    const before = rssMiB(target.pid);
    const t0 = Date.now();
    const r = await fetch(`http://127.0.0.1:${ports.watchme}/upload-embedding`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: bytes.toString('base64') }),
    });
    t.is(r.status, 422, name);
    t.regex(((await r.json()) as { detail: string }).detail, /not a readable image/, name);
    t.log(`${name} (${bytes.length} bytes): refused in ${Date.now() - t0} ms, RSS ${(rssMiB(target.pid) - before).toFixed(1)} MiB`);
    t.true(rssMiB(target.pid) - before < 50, `${name} cost ${(rssMiB(target.pid) - before).toFixed(0)} MiB`);
  }
  // A pose subscription at 1e-300 fps (acked as 0, then ~775 messages a second).
  const p = new ws.default(`ws://127.0.0.1:${ports.main}/ws/v1?token=${target.token}`);
  const got: { type: string; data: { error_code?: string } }[] = [];
  p.on('message', (d) => got.push(JSON.parse(d.toString())));
  await new Promise((r) => p.once('open', r));
  p.send(JSON.stringify({ type: 'subscribe', data: { subscriptions: [{ event_type: 'performance_update', throttle: { max_fps: 1e-300 } }] } }));
  await new Promise((r) => setTimeout(r, 1500));
  p.close();
  t.is(got.find((g) => g.type === 'error')?.data.error_code, 'SUBSCRIPTION_ERROR');
  // Refused, so no performance_update at all (the flood was of those); the default stream of a client that has not
  // subscribed goes on meanwhile, at its own rate.
  t.is(got.filter((g) => g.type === 'performance_update').length, 0);
  t.true(got.length < 40, `${got.length} messages`);
  // Chunked bodies over the limit get 413, not a reset; content types in any case are JSON.
  const chunk = 'a'.repeat(70 * 1024);
  const big = await raw(ports.main, `POST /persons HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`);
  t.is(big.status, 413);
  const upper = await fetch(`http://127.0.0.1:${ports.main}/persons`, { method: 'POST', headers: { 'content-type': 'APPLICATION/JSON' }, body: '{"name":"Upper"}' });
  t.is(upper.status, 201);
  // A page of another origin cannot enrol a person, in any content type.
  for (const type of ['text/plain', 'application/json', 'multipart/form-data; boundary=x']) {
    const r = await fetch(`http://127.0.0.1:${ports.main}/persons`, { method: 'POST', headers: { 'content-type': type, origin: 'https://evil.example' }, body: '{"name":"Evil"}' });
    t.true(r.status === 403 || r.status === 415, `${type}: ${r.status}`);
  }
  // Persons' 404 and 405 in the API's {detail} shape; h2c is no WebSocket.
  for (const [method, p2, status] of [['GET', '/persons/abc', 404], ['PATCH', '/persons', 405], ['GET', '/nothing', 404]] as const) {
    const r = await fetch(`http://127.0.0.1:${ports.main}${p2}`, { method, headers: { 'content-type': 'application/json' }, body: method === 'GET' ? undefined : '{}' });
    t.is(r.status, status, `${method} ${p2}`);
    t.deepEqual(Object.keys(await r.json() as object), ['detail']);
  }
  t.not((await upgradeRaw(ports.main, '/ws', { Upgrade: 'h2c' }, { timeoutMs: 2000 })).status, 101);
  // max_images=0x10 is no decimal integer; a 5 MiB filename is not stored.
  t.is((await fetch(`http://127.0.0.1:${ports.main}/ws/session/create?max_images=0x10`, { method: 'POST' })).status, 422);
  t.is(target.exited, null, 'the server is still up');
});

test.serial('fuzz: about 13,000 hostile inputs of every class; alive, answering, documented shapes, bounded memory', async (t) => {
  const campaign = new Campaign(target, { seed: Number(process.env.SIGHTLINE_FUZZ_SEED ?? 20261205), scale: 1, rssFactor: 1.5, log: (l) => t.log(l) });
  const r = await campaign.runAll();
  t.log(`${r.inputs} inputs; RSS ${r.rssStartMiB.toFixed(0)} MiB at the start, ${r.rssPeakMiB.toFixed(0)} MiB at the peak`);
  for (const f of r.findings.slice(0, 20)) t.log(`${f.batch}: ${f.problem} — ${f.input}`);
  t.true(r.inputs >= 10_000, `${r.inputs} inputs`);
  t.deepEqual(r.findings, []);
  t.is(target.exited, null);
});

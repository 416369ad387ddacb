/**
 * The console of a cluster gateway (a real nats-server, a worker and a gateway as processes): it shows the source and
 * pipeline the worker runs with their states, which node holds the source's lease, the workers present and the NATS
 * connection, which goes down while the server restarts and comes back; the live view gets the worker's annotated
 * frames across the bridge. A screenshot of the gateway's overview is kept in test-artifacts/.
 */
import test from 'ava';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { Cluster, until } from './cluster-harness.js';
import { freePort } from './rtsp-server.js';

const CHROMIUM = process.env.SIGHTLINE_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const ARTIFACTS = path.resolve('test-artifacts');

let cluster: Cluster;
let browser: Browser;
let base: string;

test.before(async () => {
  const port = await freePort();
  cluster = await Cluster.start(`
sources:
  cam: { uri: "test://ball", width: 320, height: 240, fps: 10 }
pipelines:
  cam:
    source: cam
    stages:
      - { id: annotate, use: annotate, with: { quality: 60, fps: 5 } }
transports:
  console: { port: ${port} }
`);
  await cluster.spawn('w1', 'worker');
  await cluster.spawn('g1', 'gateway');
  base = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});
test.after.always(async () => {
  await browser?.close();
  await cluster?.stop();
});

const overview = async (): Promise<any> => (await fetch(`${base}/api/overview`)).json();

test.serial('a gateway\'s console shows the worker\'s source and pipeline, the lease holder, the workers and the NATS connection', async (t) => {
  t.timeout(120_000);
  const o = await until('the gateway to see cam running on w1', async () => {
    const v = await overview();
    return v.sources[0]?.state === 'running' && v.sources[0].holder === 'w1' && v.pipelines[0]?.state === 'running' ? v : undefined;
  });
  t.like(o.node, { role: 'gateway', id: 'g1' });
  t.like(o.cluster, { nodeId: 'g1', role: 'gateway', workers: ['w1'] });
  t.true(o.cluster.nats.connected);
  t.like(o.pipelines[0], { id: 'cam', holder: 'w1', runsHere: false });
  t.false(o.sources[0].runsHere, 'the gateway runs no source');
  // The worker's counters are not here: the packets that arrive stand in for its figures.
  const fig = await until('figures of the pipeline from what arrives', async () => {
    const p = (await overview()).pipelines[0];
    return p.fps > 0 ? p : undefined;
  });
  t.is(fig.measuredHere, false);
  t.log(`cam on the gateway: ${fig.fps} fps arriving, capture → arrival p95 ${fig.p95Ms} ms`);

  // The worker's annotated frames cross the bridge; the gateway has no pixels, so the overlays are the server's.
  const live = await until('a live frame on the gateway', async () => {
    const r = await fetch(`${base}/api/live/cam?after=0&wait=5000`);
    return r.status === 200 ? Buffer.from(await r.arrayBuffer()) : undefined;
  });
  const head = JSON.parse(live.subarray(4, 4 + live.readUInt32LE(0)).toString());
  t.like(head, { pipeline: 'cam', width: 320, height: 240, image: { drawn: true } });
  t.is(live.subarray(4 + live.readUInt32LE(0), 6 + live.readUInt32LE(0)).toString('hex'), 'ffd8', 'a JPEG');

  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`${base}/#/overview`);
  await page.waitForSelector('#cluster [data-nats="connected"]');
  await page.waitForSelector('#sources tr[data-source="cam"][data-state="running"] [data-holder]');
  t.is(await page.textContent('#sources tr[data-source="cam"] [data-holder]'), 'w1');

  // NATS restarting: the gateway shows the connection down, then back.
  await cluster.nats.stop();
  await page.waitForSelector('#cluster [data-nats="disconnected"]', { timeout: 30_000 });
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'console-cluster-disconnected.png'), fullPage: true });
  await cluster.nats.start();
  await page.waitForSelector('#cluster [data-nats="connected"]', { timeout: 30_000 });
  await until('the lease read again after the restart', async () => (await overview()).sources[0].holder === 'w1');
  await page.waitForTimeout(6000);
  const file = path.join(ARTIFACTS, 'console-cluster.png');
  await page.screenshot({ path: file, fullPage: true });
  const after = await overview();
  t.log(`screenshot: ${path.relative(process.cwd(), file)}; after the NATS restart: ${after.cluster.nats.reconnects} reconnect(s), cam ${after.sources[0].state} on ${after.sources[0].holder}`);
  t.true(after.cluster.nats.reconnects >= 1);
  t.deepEqual(problems, []);
  await page.close();
});

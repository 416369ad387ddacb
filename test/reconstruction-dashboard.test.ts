/**
 * /dashboard in a real headless Chromium: the session list renders from /ws/sessions and the three.js viewer
 * (served by the server itself, no CDN) loads a session's GLB without console errors. A screenshot is kept
 * in test-artifacts/. (The document's HTML client runs in docs-reconstruction.test.ts.)
 */
import test from 'ava';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import WebSocket from 'ws';
import { startApp, type App } from '../app/app.js';
import { graph, media, memoryLogger, testSettings } from './helpers.js';

const CHROMIUM = process.env.SIGHTLINE_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve('test-artifacts');

let app: App;
let browser: Browser;
let base: string;
test.before(async () => {
  app = await startApp(graph(`
models:
  depth: { file: depth_estimation_fastdepth_224x224.onnx, kind: fastdepth }
transports:
  reconstruction: { port: 0, model: depth }
`), testSettings({ workers: 1 }), { log: memoryLogger() });
  base = `http://127.0.0.1:${app.portOf('reconstruction')!}`;
  // --no-sandbox: the tests run as root. SwiftShader gives WebGL without a GPU.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'] });
});
test.after.always(async () => {
  await browser?.close();
  await app?.stop();
});

/** A session with a model made from real photos, through the protocol. */
async function sessionWithModel(photos: string[]): Promise<string> {
  const { session_id: id } = await (await fetch(`${base}/ws/session/create?process_res=256&num_max_points=40000`, { method: 'POST' })).json() as { session_id: string };
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/reconstruct/${id}`);
  const messages: { type: string }[] = [];
  let wake = () => undefined as void;
  ws.on('message', (d) => { messages.push(JSON.parse(d.toString())); wake(); });
  const waitFor = async (type: string) => {
    for (;;) {
      const i = messages.findIndex((m) => m.type === type || m.type === 'error');
      if (i >= 0) { const [m] = messages.splice(i, 1); if (m.type === 'error') throw new Error(JSON.stringify(m)); return m; }
      await new Promise<void>((r) => { wake = r; });
    }
  };
  await waitFor('connected');
  for (const name of photos) {
    ws.send(JSON.stringify({ type: 'image', data: readFileSync(media(name)).toString('base64'), filename: name }));
    await waitFor('ack');
  }
  ws.send(JSON.stringify({ type: 'generate' }));
  await waitFor('complete');
  ws.close();
  return id;
}

test.serial('the dashboard lists sessions and shows a GLB point cloud in three.js without console errors', async (t) => {
  const withModel = await sessionWithModel(['messi5.jpg', 'two_people.jpg']);
  // A second session without a model yet, which the list shows too.
  const { session_id: empty } = await (await fetch(`${base}/ws/session/create`, { method: 'POST' })).json() as { session_id: string };

  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page: ${e.message}`));
  const external: string[] = [];
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) external.push(r.url()); });

  await page.goto(`${base}/dashboard?session=${withModel}`);
  await page.waitForSelector(`tr[data-session="${withModel}"]`);
  await page.waitForSelector(`tr[data-session="${empty}"]`);
  // The viewer marks the page once the GLB is in the scene.
  await page.waitForFunction((id) => document.body.dataset.loaded === id, withModel, { timeout: 60_000 });
  const rows = await page.$$eval('#sessions tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  t.is(rows.length, (await (await fetch(`${base}/ws/sessions`)).json() as { count: number }).count);
  const row = rows.find((r) => r[0] === withModel.slice(0, 8))!;
  t.is(row[1], 'completed');
  t.is(row[2], '2/100');
  const points = Number(await page.evaluate(() => document.body.dataset.points));
  t.is(String(points), row[3]);
  t.true(points > 30_000 && points <= 40_000, `${points} points in the viewer`);
  t.regex(await page.textContent('#info') ?? '', new RegExp(`${points} points, 2 images`));
  t.is(rows.find((r) => r[0] === empty.slice(0, 8))![3], '—');

  // The canvas shows the cloud: let a few frames render, then the picture is not one flat colour.
  await page.waitForTimeout(500);
  const colours = await page.evaluate(() => {
    const c = document.querySelector('#viewer canvas') as HTMLCanvasElement;
    const probe = document.createElement('canvas');
    probe.width = 64; probe.height = 36;
    const ctx = probe.getContext('2d')!;
    ctx.drawImage(c, 0, 0, 64, 36);
    const d = ctx.getImageData(0, 0, 64, 36).data;
    const seen = new Set<number>();
    for (let i = 0; i < d.length; i += 4) seen.add((d[i] >> 4) * 256 + (d[i + 1] >> 4) * 16 + (d[i + 2] >> 4));
    return seen.size;
  });
  t.true(colours > 20, `${colours} distinct colours on the canvas`);

  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = path.join(ARTIFACTS, 'dashboard.png');
  await page.screenshot({ path: shot });
  t.log(`screenshot: ${path.relative(process.cwd(), shot)}; ${points} points, ${colours} colours`);
  t.deepEqual(problems, []);
  t.deepEqual(external, []);
  await page.close();
});

test.serial('three.js files come from the server, and nothing outside the package can be read', async (t) => {
  const three = await fetch(`${base}/dashboard/vendor/three/build/three.module.js`);
  t.is(three.status, 200);
  t.regex(three.headers.get('content-type') ?? '', /javascript/);
  t.is((await fetch(`${base}/dashboard/vendor/three/addons/loaders/GLTFLoader.js`)).status, 200);
  t.is((await fetch(`${base}/dashboard/vendor/three/addons/controls/OrbitControls.js`)).status, 200);
  for (const bad of ['/dashboard/vendor/three/build/../package.json', '/dashboard/vendor/three/build/%2e%2e/%2e%2e/%2e%2e/package.js',
    '/dashboard/vendor/three/other/x.js', '/dashboard/models/../../sightline.db']) {
    t.is((await fetch(`${base}${bad}`)).status, 404, bad);
  }
  t.is((await fetch(`${base}/dashboard/models/00000000-0000-0000-0000-000000000000.glb`)).status, 404);
});

/**
 * The web console in a real headless Chromium, against the shipped default graph (a copy of the file with its ports
 * moved, run with its file watched as `sightline run` does): every page loads without console errors and loads
 * nothing from elsewhere; a live frame decodes and its overlays switch off; counts and plots move; an invalid graph
 * edit shows its error at the line `sightline validate` names and changes nothing, a valid one (adding a real RTSP
 * camera) applies; killing that camera shows `retrying` with its reason and its return `running`; persons are added
 * with a photo, renamed and deleted; changes without the token and from other origins are refused, and counted.
 * A screenshot of each page is kept in test-artifacts/.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadGraph } from '../app/catalog.js';
import { startApp, type App } from '../app/app.js';
import { media, memoryLogger, metric, scrape, testSettings } from './helpers.js';
import { freePort, startRtspServer, type RtspServer } from './rtsp-server.js';

const CHROMIUM = process.env.SIGHTLINE_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const ARTIFACTS = path.resolve('test-artifacts');
const run = promisify(execFile);

const settings = testSettings();
const GRAPH = path.join(settings.dataDir, 'graph.yaml');
let app: App;
let browser: Browser;
let camera: RtspServer;
let base: string;
let token: string;

test.before(async () => {
  // The shipped file, as it is, but for its ports: one free port for the console, 0 (one shared free port) for the rest.
  const consolePort = await freePort();
  const shipped = readFileSync('config/examples/default.yaml', 'utf8');
  writeFileSync(GRAPH, shipped.replace(/port: \d+/g, 'port: 0').replace(/^(\s+console): \{ port: 0 \}/m, `$1: { port: ${consolePort} }`));
  app = await startApp(loadGraph(GRAPH), settings, { log: memoryLogger(), graphFile: GRAPH, watch: true });
  base = `http://127.0.0.1:${app.portOf('console')}`;
  token = (await run(process.execPath, ['dist/bin/sightline.cjs', 'token', '--console', GRAPH, '--data-dir', settings.dataDir])).stdout.trim();
  // A camera with faces in view, for the graph edit that adds it.
  camera = await startRtspServer({ path: '/door', media: media('short_hamilton_clip.mp4') });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  mkdirSync(ARTIFACTS, { recursive: true });
});
test.after.always(async () => {
  await browser?.close();
  await camera?.stop();
  await app?.stop();
});

interface Watched { page: Page; problems: string[]; external: string[] }

/** A page of the console, with its console errors, page errors and requests elsewhere collected. */
async function open(pageId: string): Promise<Watched> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const problems: string[] = [];
  const external: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page: ${e.message}`));
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) external.push(r.url()); });
  await page.goto(`${base}/#/${pageId}`);
  await page.waitForFunction((id) => document.body.dataset.page === id, pageId);
  return { page, problems, external };
}

async function shot(t: ExecutionContext, page: Page, name: string): Promise<void> {
  const file = path.join(ARTIFACTS, `console-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  t.log(`screenshot: ${path.relative(process.cwd(), file)}`);
}

/** Gives the page the token the way a person does: typed into the token box. */
async function useToken(page: Page, value = token): Promise<void> {
  await page.fill('input[aria-label="console token"]', value);
  await page.click('form.token button');
  await page.waitForSelector('#token-status');
}

const history = async () => (await fetch(`${base}/api/history`)).json() as Promise<{ t: number[]; series: Record<string, (number | null)[]> }>;

test.serial('the overview shows the source, the pipeline and its stages, the pool and plots, without console errors', async (t) => {
  const { page, problems, external } = await open('overview');
  await page.waitForSelector('#sources tr[data-source="plaza"][data-state="running"]', { timeout: 60_000 });
  await page.waitForSelector('#pipelines tr[data-pipeline="plaza"][data-state="running"]');
  // Plots need two samples (5 s apart) of the process's own figures.
  await page.waitForFunction(() => Number(document.querySelector('[data-plot="fps"]')?.getAttribute('data-points')) >= 2, null, { timeout: 30_000 });
  await page.click('#pipelines tr[data-pipeline="plaza"]');
  await page.waitForSelector('#pipelines tr[data-stage="detect"]');
  const stages = await page.$$eval('#pipelines tr[data-stage]', (rows) => rows.map((r) => r.getAttribute('data-stage')));
  t.deepEqual(stages, ['detect', 'track', 'count', 'faces', 'pose', 'activity', 'annotate']);
  const fps = Number(await page.textContent('#pipelines tr[data-pipeline="plaza"] [data-fps]'));
  t.true(fps > 0, `${fps} fps through the pipeline`);
  t.regex(await page.textContent('#pool') ?? '', /2 threads|\d+ threads/);
  const o = await (await fetch(`${base}/api/overview`)).json() as any;
  t.log(`plaza: ${o.sources[0].fpsIn} fps in, ${o.pipelines[0].fps} fps out, p95 ${o.pipelines[0].p95Ms} ms, pool ${Math.round(o.pool.utilization * 100)} %`);
  await shot(t, page, 'overview');
  t.deepEqual(problems, []);
  t.deepEqual(external, []);
  await page.close();
});

test.serial('live view: a frame decodes on the canvas, with the results drawn over it, and a layer switches off', async (t) => {
  const { page, problems, external } = await open('live');
  await page.waitForFunction(() => Number(document.querySelector('[data-camera="plaza"] canvas')?.getAttribute('data-frames')) >= 5, null, { timeout: 60_000 });
  const probe = () => page.evaluate(() => {
    const c = document.querySelector('[data-camera="plaza"] canvas') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let yellow = 0;
    const colours = new Set<number>();
    for (let i = 0; i < d.length; i += 4) {
      colours.add((d[i] >> 4) * 256 + (d[i + 1] >> 4) * 16 + (d[i + 2] >> 4));
      // The counting line is drawn in #ffd400.
      if (d[i] > 240 && d[i + 1] > 190 && d[i + 1] < 230 && d[i + 2] < 40) yellow++;
    }
    return { width: c.width, height: c.height, colours: colours.size, yellow };
  });
  const on = await probe();
  t.true(on.width >= 640 && on.colours > 200, `${on.width}×${on.height}, ${on.colours} colours`);
  t.true(on.yellow > 100, `${on.yellow} pixels of the counting line`);
  await page.uncheck('input[data-layer="line"]');
  const frames = Number(await page.getAttribute('[data-camera="plaza"] canvas', 'data-frames'));
  await page.waitForFunction((n) => Number(document.querySelector('[data-camera="plaza"] canvas')?.getAttribute('data-frames')) > n + 2, frames);
  const off = await probe();
  t.true(off.yellow < on.yellow / 5, `line off: ${off.yellow} yellow pixels (was ${on.yellow})`);
  await page.check('input[data-layer="line"]');
  t.log(`live frame ${on.width}×${on.height}, ${on.colours} colours; ${frames} frames drawn`);
  await shot(t, page, 'live');
  t.deepEqual(problems, []);
  t.deepEqual(external, []);
  await page.close();
});

test.serial('counting: totals, crossings per minute and plots move', async (t) => {
  t.timeout(150_000);
  const { page, problems, external } = await open('counts');
  await page.waitForSelector('[data-counting="plaza"]');
  const total = async () => Number(await page.textContent('[data-counting="plaza"] [data-in]')) + Number(await page.textContent('[data-counting="plaza"] [data-out]'));
  const before = await total();
  const h0 = await history();
  await page.waitForFunction((n) => {
    const el = document.querySelector('[data-counting="plaza"]');
    return Number(el?.querySelector('[data-in]')?.textContent) + Number(el?.querySelector('[data-out]')?.textContent) > n;
  }, before, { timeout: 120_000, polling: 1000 });
  const after = await total();
  // History samples every 5 s; the crossing may have come sooner than the next one.
  let h1 = await history();
  for (let i = 0; i < 30 && !(h1.t.length > h0.t.length || h1.t.at(-1)! > h0.t.at(-1)!); i++) {
    await new Promise((r) => setTimeout(r, 500));
    h1 = await history();
  }
  t.true(after > before, `crossings ${before} → ${after}`);
  t.true(h1.t.length > h0.t.length || h1.t.at(-1)! > h0.t.at(-1)!, `history ${h0.t.length} → ${h1.t.length} samples`);
  // The minutes add up to the day's totals (read together: a crossing may land between two reads).
  let sums: [number, number] = [0, -1];
  for (let i = 0; i < 20 && sums[0] !== sums[1]; i++) {
    const c = (await (await fetch(`${base}/api/counts`)).json() as any).pipelines[0];
    sums = [c.perMinute.reduce((a: number, m: any) => a + m.in + m.out, 0), c.in + c.out];
    if (sums[0] !== sums[1]) await new Promise((done) => setTimeout(done, 250));
  }
  t.is(sums[0], sums[1], 'the minutes add up to the day\'s totals');
  t.log(`crossings ${before} → ${after}; ${h1.t.length} samples; fps out ${h1.series['fps/plaza'].slice(-3).join(', ')}`);
  await shot(t, page, 'counts');
  t.deepEqual(problems, []);
  t.deepEqual(external, []);
  await page.close();
});

test.serial('changes without the token, with a bad token or from another origin are refused with the documented error and counted', async (t) => {
  const text = readFileSync(GRAPH, 'utf8');
  const put = (headers: Record<string, string>, body = text) => fetch(`${base}/api/graph`, { method: 'PUT', headers: { 'content-type': 'application/yaml', ...headers }, body });
  let r = await put({});
  t.is(r.status, 401);
  t.like(await r.json(), { error: 'unauthorized', reason: 'missing_token' });
  r = await put({ authorization: 'Bearer not-a-token' });
  t.like(await r.json(), { error: 'unauthorized', reason: 'invalid_token' });
  r = await put({ authorization: `Bearer ${token}`, origin: 'http://evil.example' });
  t.is(r.status, 403);
  t.like(await r.json(), { error: 'forbidden', reason: 'cross_origin' });
  r = await fetch(`${base}/api/overview`, { headers: { 'sec-fetch-site': 'cross-site' } });
  t.is(r.status, 403, 'an image or script of another site may not read the API either');
  r = await put({ authorization: `Bearer ${token}`, 'content-type': 'text/plain' });
  t.like(await r.json(), { error: 'unsupported_media_type' });
  r = await put({ authorization: `Bearer ${token}` }, 'x'.repeat(2 * 1024 * 1024));
  t.is(r.status, 413);
  r = await fetch(`${base}/api/persons`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"Mallory"}' });
  t.is(r.status, 401);
  t.is(readFileSync(GRAPH, 'utf8'), text, 'the graph file is untouched');
  // A pose-stream token, signed with another secret and for another audience, opens nothing here.
  const pose = (await run(process.execPath, ['dist/bin/sightline.cjs', 'token', GRAPH, '--data-dir', settings.dataDir])).stdout.trim();
  t.is((await put({ authorization: `Bearer ${pose}` })).status, 401);

  // In the browser: Apply without a token shows the refusal.
  const { page, problems } = await open('graph');
  await page.waitForSelector('#graph-text');
  await page.fill('#graph-text', text.replace('fps: 15 }', 'fps: 12 }'));
  await page.waitForSelector('#validity[data-ok="true"]');
  await page.click('#apply');
  await page.waitForSelector('#apply-error[data-code="unauthorized"]');
  t.is(readFileSync(GRAPH, 'utf8'), text);
  const m = await scrape(app.portOf('metrics')!);
  const refused = metric(m, 'sightline_console_errors_total', { code: 'unauthorized' })!;
  t.true(refused >= 4, `${refused} unauthorized changes counted`);
  t.true(metric(m, 'sightline_console_errors_total', { code: 'forbidden' })! >= 2);
  t.true(metric(m, 'sightline_console_errors_total', { code: 'unsupported_media_type' })! >= 1);
  t.log(`counted: unauthorized ${refused}, forbidden ${metric(m, 'sightline_console_errors_total', { code: 'forbidden' })}, too_large ${metric(m, 'sightline_console_errors_total', { code: 'too_large' })}`);
  // The browser's own console error for the 401 answer is the page showing the refusal, not a fault.
  t.deepEqual(problems.filter((p) => !/401/.test(p)), []);
  await page.close();
});

test.serial('an invalid graph edit shows its error at the line `sightline validate` names, and changes nothing', async (t) => {
  const text = readFileSync(GRAPH, 'utf8');
  const bad = text.replace('{ id: track, use: track }', '{ id: track, use: trak }');
  const lines = bad.split('\n');
  const line = lines.findIndex((l) => l.includes('use: trak')) + 1;
  // What the command line says of the same text.
  const copy = path.join(settings.dataDir, 'bad.yaml');
  writeFileSync(copy, bad);
  const cli = await run(process.execPath, ['dist/bin/sightline.cjs', 'validate', copy]).then(() => '', (e: { stderr: string }) => e.stderr);
  const cliIssues = cli.split('\n').filter((l) => l.startsWith(copy)).map((l) => l.slice(copy.length));
  const cliLines = cliIssues.map((l) => Number(l.split(':')[1]));

  const { page, problems } = await open('graph');
  await useToken(page);
  await page.fill('#graph-text', bad);
  await page.waitForSelector('#validity[data-ok="false"]');
  // The same issues as the command line's, named against the graph file, in the same order.
  const issues = await page.$$eval('#issues li', (els) => els.map((e) => e.textContent));
  t.deepEqual(issues, cliIssues.map((l) => `${GRAPH}${l}`));
  t.regex(cliIssues[0], new RegExp(`^:${line}:\\d+: pipelines.plaza.stages\\[1\\].use: unknown stage "trak"`));
  // Each issue's line is marked in the gutter, and no other.
  t.deepEqual(await page.$$eval('.gutter .bad-line', (els) => els.map((e) => Number(e.getAttribute('data-line')))), [...new Set(cliLines)].sort((a, b) => a - b));
  t.true(cliLines.includes(line));
  const issue = issues[0];
  t.true(await page.isDisabled('#apply'));
  await page.click(`#issues li[data-line="${line}"]`);
  t.is(await page.evaluate(() => { const a = document.querySelector('#graph-text') as HTMLTextAreaElement; return a.value.slice(a.selectionStart, a.selectionEnd); }), lines[line - 1]);
  await shot(t, page, 'graph-invalid');
  // Sent anyway, the server refuses it with the same issues and writes nothing.
  const r = await fetch(`${base}/api/graph`, { method: 'PUT', headers: { 'content-type': 'application/yaml', authorization: `Bearer ${token}` }, body: bad });
  t.is(r.status, 400);
  const body = await r.json() as { error: string; issues: { line: number; text: string }[] };
  t.is(body.error, 'graph_invalid');
  t.deepEqual(body.issues.map((i) => i.line), cliLines);
  t.is(readFileSync(GRAPH, 'utf8'), text);
  t.is(app.graph.pipelines.plaza.stages[1].use, 'track');
  t.log(`${issues.length} issues, first: ${issue}`);
  t.deepEqual(problems, []);
  await page.close();
});

test.serial('a valid graph edit adding an RTSP camera applies: the new source and pipeline start, the rest keeps running', async (t) => {
  const text = readFileSync(GRAPH, 'utf8');
  const edited = text
    .replace('\nmodels:', `  door:\n    uri: ${camera.url}\n    watchdog: 2\n\nmodels:`)
    .replace('\ntransports:', `  door:
    source: door
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.3 } }
      - { id: track, use: track }
      - { id: faces, use: faces, with: { model: faces, save: true, score: 0.6, minSaveHeight: 16 } }

transports:`);
  const runner = app.runtime.pipelines.get('plaza');
  const { page, problems } = await open('graph');
  await useToken(page);
  await page.fill('#graph-text', edited);
  await page.waitForSelector('#validity[data-ok="true"]');
  await page.click('#apply');
  await page.waitForSelector('#outcome[data-result="applied"]', { timeout: 60_000 });
  const cell = (section: string, what: string) => page.textContent(`#outcome tr[data-section="${section}"] [data-${what}]`);
  t.is(await cell('sources', 'started'), 'door');
  t.is(await cell('pipelines', 'started'), 'door');
  t.is(await cell('pipelines', 'kept'), 'plaza');
  t.is(await cell('sources', 'kept'), 'plaza');
  t.is(await cell('pipelines', 'restarted'), '');
  t.is(await cell('transports', 'restarted'), '');
  t.is(readFileSync(GRAPH, 'utf8'), edited);
  t.is(app.runtime.pipelines.get('plaza'), runner, 'the plaza pipeline kept running (same runner)');
  t.truthy(app.graph.pipelines.door);
  await shot(t, page, 'graph');
  t.deepEqual(problems, []);
  await page.close();
});

test.serial('killing the RTSP camera shows retrying with its reason, and its return shows running', async (t) => {
  t.timeout(150_000);
  const { page, problems } = await open('overview');
  await page.waitForSelector('#sources tr[data-source="door"][data-state="running"]', { timeout: 60_000 });
  await camera.stop();
  await page.waitForSelector('#sources tr[data-source="door"][data-state="retrying"]', { timeout: 30_000 });
  const reason = await page.textContent('#sources tr[data-source="door"] [data-reason]');
  t.truthy(reason, 'a reason is shown');
  await page.waitForSelector('#changes li[data-kind="source"] >> text=source door: running → retrying');
  await shot(t, page, 'overview-retrying');
  await camera.restart();
  await page.waitForSelector('#sources tr[data-source="door"][data-state="running"]', { timeout: 60_000 });
  t.is(await page.getAttribute('#sources tr[data-source="plaza"]', 'data-state'), 'running');
  t.log(`retrying: ${reason}`);
  t.deepEqual(problems, []);
  await page.close();
});

test.serial('live view: both cameras in the grid', async (t) => {
  const { page, problems, external } = await open('live');
  for (const id of ['plaza', 'door']) {
    await page.waitForFunction((p) => Number(document.querySelector(`[data-camera="${p}"] canvas`)?.getAttribute('data-frames')) >= 3, id, { timeout: 60_000 });
  }
  t.is(await page.$$eval('.camera canvas', (c) => c.length), 2);
  await shot(t, page, 'live-grid');
  t.deepEqual(problems, []);
  t.deepEqual(external, []);
  await page.close();
});

test.serial('faces and persons: saved crops newest first; a person added with a photo, renamed and deleted', async (t) => {
  t.timeout(150_000);
  const { page, problems, external } = await open('faces');
  page.on('dialog', (d) => void d.accept());
  await useToken(page);
  await page.fill('#add-person input[name="name"]', 'Barack');
  await page.fill('#add-person input[name="surname"]', 'Obama');
  await page.setInputFiles('#add-person input[name="photo"]', media('obama.jpg'));
  await page.click('#add-person button[type="submit"]');
  await page.waitForSelector('#persons-message.ok', { timeout: 60_000 });
  const row = await page.waitForSelector('#persons tr[data-person] >> text=Barack');
  const id = await (await row.evaluateHandle((el) => el.closest('tr'))).asElement()!.getAttribute('data-person');
  const listed = await (await fetch(`${base}/api/persons/${id}`)).json() as { name: string; photos: number };
  t.like(listed, { name: 'Barack', photos: 1 });
  await page.click(`#persons tr[data-person="${id}"] [data-edit]`);
  await page.fill(`#persons tr[data-person="${id}"] [data-rename]`, 'Barry');
  await page.click(`#persons tr[data-person="${id}"] [data-save]`);
  await page.waitForSelector(`#persons tr[data-person="${id}"] [data-name] >> text=Barry`);
  t.is((await (await fetch(`${base}/api/persons/${id}`)).json() as { name: string }).name, 'Barry');

  // Saved crops from the camera added above (the pipeline keeps each track's best face).
  await page.waitForSelector('#crops figure[data-face]', { timeout: 120_000 });
  const faces = await (await fetch(`${base}/api/faces`)).json() as { faces: { createdMs: number; image: string }[] };
  t.true(faces.faces.length >= 1);
  t.deepEqual(faces.faces.map((f) => f.createdMs), [...faces.faces.map((f) => f.createdMs)].sort((a, b) => b - a), 'newest first');
  const img = await fetch(`${base}${faces.faces[0].image}`);
  t.is(img.headers.get('content-type'), 'image/jpeg');
  t.true(await page.$eval('#crops img', (i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth > 0));
  await shot(t, page, 'faces');

  await page.click(`#persons tr[data-person="${id}"] [data-delete]`);
  await page.waitForFunction((pid) => !document.querySelector(`#persons tr[data-person="${pid}"]`), id);
  t.is((await fetch(`${base}/api/persons/${id}`)).status, 404);
  t.log(`${faces.faces.length} saved face(s); person ${id} added, renamed, deleted`);
  t.deepEqual(problems.filter((p) => !/422/.test(p)), []);
  t.deepEqual(external, []);
  await page.close();
});

test.serial('the page and its files come from the server; nothing else can be read from it', async (t) => {
  const page = await fetch(`${base}/`);
  t.is(page.status, 200);
  t.regex(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  t.is(page.headers.get('x-frame-options'), 'DENY');
  t.is((await fetch(`${base}/app.js`)).status, 200);
  for (const bad of ['/app.js/../../package.json', '/%2e%2e/%2e%2e/package.json', '/api/faces/plaza/..%2f..%2fsightline.db', '/api/faces/../x/1',
    '/api/live/..%2f', '/api/live/plaza?after=-1']) {
    const r = await fetch(`${base}${bad}`);
    t.true(r.status === 404 || r.status === 400, `${bad}: ${r.status}`);
    t.regex((await r.json() as { error: string }).error, /not_found|bad_request/);
  }
});

test.serial('an edit of the console\'s own options is answered first, then applied (the console restarts with it)', async (t) => {
  const text = readFileSync(GRAPH, 'utf8');
  const edited = text.replace(/^(\s+console): \{ port: (\d+) \}/m, '$1: { port: $2, liveFps: 10 }');
  t.not(edited, text);
  const r = await fetch(`${base}/api/graph`, { method: 'PUT', headers: { 'content-type': 'application/yaml', authorization: `Bearer ${token}` }, body: edited });
  t.is(r.status, 200);
  t.like(await r.json(), { result: 'pending' });
  for (let i = 0; i < 100 && app.graph.transports.console.liveFps !== 10; i++) await new Promise((done) => setTimeout(done, 100));
  t.is(app.graph.transports.console.liveFps, 10);
  // Its port is opened again once the reload has mounted it anew.
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    status = await fetch(`${base}/api/overview`).then((res) => res.status, () => 0);
    if (status !== 200) await new Promise((done) => setTimeout(done, 100));
  }
  t.is(status, 200, 'the console answers again on its port');
});

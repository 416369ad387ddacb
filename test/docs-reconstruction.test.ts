/**
 * reconstruction.md's own client code against the default graph, read from the document at test time, with only the
 * server's address, session ids and file names replaced: the Python quick example, the HTML quick example in
 * Chromium (from another origin), the three use-case fragments inside what they need, and the API lines as requests.
 *
 * What the document's code needs besides a server:
 * - the use-case fragments use a socket (`ws`) and helpers (`convertToBase64`, `camera`, `send_image`,
 *   `update_progress_bar`, `sendImage`, `loadGLB`, `viewer`) they do not define: the test defines them, as the
 *   application around each fragment would. The mobile fragment reads `frameCount` but never counts: the camera does.
 * - the bash blocks that install packages, start the document's own server or run its example files (which the
 *   document does not include) are not client code of this server; its API lines are requests, sent as such.
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { NodeIO } from '@gltf-transform/core';
import type { Browser } from 'playwright-core';
import sharp from 'sharp';
import WebSocket from 'ws';
import { block, blocksIn, codeBlocks, substitute } from './docs/blocks.js';
import { launchChromium, openPage, serveSite } from './docs/browser.js';
import { startDefaultGraph, type DefaultGraph } from './docs/default-graph.js';
import { count, runNode, runPython, scratchDir, transcript } from './docs/run.js';
import { media } from './helpers.js';

const DOC = 'reconstruction.md';
const io = new NodeIO();

let server: DefaultGraph;
let address: string;
let browser: Browser;

test.before(async () => {
  server = await startDefaultGraph();
  address = server.address('reconstruction');
  browser = await launchChromium();
});
test.after.always(async () => {
  await browser?.close();
  await server?.app.stop();
});

/** Writes photos as the PNG files a block names, in `dir`. */
async function pngs(dir: string, names: string[], photos = ['messi5.jpg', 'two_people.jpg', 'obama2.jpg']): Promise<string[]> {
  for (const [i, name] of names.entries()) writeFileSync(path.join(dir, name), await sharp(media(photos[i % photos.length])).png().toBuffer());
  return names.map((n) => path.join(dir, n));
}

const createSession = async (query = ''): Promise<string> =>
  ((await (await fetch(`http://${address}/ws/session/create${query}`, { method: 'POST' })).json()) as { session_id: string }).session_id;

test('every block of the document is run by a test here, or is not a client of this server', (t) => {
  const notClients = ['Installation #1', 'Starting the Server #1', 'Python Client #1', 'HTML Client #1'];
  const requests = ['Create Session #1', 'Connect WebSocket #1', 'Get Session Info #1', 'List Sessions #1', 'Delete Session #1',
    'Performance Optimization #1', 'Performance Optimization #2'];
  const code = blocksIn(DOC, ['javascript', 'js', 'python', 'html']).map((b) => b.id);
  t.deepEqual(code, ['Quick Example (Python) #1', 'Quick Example (JavaScript/HTML) #1', '1. Mobile App Integration #1',
    '2. Batch Processing with Progress #1', '3. Incremental Preview #1']);
  const rest = codeBlocks(DOC).filter((b) => !code.includes(b.id) && b.lang !== 'json').map((b) => b.id);
  t.deepEqual(rest.sort(), [...notClients, ...requests].sort());
});

test.serial("the document's Python quick example, unchanged: a session, three images, progress, output.glb", async (t) => {
  const cwd = scratchDir('recon-py');
  await pngs(cwd, ['img1.png', 'img2.png', 'img3.png']);
  const code = substitute(block(DOC, 'Quick Example (Python) #1'), [['localhost:8000', address]]);
  const r = await runPython(code, { cwd, timeoutMs: 170_000 });
  t.is(r.code, 0, transcript(r));
  t.regex(r.stdout, /Created session: [0-9a-f-]{36}/);
  t.regex(r.stdout, /^Connected: \{'type': 'connected'/m);
  t.is(count(r, /^Uploaded: /), 3);
  t.regex(r.stdout, /Progress: 100\.0% - /);
  const glb = readFileSync(path.join(cwd, 'output.glb'));
  t.regex(r.stdout, new RegExp(`Saved output.glb \\(${glb.length} bytes\\)`));
  const doc = await io.readBinary(new Uint8Array(glb));
  const points = doc.getRoot().listMeshes().reduce((s, m) => s + m.listPrimitives()[0].getAttribute('POSITION')!.getCount(), 0);
  // The client keeps the websockets library's 1 MiB message limit: it gets the largest subset that fits.
  t.true(points > 20_000 && glb.length * 4 / 3 < 1024 * 1024, `${points} points, ${glb.length} bytes`);
  // The session itself has the full model: num_max_points keeps its default of 1,000,000, more than 3 images give.
  const id = /Created session: ([0-9a-f-]{36})/.exec(r.stdout)![1];
  const info = await (await fetch(`http://${address}/ws/session/${id}`)).json() as { num_points: number; num_images: number };
  t.is(info.num_images, 3);
  t.true(info.num_points > 400_000 && info.num_points <= 1_000_000, `${info.num_points} points in the full model`);
  t.log(`${r.lines.filter((l) => /Progress|Saved/.test(l)).join(' | ')}; ${points} points in output.glb, ${info.num_points} in the session`);
});

test.serial("the document's HTML quick example in Chromium, from another origin, downloads model.glb", async (t) => {
  const html = substitute(block(DOC, 'Quick Example (JavaScript/HTML) #1'), [['localhost:8000', address]]);
  const site = await serveSite({ '/': html });
  t.teardown(() => site.close());
  const files = await pngs(scratchDir('recon-html'), ['messi5.png', 'two_people.png']);
  const { page, problems } = await openPage(browser);
  const download = page.waitForEvent('download', { timeout: 150_000 });
  await page.goto(`${site.url}/`);
  await page.setInputFiles('#images', files);
  await page.click('button');
  const file = await (await download).path();
  t.is((await download).suggestedFilename(), 'model.glb');
  await page.waitForFunction(() => document.getElementById('status')?.textContent === '✓ Complete!');
  const doc = await io.readBinary(new Uint8Array(readFileSync(file)));
  t.deepEqual(doc.getRoot().listMeshes().map((m) => m.getName()), ['messi5.png', 'two_people.png']);
  t.deepEqual(problems, []);
  await page.close();
});

test.serial("the document's mobile fragment uploads every fifth camera frame, without a filename", async (t) => {
  const cwd = scratchDir('recon-mobile');
  const files = await pngs(cwd, ['f0.png', 'f1.png', 'f2.png']);
  const id = await createSession('?process_res=256');
  // The application around the fragment: its socket, its converter, and a camera of ten frames that counts them.
  const prelude = `
const ws = new WebSocket('ws://${address}/ws/reconstruct/${id}');
const files = ${JSON.stringify(files)};
let frameCount = 0;
const convertToBase64 = async (uri) => require('fs').readFileSync(uri).toString('base64');
const camera = {
  onFrame(handler) {
    ws.addEventListener('open', () => {
      const timer = setInterval(() => { handler(files[frameCount % files.length]); if (++frameCount === 10) clearInterval(timer); }, 100);
    });
  },
};
let acks = 0;
ws.addEventListener('message', (event) => {
  const msg = JSON.parse(event.data);
  console.log(msg.type + ' ' + (msg.filename ?? msg.message ?? ''));
  if (msg.type === 'ack' && ++acks === 2) setTimeout(() => ws.close(), 500);
});`;
  const r = await runNode(block(DOC, '1. Mobile App Integration #1').code, { cwd, prelude, timeoutMs: 60_000 });
  t.deepEqual(r.lines, ['connected Connected to reconstruction session', 'ack image_0.jpg', 'ack image_1.jpg'], transcript(r));
});

test.serial("the document's batch fragment uploads, generates and returns the model with its progress", async (t) => {
  const cwd = scratchDir('recon-batch');
  await pngs(cwd, ['a.png', 'b.png']);
  const id = await createSession('?process_res=256');
  // The program around the fragment: its socket (a global `ws`), send_image and a progress bar.
  const program = `import asyncio
import base64
import json
import websockets

${block(DOC, '2. Batch Processing with Progress #1').code}

def update_progress_bar(progress):
    print(f"progress {progress:.2f}")

async def send_image(ws, path):
    with open(path, "rb") as f:
        await ws.send(json.dumps({"type": "image", "data": base64.b64encode(f.read()).decode(), "filename": path}))
    print(f"ack {json.loads(await ws.recv())['image_index']}")

async def main():
    global ws
    async with websockets.connect("ws://${address}/ws/reconstruct/${id}") as ws:
        print(json.loads(await ws.recv())["type"])
        glb = base64.b64decode(await process_batch(["a.png", "b.png"]))
        print(f"glb {glb[:4].decode()} {len(glb)}")

asyncio.run(main())
`;
  const r = await runPython(program, { cwd, timeoutMs: 120_000 });
  t.is(r.code, 0, transcript(r));
  t.deepEqual(r.lines.slice(0, 3), ['connected', 'ack 0', 'ack 1']);
  const progress = r.lines.filter((l) => l.startsWith('progress ')).map((l) => Number(l.split(' ')[1]));
  t.true(progress.length >= 2 && progress.every((p, i) => p >= 0 && p <= 1 && (i === 0 || p >= progress[i - 1])), progress.join(' '));
  t.regex(r.lines[r.lines.length - 1], /^glb glTF \d+$/);
  t.log(`progress ${progress.join(' → ')}; ${r.lines[r.lines.length - 1]}`);
});

test.serial("the document's incremental fragment: after generate with incremental, a new image brings a preview to the viewer", async (t) => {
  const cwd = scratchDir('recon-incremental');
  const files = await pngs(cwd, ['p1.png', 'p2.png', 'p3.png']);
  const id = await createSession('?process_res=256');
  // The application around the fragment: its socket, sendImage (which waits for the ack), a GLB loader and a viewer.
  const prelude = `
const ws = new WebSocket('ws://${address}/ws/reconstruct/${id}');
const fs = require('fs');
const loadGLB = (b64) => ({ bytes: Buffer.from(b64, 'base64').length });
const viewer = { updateModel: (model) => { console.log('viewer ' + model.bytes); ws.close(); } };
const sendImage = (file) => new Promise((resolve) => {
  ws.addEventListener('message', function acked(event) {
    if (JSON.parse(event.data).type !== 'ack') return;
    ws.removeEventListener('message', acked);
    console.log('ack ' + file.split('/').pop());
    resolve();
  });
  ws.send(JSON.stringify({ type: 'image', data: fs.readFileSync(file).toString('base64'), filename: file.split('/').pop() }));
});
const completed = () => new Promise((resolve) => ws.addEventListener('message', (event) => { if (JSON.parse(event.data).type === 'complete') resolve(); }));`;
  const usage = `
ws.addEventListener('open', async () => {
  const first = completed();
  await uploadBatch(${JSON.stringify(files.slice(0, 2))});
  await first;
  console.log('complete');
  await uploadBatch(${JSON.stringify(files.slice(2))});
});`;
  const r = await runNode(block(DOC, '3. Incremental Preview #1').code, { cwd, prelude, usage, timeoutMs: 120_000 });
  t.deepEqual(r.lines.slice(0, 4), ['ack p1.png', 'ack p2.png', 'complete', 'ack p3.png'], transcript(r));
  t.regex(r.lines[4] ?? '', /^viewer \d+$/, transcript(r));
  t.log(`the preview after the third image: ${r.lines[4]} bytes of GLB`);
});

test.serial("the document's API lines, sent as requests", async (t) => {
  const answers: string[] = [];
  let id = '';
  const request = async (name: string): Promise<void> => {
    // Lines of "METHOD /path  # comment"; {session_id} is the session the first line created.
    for (const line of block(DOC, name).code.split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter(Boolean)) {
      const [method, target] = line.split(/\s+/);
      const res = await fetch(`http://${address}${target.replace('{session_id}', id)}`, { method });
      const body = await res.json() as Record<string, any>;
      t.is(res.status, 200, `${line}: ${JSON.stringify(body)}`);
      if (name === 'Create Session #1') id = body.session_id;
      answers.push(`${line} → ${res.status}`);
    }
  };
  for (const name of ['Create Session #1', 'Performance Optimization #1', 'Performance Optimization #2', 'Get Session Info #1', 'List Sessions #1']) {
    await request(name);
  }
  const [, target] = block(DOC, 'Connect WebSocket #1').code.trim().split(/\s+/);
  const first = await new Promise<string>((resolve, reject) => {
    const socket = new WebSocket(`ws://${address}${target.replace('{session_id}', id)}`);
    socket.once('message', (m) => { socket.close(); resolve(JSON.parse(m.toString()).type); });
    socket.once('error', reject);
  });
  t.is(first, 'connected');
  await request('Delete Session #1');
  t.is((await fetch(`http://${address}/ws/session/${id}`)).status, 404);
  t.log(answers.join('\n'));
});

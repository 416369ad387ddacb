/**
 * ddfr-face-recognition.md's own client code against the default graph, read from the document at test time, with
 * only the server's address and file names replaced: the canvas snippet and the full JavaScript example in Chromium
 * (a page whose canvas shows a photo), the client-side rate limiting under Node, and the Python snippet and example.
 * A known person is enrolled through the persons API first, so the examples' "Identified:" branch runs too.
 *
 * What the document's code needs besides a server:
 * - the Python example uses `json` without importing it: it fails with NameError as printed (checked), and runs with
 *   `import json` added, the smallest fix. It reads a webcam (OpenCV device 0), here a sequence of image files.
 * - the Python snippet awaits at the top level and the JavaScript snippets use a `websocket` and `frameData` they do
 *   not define: they run inside what a program around them would provide (a connected socket, a frame).
 * - the two Python blocks of "Implementation Details" are the server's code, not a client's.
 */
import test from 'ava';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import sharp from 'sharp';
import { block, blocksIn, substitute } from './docs/blocks.js';
import { launchChromium, openPage, serveSite } from './docs/browser.js';
import { startDefaultGraph, type DefaultGraph } from './docs/default-graph.js';
import { count, runNode, runPython, scratchDir, transcript } from './docs/run.js';
import { media } from './helpers.js';

const DOC = 'ddfr-face-recognition.md';

let server: DefaultGraph;
let address: string;
let browser: Browser;

test.before(async () => {
  server = await startDefaultGraph();
  address = server.address('ddfr');
  // A known person, enrolled the documented way, so that recognition names him.
  const api = (p: string, body: unknown) => fetch(`http://${address}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const person = await (await api('/persons', { name: 'Barack', surname: 'Obama', birthday: '1961-08-04', relationship: 'amico', role: 'guest' })).json() as { id: number };
  const photo = await api(`/persons/${person.id}/photos`, { image: readFileSync(media('obama.jpg')).toString('base64') });
  if (photo.status !== 201) throw new Error(`enrolment answered ${photo.status}: ${await photo.text()}`);
  browser = await launchChromium();
});
test.after.always(async () => {
  await browser?.close();
  await server?.app.stop();
});

test('every JavaScript and Python block of the document is run by a test here, but the server\'s own', (t) => {
  const server = ['Thread Pool Executor #1', 'NumPy Threading Disabled #1'];
  t.deepEqual(blocksIn(DOC, ['javascript', 'js', 'python', 'html']).map((b) => b.id).filter((id) => !server.includes(id)), [
    'Client → Server (Binary) #1', 'Client → Server (Binary) #2', 'Rate Limiting #1', 'JavaScript/WebSocket API #1', 'Python Example #1',
  ]);
});

/** A page with a canvas of this id showing obama2.jpg (at its own size), from an origin of its own. */
const canvasPage = (canvasId: string, extra: string): string => `<!DOCTYPE html>
<html><body>
<canvas id="${canvasId}"></canvas>
<script>
window.drawn = new Promise((resolve) => {
  const img = new Image();
  img.onload = () => {
    const canvas = document.getElementById('${canvasId}');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.getContext('2d').drawImage(img, 0, 0);
    resolve();
  };
  img.src = '/photo.jpg';
});
${extra}
</script>
</body></html>`;

test.serial("the document's full JavaScript example in Chromium: faces of the canvas, identified by name", async (t) => {
  const code = substitute(block(DOC, 'JavaScript/WebSocket API #1'), [['localhost:8000', address]]);
  const site = await serveSite({ '/': canvasPage('canvas', ''), '/example.js': code, '/photo.jpg': readFileSync(media('obama2.jpg')) });
  t.teardown(() => site.close());
  const { page, logged, problems } = await openPage(browser);
  await page.goto(`${site.url}/`);
  await page.evaluate(() => (window as unknown as { drawn: Promise<void> }).drawn);
  await page.addScriptTag({ url: '/example.js' });
  // It sends the canvas 20 times a second for as long as the page is open.
  const deadline = Date.now() + 60_000;
  while (logged.filter((l) => l === 'Identified: Barack Obama').length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await page.close();
  t.is(logged.find((l) => !l.startsWith('Failed to load resource')), 'WebSocket connected', logged.slice(0, 10).join('\n'));
  t.true(logged.filter((l) => l === 'Identified: Barack Obama').length >= 3, logged.slice(0, 10).join('\n'));
  t.true(logged.some((l) => l.startsWith('Detected faces:')));
  t.deepEqual(problems, []);
  t.log(`${logged.filter((l) => l.startsWith('Detected faces:')).length} answers logged, e.g. "${logged.find((l) => l.startsWith('Identified'))}"`);
});

test.serial("the document's canvas snippet in Chromium sends one JPEG frame, which is answered", async (t) => {
  const page = canvasPage('video-canvas', `
const websocket = new WebSocket('ws://${address}/ws');
websocket.onmessage = (event) => console.log('ANSWER ' + event.data);
window.opened = new Promise((resolve) => { websocket.onopen = resolve; });`);
  const site = await serveSite({ '/': page, '/snippet.js': block(DOC, 'Client → Server (Binary) #1').code, '/photo.jpg': readFileSync(media('obama2.jpg')) });
  t.teardown(() => site.close());
  const tab = await openPage(browser);
  await tab.page.goto(site.url);
  await tab.page.evaluate(() => Promise.all([(window as unknown as { drawn: Promise<void> }).drawn, (window as unknown as { opened: Promise<void> }).opened]));
  await tab.page.addScriptTag({ url: '/snippet.js' });
  const deadline = Date.now() + 30_000;
  while (!tab.logged.some((l) => l.startsWith('ANSWER ')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await tab.page.close();
  const answer = JSON.parse(tab.logged.find((l) => l.startsWith('ANSWER '))!.slice(7));
  t.is(answer.status, 'ok');
  t.like(answer.faces[0], { name: 'Barack', surname: 'Obama', relationship: 'amico', role: 'guest' });
  t.deepEqual(tab.problems, []);
});

test.serial("the document's client-side rate limiting lets at most 20 frames a second through, each answered", async (t) => {
  const cwd = scratchDir('ddfr-rate');
  copyFileSync(media('obama2.jpg'), path.join(cwd, 'frame.jpg'));
  // What a program around the snippet provides: a connected socket and the current frame.
  const prelude = `
const websocket = new WebSocket('ws://${address}/ws');
const frameData = require('fs').readFileSync('frame.jpg');
let sent = 0;
let answered = 0;
let calls = 0;
const realSend = websocket.send.bind(websocket);
websocket.send = (data) => { sent++; realSend(data); };
websocket.onmessage = (event) => {
  answered++;
  console.log('ANSWER ' + JSON.parse(event.data).faces.map((f) => f.name + ' ' + f.surname).join(', '));
  if (answered === sent && calls === 0) { console.log('DONE ' + sent); websocket.close(); }
};`;
  const usage = `
websocket.onopen = () => {
  // A camera calling sendFrame() every 5 ms for one second.
  const camera = setInterval(() => { calls++; sendFrame(); }, 5);
  setTimeout(() => { clearInterval(camera); console.log('CALLS ' + calls + ' SENT ' + sent); calls = 0; if (answered === sent) { console.log('DONE ' + sent); websocket.close(); } }, 1000);
};`;
  const r = await runNode(block(DOC, 'Rate Limiting #1').code, { cwd, prelude, usage, timeoutMs: 90_000 });
  const [, calls, sent] = /^CALLS (\d+) SENT (\d+)$/m.exec(r.stdout)!.map(Number);
  t.true(sent >= 10 && sent <= 21, `${sent} of ${calls} frames sent in one second`);
  t.regex(r.stdout, /^DONE \d+$/m, transcript(r));
  t.is(count(r, /^ANSWER Barack Obama$/), sent, transcript(r));
  t.log(`sendFrame() called ${calls} times in one second: ${sent} frames sent, each answered with Barack Obama`);
});

test.serial("the document's Python snippet, inside the program it needs, sends image.jpg and is answered", async (t) => {
  const cwd = scratchDir('ddfr-snippet');
  copyFileSync(media('obama2.jpg'), path.join(cwd, 'image.jpg'));
  const snippet = block(DOC, 'Client → Server (Binary) #2').code;
  // It awaits at the top level: it runs as the body of a coroutine given a connected `websocket`; the answer is printed.
  const program = `import asyncio
import websockets as harness

async def snippet(websocket):
${snippet.split('\n').map((l) => `    ${l}`).join('\n')}

async def main():
    async with harness.connect('ws://${address}/ws') as websocket:
        await snippet(websocket)
        print(await websocket.recv())

asyncio.run(main())
`;
  const r = await runPython(program, { cwd, timeoutMs: 60_000 });
  t.is(r.code, 0, transcript(r));
  const [face] = JSON.parse(r.lines[0]).faces;
  t.like(face, { name: 'Barack', surname: 'Obama', role: 'guest' });
  t.true(Number.isInteger(face.age) && face.age >= 60, 'age from the birthday');
});

test.serial("the document's Python example: NameError as printed; with `import json` it reports the faces of every frame", async (t) => {
  const cwd = scratchDir('ddfr-python');
  // The webcam (device 0) is a sequence of image files here, of one size as a camera's frames are.
  const photos = ['obama2.jpg', 'obama2.jpg', 'biden2.jpg', 'two_people.jpg'];
  for (const [i, p] of photos.entries()) {
    const frame = await sharp(media(p)).resize(960, 960, { fit: 'contain', background: '#000' }).jpeg({ quality: 90 }).toBuffer();
    writeFileSync(path.join(cwd, `frame_${String(i).padStart(2, '0')}.jpg`), frame);
  }
  const b = block(DOC, 'Python Example #1');
  const code = substitute(b, [['localhost:8000', address], ['cv2.VideoCapture(0)', "cv2.VideoCapture('frame_%02d.jpg')"]]);
  const asPrinted = await runPython(code, { cwd, timeoutMs: 60_000 });
  t.not(asPrinted.code, 0);
  t.regex(asPrinted.stderr, /NameError: name 'json' is not defined/);

  const fixed = await runPython(`import json\n${code}`, { cwd, timeoutMs: 60_000 });
  t.is(fixed.code, 0, transcript(fixed));
  t.deepEqual(fixed.lines, ['Faces detected: 1', 'Faces detected: 1', 'Faces detected: 1', 'Faces detected: 2']);
});

/**
 * people-counter.md against the default graph. The document has no client code, only its messages and notes for
 * implementing a client: its requests are sent as it prints them, what the server pushes and answers is compared
 * with its examples field by field, and its note on showing a frame (`data:image/jpeg;base64,` before the data, as an
 * `<img>` source) is followed in Chromium.
 */
import test from 'ava';
import WebSocket from 'ws';
import type { Browser } from 'playwright-core';
import { block, blocksIn, codeBlocks } from './docs/blocks.js';
import { launchChromium, openPage } from './docs/browser.js';
import { startDefaultGraph, type DefaultGraph } from './docs/default-graph.js';

const DOC = 'people-counter.md';

let server: DefaultGraph;
let browser: Browser;
test.before(async () => {
  server = await startDefaultGraph();
  browser = await launchChromium();
});
test.after.always(async () => {
  await browser?.close();
  await server?.app.stop();
});

/** The document's example message of a block, parsed. */
const example = (id: string): Record<string, any> => JSON.parse(block(DOC, id).code);

/** The keys of an object, and of the objects in it, as paths ("data.count_in"), for comparing shapes. */
function shape(v: unknown, prefix = ''): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [];
  return Object.entries(v).flatMap(([k, x]) => [`${prefix}${k}:${Array.isArray(x) ? 'array' : x === null ? 'null' : typeof x}`, ...shape(x, `${prefix}${k}.`)]);
}

/** Connects, sends `requests`, and collects messages until `done` says so. */
function session(requests: string[], done: (got: any[]) => boolean): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${server.address('people-counter')}/`);
    const got: any[] = [];
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`not done after 90 s: ${got.map((m) => m.type ?? m.error).join(' ')}`)); }, 90_000);
    ws.on('open', () => { for (const r of requests) ws.send(r); });
    ws.on('message', (raw) => {
      got.push(JSON.parse(raw.toString()));
      if (done(got)) { clearTimeout(timer); ws.close(); resolve(got); }
    });
    ws.on('error', reject);
  });
}

test('the document has no client code: only JSON messages', (t) => {
  t.deepEqual(blocksIn(DOC, ['javascript', 'js', 'python', 'html']), []);
  t.true(codeBlocks(DOC).every((b) => b.lang === 'json'));
});

test.serial('pushed frame and stats messages have the document\'s fields and types; its requests get its answers', async (t) => {
  const got = await session([block(DOC, '1. Request Single Face Image #1').code, block(DOC, '2. Request All Recent Face Images #1').code, '{not json'],
    (m) => ['frame', 'stats', 'face_image', 'all_faces'].every((type) => m.some((x) => x.type === type)) && m.some((x) => x.error === 'Invalid JSON message'));
  const first = (type: string) => got.find((m) => m.type === type);
  t.deepEqual(shape(first('frame')), shape(example('1. Frame Update #1')));
  t.deepEqual(shape(first('stats')), shape(example('2. Statistics Update #1')));
  t.regex(first('stats').timestamp, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/);
  // Face 123 has not been seen: the document's not-found answer.
  t.deepEqual(first('face_image'), example('1. Request Single Face Image #3'));
  // The newest saved faces (the default graph keeps the best crop of each track), each as the document shows them.
  const all = first('all_faces');
  t.deepEqual(Object.keys(all), ['type', 'faces']);
  const documented = example('2. Request All Recent Face Images #2').faces[0];
  for (const f of all.faces) t.deepEqual(shape(f), shape(documented));
  t.deepEqual(got.find((m) => m.error), example('C. General Error Message (Server-to-Client) #1'));
  t.log(`${got.filter((m) => m.type === 'frame').length} frames, ${got.filter((m) => m.type === 'stats').length} stats; ${all.faces.length} saved faces`);
});

test.serial('a frame shows in an <img> as the document says: its data after data:image/jpeg;base64,', async (t) => {
  const [frame] = await session([], (m) => m.some((x) => x.type === 'frame'));
  const { page, problems } = await openPage(browser);
  await page.setContent('<img id="frame">');
  const size = await page.evaluate(async (data) => {
    const img = document.getElementById('frame') as HTMLImageElement;
    img.src = `data:image/jpeg;base64,${data}`;
    await img.decode();
    return [img.naturalWidth, img.naturalHeight];
  }, frame.data as string);
  await page.close();
  t.deepEqual(size, [768, 576], 'the annotated frame of the sample video');
  t.deepEqual(problems, []);
});

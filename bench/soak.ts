/**
 * Soak benchmark: does the server stay flat over an hour of clients coming and going, half of them hostile?
 *
 *   npx tsc -p tsconfig.json
 *   node dist/bench/soak.js [--minutes 60] [--clients 6] [--seed 1] [--sample-seconds 30] [--graph config/examples/default.yaml]
 *       [--keep-data] [--max-wait-load 120]
 *   node dist/bench/soak.js --minutes 2                     # a short run
 *
 * The server is the default graph run as a child process (`sightline run <graph> --data-dir <tmp> --host 127.0.0.1`),
 * so its figures are its own. This process keeps `--clients` client loops going; each picks a scenario, runs it and
 * leaves: People Counter (requests, hostile JSON, a slow reader), DDFR frames (a real face, hostile images, text frames)
 * and its /persons API (create, hostile bodies and photos, delete), the pose stream (a valid token: subscribe, receive,
 * hostile messages; or a hostile/tampered token), reconstruction sessions (create, images good and bad, sometimes
 * generate, delete), WatchMe (upload, ping, single frames, live tracking, hostile messages) and raw HTTP / hand-made
 * WebSocket handshakes with hostile frames (test/fuzz). Pauses keep the rate modest: the machine has 2 cores.
 *
 * Every --sample-seconds: the server's RSS and threads (/proc/<pid>/status), open fds (/proc/<pid>/fd), and from its own
 * /metrics the JS heap in use, external memory, active handles, event-loop lag p99 (prom-client's, reset at each
 * scrape, so it covers the interval), CPU and WebSocket clients. At the end: the table over time, and each figure's
 * drift after the warm-up (the first 20 % of the run) against a target of at most 5 %: the median of the first
 * samples after the warm-up against the median of the last ones, and a least-squares trend per hour.
 * Plain-text tables; asserts nothing. The exit code is 1 only when the server never came up or died.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import WebSocket from 'ws';
import { parse as parseYaml } from 'yaml';
import { ALLOCATOR_ENV } from '../app/allocator.js';
import { prng } from '../test/prng.js';
import { hostileImages, validImages, validJpeg, type HostileImage } from '../test/fuzz/images.js';
import {
  chance, hostileJson, hostileTokenNamed, int, invalidUtf8, mutateMessage, mutateProtocolMessage, oddUrls, pick, rawRequestNamed,
  SERVED_PATHS, tamperToken, VALID_MESSAGES, type JsonOptions, type Rng,
} from '../test/fuzz/inputs.js';
import { sendRaw, upgradeRaw, wsFrame } from '../test/fuzz/raw-http.js';
import { loadavg, table, waitForQuietMachine } from './report.js';

process.chdir(fileURLToPath(new URL('../..', import.meta.url))); // the CLI, graph, media/ and models/ are relative to the root

const { values: args } = parseArgs({ options: {
  minutes: { type: 'string', default: '60' }, clients: { type: 'string', default: '6' }, seed: { type: 'string', default: '1' },
  'sample-seconds': { type: 'string', default: '30' }, graph: { type: 'string', default: 'config/examples/default.yaml' },
  'keep-data': { type: 'boolean', default: false }, 'max-wait-load': { type: 'string', default: '120' },
} });
const MINUTES = Number(args.minutes);
const CLIENTS = Number(args.clients);
const SEED = Number(args.seed);
const SAMPLE_S = Number(args['sample-seconds']);
const GRAPH = String(args.graph);
const CLI = 'dist/bin/sightline.cjs';
const HOST = '127.0.0.1';
const WARMUP_FRACTION = 0.2;
const TARGET_DRIFT_PCT = 5;
/** Hostile JSON: big enough to matter, small enough that six clients do not saturate loopback. */
const JSON_OPTS: JsonOptions = { maxStringBytes: 256 * 1024, maxDepth: 20_000 };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A sleep that does not keep the process alive: for the losing side of a Promise.race. */
const deadline = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;
const b64 = (b: Buffer): string => b.toString('base64');

/** The ports the graph gives each transport (the documented defaults where it names none), and its first source. */
function readGraph(file: string) {
  const doc = parseYaml(readFileSync(file, 'utf8')) as { sources?: Record<string, unknown>; transports?: Record<string, { port?: number } | null> };
  const port = (name: string, dflt: number): number => doc.transports?.[name]?.port ?? dflt;
  const ports = {
    peopleCounter: port('people-counter', 8765), ddfr: port('ddfr', 8000), pose: port('pose-stream-v1', 8000),
    reconstruction: port('reconstruction', 8000), watchme: port('watchme', 5000), metrics: port('metrics', 9464),
  };
  // The pose stream's environment_id is a source id: subscriptions name the graph's first.
  return { ports, environment: Object.keys(doc.sources ?? {})[0] ?? 'plaza' };
}
const { ports: PORTS, environment: ENVIRONMENT } = readGraph(GRAPH);

// ---------------------------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------------------------

/** True when something already listens on the port (then this run would measure someone else's server). */
const portOpen = (port: number): Promise<boolean> => new Promise((resolve) => {
  const s = net.connect({ host: HOST, port });
  s.setTimeout(2000, () => { s.destroy(); resolve(false); });
  s.on('connect', () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

const answers = async (url: string): Promise<boolean> => {
  try { await (await fetch(url, { signal: AbortSignal.timeout(3000) })).arrayBuffer(); return true; } catch { return false; }
};

interface ServerLog { warn: number; error: number; errors: Map<string, number>; tail: string[] }

function startServer(dataDir: string): { child: ChildProcess; log: ServerLog } {
  const child = spawn(process.execPath, [CLI, 'run', GRAPH, '--data-dir', dataDir, '--host', HOST],
    // Its own process group, so a Ctrl-C meant for the benchmark reaches the server only through stopServer().
    { env: { ...process.env, ...ALLOCATOR_ENV }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const file = createWriteStream(path.join(dataDir, 'server.log'));
  const log: ServerLog = { warn: 0, error: 0, errors: new Map(), tail: [] };
  for (const stream of [child.stdout!, child.stderr!]) {
    readline.createInterface({ input: stream }).on('line', (line) => {
      file.write(`${line}\n`);
      log.tail.push(line);
      if (log.tail.length > 40) log.tail.shift();
      if (/ WARN /.test(line)) log.warn++;
      if (/ ERROR /.test(line)) {
        log.error++;
        const key = line.slice(25, 185); // without the timestamp, so repeats collapse
        log.errors.set(key, (log.errors.get(key) ?? 0) + 1);
      }
    });
  }
  return { child, log };
}

/** Waits until every transport answers (models load first: this takes a while). */
async function waitReady(child: ChildProcess, timeoutMs = 300_000): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before it was ready`);
    const ok = await Promise.all([
      answers(`http://${HOST}:${PORTS.metrics}/health`), answers(`http://${HOST}:${PORTS.ddfr}/persons`),
      answers(`http://${HOST}:${PORTS.reconstruction}/ws/sessions`), portOpen(PORTS.peopleCounter), portOpen(PORTS.watchme),
    ]);
    if (ok.every(Boolean)) return (Date.now() - t0) / 1000;
    await sleep(1000);
  }
  throw new Error(`the server was not ready after ${timeoutMs / 1000} s`);
}

/** Stops the server (SIGTERM, then SIGKILL after 40 s); how it ended and how long it took. */
async function stopServer(child: ChildProcess): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null) return `had already exited (${child.exitCode ?? child.signalCode})`;
  const t0 = Date.now();
  const exited = new Promise<string>((r) => child.once('exit', (code, signal) => r(`exited ${code ?? signal}`)));
  child.kill('SIGTERM');
  const how = await Promise.race([exited, deadline(40_000).then(() => 'timeout')]);
  if (how !== 'timeout') return `${how} ${((Date.now() - t0) / 1000).toFixed(1)} s after SIGTERM`;
  child.kill('SIGKILL');
  return `did not stop within 40 s of SIGTERM: ${await exited} after SIGKILL`;
}

// ---------------------------------------------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------------------------------------------

interface Sample {
  t: number; rss: number; heap: number; external: number; lagP99: number; fds: number; threads: number; handles: number;
  wsClients: number; cpu: number; actions: number;
}
type Figure = 'rss' | 'heap' | 'external' | 'lagP99' | 'fds' | 'threads' | 'handles';

/** The sum of every series of a metric in Prometheus text (NaN when absent). */
function metricSum(text: string, name: string): number {
  let sum = NaN;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum = (Number.isNaN(sum) ? 0 : sum) + v;
  }
  return sum;
}

function procStatus(pid: number): { rssKiB: number; threads: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), threads: field('Threads') };
}

let lastCpu: { s: number; at: number } | undefined;
async function takeSample(pid: number, t: number, actions: number): Promise<Sample> {
  const { rssKiB, threads } = procStatus(pid);
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  let text = '';
  try { text = await (await fetch(`http://${HOST}:${PORTS.metrics}/metrics`, { signal: AbortSignal.timeout(10_000) })).text(); } catch { /* NaN figures */ }
  const cpuS = metricSum(text, 'process_cpu_seconds_total');
  const now = Date.now();
  const cpu = lastCpu && Number.isFinite(cpuS) ? (cpuS - lastCpu.s) / ((now - lastCpu.at) / 1000) : NaN;
  if (Number.isFinite(cpuS)) lastCpu = { s: cpuS, at: now };
  return {
    t, rss: mib(rssKiB * 1024), threads, fds, actions, cpu,
    heap: mib(metricSum(text, 'nodejs_heap_size_used_bytes')), external: mib(metricSum(text, 'nodejs_external_memory_bytes')),
    lagP99: Math.round(metricSum(text, 'nodejs_eventloop_lag_p99_seconds') * 10_000) / 10, handles: metricSum(text, 'nodejs_active_handles_total'),
    wsClients: metricSum(text, 'sightline_ws_clients'),
  };
}

const sampleRow = (s: Sample): (string | number)[] => [
  `${Math.floor(s.t / 60)}:${String(Math.round(s.t % 60)).padStart(2, '0')}`, s.rss, s.heap, s.external, s.lagP99, s.fds, s.threads, s.handles,
  s.wsClients, Number.isFinite(s.cpu) ? s.cpu.toFixed(2) : '-', s.actions,
];
const SAMPLE_HEADERS = ['t', 'RSS MiB', 'heap MiB', 'external MiB', 'lag p99 ms', 'fds', 'threads', 'handles', 'ws clients', 'CPU cores', 'actions'];

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN; };

/** Drift of a figure after the warm-up: medians of the first and last k samples, and the least-squares trend. */
function drift(samples: Sample[], key: Figure, warmupS: number) {
  const after = samples.filter((s) => s.t >= warmupS && Number.isFinite(s[key]));
  const k = Math.max(1, Math.min(3, Math.floor(after.length / 3)));
  const base = median(after.slice(0, k).map((s) => s[key]));
  const end = median(after.slice(-k).map((s) => s[key]));
  const n = after.length;
  const mt = after.reduce((a, s) => a + s.t, 0) / n;
  const mv = after.reduce((a, s) => a + s[key], 0) / n;
  const slope = after.reduce((a, s) => a + (s.t - mt) * (s[key] - mv), 0) / Math.max(1e-9, after.reduce((a, s) => a + (s.t - mt) ** 2, 0));
  return { n, base, end, pct: ((end - base) / base) * 100, perHourPct: ((slope * 3600) / base) * 100 };
}

// ---------------------------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------------------------

let stopAt = Infinity;
let serverGone: string | undefined;
let stopping = false;
const running = (): boolean => Date.now() < stopAt && !serverGone;

const outcomes = new Map<string, number>();
const unexpected = new Map<string, number>();
let actions = 0;
const bump = (m: Map<string, number>, k: string): void => { m.set(k, (m.get(k) ?? 0) + 1); };

/** A WebSocket with a counter and `next(pred)`: the next text message that passes, or undefined on timeout or close. */
class Conn {
  closed?: { code: number };
  private waiters = new Set<{ pred: (t: string) => boolean; done: (t: string | undefined) => void }>();

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!this.waiters.size) return; // frames nobody waits for are not even decoded
      const text = isBinary ? `<binary ${data.length}>` : data.toString();
      for (const w of [...this.waiters]) if (w.pred(text)) w.done(text);
    });
    ws.on('close', (code: number) => {
      this.closed = { code };
      for (const w of [...this.waiters]) w.done(undefined);
    });
    ws.on('error', () => undefined);
  }

  next(pred: (t: string) => boolean = () => true, timeoutMs = 10_000): Promise<string | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const w = {
        pred,
        done: (t: string | undefined) => { clearTimeout(timer); this.waiters.delete(w); resolve(t); },
      };
      const timer = setTimeout(() => w.done(undefined), timeoutMs);
      this.waiters.add(w);
    });
  }

  /** What an unanswered message met: a closed socket (and its code) or silence. */
  quiet(): string { return this.closed ? `closed ${this.closed.code}` : 'silence'; }

  send(data: string | Buffer): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(data);
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.ws.close(1000);
    const ended = new Promise<void>((r) => this.ws.once('close', () => r()));
    await Promise.race([ended, deadline(3000)]);
    if (!this.closed) this.ws.terminate();
  }
}

type Opened = Conn | { refused: string };

/** Opens a client WebSocket: the open connection, or what refused it (an HTTP status, an error code). */
function openWs(url: string, opts: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<Opened> {
  return new Promise((resolve) => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers, handshakeTimeout: 15_000, perMessageDeflate: false, maxPayload: 64 * 2 ** 20 });
    } catch (err) {
      resolve({ refused: `client:${(err as Error).name}` }); // the ws client itself refused the URL or a header
      return;
    }
    let settled = false;
    const settle = (v: Opened) => { if (!settled) { settled = true; resolve(v); } };
    const conn = new Conn(ws);
    ws.once('open', () => settle(conn));
    ws.once('unexpected-response', (_req, res) => { res.resume(); ws.terminate(); settle({ refused: String(res.statusCode) }); });
    ws.once('error', (err: NodeJS.ErrnoException) => settle({ refused: err.code ?? err.message.slice(0, 40) }));
    ws.once('close', (code) => settle({ refused: `closed:${code}` }));
  });
}

type HttpResult = { status: number; text: string } | { status: 0; text: string; error: string };

async function http(method: string, url: string, body?: string | object, headers: Record<string, string> = {}): Promise<HttpResult> {
  try {
    const res = await fetch(url, {
      method, signal: AbortSignal.timeout(60_000),
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return { status: 0, text: '', error: cause?.code ?? (err as Error).name };
  }
}

const statusClass = (r: HttpResult): string => (r.status ? `${Math.floor(r.status / 100)}xx` : `error:${'error' in r ? r.error : '?'}`);
const parsed = <T>(text: string): T | undefined => { try { return JSON.parse(text) as T; } catch { return undefined; } };

/** One client loop's state: its rng, and where its outcomes are counted. */
class Client {
  scenario = '';
  constructor(readonly id: number, readonly rng: Rng) {}
  note(outcome: string): void { bump(outcomes, `${this.scenario}\t${outcome}`); actions++; }
  odd(what: string): void { bump(unexpected, `${this.scenario}: ${what}`); }
  /** Sleeps, but not past the end of the run. */
  stay(ms: number): Promise<void> { return sleep(Math.max(0, Math.min(ms, stopAt - Date.now()))); }
  /** Opens a WebSocket; a refusal is counted (and flagged when the request was a valid one). */
  async open(url: string, opts: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<Conn | undefined> {
    const r = await openWs(url, opts);
    if (r instanceof Conn) return r;
    this.note(`refused ${r.refused}`);
    this.odd(`a valid connection was refused (${r.refused})`);
    return undefined;
  }
}

/** Test material: real photos where the media folder has them (a face; people), else the small controls. */
const media = (name: string): Buffer | undefined => (existsSync(path.join('media', name)) ? readFileSync(path.join('media', name)) : undefined);
const FACE = media('messi5.jpg') ?? validImages().jpeg;
const PEOPLE = media('coco_000000000077.jpg') ?? validImages().jpeg;
const SCENE = validJpeg(320, 240);
let IMAGES: HostileImage[] = [];
let TOKEN = '';
let EMBEDDING: string | undefined;

/** The WatchMe embedding of the PEOPLE photo, asked once (and again after a failure). */
async function embedding(c: Client): Promise<string> {
  if (EMBEDDING) return EMBEDDING;
  const r = await http('POST', `http://${HOST}:${PORTS.watchme}/upload-embedding`, { image: b64(PEOPLE) });
  const e = r.status === 200 ? parsed<{ embedding?: string }>(r.text)?.embedding : undefined;
  if (!e) c.odd(`upload-embedding of a photo with people answered ${r.status}`);
  EMBEDDING = e;
  return e ?? 'not-an-embedding';
}

/** What a hostile image did: refused (null / error) or accepted, and whether that is what a careful server does. */
function judgeImage(c: Client, img: HostileImage, accepted: boolean | undefined): void {
  const got = accepted === undefined ? 'no answer' : accepted ? 'accepted' : 'refused';
  c.note(`image ${img.expect} -> ${got}`);
  if (accepted === undefined) c.odd(`no answer to image ${img.name}`);
  else if (accepted !== (img.expect === 'accept') && !img.mayDecode) c.odd(`image ${img.name}: expected ${img.expect}, ${got}`);
}

// --- People Counter: requests, hostile JSON, sometimes a reader that stops reading.
async function peopleCounter(c: Client): Promise<void> {
  const conn = await c.open(`ws://${HOST}:${PORTS.peopleCounter}/`);
  if (!conn) return;
  try {
    await c.stay(int(c.rng, 1000, 5000));
    conn.send(JSON.stringify({ type: 'get_all_faces', limit: 5 }));
    c.note((await conn.next((t) => t.includes('"all_faces"'), 20_000)) ? 'get_all_faces answered' : 'get_all_faces unanswered');
    conn.send(JSON.stringify({ type: 'get_face', face_id: int(c.rng, 1, 50) }));
    c.note((await conn.next((t) => t.includes('"face_image"'), 20_000)) ? 'get_face answered' : 'get_face unanswered');
    for (let i = int(c.rng, 1, 4); i > 0 && running() && !conn.closed; i--) {
      conn.send(chance(c.rng, 0.5) ? mutateProtocolMessage(c.rng, 'people-counter', JSON_OPTS).value : hostileJson(c.rng, JSON_OPTS));
      const a = await conn.next((t) => t.includes('"error"'), 3000);
      c.note(a ? 'hostile -> error' : `hostile -> ${conn.quiet()}`);
      await c.stay(int(c.rng, 200, 1000));
    }
    if (chance(c.rng, 0.3) && !conn.closed) {
      conn.ws.pause(); // a client that stops reading: the server must skip its frames, not queue them
      await c.stay(int(c.rng, 5000, 15_000));
      conn.ws.resume();
      c.note('slow reader');
    }
    await c.stay(int(c.rng, 1000, 4000));
  } finally { await conn.close(); }
}

// --- DDFR frames: a real face, hostile images (answered `null`), text frames.
async function ddfrFrames(c: Client): Promise<void> {
  const conn = await c.open(`ws://${HOST}:${PORTS.ddfr}/ws`);
  if (!conn) return;
  try {
    for (let i = int(c.rng, 2, 6); i > 0 && running() && !conn.closed; i--) {
      const r = c.rng();
      if (r < 0.35) {
        conn.send(FACE);
        const a = await conn.next(undefined, 30_000);
        c.note(a?.startsWith('{"status":"ok"') ? 'face -> ok' : `face -> ${a ?? 'no answer'}`.slice(0, 40));
        if (!a?.startsWith('{"status":"ok"')) c.odd(`a valid face frame was answered ${a ?? 'with nothing'}`.slice(0, 100));
      } else if (r < 0.9) {
        const img = pick(c.rng, IMAGES);
        conn.send(img.bytes);
        const a = await conn.next(undefined, 30_000);
        judgeImage(c, img, a === undefined ? undefined : a !== 'null');
      } else {
        conn.send(hostileJson(c.rng, JSON_OPTS));
        const a = await conn.next(undefined, 5000);
        c.note(`text frame -> ${a === undefined ? conn.quiet() : a.slice(0, 20)}`);
      }
      await c.stay(int(c.rng, 200, 1500));
    }
  } finally { await conn.close(); }
}

// --- DDFR's known persons: one created, hostile bodies and photos, deleted again (so the store stays the same size).
async function ddfrPersons(c: Client): Promise<void> {
  const base = `http://${HOST}:${PORTS.ddfr}/persons`;
  const valid = { name: 'Soak', surname: `Client${c.id}`, birthday: '1990-01-01', relationship: 'amico', role: 'guest' };
  const created = await http('POST', base, valid);
  c.note(`create -> ${statusClass(created)}`);
  const id = created.status === 201 ? parsed<{ id?: number }>(created.text)?.id : undefined;
  if (id === undefined) c.odd(`POST /persons with a valid body answered ${created.status}`);
  const strays: number[] = [];
  try {
    for (let i = int(c.rng, 1, 3); i > 0 && running(); i--) {
      const r = await http('POST', base, chance(c.rng, 0.5) ? mutateMessage(c.rng, valid, JSON_OPTS) : hostileJson(c.rng, JSON_OPTS));
      c.note(`hostile create -> ${statusClass(r)}`);
      const stray = r.status === 201 ? parsed<{ id?: number }>(r.text)?.id : undefined;
      if (stray !== undefined) strays.push(stray); // a mutation that is still valid (an unknown field dropped, say)
      if (r.status >= 500 || r.status === 0) c.odd(`hostile POST /persons answered ${r.status || statusClass(r)}`);
    }
    if (id !== undefined && running()) {
      const good = chance(c.rng, 0.3);
      const img = pick(c.rng, IMAGES);
      const r = await http('POST', `${base}/${id}/photos`, { image: b64(good ? FACE : img.bytes) });
      c.note(`photo ${good ? 'face' : img.expect} -> ${statusClass(r)}`);
      if (good && r.status !== 201) c.odd(`a face photo was answered ${r.status}`);
      if (!good && (r.status >= 500 || r.status === 0)) c.odd(`photo ${img.name} answered ${r.status || statusClass(r)}`);
      const p = await http('PATCH', `${base}/${id}`, mutateMessage(c.rng, { name: 'Soak2', role: 'user' }, JSON_OPTS));
      c.note(`hostile patch -> ${statusClass(p)}`);
      c.note(`get -> ${statusClass(await http('GET', `${base}/${id}/photos`))}`);
    }
  } finally {
    for (const x of [...(id === undefined ? [] : [id]), ...strays]) {
      const d = await http('DELETE', `${base}/${x}`);
      c.note(`delete -> ${statusClass(d)}`);
    }
  }
}

// --- Pose stream v1: a valid token (subscribe, receive, hostile messages, unsubscribe), or a hostile one.
async function poseStream(c: Client): Promise<void> {
  const url = `ws://${HOST}:${PORTS.pose}/ws/v1`;
  if (chance(c.rng, 0.3)) {
    const bad = chance(c.rng, 0.6) ? hostileTokenNamed(c.rng, { maxBytes: 8192 }) : tamperToken(c.rng, TOKEN);
    let target = url;
    let headers: Record<string, string> | undefined;
    if (chance(c.rng, 0.3)) headers = { Authorization: `Bearer ${bad.value}` };
    else { try { target = `${url}?token=${encodeURIComponent(bad.value)}`; } catch { target = `${url}?token=${bad.value}`; } }
    const r = await openWs(target, { headers });
    if (r instanceof Conn) {
      c.note('bad token -> accepted');
      c.odd(`token case ${bad.name} was accepted`);
      await r.close();
    } else {
      c.note(`bad token -> ${r.refused}`);
    }
    return;
  }
  const conn = await c.open(`${url}?token=${TOKEN}&client_id=soak_${c.id}`, chance(c.rng, 0.5) ? { protocols: ['wifi-densepose-v1'] } : {});
  if (!conn) return;
  try {
    const sub = JSON.parse(JSON.stringify(VALID_MESSAGES['pose-stream'][0])) as { timestamp: string; data: { subscriptions: { filters: object }[] } };
    sub.timestamp = new Date().toISOString();
    sub.data.subscriptions[0].filters = { ...sub.data.subscriptions[0].filters, environment_id: ENVIRONMENT };
    conn.send(JSON.stringify(sub));
    const ack = await conn.next((t) => t.includes('"ack"') || t.includes('"error"'), 10_000);
    c.note(ack?.includes('"ack"') ? 'subscribe -> ack' : `subscribe -> ${ack ? 'error' : 'nothing'}`);
    await c.stay(int(c.rng, 3000, 10_000));
    conn.send(JSON.stringify({ type: 'heartbeat', timestamp: new Date().toISOString(), data: { client_id: `soak_${c.id}` } }));
    const beat = await conn.next((t) => t.includes('"heartbeat"') || t.includes('"ack"') || t.includes('"error"'), 5000);
    c.note(beat ? 'heartbeat answered' : 'heartbeat silent');
    for (let i = int(c.rng, 1, 3); i > 0 && running() && !conn.closed; i--) {
      conn.send(chance(c.rng, 0.6) ? mutateProtocolMessage(c.rng, 'pose-stream', JSON_OPTS).value : hostileJson(c.rng, JSON_OPTS));
      const a = await conn.next((t) => t.includes('"error"') || t.includes('"ack"'), 3000);
      c.note(a ? `hostile -> ${a.includes('"error"') ? 'error' : 'ack'}` : `hostile -> ${conn.quiet()}`);
    }
    type Ack = { data?: { active_subscriptions?: { subscription_id?: string }[] } };
    const ids = parsed<Ack>(ack ?? '')?.data?.active_subscriptions?.map((s) => s.subscription_id);
    if (ids?.length) conn.send(JSON.stringify({ type: 'unsubscribe', timestamp: new Date().toISOString(), data: { subscription_ids: ids } }));
    await c.stay(int(c.rng, 500, 2000));
  } finally { await conn.close(); }
}

// --- Reconstruction: a session, images good and bad, sometimes a model generated; the session deleted.
async function reconstruction(c: Client): Promise<void> {
  const base = `http://${HOST}:${PORTS.reconstruction}/ws/session`;
  const odd = chance(c.rng, 0.2);
  const query = odd
    ? pick(c.rng, ['?max_images=0x10', '?max_images=1e3', '?process_res=-1', '?num_max_points=1e400', '?max_images=5&max_images=-1', '?max_images=%'])
    : '?max_images=4&process_res=128';
  const created = await http('POST', `${base}/create${query}`);
  c.note(`create${odd ? ' (odd query)' : ''} -> ${statusClass(created)}`);
  const id = created.status === 200 ? parsed<{ session_id?: string }>(created.text)?.session_id : undefined;
  if (!odd && id === undefined) c.odd(`POST /ws/session/create answered ${created.status}`);
  if (created.status >= 500 || created.status === 0) c.odd(`create${query} answered ${created.status || statusClass(created)}`);
  if (id === undefined) return;
  try {
    const conn = await c.open(`ws://${HOST}:${PORTS.reconstruction}/ws/reconstruct/${encodeURIComponent(id)}`);
    if (!conn) return;
    try {
      await conn.next((t) => t.includes('"connected"'), 10_000);
      let acked = 0;
      for (let i = int(c.rng, 1, 3); i > 0 && running() && !conn.closed; i--) {
        const r = c.rng();
        if (r < 0.4) {
          conn.send(JSON.stringify({ type: 'image', data: b64(chance(c.rng, 0.5) ? SCENE : PEOPLE), filename: `soak_${i}.jpg` }));
          const a = await conn.next((t) => t.includes('"ack"') || t.includes('"error"'), 30_000);
          if (a?.includes('"ack"')) acked++;
          c.note(`image -> ${a?.includes('"ack"') ? 'ack' : a ? 'error' : 'nothing'}`);
        } else if (r < 0.75) {
          const img = pick(c.rng, IMAGES);
          conn.send(JSON.stringify({ type: 'image', data: b64(img.bytes), filename: pick(c.rng, ['x.png', '../../../x.jpg', 'a\u0000b.jpg', '']) }));
          const a = await conn.next((t) => t.includes('"ack"') || t.includes('"error"'), 30_000);
          if (a?.includes('"ack"')) acked++;
          judgeImage(c, img, a === undefined ? undefined : a.includes('"ack"'));
        } else {
          conn.send(mutateProtocolMessage(c.rng, 'reconstruction', JSON_OPTS).value);
          const a = await conn.next((t) => t.includes('"error"') || t.includes('"ack"'), 3000);
          c.note(a ? `hostile -> ${a.includes('"error"') ? 'error' : 'ack'}` : `hostile -> ${conn.quiet()}`);
        }
      }
      if (acked > 0 && chance(c.rng, 0.3) && running() && !conn.closed) {
        conn.send(JSON.stringify({ type: 'generate', incremental: false }));
        const a = await conn.next((t) => t.includes('"complete"') || t.includes('"error"'), 120_000);
        c.note(`generate -> ${a?.includes('"complete"') ? 'complete' : a ? 'error' : 'nothing'}`);
      }
    } finally { await conn.close(); }
  } finally {
    c.note(`delete -> ${statusClass(await http('DELETE', `${base}/${encodeURIComponent(id)}`))}`);
  }
}

// --- WatchMe: uploads (good and hostile), ping, single frames, a little live tracking, hostile messages.
async function watchme(c: Client): Promise<void> {
  const emb = await embedding(c);
  if (chance(c.rng, 0.3)) {
    const img = pick(c.rng, IMAGES);
    const body = pick(c.rng, [
      hostileJson(c.rng, JSON_OPTS), JSON.stringify({ image: b64(img.bytes) }), mutateMessage(c.rng, { image: b64(SCENE) }, JSON_OPTS),
    ]);
    const r = await http('POST', `http://${HOST}:${PORTS.watchme}/upload-embedding`, body);
    c.note(`hostile upload -> ${statusClass(r)}`);
    if (r.status >= 500 || r.status === 0) c.odd(`hostile upload-embedding answered ${r.status || statusClass(r)}`);
  }
  const conn = await c.open(`ws://${HOST}:${PORTS.watchme}/video-stream/soak_${c.id}_${int(c.rng, 0, 1e6)}`);
  if (!conn) return;
  try {
    conn.send(JSON.stringify({ type: 'ping' }));
    c.note((await conn.next((t) => t.includes('"pong"'), 10_000)) ? 'ping -> pong' : 'ping -> nothing');
    for (let i = int(c.rng, 1, 2); i > 0 && running() && !conn.closed; i--) {
      conn.send(JSON.stringify({ type: 'single_frame', frame: b64(PEOPLE), person_embed: emb }));
      const a = await conn.next((t) => t.includes('"matches"') || t.includes('"status"'), 30_000);
      c.note(`single_frame -> ${a?.includes('"matches"') ? 'matches' : a ? 'status' : 'nothing'}`);
      await c.stay(1000);
    }
    if (chance(c.rng, 0.5) && running() && !conn.closed) {
      conn.send(JSON.stringify({ type: 'start_tracking', person_embed: emb, video_source: 0, fps_limit: 2 }));
      c.note((await conn.next((t) => t.includes('"status"'), 10_000)) ? 'start_tracking answered' : 'start_tracking silent');
      await c.stay(int(c.rng, 3000, 8000));
      conn.send(JSON.stringify({ type: 'stop_tracking' }));
      c.note((await conn.next((t) => t.includes('"status"'), 10_000)) ? 'stop_tracking answered' : 'stop_tracking silent');
      await c.stay(1000); // live matches still in flight arrive (unawaited, so dropped) before the next question
    }
    for (let i = int(c.rng, 1, 2); i > 0 && running() && !conn.closed; i--) {
      if (chance(c.rng, 0.5)) {
        const img = pick(c.rng, IMAGES);
        conn.send(JSON.stringify({ type: 'single_frame', frame: b64(img.bytes), person_embed: emb }));
        const a = await conn.next((t) => t.includes('"matches"') || t.includes('"status"'), 30_000);
        judgeImage(c, img, a === undefined ? undefined : a.includes('"matches"'));
      } else {
        conn.send(mutateProtocolMessage(c.rng, 'watchme', JSON_OPTS).value);
        const a = await conn.next((t) => t.includes('"status"') || t.includes('"matches"'), 3000);
        c.note(a ? 'hostile -> answered' : `hostile -> ${conn.quiet()}`);
      }
    }
  } finally { await conn.close(); }
}

// --- Raw HTTP requests and hand-made WebSocket handshakes, followed by hostile frames.
function hostileFrames(rng: Rng): Buffer {
  return Buffer.concat(pick(rng, [
    () => [wsFrame(0x3, 'reserved opcode')],
    () => [wsFrame(0x1, '{"type":"ping"}', { mask: false })],
    () => [wsFrame(0x1, invalidUtf8(rng))],
    () => [wsFrame(0x2, 'x', { declaredLength: 2n ** 62n })],
    () => [wsFrame(0x9, 'x'.repeat(200))],
    () => [wsFrame(0x1, '{"ty', { fin: false }), wsFrame(0x1, 'pe":1}')],
    () => [wsFrame(0x0, 'orphan continuation')],
    () => [wsFrame(0x1, hostileJson(rng), { rsv: 4 })],
    () => [wsFrame(0x8, Buffer.from([0x03]))],
    () => [wsFrame(0x1, hostileJson(rng, JSON_OPTS))],
    () => [wsFrame(0x2, pick(rng, IMAGES).bytes)],
    () => [wsFrame(0x1, '{"type":"ping"}', { fin: false }), ...Array.from({ length: 200 }, () => wsFrame(0x0, 'x', { fin: false }))],
  ])());
}

async function raw(c: Client): Promise<void> {
  const port = pick(c.rng, [PORTS.peopleCounter, PORTS.ddfr, PORTS.reconstruction, PORTS.watchme, PORTS.metrics]);
  if (chance(c.rng, 0.65)) {
    const target = chance(c.rng, 0.5) ? pick(c.rng, SERVED_PATHS) : oddUrls(c.rng, { longPathBytes: 8192 });
    const req = rawRequestNamed(c.rng, { host: `${HOST}:${port}`, path: target, maxBodyBytes: 64 * 1024 });
    try {
      const r = await sendRaw(port, req.value, { timeoutMs: 10_000, untilAnswered: true });
      c.note(`http ${r.status ? `${Math.floor(r.status / 100)}xx` : 'no status'} ${r.closed}`);
      if ((r.status ?? 0) >= 500) c.odd(`raw ${req.name} on :${port} answered ${r.status}`);
    } catch (err) {
      c.note(`http ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      c.odd(`raw ${req.name} on :${port}: ${(err as Error).message}`);
    }
    return;
  }
  const target = pick(c.rng, [
    '/', '/ws', `/ws/v1?token=${TOKEN}`, `/video-stream/soak_raw_${c.id}`, '/ws/reconstruct/nonexistent', oddUrls(c.rng, { longPathBytes: 4096 }),
  ]);
  const headers = chance(c.rng, 0.3) ? pick(c.rng, [
    { 'Sec-WebSocket-Key': null }, { 'Sec-WebSocket-Version': '8' }, { 'Sec-WebSocket-Protocol': 'wifi-densepose-v1' },
    { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' }, { Origin: 'null' }, { Host: null },
  ]) : {};
  try {
    const r = await upgradeRaw(port, target, headers, { thenSend: hostileFrames(c.rng), afterMs: 1000, timeoutMs: 10_000 });
    const close = r.frames.find((f) => f.opcode === 0x8)?.code;
    c.note(`upgrade ${r.status ?? 'none'} ${r.closed}${close ? ` close ${close}` : ''}`);
    if ((r.status ?? 0) >= 500) c.odd(`upgrade ${target.slice(0, 60)} on :${port} answered ${r.status}`);
  } catch (err) {
    c.note(`upgrade ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

const SCENARIOS: [string, number, (c: Client) => Promise<void>][] = [
  ['people-counter', 2, peopleCounter], ['ddfr-frames', 2, ddfrFrames], ['ddfr-persons', 1, ddfrPersons], ['pose-stream', 2, poseStream],
  ['reconstruction', 1, reconstruction], ['watchme', 1, watchme], ['raw', 3, raw],
];

async function clientLoop(i: number): Promise<void> {
  const rng = prng(SEED * 1000 + i);
  const c = new Client(i, rng);
  await c.stay(i * 1500); // stagger the start
  const total = SCENARIOS.reduce((a, s) => a + s[1], 0);
  while (running()) {
    let r = rng() * total;
    const [name, , run] = SCENARIOS.find((s) => (r -= s[1]) < 0) ?? SCENARIOS[0];
    c.scenario = name;
    try { await run(c); } catch (err) { c.note(`threw ${(err as Error).message.slice(0, 60)}`); c.odd(`threw ${(err as Error).message.slice(0, 100)}`); }
    await c.stay(int(rng, 500, 3000));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  console.log(`soak: ${MINUTES} min, ${CLIENTS} clients, seed ${SEED}, a sample every ${SAMPLE_S} s; graph ${GRAPH}; loadavg ${loadavg()}`);
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx tsc -p tsconfig.json)`);
  for (const [name, port] of Object.entries(PORTS)) {
    if (await portOpen(port)) throw new Error(`port ${port} (${name}) is already in use: another server is running; stop it first`);
  }
  await waitForQuietMachine('soak', Number(args['max-wait-load']));
  IMAGES = hostileImages();

  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sightline-soak-'));
  const { child, log } = startServer(dataDir);
  const cleanup = () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); };
  process.on('exit', cleanup);
  child.once('exit', (code, signal) => { if (!stopping) serverGone ??= `the server exited (${code ?? signal})`; });
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.log('\nSIGINT: ending the run early (again to quit at once)');
    stopAt = Date.now();
  });

  try {
    const readyS = await waitReady(child);
    const { stdout } = await promisify(execFile)(process.execPath,
      [CLI, 'token', GRAPH, '--data-dir', dataDir, '--ttl', String(Math.ceil(MINUTES * 60 + 3600))], { encoding: 'utf8' });
    TOKEN = stdout.trim();
    const pid = child.pid!;
    console.log(`server pid ${pid} ready after ${readyS.toFixed(0)} s; clients start now`);

    const samples: Sample[] = [];
    const t0 = Date.now();
    const durationMs = MINUTES * 60_000;
    stopAt = t0 + durationMs;
    await takeSample(pid, 0, 0); // primes the CPU figure and resets the lag histogram
    const loops = Array.from({ length: CLIENTS }, (_, i) => clientLoop(i));
    let lastActions = 0;
    while (running()) {
      await sleep(Math.min(SAMPLE_S * 1000, Math.max(0, stopAt - Date.now())));
      if (serverGone) break;
      const s = await takeSample(pid, (Date.now() - t0) / 1000, actions - lastActions);
      lastActions = actions;
      samples.push(s);
      console.log(`  ${SAMPLE_HEADERS.map((h, i) => `${h} ${sampleRow(s)[i]}`).join(', ')}`);
      if (Date.now() >= stopAt) break;
    }
    stopAt = Math.min(stopAt, Date.now());
    console.log('clients finishing ...');
    await Promise.race([Promise.all(loops), deadline(150_000)]);

    const warmupS = ((Date.now() - t0) / 1000) * WARMUP_FRACTION;
    table(`The server over time (warm-up: the first ${warmupS.toFixed(0)} s)`, SAMPLE_HEADERS, samples.map(sampleRow));
    if (!serverGone) {
      await sleep(10_000); // sockets closed by the clients' last scenarios settle
      const idle = await takeSample(pid, (Date.now() - t0) / 1000, 0);
      table('10 s after the last client left', SAMPLE_HEADERS, [sampleRow(idle)]);
      console.log(`WebSocket clients still counted by the server: ${idle.wsClients} (target 0)`);
    }
    const figures: [Figure, string][] = [['rss', 'RSS MiB'], ['heap', 'JS heap MiB'], ['external', 'external MiB'], ['fds', 'open fds'],
      ['threads', 'threads'], ['handles', 'active handles'], ['lagP99', 'event-loop lag p99 ms']];
    table(`Drift after the warm-up (target |drift| <= ${TARGET_DRIFT_PCT} %)`, ['figure', 'samples', 'start', 'end', 'drift %', 'trend %/h', 'verdict'],
      figures.map(([key, label]) => {
        const d = drift(samples, key, warmupS);
        if (d.n < 2) return [label, d.n, '-', '-', '-', '-', 'too few samples'];
        return [label, d.n, d.base, d.end, d.pct.toFixed(1), d.perHourPct.toFixed(1), Math.abs(d.pct) <= TARGET_DRIFT_PCT ? 'ok' : 'over'];
      }));
    console.log('(the lag p99 is noisy and floors at the 10 ms sampling precision; fds, threads and handles move with the clients connected)');

    table(`Client outcomes (${actions} in all)`, ['scenario', 'outcome', 'count'],
      [...outcomes].sort((a, b) => a[0].localeCompare(b[0])).map(([k, n]) => [...k.split('\t'), n]));
    if (unexpected.size) {
      table('Unexpected answers (worth a look)', ['what', 'count'], [...unexpected].sort((a, b) => b[1] - a[1]).slice(0, 40).map(([k, n]) => [k, n]));
    }
  } finally {
    stopping = true;
    const how = await stopServer(child);
    console.log(`\nserver ${how}`);
    console.log(`server log: ${log.warn} warnings, ${log.error} errors${log.errors.size ? '; errors:' : ''}`);
    for (const [line, n] of [...log.errors].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${n} x ${line}`);
    if (serverGone) {
      console.log(`\n${serverGone}; last log lines:`);
      for (const l of log.tail) console.log(`  ${l}`);
      process.exitCode = 1;
    }
    if (args['keep-data']) console.log(`data directory kept: ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
    console.log(`loadavg at end: ${loadavg()}`);
  }
}

main().catch((err: unknown) => { console.error(err); process.exitCode = 1; });

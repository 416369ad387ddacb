/**
 * A fuzz campaign against a running Sightline: the default graph served by a child process (so a crash is seen as an
 * exit, with the input that caused it), hostile inputs of every class sent in seeded batches — raw HTTP requests, odd
 * request targets, WebSocket handshakes, protocol messages, REST bodies, hostile images, bad tokens — and after each
 * batch the checks: the server is alive, every protocol still answers a good request, answers have their documented
 * shapes with no internals, and its RSS stays within a bound. Used by test/fuzz/fuzz.test.ts (bounded) and
 * bench/fuzz.ts (long).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { parse, stringify } from 'yaml';
import { prng } from '../prng.js';
import { hostileImages, validImages } from './images.js';
import {
  hostileJsonNamed, hostileTokenNamed, int, mutateProtocolMessage, oddUrlNamed, pick, rawRequestNamed, type Protocol, type Rng,
} from './inputs.js';
import { sendRaw, upgradeRaw } from './raw-http.js';

const BIN = path.resolve('dist/bin/sightline.cjs');
const run = promisify(execFile);

export interface Target {
  ports: { counter: number; main: number; watchme: number; metrics: number; console: number };
  token: string;
  pid: number;
  dataDir: string;
  /** Set once the process has exited (a crash during fuzzing). */
  exited: { code: number | null; signal: string | null } | null;
  stderr: () => string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

/** Starts the default graph (ports moved to free ones) in a child process and waits until it answers. */
export async function startTarget(graphFile = 'config/examples/default.yaml'): Promise<Target> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sightline-fuzz-'));
  const ports = { counter: await freePort(), main: await freePort(), watchme: await freePort(), metrics: await freePort(), console: await freePort() };
  const g = parse(readFileSync(graphFile, 'utf8')) as { transports: Record<string, { port?: number }> };
  for (const [id, t] of Object.entries(g.transports)) {
    t.port = id === 'people-counter' ? ports.counter : id === 'watchme' ? ports.watchme : id === 'metrics' ? ports.metrics : id === 'console' ? ports.console : ports.main;
  }
  const file = path.join(dataDir, 'graph.yaml');
  writeFileSync(file, stringify(g));
  const child: ChildProcess = spawn(process.execPath, [BIN, 'run', file, '--data-dir', dataDir, '--host', '127.0.0.1', '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MALLOC_ARENA_MAX: '2' } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-64 * 1024); });
  const target: Target = {
    ports, token: '', pid: child.pid!, dataDir, exited: null, stderr: () => stderr,
    stop: async () => {
      if (!target.exited) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  child.once('exit', (code, signal) => { target.exited = { code, signal }; });
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (target.exited) throw new Error(`the server exited while starting: ${JSON.stringify(target.exited)}\n${stderr}`);
    try {
      if ((await fetch(`http://127.0.0.1:${ports.metrics}/health`)).status < 600) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`the server did not answer within 120 s\n${stderr}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  target.token = (await run(process.execPath, [BIN, 'token', file, '--data-dir', dataDir, '--ttl', '86400'])).stdout.trim();
  return target;
}

/** Resident memory of a process, MiB. */
export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN; // the process is gone
  }
}

/** What an answer must never show a client: stack frames, file paths of the server, internal exception texts. */
const INTERNALS = [
  /\bat [\w.<>]+ \(?(file:|\/)[^)\s]+:\d+/, /node:internal/, /Maximum call stack/, /\/tmp\/sightline-fuzz-/, /dist\/(transports|inference|pipeline)\//,
  /TypeError|ReferenceError|RangeError:/, /ECONNRESET|EPIPE/, /\bundefined is not\b/, /Cannot read properties/,
];

export function internalsIn(text: string): string | null {
  for (const re of INTERNALS) if (re.test(text)) return re.source;
  return null;
}

export interface Finding { batch: string; input: string; problem: string }

export interface BatchStats { name: string; inputs: number; answered: number; errors: number; ms: number }

export interface CampaignOptions {
  seed: number;
  /** Inputs per batch, by class (scaled up for long runs). */
  scale: number;
  /** Peak RSS may not exceed this multiple of the RSS measured before the campaign. */
  rssFactor: number;
  log?: (line: string) => void;
}

export interface CampaignResult {
  batches: BatchStats[];
  findings: Finding[];
  inputs: number;
  rssStartMiB: number;
  rssPeakMiB: number;
}

/** The documented error shapes of the HTTP APIs: FastAPI's `{detail}` or the pose stream's `{error, message}`. */
function httpShapeProblem(status: number | undefined, headers: Record<string, string>, body: string): string | null {
  if (status === undefined) return null;
  if (status >= 500 && status !== 503) return `status ${status}`;
  const leak = internalsIn(body);
  if (leak) return `internals in the answer (${leak})`;
  if (status >= 400 && status !== 426 && (headers['content-type'] ?? '').startsWith('application/json') && body) {
    try {
      const j = JSON.parse(body) as Record<string, unknown>;
      if (typeof j.detail !== 'string' && !(typeof j.error === 'string' && typeof j.message === 'string')) return `error body of another shape: ${body.slice(0, 120)}`;
    } catch {
      return `an error body that is not JSON: ${body.slice(0, 80)}`;
    }
  }
  return null;
}

/** A WebSocket client for fuzzing: answers collected as text, the close code kept. */
class FuzzSocket {
  readonly answers: string[] = [];
  closeCode: number | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d, binary) => { if (!binary) this.answers.push(d.toString()); });
    ws.on('close', (code) => { this.closeCode = code; });
    ws.on('error', () => undefined);
  }

  static open(url: string, protocols: string[] = []): Promise<FuzzSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { maxPayload: 256 * 1024 * 1024 });
      const s = new FuzzSocket(ws);
      ws.once('open', () => resolve(s));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
    });
  }

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  /** Waits until `n` answers arrived, the socket closed, or `ms` passed. */
  async until(n: number, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (this.answers.length < n && this.open && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Close codes a server may use to end a hostile client's socket. */
const FAIR_CLOSE = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1013, 4001, 1006, 1005]);

/** Checks one WebSocket answer against its protocol's documented message shapes. */
function wsShapeProblem(protocol: Protocol | 'ddfr', text: string): string | null {
  const leak = internalsIn(text);
  if (leak) return `internals in a message (${leak})`;
  if (protocol === 'ddfr' && text === 'null') return null;
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return `not JSON: ${text.slice(0, 80)}`;
  }
  if (typeof m !== 'object' || m === null) return `not an object: ${text.slice(0, 80)}`;
  switch (protocol) {
    case 'watchme':
      return m.type === 'status' || m.type === 'matches' ? null : `unknown message ${text.slice(0, 80)}`;
    case 'reconstruction':
      return ['connected', 'ack', 'progress', 'complete', 'delta', 'finalized', 'error'].includes(String(m.type)) ? null : `unknown message ${text.slice(0, 80)}`;
    case 'people-counter':
      return typeof m.error === 'string' || ['face_image', 'all_faces', 'stats', 'frame', 'event'].includes(String(m.type)) ? null : `unknown message ${text.slice(0, 80)}`;
    case 'ddfr':
      return m.status === 'ok' || m.status === 'error' ? null : `unknown message ${text.slice(0, 80)}`;
    case 'pose-stream': {
      if (m.type !== 'error') return typeof m.type === 'string' ? null : 'no type';
      const code = (m.data as { error_code?: unknown } | undefined)?.error_code;
      return ['SUBSCRIPTION_ERROR', 'RATE_LIMIT_EXCEEDED', 'CONNECTION_ERROR', 'INVALID_MESSAGE'].includes(String(code)) ? null : `undocumented error code ${String(code)}`;
    }
  }
}

export class Campaign {
  readonly findings: Finding[] = [];
  readonly batches: BatchStats[] = [];
  private rssPeak = 0;
  private readonly rssStart: number;
  private inputs = 0;
  private readonly rng: Rng;
  private readonly hostile = hostileImages({ bomb: true });
  /** Reconstruction sessions the campaign made (deleted after each batch, so the server's session cap is not the test). */
  private readonly sessions = new Set<string>();
  private readonly valid = validImages();

  constructor(private readonly t: Target, private readonly o: CampaignOptions) {
    this.rng = prng(o.seed);
    this.rssStart = rssMiB(t.pid);
  }

  private url(port: number, p: string): string {
    return `http://127.0.0.1:${port}${p}`;
  }

  private find(batch: string, input: string, problem: string): void {
    this.findings.push({ batch, input: input.slice(0, 300), problem });
    this.o.log?.(`FINDING ${batch}: ${problem} — input ${JSON.stringify(input.slice(0, 160))}`);
  }

  /** Runs one batch, then the checks that follow every batch. */
  private async batch(name: string, n: number, one: (i: number) => Promise<boolean>, parallel = 1): Promise<void> {
    const t0 = Date.now();
    let answered = 0;
    let next = 0;
    let stop = false;
    // `parallel` lanes take inputs in order (the inputs themselves are drawn in order, so a seed replays them).
    const lane = async (): Promise<void> => {
      while (!stop && next < n) {
        const i = next++;
        if (this.t.exited) { stop = true; break; }
        try {
          if (await one(i)) answered++;
        } catch (err) {
          // A refused connection means nobody listens any more: found below as a dead server.
          if (this.t.exited || (err as { code?: string }).code === 'ECONNREFUSED') { stop = true; break; }
        }
        this.inputs++;
      }
    };
    await Promise.all(Array.from({ length: parallel }, lane));
    await this.deleteSessions();
    const stats = { name, inputs: n, answered, errors: 0, ms: Date.now() - t0 };
    this.batches.push(stats);
    await this.check(name);
    stats.errors = this.findings.filter((f) => f.batch === name).length;
    this.o.log?.(`${name}: ${n} inputs in ${stats.ms} ms, ${answered} answered; RSS ${rssMiB(this.t.pid).toFixed(0)} MiB`);
  }

  private async deleteSessions(): Promise<void> {
    for (const id of [...this.sessions]) {
      this.sessions.delete(id);
      await fetch(this.url(this.t.ports.main, `/ws/session/${id}`), { method: 'DELETE' }).catch(() => undefined);
    }
  }

  private async newSession(query: string): Promise<string> {
    const r = await fetch(this.url(this.t.ports.main, `/ws/session/create${query}`), { method: 'POST' });
    const id = ((await r.json()) as { session_id: string }).session_id;
    this.sessions.add(id);
    return id;
  }

  /** After each batch: alive, every protocol answers a good request, RSS within its bound. */
  private async check(batch: string): Promise<void> {
    if (this.t.exited) {
      this.find(batch, '(after the batch)', `the server exited: ${JSON.stringify(this.t.exited)}\n${this.t.stderr().slice(-2000)}`);
      return;
    }
    const rss = rssMiB(this.t.pid);
    this.rssPeak = Math.max(this.rssPeak, rss);
    if (rss > this.rssStart * this.o.rssFactor) this.find(batch, '(after the batch)', `RSS ${rss.toFixed(0)} MiB over ${this.o.rssFactor}× ${this.rssStart.toFixed(0)} MiB`);
    for (const [what, problem] of await this.goodRequests()) if (problem) this.find(batch, `(good request: ${what})`, problem);
  }

  /** One good request of each protocol; answers [what, problem or null]. */
  async goodRequests(): Promise<[string, string | null][]> {
    const { ports, token } = this.t;
    const out: [string, string | null][] = [];
    const attempt = async (what: string, fn: () => Promise<string | null>): Promise<void> => {
      try { out.push([what, await fn()]); } catch (err) { out.push([what, `failed: ${(err as Error).message}`]); }
    };
    await attempt('metrics', async () => ((await fetch(this.url(ports.metrics, '/metrics'))).status === 200 ? null : 'not 200'));
    await attempt('persons', async () => {
      const r = await fetch(this.url(ports.main, '/persons'));
      return r.status === 200 && Array.isArray(await r.json()) ? null : `GET /persons ${r.status}`;
    });
    await attempt('reconstruction', async () => {
      const r = await fetch(this.url(ports.main, '/ws/session/create?max_images=2'), { method: 'POST' });
      if (r.status !== 200) return `create ${r.status}`;
      const id = ((await r.json()) as { session_id: string }).session_id;
      const d = await fetch(this.url(ports.main, `/ws/session/${id}`), { method: 'DELETE' });
      return d.status === 200 ? null : `delete ${d.status}`;
    });
    await attempt('ddfr', async () => {
      const s = await FuzzSocket.open(`ws://127.0.0.1:${ports.main}/ws`);
      s.ws.send(this.valid.jpeg);
      await s.until(1, 20_000);
      s.close();
      return s.answers[0]?.startsWith('{"status":"ok"') ? null : `answered ${s.answers[0]?.slice(0, 80)}`;
    });
    await attempt('people-counter', async () => {
      const s = await FuzzSocket.open(`ws://127.0.0.1:${ports.counter}/`);
      s.ws.send(JSON.stringify({ type: 'get_face', face_id: 0 }));
      await s.until(5, 3000);
      s.close();
      return s.answers.some((a) => a.includes('"face_image"')) ? null : 'no face_image answer';
    });
    await attempt('pose-stream', async () => {
      const s = await FuzzSocket.open(`ws://127.0.0.1:${ports.main}/ws/v1?token=${token}`);
      await s.until(1, 5000);
      s.close();
      return s.answers[0]?.includes('"connection_status"') ? null : `first message ${s.answers[0]?.slice(0, 80)}`;
    });
    await attempt('watchme', async () => {
      const s = await FuzzSocket.open(`ws://127.0.0.1:${ports.watchme}/video-stream/fuzz_probe_${int(this.rng, 0, 1e9)}`);
      s.ws.send(JSON.stringify({ type: 'ping' }));
      await s.until(1, 5000);
      s.close();
      return s.answers[0]?.includes('"pong"') ? null : `answered ${s.answers[0]?.slice(0, 80)}`;
    });
    return out;
  }

  /** Raw HTTP/1.1 requests of every kind, to every port. */
  async rawHttp(n: number): Promise<void> {
    const ports = Object.values(this.t.ports);
    await this.batch('raw HTTP requests', n, async () => {
      const port = pick(this.rng, ports);
      const req = rawRequestNamed(this.rng, { host: `127.0.0.1:${port}`, path: pick(this.rng, ['/', '/persons', '/ws', '/ws/v1', '/ws/session/create', '/upload-embedding', '/metrics']) });
      // A request cut short is not answered until the server's header timeout: no need to wait for that here.
      const r = await sendRaw(port, req.value, { timeoutMs: 400, untilAnswered: true });
      const problem = httpShapeProblem(r.status, r.headers, r.body);
      if (problem) this.find('raw HTTP requests', `${req.name}: ${req.value.toString('latin1')}`, problem);
      return r.status !== undefined;
    }, 8);
  }

  /** Odd request targets (GET and the other methods), to every port. */
  async oddTargets(n: number): Promise<void> {
    const ports = Object.values(this.t.ports);
    await this.batch('odd request targets', n, async () => {
      const port = pick(this.rng, ports);
      const target = oddUrlNamed(this.rng);
      const method = pick(this.rng, ['GET', 'GET', 'POST', 'DELETE', 'PUT', 'OPTIONS', 'HEAD']);
      const raw = Buffer.concat([Buffer.from(`${method} `, 'latin1'), Buffer.from(target.value, 'latin1'),
        Buffer.from(` HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, 'latin1')]);
      const r = await sendRaw(port, raw, { timeoutMs: 1500, untilAnswered: true });
      const problem = httpShapeProblem(r.status, r.headers, r.body);
      if (problem) this.find('odd request targets', `${method} ${target.name}: ${target.value.slice(0, 200)}`, problem);
      return r.status !== undefined;
    });
  }

  /** WebSocket handshakes on odd paths and with odd headers. */
  async handshakes(n: number): Promise<void> {
    const ports = Object.values(this.t.ports);
    const paths = ['/ws', '/ws/v1', '/ws/v1?token=', `/ws/v1?token=${this.t.token}&compression=zip`, '/video-stream/', '/video-stream/a b', '/ws/reconstruct/%',
      '/ws/reconstruct/nope', '/', '//', '/video-stream/%zz', `/video-stream/${'x'.repeat(300)}`, '/ws/v1?client_id=%00', '/dashboard'];
    await this.batch('WebSocket handshakes', n, async () => {
      const port = pick(this.rng, ports);
      const p = this.rng() < 0.5 ? pick(this.rng, paths) : oddUrlNamed(this.rng).value;
      const headers: Record<string, string | null> = this.rng() < 0.3 ? { 'Sec-WebSocket-Key': pick(this.rng, ['', 'short', 'x'.repeat(5000)]) }
        : this.rng() < 0.2 ? { 'Sec-WebSocket-Version': pick(this.rng, ['8', '99', '']) } : this.rng() < 0.2 ? { Upgrade: 'h2c' } : {};
      const r = await upgradeRaw(port, p, headers, { timeoutMs: 1500 });
      if (r.status !== undefined && r.status !== 101) {
        const problem = httpShapeProblem(r.status, r.headers, r.body);
        if (problem) this.find('WebSocket handshakes', `${p} ${JSON.stringify(headers)}`, problem);
      }
      return r.status !== undefined;
    }, 4);
  }

  /** Hostile messages on an open socket of each protocol (reopened when the server closes it, as it may). */
  async messages(protocol: Protocol, n: number): Promise<void> {
    const { ports, token } = this.t;
    const url = protocol === 'people-counter' ? `ws://127.0.0.1:${ports.counter}/`
      : protocol === 'watchme' ? `ws://127.0.0.1:${ports.watchme}/video-stream/fuzz_${int(this.rng, 0, 1e9)}`
        : protocol === 'pose-stream' ? `ws://127.0.0.1:${ports.main}/ws/v1?token=${token}` : '';
    let sessionUrl = url;
    if (protocol === 'reconstruction') sessionUrl = `ws://127.0.0.1:${ports.main}/ws/reconstruct/${await this.newSession('?max_images=3&process_res=64')}`;
    let s: FuzzSocket | null = null;
    let sent = 0;
    await this.batch(`${protocol} messages`, n, async () => {
      if (!s || !s.open) {
        if (s && s.closeCode !== null && !FAIR_CLOSE.has(s.closeCode)) this.find(`${protocol} messages`, '(close)', `closed with ${s.closeCode}`);
        if (s) this.checkAnswers(protocol, s);
        s = await FuzzSocket.open(protocol === 'watchme' ? `ws://127.0.0.1:${ports.watchme}/video-stream/fuzz_${int(this.rng, 0, 1e9)}` : sessionUrl);
        sent = 0;
      }
      const msg = this.rng() < 0.5 ? hostileJsonNamed(this.rng, { maxStringBytes: 256 * 1024 }) : mutateProtocolMessage(this.rng, protocol);
      s.ws.send(msg.value);
      sent++;
      // Pace: the limits of each protocol (e.g. 20 messages a second on WatchMe) answer a flood with one error a second.
      if (sent % 20 === 0) await s.until(sent, 200);
      return true;
    });
    if (s) {
      await (s as FuzzSocket).until(Number.MAX_SAFE_INTEGER, 500);
      this.checkAnswers(protocol, s);
      (s as FuzzSocket).close();
    }
  }

  private checkAnswers(protocol: Protocol | 'ddfr', s: FuzzSocket): void {
    for (const a of s.answers.splice(0)) {
      const problem = wsShapeProblem(protocol, a);
      if (problem) this.find(`${protocol} messages`, a, problem);
    }
  }

  /** Hostile REST bodies, headers and parameters on the persons API, reconstruction sessions and WatchMe's upload. */
  async restBodies(n: number): Promise<void> {
    const { ports } = this.t;
    const routes: [number, string, string][] = [
      [ports.main, 'POST', '/persons'], [ports.main, 'PATCH', '/persons/1'], [ports.main, 'PUT', '/persons/999999999999999'],
      [ports.main, 'POST', '/persons/1/photos'], [ports.main, 'DELETE', '/persons/abc'], [ports.main, 'POST', '/ws/session/create'],
      [ports.watchme, 'POST', '/upload-embedding'], [ports.main, 'GET', '/ws/session/%E0%A4%A'],
    ];
    const types = ['application/json', 'APPLICATION/JSON', 'application/json; charset=latin1', 'text/plain', 'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded', '', 'application/json, text/plain'];
    await this.batch('REST bodies', n, async () => {
      const [port, method, route] = pick(this.rng, routes);
      const q = route.includes('create') ? pick(this.rng, ['?max_images=0x10', '?max_images=1e3', '?process_res=-1', '?max_images=%', '?max_images=1&max_images=2',
        '?num_max_points=99999999999999999999', '']) : '';
      const body = hostileJsonNamed(this.rng, { maxStringBytes: 64 * 1024 });
      const headers: Record<string, string> = { 'content-type': pick(this.rng, types) };
      if (this.rng() < 0.3) headers.origin = pick(this.rng, ['https://evil.example', 'null', 'http://127.0.0.1:1']);
      const raw = Buffer.concat([Buffer.from(`${method} ${route}${q} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`
        + Object.entries(headers).filter(([, v]) => v).map(([k, v]) => `${k}: ${v}\r\n`).join('')
        + `Content-Length: ${Buffer.byteLength(body.value)}\r\nConnection: close\r\n\r\n`, 'latin1'), Buffer.from(body.value)]);
      const r = await sendRaw(port, raw, { timeoutMs: 5000, untilAnswered: true });
      const made = /"session_id":"([0-9a-f-]{36})"/.exec(r.body);
      if (made) this.sessions.add(made[1]);
      const problem = httpShapeProblem(r.status, r.headers, r.body) ?? (r.status !== undefined && r.status < 300 && headers.origin && method !== 'GET'
        && route.startsWith('/persons') ? `a cross-site ${method} ${route} answered ${r.status}` : null);
      if (problem) this.find('REST bodies', `${method} ${route}${q} ${JSON.stringify(headers)} ${body.name}`, problem);
      return r.status !== undefined;
    });
  }

  /** Every hostile image at every place that takes an image. */
  async images(rounds: number): Promise<void> {
    const { ports } = this.t;
    const places = ['ddfr frame', 'ddfr photo', 'watchme upload', 'watchme single_frame', 'reconstruction image'] as const;
    // A person for photos, a reconstruction session for images.
    const person = await (await fetch(this.url(ports.main, '/persons'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"Fuzz"}' })).json() as { id: number };
    const list = Array.from({ length: rounds }, () => this.hostile).flat();
    await this.batch('hostile images', list.length * places.length, async (i) => {
      const img = list[Math.floor(i / places.length)];
      const place = places[i % places.length];
      const before = rssMiB(this.t.pid);
      const t0 = Date.now();
      let answer: string;
      if (place === 'ddfr frame') {
        const s = await FuzzSocket.open(`ws://127.0.0.1:${ports.main}/ws`);
        s.ws.send(img.bytes);
        await s.until(1, 30_000);
        s.close();
        answer = s.answers[0] ?? `(closed ${s.closeCode})`;
        if (s.answers[0]) { const p = wsShapeProblem('ddfr', s.answers[0]); if (p) this.find('hostile images', `${img.name} @ ${place}`, p); }
      } else if (place === 'ddfr photo' || place === 'watchme upload') {
        const url = place === 'ddfr photo' ? this.url(ports.main, `/persons/${person.id}/photos`) : this.url(ports.watchme, '/upload-embedding');
        const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: img.bytes.toString('base64') }) });
        answer = `${r.status} ${await r.text()}`;
        const problem = httpShapeProblem(r.status, Object.fromEntries(r.headers), answer.slice(4));
        if (problem) this.find('hostile images', `${img.name} @ ${place}`, problem);
        if (img.expect === 'refuse' && !img.mayDecode && r.status < 400) this.find('hostile images', `${img.name} @ ${place}`, `accepted (${r.status})`);
      } else {
        const url = place === 'watchme single_frame' ? `ws://127.0.0.1:${ports.watchme}/video-stream/fuzz_img_${i}` : await this.sessionSocketUrl();
        const s = await FuzzSocket.open(url);
        if (place !== 'watchme single_frame') await s.until(1, 5000);
        const before = s.answers.length;
        s.ws.send(JSON.stringify(place === 'watchme single_frame' ? { type: 'single_frame', frame: img.bytes.toString('base64'), person_embed: 'x' }
          : { type: 'image', data: img.bytes.toString('base64'), filename: img.name }));
        await s.until(before + 1, 30_000);
        s.close();
        answer = s.answers.at(-1) ?? '';
        const p = answer ? wsShapeProblem(place === 'watchme single_frame' ? 'watchme' : 'reconstruction', answer) : null;
        if (p) this.find('hostile images', `${img.name} @ ${place}`, p);
        if (img.expect === 'refuse' && !img.mayDecode && answer.includes('"type":"ack"')) this.find('hostile images', `${img.name} @ ${place}`, 'accepted');
      }
      const grew = rssMiB(this.t.pid) - before;
      if (img.expect === 'refuse' && !img.mayDecode && grew > 50) this.find('hostile images', `${img.name} @ ${place}`, `RSS grew ${grew.toFixed(0)} MiB (${Date.now() - t0} ms)`);
      return answer.length > 0;
    });
  }

  private async sessionSocketUrl(): Promise<string> {
    return `ws://127.0.0.1:${this.t.ports.main}/ws/reconstruct/${await this.newSession('?max_images=50&process_res=64')}`;
  }

  /** Pose-stream handshakes with hostile tokens, in the query and in the Authorization header. */
  async tokens(n: number): Promise<void> {
    await this.batch('pose-stream tokens', n, async () => {
      const tok = hostileTokenNamed(this.rng, { maxBytes: 16 * 1024 });
      const inHeader = this.rng() < 0.4;
      const r = await upgradeRaw(this.t.ports.main, inHeader ? '/ws/v1' : `/ws/v1?token=${encodeURIComponent(tok.value)}`,
        inHeader ? { Authorization: `Bearer ${tok.value}` } : {}, { timeoutMs: 2000 });
      if (r.status === 101) this.find('pose-stream tokens', tok.name, 'a hostile token was accepted');
      else {
        const problem = httpShapeProblem(r.status, r.headers, r.body);
        if (problem) this.find('pose-stream tokens', tok.name, problem);
      }
      return r.status !== undefined;
    });
  }

  /** Every class, `scale` times the base counts. */
  async runAll(): Promise<CampaignResult> {
    const k = this.o.scale;
    await this.rawHttp(2000 * k);
    await this.oddTargets(2000 * k);
    await this.handshakes(600 * k);
    for (const p of ['people-counter', 'pose-stream', 'reconstruction', 'watchme'] as const) await this.messages(p, 1500 * k);
    await this.restBodies(1500 * k);
    await this.tokens(400 * k);
    await this.images(Math.max(1, Math.round(k / 4)));
    return this.result();
  }

  result(): CampaignResult {
    return { batches: this.batches, findings: this.findings, inputs: this.inputs, rssStartMiB: this.rssStart, rssPeakMiB: this.rssPeak };
  }
}

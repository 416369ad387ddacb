/**
 * People Counter fan-out benchmark: how does the server hold up when 100 / 500 / 1000 WebSocket clients on
 * loopback each receive `frame` messages at 10 fps plus `stats` twice a second?
 *
 *   UV_THREADPOOL_SIZE=64 node dist/bench/fanout.js [--clients 100,500,1000] [--seconds 20] [--fps 10]
 *       [--procs 2] [--source pipeline|bus] [--client-impl raw|ws] [--warmup 3] [--baseline-seconds 10] [--cap 15]
 *       [--max-wait-load 300]
 *
 * Server side (this process): startApp with the people-counter transport, fed with real annotated frames.
 *   --source pipeline (default, the real path): vtest.avi (768x576) in real time, looped, through an
 *     `annotate` stage (JPEG quality 70, about 60 KB), no inference. The annotate stage and the transport
 *     get a rate cap of 1.5 x --fps so that their wall-clock throttles do not eat frames that arrive a few ms
 *     early; the source's own clock sets the rate.
 *   --source bus: a few seconds of real annotated vtest frames are captured first, then replayed as
 *     'packet' events on the bus on an exact --fps clock (the pipeline itself only runs a 16x16 test source
 *     with no stages), so decode and JPEG encoding are not in the server's CPU figures.
 *   Either way `count.stats` is published on the bus every 500 ms, exactly as the count stage does (the
 *   count stage itself needs tracks, hence inference).
 * Client side: --procs child processes of this script (`--client` mode), never this one, so their CPU is not
 *   the server's. Clients are minimal raw-socket WebSocket clients (--client-impl ws: the ws library, which costs
 *   the shared 2 cores about 4x more per message). Each client computes, per message, delivery latency = receive time - the `timestamp` the
 *   server put in the message (local time, ms resolution; the clock is shared on loopback).
 *
 * Measured in the server process over each window: CPU (process.cpuUsage delta / wall, and the main thread
 * alone from /proc), RSS, event-loop delay (monitorEventLoopDelay), sightline_ws_dropped_total, and the time
 * each synchronous fan-out pass takes (bus.publish of the packet: base64 + JSON + every ws.send).
 *
 * Prints tables only; it never asserts and never exits non-zero on timings.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { parseGraph } from '../app/catalog.js';
import { loadSettings, type ResolvedSettings } from '../config/settings.js';
import { startApp, type App } from '../app/app.js';
import type { BusEvents, Topic } from '../core/events.js';
import { createLogger } from '../core/log.js';
import type { Packet } from '../core/types.js';
import { loadavg as load, percentile, table } from './report.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VTEST = path.join(ROOT, 'media', 'vtest.avi');
const PIPELINE = 'plaza';
const PROTOCOL = 'people-counter';
const STATS_INTERVAL_MS = 500;
const TARGET_P99_MS = 50;
const MAX_LATENCY_BIN = 60_000;

// ---------------------------------------------------------------------------------------------------
// Shared helpers.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const f0 = (v: number): string => (Number.isFinite(v) ? v.toFixed(0) : '-');
const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
const cores = (): number => Math.max(1, os.availableParallelism?.() ?? os.cpus().length);


/** Sparse latency histogram (1 ms bins) as sent over IPC: [ms, count] pairs. */
type Hist = [number, number][];

function histPercentiles(parts: Hist[]): { n: number; p50: number; p99: number; max: number; mean: number } {
  const merged = new Map<number, number>();
  for (const h of parts) for (const [ms, c] of h) merged.set(ms, (merged.get(ms) ?? 0) + c);
  const keys = [...merged.keys()].sort((a, b) => a - b);
  const n = keys.reduce((a, k) => a + merged.get(k)!, 0);
  if (!n) return { n: 0, p50: NaN, p99: NaN, max: NaN, mean: NaN };
  const at = (q: number): number => {
    const want = Math.max(1, Math.ceil(q * n));
    let seen = 0;
    for (const k of keys) { seen += merged.get(k)!; if (seen >= want) return k; }
    return keys[keys.length - 1];
  };
  const mean = keys.reduce((a, k) => a + k * merged.get(k)!, 0) / n;
  return { n, p50: at(0.5), p99: at(0.99), max: keys[keys.length - 1], mean };
}

const maxOf = (xs: number[]): number => xs.reduce((a, v) => Math.max(a, v), -Infinity);

/** monitorEventLoopDelay samples the gap between ticks of a timer of period ELD_RES_MS: lag = sample - period. */
const ELD_RES_MS = 10;
const lagMs = (ns: number): number => Math.max(0, ns / 1e6 - ELD_RES_MS);


/** CPU seconds the main thread (tid = pid) has run so far, from schedstat (ns); NaN off Linux. */
function mainThreadCpuS(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
  } catch {
    return NaN;
  }
}

/** Busy CPU seconds of the whole machine so far (/proc/stat), NaN where unavailable. */
function machineCpuS(): { busy: number; steal: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return { busy: (user + nice + system + irq + softirq) / 100, steal: (steal ?? 0) / 100 }; // USER_HZ
  } catch {
    return { busy: NaN, steal: NaN };
  }
}

/** Soft limit on open files, from /proc/self/limits (Infinity where unknown). */
function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const v = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return v === undefined || v === 'unlimited' ? Infinity : Number(v);
  } catch {
    return Infinity;
  }
}

// ---------------------------------------------------------------------------------------------------
// Client mode: a child process holding `count` sockets; talks to the parent over IPC.

interface ClientReport {
  index: number;
  clients: number;
  connected: number;
  connectErrors: number;
  wallS: number;
  frames: number;
  stats: number;
  other: number;
  bytes: number;
  framesPerClient: { min: number; max: number };
  statsPerClient: { min: number; max: number };
  frameHist: Hist;
  statsHist: Hist;
  /** Messages whose latency came out negative (ms rounding), counted as 0. */
  negative: number;
  closedDuringRun: number;
  cpuS: number;
  sysS: number;
  eldP99Ms: number;
  eldMaxMs: number;
}

/**
 * start: the planned window (CPU and loop lag are measured over it); stop: the window the server really measured
 * (its timers can fire late), and only messages it stamped inside that one are counted (the clock is shared).
 */
type ToChild = { cmd: 'start'; fromMs: number; toMs: number } | { cmd: 'stop'; fromMs: number; toMs: number } | { cmd: 'exit' };
type FromChild = { kind: 'ready'; connected: number; errors: number } | { kind: 'report'; report: ClientReport };

/** Per-socket counters, and for the raw client the frame-parser state. */
interface Conn {
  close(): void;
}

const TS_KEY = Buffer.from('"timestamp":"');
const PREFIX = Buffer.from('{"type":"');
const HEAD_BYTES = PREFIX.length + 1;
/** Enough of a message's end for `,"timestamp":"YYYY-MM-DD HH:MM:SS.mmm"}` (39 bytes). */
const TAIL_BYTES = 64;

/**
 * A minimal WebSocket client on a raw socket: handshake, then unmasked server frames parsed in place from one
 * reused read buffer (net `onread`), keeping only each message's first and last bytes. The ws library's client
 * allocates and concatenates every 80 KB message, and with 1000 sockets that garbage makes the load generator
 * cost more CPU than the server it measures (on a 2-core machine they compete). `--client-impl ws` uses ws.
 */
class RawConn implements Conn {
  private state: 'http' | 'header' | 'payload' = 'http';
  private http = '';
  private readonly hdr = Buffer.alloc(14);
  private hdrLen = 0;
  private need = 2;
  private opcode = 0;
  private remaining = 0;
  private length = 0;
  private readonly head = Buffer.alloc(HEAD_BYTES);
  private headLen = 0;
  private readonly tail = Buffer.alloc(TAIL_BYTES);
  private tailLen = 0;
  readonly socket: net.Socket;

  constructor(port: number, readBuffer: Buffer, private readonly onOpen: (err?: Error) => void,
    private readonly onMessage: (c: RawConn, head: Buffer, tail: Buffer, bytes: number) => void, private readonly onClose: () => void) {
    this.socket = net.connect({
      host: '127.0.0.1', port, noDelay: true,
      onread: { buffer: readBuffer, callback: (n: number, buf: Uint8Array) => { this.feed(buf as Buffer, n); return true; } },
    });
    const key = randomBytes(16).toString('base64');
    this.socket.once('connect', () => this.socket.write(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
    this.socket.once('error', (err) => { if (this.state === 'http') this.onOpen(err); });
    this.socket.once('close', () => { if (this.state === 'http') this.onOpen(new Error('closed during handshake')); else this.onClose(); });
  }

  close(): void { this.socket.destroy(); }

  private feed(buf: Buffer, n: number): void {
    let i = 0;
    while (i < n) {
      if (this.state === 'http') {
        const text = buf.toString('latin1', i, n);
        const before = this.http.length;
        this.http += text;
        const end = this.http.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!this.http.startsWith('HTTP/1.1 101')) { this.onOpen(new Error(this.http.split('\r\n')[0])); this.socket.destroy(); return; }
        i += end + 4 - before;
        this.state = 'header';
        this.hdrLen = 0;
        this.need = 2;
        this.onOpen();
      } else if (this.state === 'header') {
        while (i < n && this.hdrLen < this.need) this.hdr[this.hdrLen++] = buf[i++];
        if (this.hdrLen < this.need) return;
        const len7 = this.hdr[1] & 0x7f;
        const full = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.hdr[1] & 0x80 ? 4 : 0);
        if (this.need < full) { this.need = full; continue; }
        this.opcode = this.hdr[0] & 0x0f;
        this.length = this.remaining = len7 < 126 ? len7 : len7 === 126 ? this.hdr.readUInt16BE(2) : Number(this.hdr.readBigUInt64BE(2));
        this.headLen = this.tailLen = 0;
        this.state = 'payload';
        if (this.remaining === 0) this.done();
      } else {
        const take = Math.min(this.remaining, n - i);
        if (this.headLen < HEAD_BYTES) {
          const h = Math.min(HEAD_BYTES - this.headLen, take);
          buf.copy(this.head, this.headLen, i, i + h);
          this.headLen += h;
        }
        if (take >= TAIL_BYTES) {
          buf.copy(this.tail, 0, i + take - TAIL_BYTES, i + take);
          this.tailLen = TAIL_BYTES;
        } else {
          const keep = Math.min(this.tailLen, TAIL_BYTES - take);
          this.tail.copyWithin(0, this.tailLen - keep, this.tailLen);
          buf.copy(this.tail, keep, i, i + take);
          this.tailLen = keep + take;
        }
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.done();
      }
    }
  }

  private done(): void {
    this.state = 'header';
    this.hdrLen = 0;
    this.need = 2;
    // The server never fragments: text (1) and binary (2) frames are whole messages; close (8) ends the socket.
    if (this.opcode === 1 || this.opcode === 2) this.onMessage(this, this.head.subarray(0, this.headLen), this.tail.subarray(0, this.tailLen), this.length);
    else if (this.opcode === 8) this.socket.destroy();
  }
}

async function clientMain(port: number, count: number, index: number, impl: 'raw' | 'ws'): Promise<void> {
  const send = (m: FromChild): void => { process.send?.(m); };
  const conns: Conn[] = [];
  let measuring = false;
  let fromMs = Infinity;
  let toMs = -Infinity;
  let closedDuringRun = 0;
  // One entry per message stamped near or inside the window; filtered to the server's real window at stop.
  let log = { conn: [] as number[], kind: [] as number[], sentMs: [] as number[], latency: [] as number[], bytes: [] as number[] };
  const connIndex = new Map<Conn, number>();

  // `YYYY-MM-DD HH:MM:SS.mmm` (local time) → epoch ms; the seconds part is cached, it changes once a second.
  let cachedKey = '';
  let cachedMs = 0;
  const parseTs = (s: string): number => {
    const key = s.slice(0, 19);
    if (key !== cachedKey) {
      cachedKey = key;
      cachedMs = new Date(+s.slice(0, 4), +s.slice(5, 7) - 1, +s.slice(8, 10), +s.slice(11, 13), +s.slice(14, 16), +s.slice(17, 19)).getTime();
    }
    return cachedMs + Number(s.slice(20, 23));
  };

  /**
   * One message: `head` is its start, `tail` its end (both the whole message when it is short). The server writes
   * `type` first and `timestamp` last (JSON.stringify keeps insertion order), so both are read from the raw bytes
   * instead of parsing ~80 KB of JSON per frame.
   */
  const record = (c: Conn, head: Buffer, tail: Buffer, size: number): void => {
    if (!measuring) return;
    const now = Date.now();
    const at = tail.lastIndexOf(TS_KEY);
    const typed = head.length > PREFIX.length && head.subarray(0, PREFIX.length).equals(PREFIX);
    const t = typed ? head[PREFIX.length] : 0;
    const type = t === 0x66 /* f */ ? 'frame' : t === 0x73 /* s */ ? 'stats' : 'other';
    const sentMs = at >= 0 && at + TS_KEY.length + 23 <= tail.length ? parseTs(tail.toString('latin1', at + TS_KEY.length, at + TS_KEY.length + 23)) : NaN;
    if (!(sentMs >= fromMs - 2000 && sentMs < toMs + 2000)) return;
    log.conn.push(connIndex.get(c) ?? -1);
    log.kind.push(type === 'frame' ? 0 : type === 'stats' ? 1 : 2);
    log.sentMs.push(sentMs);
    log.latency.push(now - sentMs);
    log.bytes.push(size);
  };
  const onClose = (): void => { if (measuring) closedDuringRun++; };

  const readBuffer = Buffer.alloc(256 * 1024); // shared: libuv reads one socket at a time, each read handled before the next
  const connectOne = (): Promise<void> => new Promise((resolve, reject) => {
    if (impl === 'raw') {
      let settled = false;
      const c: RawConn = new RawConn(port, readBuffer, (err) => {
        if (settled) return;
        settled = true;
        if (err) reject(err); else { connIndex.set(c, conns.length); conns.push(c); resolve(); }
      }, record, onClose);
      return;
    }
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false, skipUTF8Validation: true });
    const c: Conn = { close: () => ws.terminate() };
    ws.once('open', () => { connIndex.set(c, conns.length); conns.push(c); ws.on('error', () => undefined); resolve(); });
    ws.once('error', reject);
    ws.on('message', (data) => {
      const b = data as Buffer;
      record(c, b.subarray(0, HEAD_BYTES), b.subarray(Math.max(0, b.length - TAIL_BYTES)), b.length);
    });
    ws.on('close', onClose);
  });

  let errors = 0;
  let next = 0;
  // A few connects at a time so the server's accept backlog never overflows.
  await Promise.all(Array.from({ length: Math.min(32, count) }, async () => {
    while (next < count) {
      next++;
      try { await connectOne(); } catch { errors++; }
    }
  }));
  send({ kind: 'ready', connected: conns.length, errors });

  const eld = monitorEventLoopDelay({ resolution: ELD_RES_MS });
  eld.enable();
  let cpu0 = process.cpuUsage();
  let cpu1 = cpu0;
  let eldP99Ms = NaN;
  let eldMaxMs = NaN;
  const sparse = (bins: Uint32Array): Hist => {
    const out: Hist = [];
    bins.forEach((c, ms) => { if (c) out.push([ms, c]); });
    return out;
  };
  const minMax = (xs: number[]): { min: number; max: number } => ({ min: xs.reduce((a, v) => Math.min(a, v), Infinity), max: maxOf(xs) });

  process.on('message', (m: ToChild) => {
    if (m.cmd === 'start') {
      closedDuringRun = 0;
      log = { conn: [], kind: [], sentMs: [], latency: [], bytes: [] };
      fromMs = m.fromMs;
      toMs = m.toMs;
      measuring = true;
      setTimeout(() => { eld.reset(); cpu0 = process.cpuUsage(); }, Math.max(0, fromMs - Date.now()));
      setTimeout(() => {
        cpu1 = process.cpuUsage();
        eldP99Ms = lagMs(eld.percentile(99));
        eldMaxMs = lagMs(eld.max);
      }, Math.max(0, toMs - Date.now()));
    } else if (m.cmd === 'stop') {
      measuring = false;
      const wallS = (toMs - fromMs) / 1000;
      const cpu = { user: cpu1.user - cpu0.user, system: cpu1.system - cpu0.system };
      const frameBins = new Uint32Array(MAX_LATENCY_BIN + 1);
      const statsBins = new Uint32Array(MAX_LATENCY_BIN + 1);
      const perConn = [new Uint32Array(conns.length), new Uint32Array(conns.length)];
      let frames = 0, stats = 0, other = 0, bytes = 0, negative = 0;
      for (let i = 0; i < log.kind.length; i++) {
        if (!(log.sentMs[i] >= m.fromMs && log.sentMs[i] < m.toMs)) continue;
        bytes += log.bytes[i];
        let latency = log.latency[i];
        if (latency < 0) { negative++; latency = 0; }
        const bin = Number.isFinite(latency) ? Math.min(MAX_LATENCY_BIN, Math.round(latency)) : MAX_LATENCY_BIN;
        const kind = log.kind[i];
        if (kind === 2) { other++; continue; }
        if (kind === 0) { frames++; frameBins[bin]++; } else { stats++; statsBins[bin]++; }
        if (log.conn[i] >= 0) perConn[kind][log.conn[i]]++;
      }
      send({
        kind: 'report',
        report: {
          index, clients: count, connected: conns.length, connectErrors: errors, wallS, frames, stats, other, bytes,
          framesPerClient: minMax([...perConn[0]]), statsPerClient: minMax([...perConn[1]]),
          frameHist: sparse(frameBins), statsHist: sparse(statsBins), negative, closedDuringRun,
          cpuS: (cpu.user + cpu.system) / 1e6, sysS: cpu.system / 1e6, eldP99Ms, eldMaxMs,
        },
      });
    } else if (m.cmd === 'exit') {
      for (const c of conns) c.close();
      setTimeout(() => process.exit(0), 50);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------------
// Server side.

interface Children {
  procs: ChildProcess[];
  reports(fromMs: number, toMs: number): Promise<ClientReport[]>;
  start(fromMs: number, toMs: number): void;
  exit(): Promise<void>;
}

async function spawnClients(port: number, total: number, procs: number, impl: string): Promise<{ children: Children; connected: number; errors: number }> {
  const n = Math.min(procs, total);
  const counts = Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
  const list = counts.map((count, index) => fork(SELF, ['--client', '--client-impl', impl, '--port', String(port), '--count', String(count), '--index', String(index)], {
    // No --cpu-prof or other flags of the server process in the clients (FANOUT_CLIENT_NODE_ARGS to profile them).
    execArgv: (process.env.FANOUT_CLIENT_NODE_ARGS ?? '').split(' ').filter(Boolean), stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  }));
  const once = <T extends FromChild['kind']>(cp: ChildProcess, kind: T): Promise<Extract<FromChild, { kind: T }>> =>
    new Promise((resolve, reject) => {
      const onMsg = (m: FromChild): void => { if (m.kind === kind) { cp.off('message', onMsg); cp.off('exit', onExit); resolve(m as Extract<FromChild, { kind: T }>); } };
      const onExit = (code: number | null): void => { cp.off('message', onMsg); reject(new Error(`client process exited (${code}) before "${kind}"`)); };
      cp.on('message', onMsg);
      cp.once('exit', onExit);
    });
  const ready = await Promise.all(list.map((cp) => once(cp, 'ready')));
  const children: Children = {
    procs: list,
    start: (fromMs, toMs) => list.forEach((cp) => cp.send({ cmd: 'start', fromMs, toMs } satisfies ToChild)),
    reports: async (fromMs, toMs) => {
      const waits = list.map((cp) => once(cp, 'report'));
      list.forEach((cp) => cp.send({ cmd: 'stop', fromMs, toMs } satisfies ToChild));
      return (await Promise.all(waits)).map((m) => m.report);
    },
    exit: async () => {
      await Promise.all(list.map((cp) => new Promise<void>((resolve) => {
        if (cp.exitCode !== null || cp.signalCode !== null) { resolve(); return; }
        const kill = setTimeout(() => cp.kill('SIGKILL'), 10_000);
        cp.once('exit', () => { clearTimeout(kill); resolve(); });
        cp.send({ cmd: 'exit' } satisfies ToChild);
      })));
    },
  };
  return { children, connected: ready.reduce((a, r) => a + r.connected, 0), errors: ready.reduce((a, r) => a + r.errors, 0) };
}

const dataDirs: string[] = [];

function settingsFor(): ResolvedSettings {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sightline-fanout-'));
  dataDirs.push(dataDir);
  return { ...loadSettings([], process.env), host: '127.0.0.1', logLevel: 'warn', dataDir };
}

/** Annotated vtest frames (real JPEGs from the annotate stage), for --source bus. */
async function captureFrames(seconds: number, log: ReturnType<typeof createLogger>): Promise<Packet['jpeg'][]> {
  const app = await startApp(parseGraph(`
sources:
  plaza: { uri: "file://${VTEST}", realtime: true, loop: true }
pipelines:
  plaza:
    source: plaza
    stages:
      - { id: annotate, use: annotate, with: { quality: 70, fps: 30 } }
`, 'fanout-capture.yaml'), settingsFor(), { log, serve: false });
  const out: Packet['jpeg'][] = [];
  const sub = app.bus.on('packet').subscribe((p) => { if (p.jpeg) out.push({ ...p.jpeg, data: p.jpeg.data.slice(0) }); });
  await sleep(seconds * 1000);
  sub.unsubscribe();
  await app.stop();
  return out;
}

function serverGraph(source: 'pipeline' | 'bus', fps: number, cap: number): string {
  const pipeline = source === 'pipeline'
    ? `
sources:
  plaza: { uri: "file://${VTEST}", realtime: true, loop: true, fps: ${fps} }
pipelines:
  plaza:
    source: plaza
    stages:
      - { id: annotate, use: annotate, with: { quality: 70, fps: ${cap} } }`
    : `
sources:
  idle: { uri: "test://black", width: 16, height: 16, fps: 1 }
pipelines:
  plaza:
    source: idle
    stages: []`;
  return `${pipeline}
transports:
  people-counter: { port: 0, pipeline: ${PIPELINE}, fps: ${cap} }
  metrics: { port: 0 }
`;
}

/** Calls fn at `hz` on an absolute schedule (no drift); after a stall it resumes without a catch-up burst. */
function ticker(hz: number, fn: () => void): () => void {
  const period = 1000 / hz;
  let next = performance.now() + period;
  let timer: NodeJS.Timeout;
  const loop = (): void => {
    fn();
    next += period;
    const now = performance.now();
    if (next < now) next = now + period / 2;
    timer = setTimeout(loop, next - now);
  };
  timer = setTimeout(loop, period);
  return () => clearTimeout(timer);
}

interface ServerWindow {
  /** The window as the server measured it (Date.now() when its timers fired). */
  fromMs: number;
  toMs: number;
  wallS: number;
  cpuS: number;
  sysS: number;
  mainCpuS: number;
  machineBusyS: number;
  machineStealS: number;
  framesIn: number;
  pipelineDropped: string;
  rssEndMb: number;
  rssMaxMb: number;
  heapMb: number;
  eldP50Ms: number;
  eldP99Ms: number;
  eldMaxMs: number;
  dropped: number;
  sentOut: number;
  framesPublished: number;
  framePassMs: number[];
  framePassCpuMs: number[];
  statsPassMs: number[];
  statsPassCpuMs: number[];
  jpegMeanBytes: number;
  closedLog: number;
}

interface Level {
  clients: number;
  connected: number;
  connectErrors: number;
  server: ServerWindow;
  reports: ClientReport[];
  loadStart: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '100,500,1000' },
      seconds: { type: 'string', default: '20' },
      fps: { type: 'string', default: '10' },
      procs: { type: 'string', default: '2' },
      source: { type: 'string', default: 'pipeline' },
      warmup: { type: 'string', default: '3' },
      'baseline-seconds': { type: 'string', default: '10' },
      cap: { type: 'string' },
      'max-wait-load': { type: 'string', default: '300' },
      // Client mode (internal).
      client: { type: 'boolean', default: false },
      port: { type: 'string' },
      count: { type: 'string' },
      index: { type: 'string', default: '0' },
      'client-impl': { type: 'string', default: 'raw' },
    },
  });
  if (values.client) {
    await clientMain(Number(values.port), Number(values.count), Number(values.index), values['client-impl'] === 'ws' ? 'ws' : 'raw');
    return;
  }

  const levels = values.clients.split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0);
  const seconds = Number(values.seconds);
  const fps = Number(values.fps);
  const procs = Math.max(1, Number(values.procs));
  const warmupS = Number(values.warmup);
  const baselineS = Number(values['baseline-seconds']);
  const source = values.source === 'bus' ? 'bus' : 'pipeline';
  const clientImpl = values['client-impl'] === 'ws' ? 'ws' : 'raw';
  const lines: string[] = [];
  const log = createLogger('warn', 'fanout', (l) => lines.push(l));

  console.log(`People Counter fan-out: clients ${levels.join(', ')}; ${seconds} s each; frames at ${fps} fps + stats every ${STATS_INTERVAL_MS} ms`);
  console.log(`source: ${source === 'pipeline' ? 'real pipeline (vtest.avi realtime → annotate, no inference)' : 'bus replay of captured annotated vtest frames'}; ` +
    `client processes: ${procs} (${clientImpl === 'raw' ? 'raw-socket WebSocket clients' : 'ws library clients'}); node ${process.version}; ${cores()} cores; UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(unset)'}`);
  console.log(`loadavg at start: ${load()}`);
  if (source === 'pipeline' && fps > 10) console.log(`note: vtest.avi is 10 fps; --fps ${fps} cannot be reached with --source pipeline (use --source bus)`);

  const fdLimit = openFileLimit();
  const need = Math.max(0, ...levels) + 200;
  console.log(`open-file limit (soft): ${fdLimit}; the largest level needs about ${need} in the server and ${Math.ceil(Math.max(0, ...levels) / procs) + 100} per client process`);
  if (fdLimit < need) {
    console.log(`WARNING: open-file limit too low; run as: bash -c 'ulimit -n 65536; UV_THREADPOOL_SIZE=64 node dist/bench/fanout.js ...'. Levels above ${fdLimit - 200} are skipped.`);
  }

  // Wait for a quiet machine before measuring.
  const maxWait = Number(values['max-wait-load']);
  const waitStart = Date.now();
  while (os.loadavg()[0] >= 2.5 && (Date.now() - waitStart) / 1000 < maxWait) {
    console.log(`  waiting for 1-min load < 2.5 (now ${os.loadavg()[0].toFixed(2)}, waited ${f0((Date.now() - waitStart) / 1000)} s)`);
    await sleep(10_000);
  }
  if (os.loadavg()[0] >= 2.5) console.log(`  load still ${os.loadavg()[0].toFixed(2)} after ${maxWait} s; measuring anyway (read "other procs" below)`);

  let replay: Packet['jpeg'][] = [];
  if (source === 'bus') {
    replay = await captureFrames(5, log);
    if (!replay.length) throw new Error('no annotated frames captured from vtest.avi');
  }

  // Caps above the source's rate by default: the throttles compare wall-clock gaps, and at a cap equal to the
  // rate a frame that arrives 2 ms early is skipped (--cap 10 shows it).
  const cap = values.cap ? Number(values.cap) : Math.min(60, Math.round(fps * 1.5 * 10) / 10);
  console.log(`annotate fps and people-counter fps caps: ${cap}`);
  const app: App = await startApp(parseGraph(serverGraph(source, fps, cap), 'fanout.yaml'), settingsFor(), { log });
  const port = app.portOf('people-counter')!;

  // Time every synchronous fan-out pass: the transport's bus subscribers run inside publish().
  let framesPublished = 0;
  let framePassMs: number[] = [];
  let framePassCpuMs: number[] = [];
  let statsPassMs: number[] = [];
  let statsPassCpuMs: number[] = [];
  let jpegBytes = 0;
  let sample: Packet['jpeg'] | undefined;
  const bus = app.bus;
  const original = bus.publish.bind(bus);
  bus.publish = <K extends Topic>(topic: K, event: BusEvents[K]): void => {
    const p = topic === 'packet' ? event as Packet : undefined;
    const frame = p?.pipeline === PIPELINE && p.jpeg !== undefined;
    // Main-thread CPU of the pass too (a syscall, so only around frames): wall time alone includes preemption.
    const timed = frame || topic === 'count.stats';
    const c0 = timed ? mainThreadCpuS() : 0;
    const t0 = performance.now();
    original(topic, event);
    const dt = performance.now() - t0;
    if (frame) {
      framePassCpuMs.push((mainThreadCpuS() - c0) * 1000);
      framesPublished++; framePassMs.push(dt); jpegBytes += p!.jpeg!.data.byteLength; sample ??= p!.jpeg;
    } else if (topic === 'count.stats') { statsPassCpuMs.push((mainThreadCpuS() - c0) * 1000); statsPassMs.push(dt); }
  };

  // count.stats twice a second, as the count stage publishes it.
  let countIn = 0;
  const stopStats = ticker(1000 / STATS_INTERVAL_MS, () => {
    if (Math.random() < 0.2) countIn++;
    bus.publish('count.stats', {
      pipeline: PIPELINE, source: PIPELINE, countIn, countOut: Math.floor(countIn / 2), faceCount: 0,
      dailyEventCount: 0, eventActive: false, currentEventCountIn: 0, atMs: Date.now(),
    });
  });
  let seq = 0;
  const stopFrames = source === 'bus'
    ? ticker(fps, () => {
      const jpeg = replay[seq % replay.length]!;
      const now = Date.now();
      bus.publish('packet', {
        pipeline: PIPELINE,
        frame: { source: PIPELINE, seq: seq++, ptsNs: 0, capturedAtMs: now, width: jpeg.width, height: jpeg.height, format: 'RGB', data: new ArrayBuffer(0) },
        jpeg,
      });
    })
    : () => undefined;

  const clientsNow = async (): Promise<number> =>
    (await app.metrics.wsClients.get()).values.find((v) => v.labels.protocol === PROTOCOL)?.value ?? 0;
  const counter = async (m: typeof app.metrics.wsDropped, direction?: string): Promise<number> =>
    (await m.get()).values.filter((v) => v.labels.protocol === PROTOCOL && (direction === undefined || (v.labels as Record<string,
      unknown>).direction === direction))
      .reduce((a, v) => a + v.value, 0);
  const eld = monitorEventLoopDelay({ resolution: ELD_RES_MS });
  eld.enable();
  const sourceFramesIn = async (): Promise<number> => (await app.metrics.framesIn.get()).values.reduce((a, v) => a + v.value, 0);
  const pipelineDrops = async (): Promise<Map<string, number>> => {
    const out = new Map<string, number>();
    for (const v of (await app.metrics.framesDropped.get()).values) {
      if (v.labels.pipeline !== PIPELINE) continue;
      const reason = String(v.labels.reason);
      out.set(reason, (out.get(reason) ?? 0) + v.value);
    }
    return out;
  };

  // Let the pipeline come up.
  const upBy = Date.now() + 30_000;
  while (framesPublished < fps * 2 && Date.now() < upBy) await sleep(200);
  if (framesPublished === 0) throw new Error('no annotated frames reached the bus in 30 s');

  /** One window: the clients are told its bounds first, then it starts 300 ms later on the shared clock. */
  const measure = async (seconds: number, onStart: (fromMs: number, toMs: number) => void): Promise<ServerWindow> => {
    const fromMs = Date.now() + 300;
    const toMs = fromMs + seconds * 1000;
    onStart(fromMs, toMs);
    await sleep(fromMs - Date.now());
    const dropped0 = await counter(app.metrics.wsDropped);
    const out0 = await counter(app.metrics.wsMessages, 'out');
    const logged0 = lines.length;
    framePassMs = []; framePassCpuMs = []; statsPassMs = []; statsPassCpuMs = []; framesPublished = 0; jpegBytes = 0;
    eld.reset();
    let rssMax = 0;
    const rssTimer = setInterval(() => { rssMax = Math.max(rssMax, process.memoryUsage().rss); }, 250);
    const cpu0 = process.cpuUsage();
    const main0 = mainThreadCpuS();
    const m0 = machineCpuS();
    const in0 = await sourceFramesIn();
    const drop0 = await pipelineDrops();
    const t0 = performance.now();
    const actualFromMs = Date.now();
    await sleep(toMs - Date.now());
    const actualToMs = Date.now();
    const wallS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const mainCpuS = mainThreadCpuS() - main0;
    const m1 = machineCpuS();
    const framesIn = (await sourceFramesIn()) - in0;
    const drop1 = await pipelineDrops();
    const pipelineDropped = [...drop1].map(([r, v]) => [r, v - (drop0.get(r) ?? 0)] as const).filter(([, v]) => v > 0).map(([r, v]) => `${r} ${v}`).join(', ') || 'none';
    clearInterval(rssTimer);
    const mem = process.memoryUsage();
    rssMax = Math.max(rssMax, mem.rss);
    const closedLog = lines.slice(logged0).map((l) => /disconnected (\d+) client/.exec(l)).reduce((a, m) => a + (m ? Number(m[1]) : 0), 0);
    return {
      fromMs: actualFromMs, toMs: actualToMs, wallS, cpuS: (cpu.user + cpu.system) / 1e6, sysS: cpu.system / 1e6, mainCpuS,
        machineBusyS: m1.busy - m0.busy, machineStealS: m1.steal - m0.steal,
      framesIn, pipelineDropped,
      rssEndMb: mem.rss / 2 ** 20, rssMaxMb: rssMax / 2 ** 20, heapMb: mem.heapUsed / 2 ** 20,
      eldP50Ms: lagMs(eld.percentile(50)), eldP99Ms: lagMs(eld.percentile(99)), eldMaxMs: lagMs(eld.max),
      dropped: (await counter(app.metrics.wsDropped)) - dropped0, sentOut: (await counter(app.metrics.wsMessages, 'out')) - out0,
      framesPublished, framePassMs, framePassCpuMs, statsPassMs, statsPassCpuMs, closedLog, jpegMeanBytes: jpegBytes / Math.max(1, framesPublished),
    };
  };

  const results: Level[] = [];
  if (baselineS > 0) {
    const loadStart = load();
    results.push({ clients: 0, connected: 0, connectErrors: 0, server: await measure(baselineS, () => undefined), reports: [], loadStart });
  }
  for (const n of levels) {
    if (n + 200 > fdLimit) { console.log(`skipping ${n} clients: open-file limit ${fdLimit}`); continue; }
    const loadStart = load();
    process.stdout.write(`\n${n} clients: connecting...`);
    const { children, connected, errors } = await spawnClients(port, n, procs, clientImpl);
    const by = Date.now() + 30_000;
    while ((await clientsNow()) < connected && Date.now() < by) await sleep(100);
    process.stdout.write(` ${connected} connected${errors ? ` (${errors} failed)` : ''}; warm-up ${warmupS} s; measuring ${seconds} s...`);
    await sleep(warmupS * 1000);
    const server = await measure(seconds, (fromMs, toMs) => children.start(fromMs, toMs));
    await sleep(1500); // messages stamped near the end of the window are still on their way
    const reports = await children.reports(server.fromMs, server.toMs);
    await children.exit();
    const gone = Date.now() + 15_000;
    while ((await clientsNow()) > 0 && Date.now() < gone) await sleep(100);
    console.log(' done');
    results.push({ clients: n, connected, connectErrors: errors, server, reports, loadStart });
    await sleep(2000);
  }

  stopFrames();
  stopStats();

  // Serialisation cost of one frame message (done once per frame, whatever the client count).
  let serialiseUs = NaN;
  let messageBytes = NaN;
  if (sample) {
    const jpeg = sample;
    const once = (): Buffer => Buffer.from(JSON.stringify({ type: 'frame', data: Buffer.from(jpeg.data).toString('base64'), timestamp: '2026-01-01 00:00:00.000' }));
    for (let i = 0; i < 50; i++) once();
    const t0 = performance.now();
    const N = 300;
    for (let i = 0; i < N; i++) messageBytes = once().length;
    serialiseUs = ((performance.now() - t0) * 1000) / N;
  }
  await app.stop();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });

  // ---- Report.
  const ordered = results;
  table(`Delivery (window ${seconds} s per level; baseline row = no clients, ${baselineS} s)`,
    ['clients', 'connected', 'frames pub/s', 'msgs sent/s', 'msgs recv/s', 'recv/s/client', 'frames/s/client min..max', 'stats/s/client', 'recv/sent %',
      'dropped', 'closed', 'MB/s recv'],
    ordered.map((l) => {
      const r = l.reports;
      const wall = l.server.wallS;
      const frames = r.reduce((a, x) => a + x.frames, 0);
      const stats = r.reduce((a, x) => a + x.stats, 0);
      const total = frames + stats + r.reduce((a, x) => a + x.other, 0);
      const fmin = r.length ? Math.min(...r.map((x) => x.framesPerClient.min)) / wall : NaN;
      const fmax = r.length ? Math.max(...r.map((x) => x.framesPerClient.max)) / wall : NaN;
      return [l.clients, l.connected, f2(l.server.framesPublished / wall), f0(l.server.sentOut / wall), f0(total / wall),
        f2(total / wall / Math.max(1, l.connected)),
        r.length ? `${f2(fmin)}..${f2(fmax)}` : '-', f2(stats / wall / Math.max(1, l.connected)),
        l.server.sentOut ? f1((total / l.server.sentOut) * 100) : '-', l.server.dropped, l.server.closedLog + r.reduce((a, x) => a + x.closedDuringRun, 0),
        f0(r.reduce((a, x) => a + x.bytes, 0) / wall / 2 ** 20)];
    }));
  console.log('  frames pub/s = annotated packets on the bus; msgs sent/s = sightline_ws_messages_total{direction="out"}; recv = messages the clients got');
  console.log('  that the server stamped inside the window (1.5 s allowed for the last ones to arrive). dropped = sightline_ws_dropped_total');
  console.log('  (frames skipped for backed-up clients); closed = clients the server disconnected.');

  table(`Delivery latency, ms (receive time - message timestamp; ms resolution; target p99 <= ${TARGET_P99_MS} ms)`,
    ['clients', 'frames n', 'frame p50', 'frame p99', 'frame max', 'stats n', 'stats p50', 'stats p99', 'stats max', `p99 <= ${TARGET_P99_MS}`],
    ordered.filter((l) => l.clients > 0).map((l) => {
      const fr = histPercentiles(l.reports.map((r) => r.frameHist));
      const st = histPercentiles(l.reports.map((r) => r.statsHist));
      const ok = fr.p99 <= TARGET_P99_MS && st.p99 <= TARGET_P99_MS;
      return [l.clients, fr.n, f0(fr.p50), f0(fr.p99), f0(fr.max), st.n, f0(st.p50), f0(st.p99), f0(st.max), ok ? 'yes' : 'no'];
    }));

  table('Server process (measured in the server; CPU in cores = CPU seconds / wall seconds)',
    ['clients', 'CPU', 'sys', 'main thread', 'other threads', 'RSS MB end', 'RSS MB max', 'heap MB', 'loop lag p50 ms', 'p99', 'max',
      'source fps', 'pipeline drops'],
    ordered.map((l) => {
      const s = l.server;
      return [l.clients, f2(s.cpuS / s.wallS), f2(s.sysS / s.wallS), f2(s.mainCpuS / s.wallS), f2((s.cpuS - s.mainCpuS) / s.wallS),
        f0(s.rssEndMb), f0(s.rssMaxMb), f0(s.heapMb), f1(s.eldP50Ms), f1(s.eldP99Ms), f1(s.eldMaxMs),
        source === 'bus' ? '(replay)' : f2(s.framesIn / s.wallS), s.pipelineDropped];
    }));
  console.log('  main thread = /proc/self/task/<pid>/schedstat; other threads = annotate workers, GStreamer, libuv pool. loop lag = monitorEventLoopDelay');
  console.log('  (10 ms timer, the period subtracted). source fps / pipeline drops: frames decoded, and dropped before the sink (stale = the');
  console.log('  pipeline was still busy when the next live frame came).');

  table('Fan-out pass: one synchronous bus.publish = base64 + JSON.stringify + broadcast() over every socket (ws.send -> socket write)',
    ['clients', 'frame pass wall p50 ms', 'p99', 'max', 'CPU p50 ms', 'p99', 'CPU us/client', 'stats pass wall p50 ms', 'p99', 'CPU p50 ms', 'CPU us/client'],
    ordered.map((l) => {
      const s = l.server;
      const cpu50 = percentile(s.framePassCpuMs, 0.5);
      return [l.clients, f2(percentile(s.framePassMs, 0.5)), f2(percentile(s.framePassMs, 0.99)), f2(maxOf(s.framePassMs)),
        f2(cpu50), f2(percentile(s.framePassCpuMs, 0.99)), l.clients ? f1((cpu50 * 1000) / l.clients) : '-',
        f2(percentile(s.statsPassMs, 0.5)), f2(percentile(s.statsPassMs, 0.99)), f2(percentile(s.statsPassCpuMs, 0.5)),
        l.clients ? f1((percentile(s.statsPassCpuMs, 0.5) * 1000) / l.clients) : '-'];
    }));
  console.log('  CPU = main-thread CPU during the pass (schedstat, ns); wall > CPU means the thread was runnable but not running (2 cores,');
  console.log('  shared with the clients) . The last socket in the loop cannot get the message before the pass ends.');

  table('Client processes and the rest of the machine (cores)',
    ['clients', 'client procs', 'client CPU', 'sys', 'max client loop lag p99 ms', 'other procs', 'steal', 'negative latencies', 'connect errors', 'loadavg at start'],
    ordered.map((l) => {
      const w = l.server.wallS;
      const clientCpu = l.reports.reduce((a, r) => a + r.cpuS, 0) / w;
      const other = (l.server.machineBusyS - l.server.cpuS) / w - clientCpu;
      return [l.clients, l.reports.length, f2(clientCpu), f2(l.reports.reduce((a, r) => a + r.sysS, 0) / w), f1(maxOf(l.reports.map((r) => r.eldP99Ms))),
        f2(other), f2(l.server.machineStealS / w), l.reports.reduce((a, r) => a + r.negative, 0), l.connectErrors, l.loadStart];
    }));
  console.log('  a busy client process reads late, which shows up as latency: read "client CPU" and "client loop lag" before blaming the server.');
  console.log('  other procs = machine busy CPU (/proc/stat) - server - clients: noise from other jobs.');

  const meanJpeg = maxOf(results.map((l) => l.server.jpegMeanBytes));
  console.log(`\nframe message: ${f0(messageBytes)} bytes for a ${sample ? f0(sample.data.byteLength) : '-'} byte ${sample?.width}x${sample?.height} JPEG ` +
    `(published JPEGs average ${f0(meanJpeg)} bytes, so messages about ${f0((meanJpeg * 4) / 3 + 60)} bytes); ` +
    `serialising it once (base64 + JSON.stringify + Buffer.from) takes ${f0(serialiseUs)} us`);
  if (lines.length) console.log(`\nserver log (warn and above, ${lines.length} lines):\n${lines.slice(0, 10).join('\n')}${lines.length > 10 ? '\n...' : ''}`);
  console.log(`\nloadavg at end: ${load()}`);
}

main().then(
  () => { if (!process.argv.includes('--client')) process.exit(0); },
  (err: unknown) => { console.error(err); process.exitCode = 1; },
);

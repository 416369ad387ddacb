/**
 * A raw TCP client for the fuzz suite, for loopback only: it writes bytes no HTTP library would send, reads whatever
 * comes back until the server closes or a timeout, and parses a status line, headers and body where there are any
 * (tolerating garbage). upgradeRaw does a WebSocket handshake by hand, so the server's own checks are what is tested,
 * not the `ws` client's; wsFrame builds (hostile) frames to send after it.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { rawRequest } from './inputs.js';

export type LoopbackHost = '127.0.0.1' | '::1';

/** Throws unless `host` is a loopback address: the fuzzers must never reach another machine. */
export function assertLoopback(host: string): asserts host is LoopbackHost {
  if (host !== '127.0.0.1' && host !== '::1') throw new Error(`raw-http: refusing to connect to ${JSON.stringify(host)}; loopback (127.0.0.1, ::1) only`);
}

export interface RawResponse {
  /** The first final status (a 100 Continue before it is skipped; 101 counts as final); undefined when none came. */
  status?: number;
  statusLine?: string;
  /** Headers of that response, names in lower case, repeated ones joined with ", ". */
  headers: Record<string, string>;
  /** Its body (de-chunked when chunked, cut at Content-Length when there is one), as UTF-8. */
  body: string;
  /**
   * Who ended the exchange: the server (FIN), our timeout, a reset (RST, EPIPE), or, only with `untilAnswered`, us
   * once a complete final response had arrived on a connection the server kept open.
   */
  closed: 'server' | 'timeout' | 'reset' | 'answered';
  /** Every status line found, in order (pipelined requests get several answers). */
  statuses: number[];
  /** Everything received (up to maxBytes). */
  raw: Buffer;
  /** Milliseconds from connect to the end. */
  ms: number;
}

export interface SendOptions {
  /** Give up after this long (default 5000 ms) and report `closed: 'timeout'`. */
  timeoutMs?: number;
  /** 127.0.0.1 (default) or ::1. */
  host?: string;
  /** Half-close after writing, so the server sees EOF (default false: the socket stays open as a client's would). */
  end?: boolean;
  /** Write the bytes in this many pieces (default 1) ... */
  pieces?: number;
  /** ... this far apart (default 50 ms): a slow client. */
  pieceDelayMs?: number;
  /** Keep at most this many received bytes (default 4 MiB); reading goes on, so `closed` stays right. */
  maxBytes?: number;
  /** Stop as soon as one complete final response has arrived (keep-alive servers otherwise cost the whole timeout). */
  untilAnswered?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Connects to the loopback port, writes `bytes`, and reads until the server closes, resets, or the timeout. Rejects
 * only when the connection cannot be made at all (ECONNREFUSED: nothing listens, e.g. the server crashed).
 */
export function sendRaw(port: number, bytes: Buffer | string, opts: SendOptions = {}): Promise<RawResponse> {
  const host = opts.host ?? '127.0.0.1';
  assertLoopback(host);
  const data = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1');
  const maxBytes = opts.maxBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let connected = false;
    let done = false;
    const t0 = performance.now();
    const socket = net.connect({ host, port });
    const finish = (closed: RawResponse['closed']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks);
      resolve({ ...parseResponse(raw), closed, raw, ms: Math.round(performance.now() - t0) });
    };
    const timer = setTimeout(() => finish('timeout'), opts.timeoutMs ?? 5000);
    socket.on('connect', () => {
      connected = true;
      void (async () => {
        const n = Math.max(1, Math.min(opts.pieces ?? 1, data.length || 1));
        for (let i = 0; i < n && !done && !socket.destroyed; i++) {
          if (i > 0) await sleep(opts.pieceDelayMs ?? 50);
          if (done || socket.destroyed) return;
          socket.write(data.subarray(Math.floor((i * data.length) / n), Math.floor(((i + 1) * data.length) / n)));
        }
        if (opts.end && !done && !socket.destroyed) socket.end();
      })();
    });
    socket.on('data', (d: Buffer) => {
      if (kept >= maxBytes) return;
      const part = d.subarray(0, maxBytes - kept);
      chunks.push(part);
      kept += part.length;
      if (opts.untilAnswered && finalResponseComplete(Buffer.concat(chunks))) finish('answered');
    });
    socket.on('end', () => finish('server'));
    socket.on('close', () => finish('server'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && !done) {
        done = true;
        clearTimeout(timer);
        reject(err);
        return;
      }
      finish('reset');
    });
  });
}

/**
 * The parts of one HTTP response found at `pos`, where the next one starts (-1: the rest was this one's body), and
 * whether all of it has arrived (a body without a length is complete only when the server closes).
 */
interface Parsed { status?: number; statusLine: string; headers: Record<string, string>; body: Buffer; next: number; complete: boolean }

function parseOne(raw: Buffer, pos: number): Parsed | undefined {
  const text = raw.toString('latin1', pos);
  if (!text.startsWith('HTTP/')) return undefined;
  let headEnd = text.indexOf('\r\n\r\n');
  let sep = 4;
  const lf = text.indexOf('\n\n');
  if (lf >= 0 && (headEnd < 0 || lf < headEnd)) { headEnd = lf; sep = 2; }
  const head = headEnd >= 0 ? text.slice(0, headEnd) : text;
  const lines = head.split(/\r?\n/);
  const statusLine = lines[0];
  const m = /^HTTP\/\d(?:\.\d)?\s+(\d{3})/.exec(statusLine);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const status = m ? Number(m[1]) : undefined;
  if (headEnd < 0) return { status, statusLine, headers, body: Buffer.alloc(0), next: -1, complete: false };
  const bodyStart = pos + headEnd + sep;
  // No body: 1xx, 204, 304 (and 101, after which the bytes are WebSocket frames, not HTTP).
  if (status !== undefined && (status < 200 || status === 204 || status === 304)) {
    return { status, statusLine, headers, body: Buffer.alloc(0), next: status === 101 ? -1 : bodyStart, complete: true };
  }
  if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
    const { body, next, complete } = dechunk(raw, bodyStart);
    return { status, statusLine, headers, body, next, complete };
  }
  const length = /^\d+$/.test(headers['content-length'] ?? '') ? Number(headers['content-length']) : undefined;
  if (length === undefined) return { status, statusLine, headers, body: raw.subarray(bodyStart), next: -1, complete: false };
  const end = Math.min(raw.length, bodyStart + length);
  return { status, statusLine, headers, body: raw.subarray(bodyStart, end), next: end < raw.length ? end : -1, complete: bodyStart + length <= raw.length };
}

/** A chunked body, leniently: stops at the last chunk, at garbage, or where the bytes end. */
function dechunk(raw: Buffer, start: number): { body: Buffer; next: number; complete: boolean } {
  const parts: Buffer[] = [];
  let pos = start;
  while (pos < raw.length) {
    const eol = raw.indexOf('\r\n', pos, 'latin1');
    if (eol < 0) break;
    const size = parseInt(raw.toString('latin1', pos, eol).split(';')[0].trim(), 16);
    if (!Number.isFinite(size) || size < 0) break;
    pos = eol + 2;
    if (size === 0) {
      const end = raw.indexOf('\r\n\r\n', pos - 2, 'latin1'); // trailers, then the blank line
      return { body: Buffer.concat(parts), next: end >= 0 && end + 4 < raw.length ? end + 4 : -1, complete: end >= 0 };
    }
    parts.push(raw.subarray(pos, Math.min(raw.length, pos + size)));
    pos += size + 2;
  }
  return { body: Buffer.concat(parts), next: -1, complete: false };
}

function parseAll(raw: Buffer): Parsed[] {
  const all: Parsed[] = [];
  for (let pos = 0; pos >= 0 && pos < raw.length && all.length < 1000;) {
    const p = parseOne(raw, pos);
    if (!p) break;
    all.push(p);
    pos = p.next;
  }
  return all;
}

const finalOf = (all: Parsed[]): Parsed | undefined => all.find((p) => p.status !== undefined && p.status !== 100) ?? all[0];

/** True once the first final response in `raw` has fully arrived. */
export const finalResponseComplete = (raw: Buffer): boolean => {
  const main = finalOf(parseAll(raw));
  return main !== undefined && main.status !== undefined && main.status !== 100 && main.complete;
};

/** Status, headers and body of the bytes a server sent (garbage tolerated: then only `body` is set). */
export function parseResponse(raw: Buffer): Pick<RawResponse, 'status' | 'statusLine' | 'headers' | 'body' | 'statuses'> {
  const all = parseAll(raw);
  const main = finalOf(all);
  if (!main) return { headers: {}, body: raw.toString('utf8'), statuses: [] };
  return {
    status: main.status, statusLine: main.statusLine, headers: main.headers, body: main.body.toString('utf8'),
    statuses: all.flatMap((p) => (p.status === undefined ? [] : [p.status])),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// WebSocket by hand
// ---------------------------------------------------------------------------------------------------------------

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** The Sec-WebSocket-Accept a server must answer for `key` (RFC 6455 §4.2.2). */
export const wsAccept = (key: string): string => createHash('sha1').update(key + WS_GUID).digest('base64');

export interface FrameOptions {
  fin?: boolean;
  /** RSV1..3 bits (0-7); non-zero without a negotiated extension is a protocol error. */
  rsv?: number;
  /** Clients must mask (default true); a mask of your own, or false for an unmasked (illegal) client frame. */
  mask?: boolean | Buffer;
  /** Declare this payload length instead of the real one (lies: huge, or longer than what follows). */
  declaredLength?: number | bigint;
}

/** One WebSocket frame: opcode 0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong; 0x3-0x7, 0xB-0xF are reserved. */
export function wsFrame(opcode: number, payload: Buffer | string = Buffer.alloc(0), opts: FrameOptions = {}): Buffer {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = BigInt(opts.declaredLength ?? data.length);
  const b0 = ((opts.fin ?? true) ? 0x80 : 0) | (((opts.rsv ?? 0) & 7) << 4) | (opcode & 0x0f);
  const mask = opts.mask === false ? undefined : Buffer.isBuffer(opts.mask) ? opts.mask.subarray(0, 4) : randomBytes(4);
  const maskBit = mask ? 0x80 : 0;
  let head: Buffer;
  if (len < 126n) head = Buffer.from([b0, maskBit | Number(len)]);
  else if (len < 65536n) { head = Buffer.alloc(4); head[0] = b0; head[1] = maskBit | 126; head.writeUInt16BE(Number(len), 2); }
  else { head = Buffer.alloc(10); head[0] = b0; head[1] = maskBit | 127; head.writeBigUInt64BE(BigInt.asUintN(64, len), 2); }
  if (!mask) return Buffer.concat([head, data]);
  const masked = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, masked]);
}

/** A close frame with a status code and reason. */
export const wsClose = (code = 1000, reason = ''): Buffer => {
  const p = Buffer.alloc(2 + Buffer.byteLength(reason));
  p.writeUInt16BE(code, 0);
  p.write(reason, 2);
  return wsFrame(0x8, p);
};

export interface ServerFrame { fin: boolean; opcode: number; payload: Buffer; /** For close frames. */ code?: number }

/** The (unmasked) frames a server sent, leniently: stops at an incomplete frame. */
export function parseWsFrames(buf: Buffer): ServerFrame[] {
  const out: ServerFrame[] = [];
  let pos = 0;
  while (pos + 2 <= buf.length && out.length < 10_000) {
    const b0 = buf[pos];
    const b1 = buf[pos + 1];
    let len = b1 & 0x7f;
    let at = pos + 2;
    if (len === 126) { if (at + 2 > buf.length) break; len = buf.readUInt16BE(at); at += 2; }
    else if (len === 127) { if (at + 8 > buf.length) break; len = Number(buf.readBigUInt64BE(at)); at += 8; }
    const maskKey = b1 & 0x80 ? buf.subarray(at, at + 4) : undefined;
    if (maskKey) at += 4;
    if (at + len > buf.length) break;
    const payload = Buffer.from(buf.subarray(at, at + len));
    if (maskKey) for (let i = 0; i < payload.length; i++) payload[i] ^= maskKey[i & 3];
    const opcode = b0 & 0x0f;
    out.push({ fin: (b0 & 0x80) !== 0, opcode, payload, ...(opcode === 0x8 && payload.length >= 2 ? { code: payload.readUInt16BE(0) } : {}) });
    pos = at + len;
  }
  return out;
}

export interface UpgradeOptions {
  /** Give up on the handshake after this long (default 5000 ms). */
  timeoutMs?: number;
  /** 127.0.0.1 (default) or ::1. */
  host?: string;
  /** Bytes written after a 101 (e.g. wsFrame(...) frames); what the server sends back is collected. */
  thenSend?: Buffer;
  /** How long to collect frames after a 101 (default 500 ms, or until the server closes). */
  afterMs?: number;
}

export interface UpgradeResult {
  status?: number;
  statusLine?: string;
  headers: Record<string, string>;
  /** The body of a refusal. */
  body: string;
  /** 101 with the right Sec-WebSocket-Accept for the key sent. */
  accepted: boolean;
  /** How it ended: the server closed or reset, our timeout, or 'open' (the server answered and kept the socket; we closed it). */
  closed: 'server' | 'timeout' | 'reset' | 'open';
  /** Frames the server sent after a 101 (a close frame's `code` says why it closed). */
  frames: ServerFrame[];
  ms: number;
}

/**
 * A WebSocket handshake written by hand to the loopback port. `headers` override the defaults (Host, Upgrade,
 * Connection, Sec-WebSocket-Key, Sec-WebSocket-Version: 13) by name, case-insensitively; a null value leaves one out.
 * `path` is written verbatim (odd targets welcome). After a 101 it sends `thenSend`, collects frames, then closes.
 */
export function upgradeRaw(port: number, path: string, headers: Record<string, string | null> = {}, opts: UpgradeOptions = {}): Promise<UpgradeResult> {
  const host = opts.host ?? '127.0.0.1';
  assertLoopback(host);
  const merged = new Map<string, [string, string]>();
  const set = (name: string, value: string | null) => {
    if (value === null) merged.delete(name.toLowerCase()); else merged.set(name.toLowerCase(), [name, value]);
  };
  set('Host', `${host === '::1' ? '[::1]' : host}:${port}`);
  set('Upgrade', 'websocket');
  set('Connection', 'Upgrade');
  set('Sec-WebSocket-Key', randomBytes(16).toString('base64'));
  set('Sec-WebSocket-Version', '13');
  for (const [k, v] of Object.entries(headers)) set(k, v);
  const key = merged.get('sec-websocket-key')?.[1];
  const request = rawRequest(`GET ${path} HTTP/1.1`, [...merged.values()].map(([k, v]) => `${k}: ${v}`));

  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let connected = false;
    let done = false;
    let upgraded: { headEnd: number; parsed: ReturnType<typeof parseResponse> } | undefined;
    let afterTimer: NodeJS.Timeout | undefined;
    const t0 = performance.now();
    const socket = net.connect({ host, port });
    const finish = (closed: UpgradeResult['closed']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(afterTimer);
      const parsed = upgraded?.parsed ?? parseResponse(buf);
      const frames = upgraded ? parseWsFrames(buf.subarray(upgraded.headEnd)) : [];
      // A socket we leave open gets a polite close frame (after a 101) or just a FIN, then is destroyed shortly after.
      if (closed === 'open') {
        if (upgraded) socket.end(wsClose(1000)); else socket.end();
        setTimeout(() => socket.destroy(), 200).unref();
      } else {
        socket.destroy();
      }
      resolve({
        status: parsed.status, statusLine: parsed.statusLine, headers: parsed.headers, body: upgraded ? '' : parsed.body,
        accepted: parsed.status === 101 && key !== undefined && parsed.headers['sec-websocket-accept'] === wsAccept(key),
        closed, frames, ms: Math.round(performance.now() - t0),
      });
    };
    const timer = setTimeout(() => finish('timeout'), opts.timeoutMs ?? 5000);
    socket.on('connect', () => { connected = true; socket.write(request); });
    socket.on('data', (d: Buffer) => {
      if (buf.length < 4 * 1024 * 1024) buf = Buffer.concat([buf, d]);
      if (upgraded) return;
      const end = buf.indexOf('\r\n\r\n', 0, 'latin1');
      if (end < 0) return;
      const parsed = parseResponse(buf.subarray(0, end + 4));
      if (parsed.status !== 101) {
        // A refusal: done once its body is complete, even if the server keeps the connection; else read on.
        const length = Number(parsed.headers['content-length']);
        const complete = Number.isInteger(length) ? buf.length >= end + 4 + length : buf.includes('\r\n0\r\n\r\n', end, 'latin1');
        // Give a server that is about to close (without saying so) a moment to send its FIN.
        if (complete && !afterTimer) afterTimer = setTimeout(() => finish('open'), 150);
        return;
      }
      upgraded = { headEnd: end + 4, parsed };
      clearTimeout(timer);
      if (opts.thenSend?.length) socket.write(opts.thenSend);
      afterTimer = setTimeout(() => finish('open'), opts.afterMs ?? 500);
    });
    socket.on('end', () => finish('server'));
    socket.on('close', () => finish('server'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && !done) {
        done = true;
        clearTimeout(timer);
        reject(err);
        return;
      }
      finish('reset');
    });
  });
}

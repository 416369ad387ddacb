/**
 * Hostile inputs for the fuzz suite: seeded, deterministic generators of malformed JSON, mutated protocol messages,
 * odd request targets, raw HTTP/1.1 requests and JWT-like tokens. Every generator draws only from the rng it is given
 * (`prng(seed)` from test/prng.ts), so a failing input is made again from its seed, and every generator has a list of
 * named cases, so a test can say which one failed. Nothing here touches the network.
 */
import { createHmac } from 'node:crypto';
import { prng } from '../prng.js';

export type Rng = () => number;

/** One named way of making a hostile value; `make` draws only from `rng`. */
export interface Case<T, O> { name: string; make: (rng: Rng, opts: O) => T }

/** A value and the name of the case that made it. */
export interface Named<T> { name: string; value: T }

// ---------------------------------------------------------------------------------------------------------------
// Drawing helpers
// ---------------------------------------------------------------------------------------------------------------

/** An integer in [lo, hi]. */
export const int = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
export const chance = (rng: Rng, p: number): boolean => rng() < p;
/** Log-uniform in [lo, hi]: small sizes as often as big ones, so both kinds of bug show up. */
export const logInt = (rng: Rng, lo: number, hi: number): number => Math.round(lo * (hi / lo) ** rng());

/** Picks one case and makes its value. */
export function pickCase<T, O>(rng: Rng, cases: readonly Case<T, O>[], opts: O): Named<T> {
  const c = pick(rng, cases);
  return { name: c.name, value: c.make(rng, opts) };
}

/** The case called `name` (throws when there is none), for a test that replays one case. */
export function caseNamed<T, O>(cases: readonly Case<T, O>[], name: string): Case<T, O> {
  const c = cases.find((x) => x.name === name);
  if (!c) throw new Error(`no case "${name}"; cases: ${cases.map((x) => x.name).join(', ')}`);
  return c;
}

/** `n` values from one seed: the same list on every run. */
export function sample<T>(seed: number, n: number, gen: (rng: Rng) => T): T[] {
  const rng = prng(seed);
  return Array.from({ length: n }, () => gen(rng));
}

/** `n` bytes from the rng (not crypto: reproducible). */
export function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) {
    const v = Math.floor(rng() * 2 ** 32);
    for (let k = 0; k < 4 && i + k < n; k++) b[i + k] = (v >>> (8 * k)) & 0xff;
  }
  return b;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export const randomAlnum = (rng: Rng, n: number): string => {
  let s = '';
  for (let i = 0; i < n; i++) s += ALNUM[Math.floor(rng() * ALNUM.length)];
  return s;
};
const b64url = (v: string | Buffer): string => Buffer.from(v).toString('base64url');

// ---------------------------------------------------------------------------------------------------------------
// Valid messages of every protocol (the documents' examples), the material the mutators start from
// ---------------------------------------------------------------------------------------------------------------

/** A 1×1 RGBA PNG: the smallest image a valid `image`/`single_frame` message can carry. */
export const TINY_PNG_BASE64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

export type Protocol = 'people-counter' | 'pose-stream' | 'reconstruction' | 'watchme';

/** Client→server messages of each JSON protocol, as the documents show them (DDFR's `/ws` takes binary frames). */
export const VALID_MESSAGES: Readonly<Record<Protocol, readonly object[]>> = {
  'people-counter': [
    { type: 'get_face', face_id: 123 },
    { type: 'get_all_faces', limit: 50 },
    { type: 'get_all_faces' },
  ],
  'pose-stream': [
    {
      type: 'subscribe', timestamp: '2025-01-07T10:30:00Z',
      data: {
        subscriptions: [
          {
            event_type: 'pose_data',
            filters: { environment_id: 'plaza', min_confidence: 0.7, include_keypoints: true, include_dense_pose: false },
            throttle: { max_fps: 10, buffer_size: 5 },
          },
          { event_type: 'system_event', filters: { severity: ['warning', 'error', 'critical'] } },
          { event_type: 'activity_event', filters: { event_types: ['fall_detected', 'alert_triggered'] } },
        ],
      },
    },
    { type: 'unsubscribe', timestamp: '2025-01-07T10:30:00Z', data: { subscription_ids: ['sub_123', 'sub_124'] } },
    { type: 'update_subscription', timestamp: '2025-01-07T10:30:00Z', data: { subscription_id: 'sub_123', filters: { min_confidence: 0.8, max_fps: 15 } } },
    { type: 'heartbeat', timestamp: '2025-01-07T10:30:00Z', data: { client_id: 'client_123', uptime: 3600 } },
    { type: 'disconnect', timestamp: '2025-01-07T10:30:00Z', data: { reason: 'client_requested', message: 'bye' } },
  ],
  reconstruction: [
    { type: 'image', data: TINY_PNG_BASE64, filename: 'image.png' },
    { type: 'generate', incremental: true },
    { type: 'generate', incremental: false },
    { type: 'finalize' },
  ],
  watchme: [
    { type: 'start_tracking', person_embed: 'base64_encrypted_embedding', video_source: 0, fps_limit: 10 },
    { type: 'single_frame', frame: TINY_PNG_BASE64, person_embed: 'base64_encrypted_embedding' },
    { type: 'stop_tracking' },
    { type: 'ping' },
  ],
};

/** Every `type` a client may send, over all protocols. */
export const KNOWN_TYPES: readonly string[] = [...new Set(Object.values(VALID_MESSAGES).flat().map((m) => (m as { type: string }).type))];

const allValid = (): object[] => Object.values(VALID_MESSAGES).flat();

// ---------------------------------------------------------------------------------------------------------------
// Building blocks: nesting, numbers, strings, wrong types
// ---------------------------------------------------------------------------------------------------------------

/** Nested JSON text built with repeat (no recursion, so 20000 levels cost nothing here). */
export function nestedJson(depth: number, kind: 'array' | 'object' | 'mixed' | 'unclosed' = 'array'): string {
  switch (kind) {
    case 'array': return `${'['.repeat(depth)}${']'.repeat(depth)}`;
    case 'object': return `${'{"a":'.repeat(depth)}0${'}'.repeat(depth)}`;
    case 'mixed': return `${'[{"a":'.repeat(Math.ceil(depth / 2))}null${'}]'.repeat(Math.ceil(depth / 2))}`;
    case 'unclosed': return '['.repeat(depth);
  }
}

/** Numbers as JSON text: extremes, precision traps, and literals that are not JSON at all. */
export const EXTREME_NUMBERS: readonly string[] = [
  '1e308', '-1e308', '1e309', '-1e400', '1e-300', '5e-324', '1e-400', '9007199254740993', '-9007199254740993',
  '18446744073709551616', '123456789012345678901234567890', '2147483648', '-2147483649', '4294967296', '-1', '0', '-0',
  '0.5', '1.0000000000000002', '0x10', '010', '1e3', '1E+2', '.5', '5.', '+1', '--1', '1_000', 'NaN', 'Infinity', '-Infinity',
];

/** Strings that have broken parsers, paths, logs and terminals. */
export const ODD_STRINGS: readonly string[] = [
  '', ' ', '\u0000', 'a\u0000b', '\u202eevil\u202c', 'a\u200db', '\u2028\u2029', '\ufeff', '\ufffe\uffff', '\ud800', '\udc00x', '\ud83d\ude00',
  `e${'\u0301'.repeat(1000)}`, 'ｐｉｎｇ', 'рing', '../../../../etc/passwd', '..\\..\\windows\\win.ini', '%00', '%2e%2e%2f', 'file:///etc/passwd',
  '<script>alert(1)</script>', "'; DROP TABLE persons; --", '${jndi:ldap://127.0.0.1/x}', '{{7*7}}', '\r\nX-Injected: 1', 'null', 'undefined',
  '__proto__', 'constructor', 'toString', 'NaN', '-0', '1e309', 'true',
];

/** Unicode text that is valid but unusual (JSON string contents, unescaped). */
const ODD_UNICODE: readonly string[] = [
  '\u202e\u0644\u0627', 'Z\u0351\u0362\u0334a\u0315\u0358l\u0352g\u0335o', '\u{1f468}\u200d\u{1f469}\u200d\u{1f467}', '\u00a0\u2003\u3000',
  '\u0130\u0131', '\ufdd0', '\u{10ffff}', '\u0000\u001f\u007f\u0080\u009f', '\u2028', 'ß'.repeat(100),
];

/** A value of another JSON type than `v` (as a JS value; JSON.stringify writes it). */
export function wrongType(rng: Rng, v: unknown): unknown {
  const options: unknown[] = [null, true, false, 0, -1, 1.5, '', 'x', [], {}, [v], { value: v }, JSON.stringify(v) ?? 'undefined'];
  if (typeof v === 'number') options.push(String(v), [String(v)], { $gt: v });
  if (typeof v === 'string') options.push(Number(v) || 42, v.split(''), { toString: v });
  if (typeof v === 'boolean') options.push(String(v), v ? 1 : 0, 'yes');
  if (Array.isArray(v)) options.push(v[0] ?? null, Object.assign({}, v), v.length);
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) options.push(Object.values(v), Object.keys(v), 'object');
  // Never hand back the same type the field had.
  const wrong = options.filter((o) => kindOf(o) !== kindOf(v));
  return pick(rng, wrong.length ? wrong : options);
}

const kindOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

// ---------------------------------------------------------------------------------------------------------------
// hostileJson
// ---------------------------------------------------------------------------------------------------------------

export interface JsonOptions {
  /** Longest string a case builds, in bytes (default 64 KiB; up to about 1 MiB is sensible). */
  maxStringBytes?: number;
  /** Deepest nesting (default 20000; at least 100). */
  maxDepth?: number;
  /** Message types to aim at (default KNOWN_TYPES), so bad fields reach the handlers rather than the type check. */
  types?: readonly string[];
}

interface JsonCtx { maxString: number; maxDepth: number; types: readonly string[] }

const jsonCtx = (o: JsonOptions = {}): JsonCtx =>
  ({ maxString: o.maxStringBytes ?? 64 * 1024, maxDepth: Math.max(100, o.maxDepth ?? 20_000), types: o.types?.length ? o.types : KNOWN_TYPES });

const validText = (rng: Rng, c: JsonCtx): string => {
  const aimed = allValid().filter((m) => c.types.includes((m as { type: string }).type));
  return JSON.stringify(pick(rng, aimed.length ? aimed : allValid()));
};
const depthOf = (rng: Rng, c: JsonCtx): number => logInt(rng, 100, c.maxDepth);
const sizeOf = (rng: Rng, c: JsonCtx): number => logInt(rng, 16, Math.max(16, c.maxString));
const typeOf = (rng: Rng, c: JsonCtx): string => pick(rng, c.types);

/** Some string field of a valid message (with its key), to plant bad contents in. */
function withField(rng: Rng, c: JsonCtx, value: string): string {
  const msg = JSON.parse(validText(rng, c)) as Record<string, unknown>;
  const keys = Object.keys(msg).filter((k) => k !== 'type');
  const key = keys.length ? pick(rng, keys) : 'data';
  // The raw text goes in verbatim: it may be invalid JSON on purpose.
  const placeholder = '\u0001FIELD\u0001';
  msg[key] = placeholder;
  return JSON.stringify(msg).replace(JSON.stringify(placeholder), () => value);
}

const JSON_CASES_LIST: Case<string, JsonCtx>[] = [
  // Malformed text
  { name: 'truncated', make: (rng, c) => { const t = validText(rng, c); return t.slice(0, int(rng, 1, t.length - 1)); } },
  { name: 'trailing-garbage', make: (rng, c) => validText(rng, c) + pick(rng, ['}', ']', 'x', '\u0000', ' {}', '{"type":"ping"}', ',', '\n\n', '//', '"']) },
  {
    name: 'unbalanced-quotes', make: (rng, c) => {
      const t = validText(rng, c);
      const quotes = [...t.matchAll(/"/g)].map((m) => m.index);
      const at = pick(rng, quotes);
      return chance(rng, 0.5) ? t.slice(0, at) + t.slice(at + 1) : `${t.slice(0, at)}"${t.slice(at)}`;
    },
  },
  { name: 'nan-infinity', make: (rng, c) => withField(rng, c, pick(rng, ['NaN', 'Infinity', '-Infinity', 'undefined', "'x'", 'None', 'True', '0x10', '-'])) },
  { name: 'bom', make: (rng, c) => (chance(rng, 0.5) ? `\ufeff${validText(rng, c)}` : withField(rng, c, '\ufeff"x"')) },
  {
    name: 'lone-surrogate',
    make: (rng, c) => withField(rng, c, pick(rng, ['"\ud800"', '"\\ud800"', '"\\udfff\\ud800"', '"x\udc00y"', '"\\uD83D"', '"\\u"', '"\\uZZZZ"'])),
  },
  { name: 'control-chars', make: (rng, c) => withField(rng, c, `"${String.fromCharCode(int(rng, 0, 31))}a\u0000b\u001b[2J"`) },
  { name: 'bad-escapes', make: (rng, c) => withField(rng, c, pick(rng, ['"\\x41"', '"\\a"', '"\\', '"\\u00"', '"\\\'"', '"\\0"'])) },
  { name: 'empty-or-scalar', make: (rng) => pick(rng, ['', ' ', '\n', 'null', 'true', '0', '""', '[]', '{}', '"ping"', '-0', '1e309']) },
  {
    name: 'js-not-json', make: (rng, c) => pick(rng, [
      `{type:'${typeOf(rng, c)}'}`, `{"type":"${typeOf(rng, c)}",}`, `/*x*/{"type":"${typeOf(rng, c)}"}`, `{"type":"${typeOf(rng, c)}"}//`,
      `{'type':'${typeOf(rng, c)}'}`, `{"type":"${typeOf(rng, c)}" "x":1}`, `{"type"="${typeOf(rng, c)}"}`, `({"type":"${typeOf(rng, c)}"})`,
    ]),
  },
  // Depth
  { name: 'deep-array', make: (rng, c) => nestedJson(depthOf(rng, c), 'array') },
  { name: 'deep-object', make: (rng, c) => nestedJson(depthOf(rng, c), 'object') },
  { name: 'deep-mixed', make: (rng, c) => nestedJson(depthOf(rng, c), 'mixed') },
  { name: 'deep-unclosed', make: (rng, c) => nestedJson(depthOf(rng, c), 'unclosed') },
  { name: 'deep-in-field', make: (rng, c) => withField(rng, c, nestedJson(depthOf(rng, c), pick(rng, ['array', 'object', 'mixed'] as const))) },
  // Numbers
  { name: 'huge-number', make: (rng, c) => withField(rng, c, pick(rng, EXTREME_NUMBERS)) },
  {
    name: 'long-number', make: (rng, c) => {
      const n = sizeOf(rng, c);
      return withField(rng, c, pick(rng, ['1'.repeat(n), `0.${'0'.repeat(n)}1`, `1e${'9'.repeat(Math.min(n, 400))}`, `-${'9'.repeat(n)}`]));
    },
  },
  // Types
  {
    name: 'wrong-types', make: (rng, c) => {
      const msg = JSON.parse(validText(rng, c)) as Record<string, unknown>;
      for (const k of Object.keys(msg)) if (k !== 'type' || chance(rng, 0.3)) msg[k] = wrongType(rng, msg[k]);
      return JSON.stringify(msg);
    },
  },
  {
    name: 'wrong-type-field', make: (rng, c) => JSON.stringify(pick(rng, [
      { type: 1 }, { type: null }, { type: [typeOf(rng, c)] }, { type: { toString: typeOf(rng, c) } }, {}, { TYPE: typeOf(rng, c) },
      { type: true }, { type: typeOf(rng, c).toUpperCase() }, { type: ` ${typeOf(rng, c)}` }, { type: `${typeOf(rng, c)}\u0000` },
    ])),
  },
  {
    name: 'top-level-non-object',
    make: (rng, c) => pick(rng, [`[${validText(rng, c)}]`, JSON.stringify(validText(rng, c)), '42', 'null', `[${validText(rng, c)},${validText(rng, c)}]`]),
  },
  // Size
  { name: 'long-string', make: (rng, c) => withField(rng, c, `"${'A'.repeat(sizeOf(rng, c))}"`) },
  { name: 'long-key', make: (rng, c) => `{"type":"${typeOf(rng, c)}","${'k'.repeat(sizeOf(rng, c))}":1}` },
  {
    name: 'long-escapes',
    make: (rng, c) => withField(rng, c, `"${pick(rng, ['\\u0000', '\\"', '\\\\', '\\ud83d\\ude00']).repeat(Math.ceil(sizeOf(rng, c) / 6))}"`),
  },
  {
    name: 'many-keys', make: (rng, c) => {
      const n = Math.max(1, Math.floor(sizeOf(rng, c) / 10));
      const parts: string[] = [`"type":"${typeOf(rng, c)}"`];
      for (let i = 0; i < n; i++) parts.push(`"k${i}":${i}`);
      return `{${parts.join(',')}}`;
    },
  },
  { name: 'wide-array', make: (rng, c) => withField(rng, c, `[${'0,'.repeat(Math.floor(sizeOf(rng, c) / 2))}0]`) },
  // Names that reach into prototypes
  {
    name: 'proto-pollution', make: (rng, c) => pick(rng, [
      `{"type":"${typeOf(rng, c)}","__proto__":{"polluted":true,"isAdmin":true}}`,
      `{"__proto__":{"type":"${typeOf(rng, c)}"}}`,
      `{"type":"${typeOf(rng, c)}","constructor":{"prototype":{"polluted":true}}}`,
      `{"type":"${typeOf(rng, c)}","data":{"__proto__":{"subscriptions":[]},"constructor":{"name":"x"}}}`,
      `{"type":"${typeOf(rng, c)}","prototype":{"polluted":true}}`,
      '{"type":"subscribe","data":{"subscriptions":[{"event_type":"__proto__"},{"event_type":"constructor","filters":{"__proto__":{"x":1}}}]}}',
    ]),
  },
  {
    name: 'prototype-type-name',
    make: (rng) => JSON.stringify({
      type: pick(rng, ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'then']),
    }),
  },
  { name: 'odd-unicode', make: (rng, c) => withField(rng, c, JSON.stringify(pick(rng, ODD_UNICODE))) },
  { name: 'odd-string', make: (rng, c) => withField(rng, c, JSON.stringify(pick(rng, ODD_STRINGS))) },
  {
    name: 'duplicate-keys', make: (rng, c) => pick(rng, [
      `{"type":"${typeOf(rng, c)}","type":"${typeOf(rng, c)}"}`, `{"type":"${typeOf(rng, c)}","type":null}`,
      `{"__proto__":1,"__proto__":{"x":1},"type":"${typeOf(rng, c)}"}`, validText(rng, c).replace(/^\{/, `{"type":${JSON.stringify(pick(rng, ODD_STRINGS))},`),
    ]),
  },
];

/** The named cases of hostileJson. */
export const JSON_CASES: readonly Case<string, JsonOptions>[] = JSON_CASES_LIST.map((c) => ({ name: c.name, make: (rng, o) => c.make(rng, jsonCtx(o)) }));

/** One hostile JSON text (often not JSON at all), and the name of its case. */
export const hostileJsonNamed = (rng: Rng, opts: JsonOptions = {}): Named<string> => pickCase(rng, JSON_CASES, opts);
/** One hostile JSON text (often not JSON at all). */
export const hostileJson = (rng: Rng, opts: JsonOptions = {}): string => hostileJsonNamed(rng, opts).value;

/** Bytes that are not UTF-8 (for text WebSocket frames and JSON bodies): overlong forms, surrogates, stray bytes. */
export function invalidUtf8(rng: Rng): Buffer {
  const bad = pick(rng, [
    [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xff], [0xfe, 0xff], [0x80], [0xc3], [0xf0, 0x9f, 0x98],
  ]);
  const text = Buffer.from(JSON.stringify(pick(rng, allValid())));
  const at = int(rng, 0, text.length);
  return Buffer.concat([text.subarray(0, at), Buffer.from(bad), text.subarray(at)]);
}

// ---------------------------------------------------------------------------------------------------------------
// mutateMessage
// ---------------------------------------------------------------------------------------------------------------

/** Where a field lives: its parent (object or array) and key. */
interface Slot { parent: Record<string, unknown> | unknown[]; key: string | number; path: string }

interface MutationCtx {
  root: unknown;
  /** A placeholder string for raw text (maybe invalid JSON) that replaces it after JSON.stringify. */
  raw(text: string): string;
  /** Text transforms applied after serialisation, in order. */
  post: ((text: string) => string)[];
  opts: JsonCtx;
}

export interface Mutation { name: string; apply: (rng: Rng, m: MutationCtx) => string | void }

/** Every field under the root, breadth first, without recursion. */
function slots(root: unknown): Slot[] {
  const out: Slot[] = [];
  const queue: { v: unknown; path: string }[] = [{ v: root, path: '' }];
  for (let q = 0; q < queue.length; q++) {
    const { v, path } = queue[q];
    if (v === null || typeof v !== 'object') continue;
    const entries: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [key, child] of entries) {
      const p = typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
      out.push({ parent: v as Slot['parent'], key, path: p });
      queue.push({ v: child, path: p });
    }
  }
  return out;
}

const getSlot = (s: Slot): unknown => (s.parent as Record<string | number, unknown>)[s.key];
const setSlot = (s: Slot, v: unknown): void => { (s.parent as Record<string | number, unknown>)[s.key] = v; };
/** An own, enumerable property even for `__proto__` (plain assignment would set the prototype instead). */
const defineOwn = (o: object, key: string, value: unknown): void => {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
};

/** A field to mutate, preferring those that pass `prefer`; undefined when the message has no fields. */
function someSlot(rng: Rng, root: unknown, prefer?: (v: unknown, s: Slot) => boolean): Slot | undefined {
  const all = slots(root);
  const preferred = prefer ? all.filter((s) => prefer(getSlot(s), s)) : [];
  return preferred.length ? pick(rng, preferred) : all.length ? pick(rng, all) : undefined;
}

const renameKey = (rng: Rng, key: string): string => pick(rng, [
  key.toUpperCase(), `${key} `, ` ${key}`, key.replace(/_(\w)/g, (_m, ch: string) => ch.toUpperCase()), key.replace(/a/g, '\u0430'), `${key}\u0000`,
  '', `${key}_`,
]);

export const MUTATIONS: readonly Mutation[] = [
  {
    name: 'drop-field', apply: (rng, m) => {
      const s = someSlot(rng, m.root);
      if (!s) return;
      if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1); else delete s.parent[s.key as string];
      return s.path;
    },
  },
  { name: 'drop-type', apply: (_rng, m) => { if (m.root && typeof m.root === 'object') delete (m.root as Record<string, unknown>).type; } },
  {
    name: 'rename-field', apply: (rng, m) => {
      const s = someSlot(rng, m.root, (_v, x) => typeof x.key === 'string');
      if (!s || Array.isArray(s.parent)) return;
      const v = getSlot(s);
      delete s.parent[s.key as string];
      defineOwn(s.parent, renameKey(rng, s.key as string), v);
      return s.path;
    },
  },
  { name: 'swap-type', apply: (rng, m) => { const s = someSlot(rng, m.root); if (s) { setSlot(s, wrongType(rng, getSlot(s))); return s.path; } } },
  {
    name: 'type-variant', apply: (rng, m) => {
      if (!m.root || typeof m.root !== 'object' || Array.isArray(m.root)) return;
      const r = m.root as Record<string, unknown>;
      const t = typeof r.type === 'string' ? r.type : 'ping';
      r.type = pick(rng, [
        t.toUpperCase(), ` ${t}`, `${t} `, `${t}\u0000`, t.replace(/_/g, '-'), pick(rng, KNOWN_TYPES), '__proto__', 'constructor', 'toString', '',
      ]);
    },
  },
  {
    name: 'deep-nest', apply: (rng, m) => {
      const s = someSlot(rng, m.root);
      const text = nestedJson(logInt(rng, 100, m.opts.maxDepth), pick(rng, ['array', 'object', 'mixed'] as const));
      if (s) { setSlot(s, m.raw(text)); return s.path; }
      m.root = m.raw(text);
    },
  },
  {
    name: 'extreme-number', apply: (rng, m) => {
      const s = someSlot(rng, m.root, (v) => typeof v === 'number');
      if (s) { setSlot(s, m.raw(pick(rng, EXTREME_NUMBERS))); return s.path; }
    },
  },
  {
    name: 'boundary-number', apply: (rng, m) => {
      const s = someSlot(rng, m.root, (v) => typeof v === 'number');
      if (s) { setSlot(s, pick(rng, [-1, 0, 0.5, -0.5, 2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 53, Number.MAX_VALUE, Number.MIN_VALUE, 1e21])); return s.path; }
    },
  },
  {
    name: 'unknown-fields', apply: (rng, m) => {
      const targets = [m.root, ...slots(m.root).map(getSlot)].filter((v): v is object => v !== null && typeof v === 'object' && !Array.isArray(v));
      const o = targets.length ? pick(rng, targets) : undefined;
      if (!o) return;
      const extra = pick(rng, ['__proto__', 'constructor', 'prototype', 'random', 'many'] as const);
      if (extra === '__proto__') defineOwn(o, '__proto__', { polluted: true, isAdmin: true, type: 'ping' });
      else if (extra === 'constructor') defineOwn(o, 'constructor', { prototype: { polluted: true } });
      else if (extra === 'prototype') defineOwn(o, 'prototype', { polluted: true });
      else if (extra === 'random') for (let i = int(rng, 1, 5); i > 0; i--) defineOwn(o, randomAlnum(rng, int(rng, 1, 12)), wrongType(rng, i));
      else for (let i = 0, n = logInt(rng, 100, 20_000); i < n; i++) defineOwn(o, `f${i}`, i);
      return extra;
    },
  },
  {
    name: 'long-string', apply: (rng, m) => {
      const s = someSlot(rng, m.root, (v) => typeof v === 'string');
      if (!s) return;
      const n = logInt(rng, 16, Math.max(16, m.opts.maxString));
      setSlot(s, chance(rng, 0.5) ? 'A'.repeat(n) : randomBytes(rng, Math.floor(n * 0.75)).toString('base64'));
      return s.path;
    },
  },
  {
    name: 'odd-string', apply: (rng, m) => {
      const s = someSlot(rng, m.root, (v) => typeof v === 'string');
      if (s) { setSlot(s, pick(rng, ODD_STRINGS)); return s.path; }
    },
  },
  {
    name: 'huge-array', apply: (rng, m) => {
      const s = someSlot(rng, m.root, (v) => Array.isArray(v));
      if (!s) return;
      const cur = getSlot(s);
      const first = JSON.stringify(Array.isArray(cur) ? cur[0] ?? 0 : cur) ?? '0';
      const n = Math.max(1, Math.floor(m.opts.maxString / Math.max(1, first.length + 1)));
      setSlot(s, m.raw(`[${`${first},`.repeat(n - 1)}${first}]`));
      return s.path;
    },
  },
  {
    name: 'null-leaves', apply: (_rng, m) => {
      for (const s of slots(m.root)) { const v = getSlot(s); if (v === null || typeof v !== 'object') setSlot(s, null); }
    },
  },
  {
    name: 'empty-containers', apply: (_rng, m) => {
      for (const s of slots(m.root)) { const v = getSlot(s); if (v !== null && typeof v === 'object') setSlot(s, Array.isArray(v) ? [] : {}); }
    },
  },
  { name: 'wrap-array', apply: (rng, m) => { m.root = chance(rng, 0.7) ? [m.root] : [m.root, m.root]; } },
  { name: 'double-encoded', apply: (_rng, m) => { m.post.push((t) => JSON.stringify(t)); } },
  {
    name: 'duplicate-key', apply: (rng, m) => {
      const key = pick(rng, ['type', ...slots(m.root).filter((s) => typeof s.key === 'string').map((s) => s.key as string)]);
      const value = JSON.stringify(wrongType(rng, key === 'type' ? 'ping' : 0));
      m.post.push((t) => (t.startsWith('{') ? `{${JSON.stringify(key)}:${value},${t.slice(1)}` : t));
      return key;
    },
  },
  { name: 'truncate', apply: (rng, m) => { const f = rng(); m.post.push((t) => t.slice(0, Math.max(1, Math.floor(t.length * f)))); } },
  { name: 'trailing-garbage', apply: (rng, m) => { const g = pick(rng, ['}', ']', '\u0000', ' x', '{}', '\n{"type":"ping"}']); m.post.push((t) => t + g); } },
];

const POST_ONLY = new Set(['double-encoded', 'truncate', 'trailing-garbage', 'wrap-array']);

/**
 * A hostile variant of a valid protocol message: one to three mutations (fields dropped, renamed or retyped, deep
 * nesting, extreme numbers, unknown and prototype keys, wrapping, truncation ...). The name lists them with the paths.
 */
export function mutateMessageNamed(rng: Rng, valid: object, opts: JsonOptions = {}): Named<string> {
  const raws = new Map<string, string>();
  const m: MutationCtx = {
    root: JSON.parse(JSON.stringify(valid)) as unknown,
    raw: (text) => { const k = `\u0002raw${raws.size}\u0002`; raws.set(JSON.stringify(k), text); return k; },
    post: [],
    opts: jsonCtx(opts),
  };
  const names: string[] = [];
  let textual = 0;
  for (let i = int(rng, 1, 3); i > 0; i--) {
    const mu = pick(rng, MUTATIONS);
    // More than one whole-text mutation mostly yields plain garbage; one is enough.
    if (POST_ONLY.has(mu.name) && textual++ > 0) continue;
    const where = mu.apply(rng, m);
    names.push(where ? `${mu.name}@${where}` : mu.name);
  }
  let text = JSON.stringify(m.root) ?? 'null';
  for (const [k, v] of raws) text = text.split(k).join(v);
  for (const f of m.post) text = f(text);
  return { name: names.join('+'), value: text };
}

export const mutateMessage = (rng: Rng, valid: object, opts: JsonOptions = {}): string => mutateMessageNamed(rng, valid, opts).value;

/** A mutated message of one protocol (its valid messages chosen at random). */
export const mutateProtocolMessage = (rng: Rng, protocol: Protocol, opts: JsonOptions = {}): Named<string> => {
  const valid = pick(rng, VALID_MESSAGES[protocol]);
  const r = mutateMessageNamed(rng, valid, opts);
  return { name: `${(valid as { type: string }).type}:${r.name}`, value: r.value };
};

// ---------------------------------------------------------------------------------------------------------------
// oddUrls
// ---------------------------------------------------------------------------------------------------------------

/** The paths Sightline serves (ids are placeholders). */
export const SERVED_PATHS: readonly string[] = [
  '/', '/ws', '/ws/v1', '/persons', '/persons/1', '/persons/1/photos', '/persons/1/photos/1', '/ws/session/create', '/ws/sessions',
  '/ws/session/abc', '/ws/reconstruct/abc', '/dashboard', '/upload-embedding', '/video-stream/abc', '/metrics', '/health',
];

export interface UrlOptions {
  /** Paths to start from (default SERVED_PATHS). */
  paths?: readonly string[];
  /** Length of the long-path cases (default 64 KiB). */
  longPathBytes?: number;
}

/** Targets that have crashed hand-written routers, verbatim. */
export const FIXED_TARGETS: readonly string[] = [
  '//', '///x', 'https://', 'http://[::1', '//x%00', '/%', '/%E0%A4%A', '/ws/reconstruct/%', '/ws/session/%E0%A4%A', '/video-stream/%zz', '*',
  '', 'http://host/path', 'http://127.0.0.1:8000/ws/v1', 'ws://x/ws', 'HTTP://X/', 'http:/x', 'http://[::1]:8000/', 'http://user:pw@host/',
  '127.0.0.1:8000', 'example.com:443', '/ws//v1', '//ws/v1', '/ws/session//create', '/ws/session/', '/ws/reconstruct/', '/video-stream/',
  '/persons/', '/persons//photos', '/persons/-1', '/persons/0', '/persons/1.5', '/persons/1e3', '/persons/0x10', '/persons/99999999999999999999',
  '/persons/NaN', '/persons/1/photos/-0', '/%C0%AE%C0%AE/', '/%C0%80', '/%ED%A0%80', '/%F4%90%80%80', '/%FF', '/%u0041', '/%%', '/%2', '/a%2fb',
  '/ws/reconstruct/..', '/video-stream/..', '/ws/session/%2e%2e', '/ws/session/create?max_images=0x10', '/ws/session/create?max_images=1e3',
  '/ws/session/create?process_res=-1', '/ws/session/create?num_max_points=1e400', '/ws/session/create?max_images=', '/ws/session/create?max_images',
  '/ws/session/create?max_images=5&max_images=-1', '/ws/v1?token=', '/ws/v1?token', '/ws/v1?token=%', '/ws/v1?token=a&token=b', '/ws/v1?client_id=',
  '/ws/v1?compression=zz', '/ws/v1?compression=gzip&compression=deflate', '/?a=%', '/?%', '/?&&&', '/?=', '/#frag', '/?a=1#b?c',
  '/ws?token=x', '/metrics?x=%', '/health/', '/HEALTH', '/Metrics', '/dashboard/../metrics',
];

const URL_CASES_LIST: Case<string, Required<UrlOptions>>[] = [
  ...FIXED_TARGETS.map((t): Case<string, Required<UrlOptions>> => ({ name: `fixed ${JSON.stringify(t)}`, make: () => t })),
  {
    name: 'long-path',
    make: (rng, o) => `${pick(rng, ['/', '/ws/reconstruct/', '/video-stream/', '/ws/session/', '/persons/'])}${'a'.repeat(o.longPathBytes)}`,
  },
  { name: 'many-segments', make: (rng, o) => '/x'.repeat(Math.floor(o.longPathBytes / 2)) },
  {
    name: 'dot-segments', make: (rng, o) => pick(rng, o.paths) + pick(rng, [
      '/../../../../etc/passwd', '/..', '/./././.', '/%2e%2e/%2e%2e/etc/passwd', '/%2E%2E%2F%2E%2E%2F', '/..%2f..%2f', '/.%2e/', '/..;/', '/..\\..\\',
    ]),
  },
  { name: 'backslashes', make: (rng) => pick(rng, ['/ws\\v1', '\\\\host\\share', '/ws/session\\create', '\\', '/video-stream\\abc', '/\\/x']) },
  { name: 'nul', make: (rng, o) => pick(rng, [`${pick(rng, o.paths)}\u0000`, `${pick(rng, o.paths)}%00`, '/ws\u0000/v1', `${pick(rng, o.paths)}%00.json`]) },
  { name: 'spaces', make: (rng) => pick(rng, ['/ws/session/a b', '/ws /v1', '/ tab\t', '/video-stream/a%20b', '/ws/v1?token=a b', ' /', '/ ']) },
  {
    name: 'unicode', make: (rng) => pick(rng, [
      '/video-stream/сессия', '/ws/session/😀', '/persons/１', '/ws/v1?client_id=\u202eevil', '/e\u0301', '/\ufeff', '/ws/reconstruct/\ud800', '/\u2028',
    ]),
  },
  {
    name: 'percent-garbage', make: (rng, o) => {
      const p = pick(rng, o.paths);
      const at = int(rng, 1, p.length);
      return p.slice(0, at) + pick(rng, ['%', '%z', '%zz', '%0', '%G0', '%%30', '%ED%A0', '%E0%A4%A']) + p.slice(at);
    },
  },
  {
    name: 'query-token', make: (rng, o) => `/ws/v1?token=${pick(rng, [
      '', '%', '%%', randomAlnum(rng, int(rng, 1, 64)), 'a.b.c', '...', 'Bearer%20x', 'x'.repeat(o.longPathBytes), encodeURIComponent('\u0000'), 'a&token=b',
    ])}`,
  },
  {
    name: 'query-numbers', make: (rng) => `/ws/session/create?${pick(rng, ['max_images', 'process_res', 'num_max_points'])}=${pick(rng, [
      '0x10', '1e3', '-1', '0', '1.5', 'NaN', 'Infinity', '99999999999999999999', '', '%20 5', '5%20', '%D9%A3', '+5', '0b11', '5%00', '1e400', '-0', '2048.0',
    ])}`,
  },
  { name: 'many-params', make: (rng, o) => `${pick(rng, o.paths)}?${'a=1&'.repeat(Math.floor(o.longPathBytes / 4))}` },
  {
    name: 'repeated-params',
    make: (rng) => pick(rng, ['/ws/v1?token=a&token=', '/ws/session/create?max_images=5&max_images=-1&max_images=x', '/ws/v1?client_id=a&client_id=b']),
  },
];

/** The named cases of oddUrls. */
export const URL_CASES: readonly Case<string, UrlOptions>[] = URL_CASES_LIST.map((c) => ({
  name: c.name,
  make: (rng, o) => c.make(rng, { paths: o.paths?.length ? o.paths : SERVED_PATHS, longPathBytes: o.longPathBytes ?? 64 * 1024 }),
}));

export const oddUrlNamed = (rng: Rng, opts: UrlOptions = {}): Named<string> => pickCase(rng, URL_CASES, opts);
/** A request target (raw: may hold spaces, NUL, non-ASCII; send it with rawRequest or rawRequests, not fetch). */
export const oddUrls = (rng: Rng, opts: UrlOptions = {}): string => oddUrlNamed(rng, opts).value;

// ---------------------------------------------------------------------------------------------------------------
// rawRequests
// ---------------------------------------------------------------------------------------------------------------

export interface RawOptions {
  /** The Host header's value, e.g. "127.0.0.1:8000". */
  host: string;
  /** The target of cases that need a normal one (default "/"). */
  path?: string;
  /** Size of the oversized-header cases (default 64 KiB; Node refuses above 16 KiB by default). */
  maxHeaderBytes?: number;
  /** Size cap for generated bodies and long strings (default 64 KiB). */
  maxBodyBytes?: number;
}

interface RawCtx { host: string; path: string; maxHeader: number; maxBody: number }

/** A request as bytes; the head is written byte for byte (latin1 for ASCII, UTF-8 when it holds more). */
export function rawRequest(requestLine: string, headers: readonly string[], body: string | Buffer = '', eol = '\r\n'): Buffer {
  const head = `${requestLine}${eol}${headers.map((h) => `${h}${eol}`).join('')}${eol}`;
  let latin1 = true;
  for (let i = 0; i < head.length && latin1; i++) latin1 = head.charCodeAt(i) <= 0xff;
  return Buffer.concat([Buffer.from(head, latin1 ? 'latin1' : 'utf8'), Buffer.isBuffer(body) ? body : Buffer.from(body)]);
}

const wsKey = (rng: Rng): string => randomBytes(rng, 16).toString('base64');
const wsHeaders = (rng: Rng, c: RawCtx): string[] =>
  [`Host: ${c.host}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${wsKey(rng)}`, 'Sec-WebSocket-Version: 13'];
const without = (hs: string[], name: string): string[] => hs.filter((h) => !h.toLowerCase().startsWith(`${name.toLowerCase()}:`));
const jsonBody = (rng: Rng, c: RawCtx): Buffer => Buffer.from(hostileJson(rng, { maxStringBytes: c.maxBody, maxDepth: 5000 }));
const post = (c: RawCtx, headers: string[], body: Buffer | string): Buffer => rawRequest(`POST ${c.path} HTTP/1.1`, [`Host: ${c.host}`, ...headers], body);

const RAW_CASES_LIST: Case<Buffer, RawCtx>[] = [
  {
    name: 'bad-method', make: (rng, c) => rawRequest(`${pick(rng, [
      'GE T', 'get', 'FOO', 'G\u0000ET', 'GET\t', 'CONNECT', 'TRACE', 'PROPFIND', 'M'.repeat(int(rng, 100, 70_000)), 'GÉT', '', '1GET', 'GET,POST',
    ])} ${c.path} HTTP/1.1`, [`Host: ${c.host}`]),
  },
  { name: 'missing-host', make: (_rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, ['Accept: */*']) },
  { name: 'double-host', make: (_rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [`Host: ${c.host}`, 'Host: evil.example']) },
  {
    name: 'empty-host',
    make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [pick(rng, ['Host:', 'Host: ', 'Host: :', 'Host: [::1', 'Host: a b', `Host: ${'h'.repeat(5000)}`])]),
  },
  {
    name: 'duplicate-content-length',
    make: (rng, c) => post(c, ['Content-Length: 2', `Content-Length: ${pick(rng, ['2', '3', '0'])}`, 'Content-Type: application/json'], '{}'),
  },
  { name: 'content-length-list', make: (rng, c) => post(c, [`Content-Length: ${pick(rng, ['2, 2', '2,3', '2 2'])}`, 'Content-Type: application/json'], '{}') },
  {
    name: 'te-and-cl',
    make: (_rng, c) => post(c, ['Content-Length: 4', 'Transfer-Encoding: chunked', 'Content-Type: application/json'], '2\r\n{}\r\n0\r\n\r\n'),
  },
  {
    name: 'te-variants', make: (rng, c) => post(c, [`Transfer-Encoding: ${pick(rng, [
      'chunked, identity', 'identity', 'gzip, chunked', 'xchunked', ' chunked', 'Chunked', 'chunked\t', 'chunked, chunked', '',
    ])}`, 'Content-Type: application/json'], '2\r\n{}\r\n0\r\n\r\n'),
  },
  { name: 'two-te-headers', make: (_rng, c) => post(c, ['Transfer-Encoding: chunked', 'Transfer-Encoding: identity'], '2\r\n{}\r\n0\r\n\r\n') },
  {
    name: 'bad-chunk-size', make: (rng, c) => post(c, ['Transfer-Encoding: chunked', 'Content-Type: application/json'], `${pick(rng, [
      'zz', '-1', '0x10', ' 2', '2 ', `2;${'e'.repeat(int(rng, 10, 20_000))}`, 'ffffffffffffffffffff', '', '2\n', '+2',
    ])}\r\n{}\r\n0\r\n\r\n`),
  },
  {
    name: 'huge-chunk',
    make: (rng, c) => post(c, ['Transfer-Encoding: chunked'],
      `${pick(rng, ['7fffffff', 'ffffffff', '100000000', '7ffffffffffffff'])}\r\n${'x'.repeat(int(rng, 0, 1024))}`),
  },
  { name: 'chunk-no-crlf', make: (_rng, c) => post(c, ['Transfer-Encoding: chunked'], '2\r\n{}XX0\r\n\r\n') },
  { name: 'chunk-trailers', make: (rng, c) => post(c, ['Transfer-Encoding: chunked'], `2\r\n{}\r\n0\r\n${'X-T: 1\r\n'.repeat(int(rng, 1, 5000))}\r\n`) },
  {
    name: 'content-length-odd', make: (rng, c) => post(c, [`Content-Length: ${pick(rng, [
      '-1', 'abc', '1e3', '0x10', ' 5', '+5', '99999999999999999999', '', '5.0', '٣',
    ])}`, 'Content-Type: application/json'], '{"a":1}'),
  },
  { name: 'content-length-short', make: (rng, c) => post(c, ['Content-Length: 1000000', 'Content-Type: application/json'], jsonBody(rng, c).subarray(0, 100)) },
  {
    name: 'content-length-long',
    make: (rng, c) => post(c, ['Content-Length: 2', 'Content-Type: application/json'], `{}${'GARBAGE '.repeat(int(rng, 1, 100))}`),
  },
  {
    name: 'oversized-header',
    make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [`Host: ${c.host}`, `X-Big: ${'a'.repeat(logInt(rng, 8 * 1024, c.maxHeader))}`]),
  },
  {
    name: 'many-headers',
    make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [`Host: ${c.host}`, ...Array.from({ length: int(rng, 100, 5000) }, (_, i) => `X-H${i}: v`)]),
  },
  { name: 'long-header-name', make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [`Host: ${c.host}`, `${'N'.repeat(logInt(rng, 1024, c.maxHeader))}: v`]) },
  { name: 'ws-no-key', make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, without(wsHeaders(rng, c), 'Sec-WebSocket-Key')) },
  {
    name: 'ws-bad-key',
    make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [...without(wsHeaders(rng, c), 'Sec-WebSocket-Key'), `Sec-WebSocket-Key: ${pick(rng, [
      '', 'abc', '!!!!!!!!!!!!!!!!!!!!!!!!', 'a'.repeat(1000), randomBytes(rng, 15).toString('base64'), randomBytes(rng, 17).toString('base64'),
      `${wsKey(rng)}, ${wsKey(rng)}`, `${wsKey(rng).slice(0, -2)}`,
    ])}`]),
  },
  { name: 'ws-two-keys', make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [...wsHeaders(rng, c), `Sec-WebSocket-Key: ${wsKey(rng)}`]) },
  {
    name: 'ws-bad-version', make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`,
      [...without(wsHeaders(rng, c), 'Sec-WebSocket-Version'), ...pick(rng, [['Sec-WebSocket-Version: 8'], ['Sec-WebSocket-Version: 14'],
        ['Sec-WebSocket-Version: '], ['Sec-WebSocket-Version: abc'], ['Sec-WebSocket-Version: 13, 8'], []])]),
  },
  { name: 'ws-post', make: (rng, c) => rawRequest(`POST ${c.path} HTTP/1.1`, [...wsHeaders(rng, c), 'Content-Length: 5'], 'hello') },
  { name: 'ws-http10', make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.0`, wsHeaders(rng, c)) },
  {
    name: 'ws-odd-extensions', make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [...wsHeaders(rng, c), pick(rng, [
      'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=100', 'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=0',
      'Sec-WebSocket-Extensions: ;;;,,,', `Sec-WebSocket-Extensions: ${'x-ext, '.repeat(2000)}`, 'Sec-WebSocket-Protocol: ,,,',
      `Sec-WebSocket-Protocol: ${Array.from({ length: 3000 }, (_, i) => `p${i}`).join(', ')}`, 'Sec-WebSocket-Protocol: wifi-densepose-v1, wifi-densepose-v1',
    ])]),
  },
  {
    name: 'ws-upgrade-variants', make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [...without(without(wsHeaders(rng, c), 'Upgrade'), 'Connection'),
      `Upgrade: ${pick(rng, ['WebSocket', 'websocket, h2c', 'foo/1', '', 'websocket\u0000'])}`,
      `Connection: ${pick(rng, ['keep-alive, Upgrade', 'upgrade', 'close', 'Upgrade, close', ''])}`]),
  },
  {
    name: 'h2c-upgrade',
    make: (_rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`,
      [`Host: ${c.host}`, 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA']),
  },
  { name: 'connection-upgrade-alone', make: (_rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [`Host: ${c.host}`, 'Connection: Upgrade']) },
  {
    name: 'crlf-injection', make: (rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [`Host: ${c.host}`, pick(rng, [
      'X-A: a\nX-Injected: 1', 'X-A: a\rX-Injected: 1', 'X-A: a\r\n\r\nGET /metrics HTTP/1.1', 'Bad Header: x', 'X\u0000A: b', 'X-A: b\u0000c', ': empty-name',
      'NoColon', ' X-Leading-Space: v', 'X-A: v\r\n continued', 'X-A:\tv', 'X-A : v', 'X-A: \u00ff\u0080',
    ])]),
  },
  { name: 'http09', make: (rng, c) => Buffer.from(pick(rng, [`GET ${c.path}\r\n`, `GET ${c.path}\n`, 'GET\r\n', '\r\n\r\n'])) },
  {
    name: 'h2-preface', make: (rng) => Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
      Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), randomBytes(rng, int(rng, 0, 64))]),
  },
  {
    // A TLS 1.2 ClientHello record header on a plain-text port.
    name: 'tls-client-hello',
    make: (rng) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), randomBytes(rng, 508)]),
  },
  {
    name: 'bad-version', make: (rng, c) => rawRequest(`GET ${c.path} ${pick(rng, [
      'HTTP/1.2', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1', 'HTTP/1.1x', 'http/1.1', 'HTTP/01.1', 'ICE/1.0', 'HTTP/1.1 extra', 'HTTP/', '',
    ])}`, [`Host: ${c.host}`]),
  },
  {
    name: 'request-line-spaces',
    make: (rng, c) => rawRequest(pick(rng, [`GET  ${c.path}  HTTP/1.1`, `GET\t${c.path}\tHTTP/1.1`, ` GET ${c.path} HTTP/1.1`, `GET ${c.path} HTTP/1.1 `]),
      [`Host: ${c.host}`]),
  },
  { name: 'bare-lf', make: (_rng, c) => rawRequest(`GET ${c.path} HTTP/1.1`, [`Host: ${c.host}`, 'Accept: */*'], '', '\n') },
  {
    name: 'leading-empty-lines',
    make: (rng, c) => Buffer.concat([Buffer.from('\r\n'.repeat(int(rng, 1, 2000))), rawRequest(`GET ${c.path} HTTP/1.1`, [`Host: ${c.host}`])]),
  },
  {
    name: 'cut-short', make: (rng, c) => {
      const full = post(c, ['Content-Type: application/json', 'Content-Length: 15'], '{"type":"ping"}');
      return full.subarray(0, int(rng, 1, full.length - 1));
    },
  },
  { name: 'no-blank-line', make: (_rng, c) => Buffer.from(`GET ${c.path} HTTP/1.1\r\nHost: ${c.host}\r\n`) },
  {
    name: 'pipelined', make: (rng, c) => Buffer.concat(Array.from({ length: int(rng, 2, 20) }, () =>
      (chance(rng, 0.5) ? rawRequest(`GET ${c.path} HTTP/1.1`, [`Host: ${c.host}`])
        : pickCase(rng, RAW_CASES_LIST.filter((x) => x.name !== 'pipelined'), c).value))),
  },
  { name: 'random-bytes', make: (rng) => randomBytes(rng, logInt(rng, 1, 4096)) },
  {
    name: 'hostile-json-post', make: (rng, c) => {
      const body = jsonBody(rng, c);
      return post(c, ['Content-Type: application/json', `Content-Length: ${body.length}`], body);
    },
  },
  {
    name: 'invalid-utf8-post', make: (rng, c) => {
      const body = invalidUtf8(rng);
      return post(c, ['Content-Type: application/json; charset=utf-8', `Content-Length: ${body.length}`], body);
    },
  },
  {
    name: 'odd-content-type', make: (rng, c) => {
      const body = JSON.stringify({ image: TINY_PNG_BASE64, name: 'x' });
      const type = pick(rng, ['application/json; charset=utf-16', 'text/plain', null, 'application/json\u0000', 'multipart/form-data',
        `multipart/form-data; boundary=${'b'.repeat(int(rng, 71, 5000))}`, 'application/x-www-form-urlencoded', 'application/json, text/html', '*/*', '']);
      return post(c, [...(type === null ? [] : [`Content-Type: ${type}`]), `Content-Length: ${Buffer.byteLength(body)}`], body);
    },
  },
  {
    name: 'multipart-bad', make: (rng, c) => {
      const b = 'XyZ';
      const body = pick(rng, [
        `--${b}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\nnot-an-image`, // no closing boundary
        '--other\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--other--\r\n',
        Array.from({ length: int(rng, 100, 5000) }, (_, i) => `--${b}\r\nContent-Disposition: form-data; name="f${i}"; filename="${i}.jpg"\r\n\r\nx\r\n`)
          .join('') + `--${b}--\r\n`,
        `--${b}\r\nContent-Disposition: form-data; name="file"; filename="../../../etc/passwd"\r\n${'X-P: 1\r\n'.repeat(2000)}\r\nx\r\n--${b}--\r\n`,
        `--${b}--\r\n`,
      ]);
      return post(c, [`Content-Type: multipart/form-data; boundary=${b}`, `Content-Length: ${Buffer.byteLength(body)}`], body);
    },
  },
  {
    name: 'expect-continue',
    make: (rng, c) => post(c, [pick(rng, ['Expect: 100-continue', 'Expect: garbage']), 'Content-Length: 1000000000', 'Content-Type: application/json'], ''),
  },
  { name: 'odd-target', make: (rng, c) => rawRequest(`GET ${oddUrls(rng)} HTTP/1.1`, [`Host: ${c.host}`]) },
];

/** The named cases of rawRequests. */
export const RAW_REQUEST_CASES: readonly Case<Buffer, RawOptions>[] = RAW_CASES_LIST.map((c) => ({
  name: c.name,
  make: (rng, o) => c.make(rng, { host: o.host, path: o.path ?? '/', maxHeader: o.maxHeaderBytes ?? 64 * 1024, maxBody: o.maxBodyBytes ?? 64 * 1024 }),
}));

export const rawRequestNamed = (rng: Rng, opts: RawOptions): Named<Buffer> => pickCase(rng, RAW_REQUEST_CASES, opts);
/** One complete (or deliberately incomplete) raw HTTP/1.1 request, as bytes for a raw socket. */
export const rawRequests = (rng: Rng, opts: RawOptions): Buffer => rawRequestNamed(rng, opts).value;

// ---------------------------------------------------------------------------------------------------------------
// hostileTokens
// ---------------------------------------------------------------------------------------------------------------

export interface TokenOptions {
  /** The HS256 secret: when given, the claim cases are signed correctly, so claim checks (not the signature) must refuse them. */
  secret?: string;
  /** "Now" for claims relative to it (default: the clock; the only input not drawn from the rng). */
  nowSeconds?: number;
  /** Size of the huge-token cases (default 64 KiB). */
  maxBytes?: number;
}

interface TokenCtx { secret?: string; now: number; maxBytes: number }

/** An HS256 JWT over exactly these header and payload texts (objects are JSON-encoded). */
export function signHs256(header: object | string, payload: object | string, secret: string): string {
  const text = (v: object | string) => (typeof v === 'string' ? v : JSON.stringify(v));
  const signing = `${b64url(text(header))}.${b64url(text(payload))}`;
  return `${signing}.${createHmac('sha256', secret).update(signing).digest('base64url')}`;
}

/** Signed when there is a secret, else a random signature of the right length. */
const token = (rng: Rng, c: TokenCtx, header: object | string, payload: object | string): string => {
  if (c.secret !== undefined) return signHs256(header, payload, c.secret);
  const text = (v: object | string) => (typeof v === 'string' ? v : JSON.stringify(v));
  return `${b64url(text(header))}.${b64url(text(payload))}.${randomBytes(rng, 32).toString('base64url')}`;
};
const HS = { alg: 'HS256', typ: 'JWT' };
const claims = (c: TokenCtx, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ sub: 'fuzz', iat: c.now, exp: c.now + 3600, ...extra });

const TOKEN_CASES_LIST: Case<string, TokenCtx>[] = [
  {
    name: 'alg-none',
    make: (rng, c) => `${b64url(JSON.stringify({ alg: pick(rng, ['none', 'None', 'NONE', 'nOnE', '']), typ: 'JWT' }))}.${b64url(JSON.stringify(claims(c)))}.`,
  },
  {
    name: 'alg-none-with-signature',
    make: (rng, c) => `${b64url('{"alg":"none"}')}.${b64url(JSON.stringify(claims(c)))}.${randomBytes(rng, 32).toString('base64url')}`,
  },
  { name: 'empty-signature', make: (_rng, c) => `${b64url(JSON.stringify(HS))}.${b64url(JSON.stringify(claims(c)))}.` },
  {
    name: 'garbage-signature',
    make: (rng, c) => {
      const signature = pick(rng, ['!!!!', '====', 'a+b/c', 'ä', ' ', randomAlnum(rng, 43)]);
      return `${b64url(JSON.stringify(HS))}.${b64url(JSON.stringify(claims(c)))}.${signature}`;
    },
  },
  {
    name: 'garbage-base64',
    make: (rng) => pick(rng, [
      '!!!.@@@.###', 'eyJ=.eyJ=.x', 'eyJhbGciOiJIUzI1NiJ9.%%%.x', 'eyJhbGciOiJIUzI1NiJ9.e+y/J.x', 'a b.c d.e f', '\u00e9.\u00e9.\u00e9',
    ]),
  },
  {
    name: 'header-not-json', make: (rng, c) => {
      const header = pick(rng, ['not json', '[]', 'null', '{"alg":', '"HS256"', '{"alg":"HS256","alg":"none"}', '\ufeff{"alg":"HS256"}']);
      return `${b64url(header)}.${b64url(JSON.stringify(claims(c)))}.${randomAlnum(rng, 43)}`;
    },
  },
  {
    name: 'payload-not-json',
    make: (rng, c) => token(rng, c, HS, pick(rng, ['not json', '[]', 'null', '123', '"sub"', '{"exp":', '{"exp":NaN}', '{"exp":1e400}'])),
  },
  {
    name: 'wrong-part-count',
    make: (rng) => pick(rng, ['', '.', '..', '...', 'a', 'a.b', 'a.b.c.d', 'a.b.c.d.e', `${b64url(JSON.stringify(HS))}.${b64url('{}')}`]),
  },
  { name: 'huge', make: (rng, c) => token(rng, c, HS, claims(c, { pad: 'x'.repeat(logInt(rng, 1024, c.maxBytes)) })) },
  { name: 'huge-header', make: (rng, c) => token(rng, c, { ...HS, kid: 'k'.repeat(logInt(rng, 1024, c.maxBytes)) }, claims(c)) },
  { name: 'exp-past', make: (rng, c) => token(rng, c, HS, claims(c, { iat: 999_000_000, exp: pick(rng, [1_000_000_000, 0, c.now - 120]) })) },
  {
    name: 'exp-far-future',
    make: (rng, c) => token(rng, c, HS, claims(c, { exp: pick(rng, [253_402_300_800, 1e20, Number.MAX_SAFE_INTEGER, 1e308, 2 ** 63]) })),
  },
  { name: 'exp-string', make: (rng, c) => token(rng, c, HS, claims(c, { exp: pick(rng, [String(c.now + 3600), 'tomorrow', '', '1e99']) })) },
  { name: 'exp-odd', make: (rng, c) => token(rng, c, HS, claims(c, { exp: pick(rng, [-1, 1.5, null, [], {}, true, [c.now + 3600]]) })) },
  { name: 'exp-missing', make: (rng, c) => token(rng, c, HS, { sub: 'fuzz', iat: c.now }) },
  { name: 'nbf-iat-future', make: (rng, c) => token(rng, c, HS, claims(c, pick(rng, [{ nbf: c.now + 86_400 }, { iat: c.now + 86_400 }, { nbf: 'now' }]))) },
  {
    name: 'nested-claims', make: (rng, c) => {
      const depth = logInt(rng, 100, 5000);
      const payload = `{"sub":${nestedJson(depth, pick(rng, ['array', 'object'] as const))},"exp":${c.now + 3600}}`;
      const wide = claims(c, { sub: { id: 1, roles: ['admin'] }, aud: Array.from({ length: 10_000 }, (_, i) => `a${i}`), iss: { x: 1 } });
      return token(rng, c, HS, pick(rng, [payload, wide]));
    },
  },
  {
    name: 'proto-claims',
    make: (rng, c) => token(rng, c, HS, `{"__proto__":{"admin":true},"constructor":{"prototype":{"admin":true}},"sub":"fuzz","exp":${c.now + 3600}}`),
  },
  {
    name: 'alg-confusion', make: (rng, c) => {
      const alg = pick(rng, ['RS256', 'ES256', 'PS256', 'HS512', 'HS384', 'hs256', 'EdDSA', 'HS256 ']);
      const signing = `${b64url(JSON.stringify({ alg, typ: 'JWT' }))}.${b64url(JSON.stringify(claims(c)))}`;
      // The HMAC of a key the server might also hold as a public key: the classic RS256→HS256 confusion.
      return `${signing}.${createHmac('sha256', c.secret ?? 'public-key-pem').update(signing).digest('base64url')}`;
    },
  },
  {
    name: 'header-injection', make: (rng, c) => token(rng, c, pick(rng, [
      { ...HS, kid: '../../../../dev/null' }, { ...HS, kid: "' OR 1=1 --" }, { ...HS, jku: 'http://127.0.0.1:1/jwks.json' },
      { ...HS, x5u: 'http://127.0.0.1:1/x' },
      { ...HS, jwk: { kty: 'oct', k: b64url('attacker-secret-attacker-secret!') } }, { ...HS, crit: ['exp'] }, { ...HS, crit: ['x-unknown'], 'x-unknown': 1 },
      { ...HS, b64: false, crit: ['b64'] }, { ...HS, typ: 'JWE' }, { ...HS, cty: 'JWT' }, { ...HS, zip: 'DEF' },
      '{"alg":"HS256","typ":"JWT","__proto__":{"alg":"none"}}',
    ]), claims(c)),
  },
  {
    name: 'whitespace-and-prefix', make: (rng, c) => {
      const t = token(rng, c, HS, claims(c));
      return pick(rng, [`Bearer ${t}`, `${t}\n`, ` ${t}`, `${t} `, t.replace(/\./g, '%2E'), `${t}\u0000`, t.replace('.', '. '), `"${t}"`]);
    },
  },
];

/** The named cases of hostileTokens. */
export const TOKEN_CASES: readonly Case<string, TokenOptions>[] = TOKEN_CASES_LIST.map((c) => ({
  name: c.name,
  make: (rng, o) => c.make(rng, { secret: o.secret, now: o.nowSeconds ?? Math.floor(Date.now() / 1000), maxBytes: o.maxBytes ?? 64 * 1024 }),
}));

export const hostileTokenNamed = (rng: Rng, opts: TokenOptions = {}): Named<string> => pickCase(rng, TOKEN_CASES, opts);
/** A JWT-like string that a careful verifier refuses (for `?token=` or `Authorization: Bearer`). */
export const hostileTokens = (rng: Rng, opts: TokenOptions = {}): string => hostileTokenNamed(rng, opts).value;

/** A valid token spoilt: a flipped signature byte, alg none, a changed claim under the old signature, cut, doubled. */
export function tamperToken(rng: Rng, valid: string): Named<string> {
  const [h = '', p = '', s = ''] = valid.split('.');
  const payload = (() => { try { return JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>; } catch { return {}; } })();
  const flip = (x: string) => { const i = int(rng, 0, Math.max(0, x.length - 1)); return x.slice(0, i) + (x[i] === 'A' ? 'B' : 'A') + x.slice(i + 1); };
  const variants: [string, () => string][] = [
    ['flip-signature', () => `${h}.${p}.${flip(s)}`],
    ['drop-signature', () => `${h}.${p}.`],
    ['alg-none-same-claims', () => `${b64url('{"alg":"none","typ":"JWT"}')}.${p}.`],
    ['claim-changed', () => `${h}.${b64url(JSON.stringify({ ...payload, sub: 'admin', exp: Number(payload.exp ?? 0) + 86_400 }))}.${s}`],
    ['flip-payload', () => `${h}.${flip(p)}.${s}`],
    ['cut', () => valid.slice(0, int(rng, 1, valid.length - 1))],
    ['doubled', () => `${valid}.${valid}`],
    ['upper-case', () => valid.toUpperCase()],
    ['padded', () => `${h}=.${p}==.${s}=`],
  ];
  const [name, make] = pick(rng, variants);
  return { name, value: make() };
}

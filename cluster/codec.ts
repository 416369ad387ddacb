/**
 * Wire format of everything Sightline sends over NATS: one JSON document followed by the raw bytes of
 * the binary values it held (JPEGs, images, embeddings), so binary data is neither base64-inflated nor
 * copied through a string.
 *
 *   [u32 LE: JSON length][JSON {"v": value, "b": [byte lengths]}][blob 0][blob 1]…
 *
 * ArrayBuffers and typed arrays (Buffer included) become {"$b": index, "$t": constructor} in the JSON and
 * come back as the same type, in memory of their own (so they can be transferred to a worker).
 */
import { coded, type SightlineError } from '../core/errors.js';


type Typed = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;
const TYPES: Record<string, new (b: ArrayBuffer) => Typed> = {
  Uint8Array, Int8Array, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array, Float64Array,
};

/** A message that does not decode: CODEC. */
const codecError = (message: string): SightlineError => coded('CODEC', message);

export function encode(value: unknown): Uint8Array {
  const blobs: Uint8Array[] = [];
  const json = JSON.stringify({ v: value ?? null }, function (this: Record<string, unknown>, key, v) {
    // `this[key]` is the value before toJSON (a Buffer would otherwise arrive as {type, data: [...]}).
    const raw = this[key];
    if (raw instanceof ArrayBuffer) {
      blobs.push(new Uint8Array(raw));
      return { $b: blobs.length - 1, $t: 'ArrayBuffer' };
    }
    if (ArrayBuffer.isView(raw) && !(raw instanceof DataView)) {
      blobs.push(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
      const t = raw instanceof Buffer ? 'Uint8Array' : raw.constructor.name;
      return { $b: blobs.length - 1, $t: t };
    }
    return v;
  }).slice(0, -1) + `,"b":${JSON.stringify(blobs.map((b) => b.byteLength))}}`;
  const head = Buffer.from(json);
  const out = Buffer.allocUnsafe(4 + head.length + blobs.reduce((a, b) => a + b.byteLength, 0));
  out.writeUInt32LE(head.length, 0);
  head.copy(out, 4);
  let at = 4 + head.length;
  for (const b of blobs) { out.set(b, at); at += b.byteLength; }
  return out;
}

export function decode<T = unknown>(bytes: Uint8Array): T {
  if (bytes.byteLength < 4) throw codecError('message shorter than its header');
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = view.readUInt32LE(0);
  if (4 + len > view.length) throw codecError('JSON length beyond the message');
  let doc: { v: unknown; b: unknown };
  try {
    doc = JSON.parse(view.subarray(4, 4 + len).toString());
  } catch {
    throw codecError('header is not JSON');
  }
  if (!Array.isArray(doc.b) || !doc.b.every((n) => Number.isInteger(n) && n >= 0)) throw codecError('bad blob table');
  const offsets: number[] = [];
  let at = 4 + len;
  for (const n of doc.b as number[]) { offsets.push(at); at += n; }
  if (at !== view.length) throw codecError('blob lengths do not match the message');
  const sizes = doc.b as number[];
  const revive = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(revive);
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    if (typeof o.$b === 'number' && typeof o.$t === 'string' && Object.keys(o).length === 2) {
      const i = o.$b;
      if (!(i >= 0 && i < sizes.length)) throw codecError('blob index out of range');
      const copy = new ArrayBuffer(sizes[i]);
      new Uint8Array(copy).set(view.subarray(offsets[i], offsets[i] + sizes[i]));
      if (o.$t === 'ArrayBuffer') return copy;
      const Ctor = TYPES[o.$t];
      if (!Ctor) throw codecError(`unknown binary type ${o.$t.slice(0, 32)}`);
      return new Ctor(copy);
    }
    for (const k of Object.keys(o)) o[k] = revive(o[k]);
    return o;
  };
  return revive(doc.v) as T;
}

/** The ArrayBuffers a decoded value holds (to transfer them to a worker instead of copying). */
export function buffersOf(value: unknown, out = new Set<ArrayBuffer>()): Set<ArrayBuffer> {
  if (value instanceof ArrayBuffer) out.add(value);
  else if (ArrayBuffer.isView(value)) out.add(value.buffer as ArrayBuffer);
  else if (Array.isArray(value)) value.forEach((v) => buffersOf(v, out));
  else if (value !== null && typeof value === 'object') Object.values(value).forEach((v) => buffersOf(v, out));
  return out;
}

/**
 * Just enough of protobuf's wire format to rewrite an ONNX model in memory: split a message into its fields,
 * replace some, and encode the result. The model's unchanged fields (its weights, megabytes) stay views of the file
 * and are copied once, into the result. Field numbers used by the rewrites (onnx.proto): ModelProto.graph = 7;
 * GraphProto.node = 1, input = 11, output = 12, value_info = 13; NodeProto.input = 1, output = 2, name = 3,
 * op_type = 4, attribute = 5; AttributeProto.name = 1, i = 3, type = 20; ValueInfoProto.name = 1, type = 2;
 * TypeProto.tensor_type = 1; Tensor.elem_type = 1, shape = 2; TensorShapeProto.dim = 1; Dimension.dim_value = 1,
 * dim_param = 2. A schema library for these few paths would be more code than this.
 */

export interface Field {
  no: number;
  wireType: number;
  /** The whole field, key included. */
  raw: Uint8Array;
  /** Payload of a length-delimited field. */
  body?: Uint8Array;
}

/** A message being re-encoded, as the byte ranges it is made of. */
export type Parts = Uint8Array[];

/** ValueInfoProto with its tensor shape's dims replaced (each dim passed as its encoded Dimension field). */
export function reshapeValue(valueInfo: Uint8Array, change: (dims: Uint8Array[]) => Uint8Array[]): Parts {
  return rewrite(valueInfo, (v) => {
    if (v.no !== 2 || !v.body) return [v.raw];
    return delimited(2, rewrite(v.body, (t) => {
      if (t.no !== 1 || !t.body) return [t.raw];
      return delimited(1, rewrite(t.body, (s) => {
        if (s.no !== 2 || !s.body) return [s.raw];
        const all = fields(s.body);
        const dims = all.filter((d) => d.no === 1).map((d) => d.raw);
        const rest = all.filter((d) => d.no !== 1).map((d) => d.raw);
        return delimited(2, [...change(dims), ...rest]);
      }));
    }));
  });
}

/** TensorShapeProto.dim field holding Dimension { dim_param: name }. */
export function symbolic(name: string): Uint8Array {
  return concat(delimited(1, delimited(2, [new TextEncoder().encode(name)])));
}

/** Re-encodes a message with each field replaced by what `map` returns (null drops it). */
export function rewrite(message: Uint8Array, map: (f: Field) => Parts | null): Parts {
  const parts: Parts = [];
  for (const f of fields(message)) {
    const r = map(f);
    if (r) parts.push(...r);
  }
  return parts;
}

export function fields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [key, afterKey] = varint(buf, pos);
    pos = afterKey;
    const no = Math.floor(key / 8);
    const wireType = key % 8;
    let body: Uint8Array | undefined;
    if (wireType === 0) pos = varint(buf, pos)[1];
    else if (wireType === 1) pos += 8;
    else if (wireType === 5) pos += 4;
    else if (wireType === 2) {
      const [len, afterLen] = varint(buf, pos);
      body = buf.subarray(afterLen, afterLen + len);
      pos = afterLen + len;
    } else throw new Error(`unsupported wire type ${wireType}`);
    if (pos > buf.length || no === 0) throw new Error('truncated or malformed protobuf');
    out.push({ no, wireType, raw: buf.subarray(start, pos), body });
  }
  return out;
}

function varint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let factor = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    value += (b & 0x7f) * factor;
    if (b < 0x80) return [value, pos];
    factor *= 128;
  }
  throw new Error('varint too long');
}

function encodeVarint(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A varint field (wire type 0). */
export function varintField(no: number, value: number): Uint8Array {
  return Uint8Array.from([...encodeVarint(no * 8), ...encodeVarint(value)]);
}

/** A string field. */
export function stringField(no: number, value: string): Parts {
  return delimited(no, [new TextEncoder().encode(value)]);
}

export function delimited(no: number, body: Parts): Parts {
  const length = body.reduce((n, p) => n + p.length, 0);
  return [Uint8Array.from([...encodeVarint(no * 8 + 2), ...encodeVarint(length)]), ...body];
}

export function concat(parts: Parts): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

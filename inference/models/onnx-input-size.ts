/**
 * Frees the height and width of an ONNX model's image input, in memory (the file is not touched). Detectors are often
 * exported with a fixed square input (YOLOX-Nano: 1×3×416×416) although every operator in them works at any size
 * that divides by their largest stride; a 16:9 camera letterboxed into that square wastes 44 % of the model's work on
 * padding. The rewritten model runs at the frame's own aspect (416×256 for 640×360: 6.8 ms instead of 10.9 ms).
 *
 * Only the declared shapes change: the first graph input's dims 2 and 3 and the outputs' dim 1 become symbolic, and
 * the shapes recorded for intermediate values (value_info) are dropped, since ONNX Runtime checks its own inference
 * against them. Whether the operators really take any size is the caller's to check (a fixed Reshape would fail at
 * the first run); sessions.ts probes the rewritten model at another size before using it.
 *
 * The rewrite walks protobuf's wire format directly (ModelProto.graph = 7; GraphProto.input = 11, output = 12,
 * value_info = 13; ValueInfoProto.type = 2; TypeProto.tensor_type = 1; Tensor.shape = 2; TensorShapeProto.dim = 1;
 * Dimension.dim_value = 1, dim_param = 2): a schema library for four paths would be more code than this.
 */

interface Field {
  no: number;
  wireType: number;
  /** The whole field, key included. */
  raw: Uint8Array;
  /** Payload of a length-delimited field. */
  body?: Uint8Array;
}

/** Returns the model with a free-size image input, or null when it does not look like an image model. */
export function withFreeInputSize(model: Uint8Array): Uint8Array | null {
  let patchedInput = false;
  try {
    const out = concat(rewrite(model, (f) => {
      if (f.no !== 7 || !f.body) return [f.raw];
      const graph = rewrite(f.body, (g) => {
        if (g.no === 13) return null; // value_info: recorded shapes of intermediate values
        if (g.no === 11 && g.body && !patchedInput) {
          patchedInput = true;
          return delimited(11, reshapeValue(g.body, (dims) => {
            if (dims.length !== 4) throw new Error('not an NCHW input');
            return dims.map((d, i) => (i === 2 ? symbolic('height') : i === 3 ? symbolic('width') : d));
          }));
        }
        if (g.no === 12 && g.body) return delimited(12, reshapeValue(g.body, (dims) => dims.map((d, i) => (i === 1 ? symbolic('anchors') : d))));
        return [g.raw];
      });
      return delimited(7, graph);
    }));
    return patchedInput ? out : null;
  } catch {
    return null;
  }
}

/** ValueInfoProto with its tensor shape's dims replaced (each dim passed as its encoded Dimension field). */
function reshapeValue(valueInfo: Uint8Array, change: (dims: Uint8Array[]) => Uint8Array[]): Parts {
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

/**
 * A message being re-encoded, as the byte ranges it is made of: the model's unchanged fields (its weights, megabytes)
 * stay views of the file and are copied once, into the result, instead of at every level of nesting.
 */
type Parts = Uint8Array[];

/** TensorShapeProto.dim field holding Dimension { dim_param: name }. */
function symbolic(name: string): Uint8Array {
  return concat(delimited(1, delimited(2, [new TextEncoder().encode(name)])));
}

/** Re-encodes a message with each field replaced by what `map` returns (null drops it). */
function rewrite(message: Uint8Array, map: (f: Field) => Parts | null): Parts {
  const parts: Parts = [];
  for (const f of fields(message)) {
    const r = map(f);
    if (r) parts.push(...r);
  }
  return parts;
}

function fields(buf: Uint8Array): Field[] {
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

function delimited(no: number, body: Parts): Parts {
  const length = body.reduce((n, p) => n + p.length, 0);
  return [Uint8Array.from([...encodeVarint(no * 8 + 2), ...encodeVarint(length)]), ...body];
}

function concat(parts: Parts): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

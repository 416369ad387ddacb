/** The wire format of cluster messages: binary values survive as their own types; bad bytes are refused. */
import test from 'ava';
import { buffersOf, decode, encode } from '../cluster/codec.js';
import { SightlineError } from '../core/errors.js';

test('JSON with binary values round-trips, each binary in memory of its own', (t) => {
  const jpeg = Buffer.from([0xff, 0xd8, 1, 2, 3, 0xff, 0xd9]);
  const emb = new Float32Array([0.5, -1.25, 3]);
  const raw = new Uint8Array([9, 8, 7]).buffer;
  const value = { t: 'packet', e: { frame: { source: 'cam.1', data: new ArrayBuffer(0) }, jpeg: { data: raw, width: 2 }, faces: [{ emb }], img: jpeg, n: null } };
  const bytes = encode(value);
  // Compact: the JSON part plus the raw bytes, no base64.
  t.true(bytes.byteLength < JSON.stringify({ t: 'packet' }).length + 300);
  const back = decode<typeof value>(bytes);
  t.deepEqual([...new Uint8Array(back.e.jpeg.data)], [9, 8, 7]);
  t.true(back.e.faces[0].emb instanceof Float32Array);
  t.deepEqual([...back.e.faces[0].emb], [0.5, -1.25, 3]);
  t.true(back.e.img instanceof Uint8Array);
  t.deepEqual([...back.e.img], [...jpeg]);
  t.is(back.e.frame.data.byteLength, 0);
  t.is(back.e.n, null);
  t.is(back.e.frame.source, 'cam.1');
  t.is(buffersOf(back).size, 4);
  t.is(decode(encode(undefined)), null);
});

test('truncated, garbage or inconsistent messages are refused with a CODEC error', (t) => {
  const good = encode({ a: new Uint8Array([1, 2, 3]) });
  t.throws(() => decode(new Uint8Array([1, 2])), { instanceOf: SightlineError, code: 'CODEC' });
  t.throws(() => decode(Buffer.from('garbage that is not a message')), { instanceOf: SightlineError, code: 'CODEC' });
  t.throws(() => decode(good.subarray(0, good.byteLength - 1)), { instanceOf: SightlineError, code: 'CODEC' });
  const lying = Buffer.from(good);
  lying.writeUInt32LE(1_000_000, 0);
  t.throws(() => decode(lying), { instanceOf: SightlineError, code: 'CODEC' });
  const badType = Buffer.concat([Buffer.alloc(4), Buffer.from('{"v":{"$b":0,"$t":"Evil"},"b":[1]}'), Buffer.from([0])]);
  badType.writeUInt32LE(badType.length - 5, 0);
  t.throws(() => decode(badType), { instanceOf: SightlineError, code: 'CODEC', message: /unknown binary type/ });
});

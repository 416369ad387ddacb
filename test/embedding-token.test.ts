import test from 'ava';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SightlineError } from '../core/errors.js';
import { loadOrCreateKey, openVectors, sealVectors } from '../services/looks/embedding-token.js';

const vectors = () => ({ reid: Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)), face: Float32Array.from({ length: 128 }, (_, i) => Math.cos(i)) });

test('a sealed token opens to the same vectors, and is opaque', (t) => {
  const key = loadOrCreateKey(mkdtempSync(path.join(os.tmpdir(), 'sl-key-')));
  const v = vectors();
  const token = sealVectors(key, v);
  t.regex(token, /^[A-Za-z0-9_-]+$/);
  t.not(sealVectors(key, v), token, 'a fresh nonce every time');
  const back = openVectors(key, token);
  t.deepEqual([...back.reid], [...v.reid]);
  t.deepEqual([...back.face], [...v.face]);
  // The clear vectors are not in the token.
  t.false(Buffer.from(token, 'base64url').includes(Buffer.from(v.reid.buffer).subarray(0, 16)));
});

test('flipped, truncated, foreign and garbage tokens are rejected', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sl-key-'));
  const key = loadOrCreateKey(dir);
  const token = sealVectors(key, vectors());
  const raw = Buffer.from(token, 'base64url');
  for (const i of [0, 5, 20, 40, raw.length - 1]) {
    const flipped = Buffer.from(raw);
    flipped[i] ^= 0x01;
    t.throws(() => openVectors(key, flipped.toString('base64url')), { instanceOf: SightlineError, code: 'BAD_TOKEN' }, `byte ${i}`);
  }
  t.throws(() => openVectors(key, raw.subarray(0, raw.length - 10).toString('base64url')), { instanceOf: SightlineError, code: 'BAD_TOKEN' });
  const other = loadOrCreateKey(mkdtempSync(path.join(os.tmpdir(), 'sl-key-')));
  t.throws(() => openVectors(other, token), { instanceOf: SightlineError, code: 'BAD_TOKEN', message: /altered, truncated, or issued by another server/ });
  for (const bad of [undefined, 42, '', 'not base64!', 'a'.repeat(100)]) t.throws(() => openVectors(key, bad), { instanceOf: SightlineError, code: 'BAD_TOKEN' });
});

test('the key is created once in the data directory, private, and reused', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sl-key-'));
  const a = loadOrCreateKey(dir);
  t.is(statSync(path.join(dir, 'watchme.key')).mode & 0o777, 0o600);
  t.deepEqual(loadOrCreateKey(dir), a);
  t.is(readFileSync(path.join(dir, 'watchme.key'), 'utf8').trim().length, 64);
  t.deepEqual(loadOrCreateKey(dir, 'ab'.repeat(32)), Buffer.from('ab'.repeat(32), 'hex'));
  t.throws(() => loadOrCreateKey(dir, 'abc'), { message: /64 hex characters/ });
});

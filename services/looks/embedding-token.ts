/**
 * Opaque, encrypted and authenticated embedding tokens (WatchMe's `person_embed`): biometric vectors never
 * leave the server in the clear, and a token that was altered, truncated or made with another server's
 * key is rejected. AES-256-GCM with a random 96-bit nonce per token; the key lives in the data directory
 * (created on first start) unless configured.
 *
 * Token = base64url( version 0x01 | nonce (12) | tag (16) | ciphertext ), plaintext = named float32 vectors.
 */
import { coded, type SightlineError } from '../../core/errors.js';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const VERSION = 1;
const AAD = Buffer.from('sightline/embedding-token/v1');

/** A token that does not open: BAD_TOKEN. */
const badToken = (message: string): SightlineError => coded('BAD_TOKEN', message);

/** The server key: from `hexKey` when given, else `<dataDir>/watchme.key`, created (mode 600) if missing. */
export function loadOrCreateKey(dataDir: string, hexKey?: string): Buffer {
  if (hexKey) {
    const key = Buffer.from(hexKey, 'hex');
    if (key.length !== 32) throw new Error('the embedding key must be 64 hex characters (256 bits)');
    return key;
  }
  const file = path.resolve(dataDir, 'watchme.key');
  if (existsSync(file)) {
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
    if (key.length !== 32) throw new Error(`${file} does not hold a 256-bit hex key`);
    return key;
  }
  mkdirSync(path.dirname(file), { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return key;
}

export type Vectors = Record<string, Float32Array>;

function pack(vectors: Vectors): Buffer {
  const parts: Buffer[] = [];
  for (const [name, v] of Object.entries(vectors)) {
    const n = Buffer.from(name, 'utf8');
    const head = Buffer.alloc(1 + n.length + 4);
    head.writeUInt8(n.length, 0);
    n.copy(head, 1);
    head.writeUInt32LE(v.length, 1 + n.length);
    parts.push(head, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }
  return Buffer.concat(parts);
}

function unpack(buf: Buffer): Vectors {
  const out: Vectors = {};
  let at = 0;
  while (at < buf.length) {
    const len = buf.readUInt8(at);
    const name = buf.subarray(at + 1, at + 1 + len).toString('utf8');
    const count = buf.readUInt32LE(at + 1 + len);
    at += 1 + len + 4;
    if (at + count * 4 > buf.length) throw badToken('embedding token is malformed');
    out[name] = new Float32Array(buf.buffer.slice(buf.byteOffset + at, buf.byteOffset + at + count * 4));
    at += count * 4;
  }
  return out;
}

export function sealVectors(key: Buffer, vectors: Vectors): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(AAD);
  const body = Buffer.concat([cipher.update(pack(vectors)), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), nonce, cipher.getAuthTag(), body]).toString('base64url');
}

export function openVectors(key: Buffer, token: unknown): Vectors {
  if (typeof token !== 'string' || token.length < 40 || token.length > 65536 || !/^[A-Za-z0-9_-]+$/.test(token)) {
    throw badToken('person_embed is not an embedding token issued by this server');
  }
  const raw = Buffer.from(token, 'base64url');
  if (raw.length < 1 + 12 + 16 + 1 || raw[0] !== VERSION) throw badToken('person_embed is not an embedding token issued by this server');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(1, 13));
  decipher.setAAD(AAD);
  decipher.setAuthTag(raw.subarray(13, 29));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(raw.subarray(29)), decipher.final()]);
  } catch {
    throw badToken('person_embed failed authentication: it was altered, truncated, or issued by another server');
  }
  return unpack(plain);
}

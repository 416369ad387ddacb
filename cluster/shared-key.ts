/**
 * The WatchMe embedding-token key of a cluster: one key in the KV bucket `sightline-secrets`, so a token
 * issued by one gateway opens on every other. The first node offers its own key (the one in its data
 * directory, so tokens it issued before it joined stay valid) with a create-if-absent; every node then
 * uses whichever key won.
 */
import type { KV, NatsConnection } from 'nats';
import { loadOrCreateKey } from '../services/looks/embedding-token.js';

const BUCKET = 'sightline-secrets';
const KEY = 'watchme-key';

export async function sharedEmbeddingKey(nc: NatsConnection, dataDir: string, replicas: number): Promise<Buffer> {
  const kv = await nc.jetstream().views.kv(BUCKET, { history: 1, replicas }) as KV;
  const offered = loadOrCreateKey(dataDir).toString('hex');
  try {
    await kv.create(KEY, offered);
  } catch {
    // Another node's key is there already (create fails on an existing key): that one is used.
  }
  const entry = await kv.get(KEY);
  const key = entry && entry.operation === 'PUT' ? Buffer.from(entry.string().trim(), 'hex') : null;
  if (!key || key.length !== 32) throw new Error(`${BUCKET}/${KEY} does not hold a 256-bit hex key`);
  return key;
}

/**
 * Model work for client-sent images across the cluster: a gateway sends each task as a NATS request on
 * `sightline.infer`; the workers answer from a queue group, so NATS spreads requests over them and a
 * worker that dies simply stops being picked. Replies may arrive in any order: transports that must answer
 * in order (DDFR) already chain their replies per connection.
 */
import path from 'node:path';
import type { NatsConnection, Subscription } from 'nats';
import type { InferenceClient } from '../pipeline/inference-client.js';
import type { Logger } from '../pipeline/log.js';
import type { Metrics } from '../pipeline/metrics.js';
import type { ModelRef, WorkerTask } from '../pipeline/worker-protocol.js';
import type { InferencePool } from '../pipeline/worker-pool.js';
import { buffersOf, decode, encode } from './codec.js';

export const INFER_SUBJECT = 'sightline.infer';
const QUEUE = 'sightline-workers';

type Reply<R> = { ok: true; result: R; node: string } | { ok: false; error: string; node: string };

export class RemoteInference implements InferenceClient {
  constructor(private readonly nc: NatsConnection, private readonly metrics: Metrics, private readonly timeoutMs = 15_000) {}

  async run<R>(task: WorkerTask): Promise<R> {
    let reply: Reply<R>;
    try {
      const msg = await this.nc.request(INFER_SUBJECT, encode(task), { timeout: this.timeoutMs });
      reply = decode<Reply<R>>(msg.data);
    } catch (err) {
      this.metrics.clusterInference.inc({ side: 'sent', result: 'unanswered' });
      throw new Error(`no worker answered the ${task.op} request: ${(err as Error).message}`);
    }
    this.metrics.clusterInference.inc({ side: 'sent', result: reply.ok ? 'ok' : 'error' });
    // The worker's own error text, so callers tell bad input (e.g. "not a decodable image") from failures.
    if (!reply.ok) throw new Error(reply.error);
    return reply.result;
  }

  /** Workers load models on first use (each keeps them); nothing to do from a gateway. */
  async preload(_model: ModelRef): Promise<void> {}
}

/** Worker side: answers inference requests with the local pool, as one member of the queue group. */
export function serveInference(nc: NatsConnection, pool: InferencePool, modelDir: string, nodeId: string,
  metrics: Metrics, log: Logger): Subscription {
  const answer = async (data: Uint8Array): Promise<Reply<unknown>> => {
    try {
      const task = decode<WorkerTask>(data);
      if (typeof task !== 'object' || task === null || typeof task.op !== 'string') throw new Error('not a worker task');
      localModels(task, modelDir);
      const result = await pool.run(task, [...buffersOf(task)]);
      metrics.clusterInference.inc({ side: 'served', result: 'ok' });
      return { ok: true, result, node: nodeId };
    } catch (err) {
      metrics.clusterInference.inc({ side: 'served', result: 'error' });
      log.debug(`inference request failed: ${(err as Error).message}`);
      return { ok: false, error: (err as Error).message, node: nodeId };
    }
  };
  return nc.subscribe(INFER_SUBJECT, {
    queue: QUEUE,
    callback: (err, msg) => {
      if (err) { log.warn(`inference subscription: ${err.message}`); return; }
      void answer(msg.data).then((r) => msg.respond(encode(r)));
    },
  });
}

/**
 * Model files are looked up in this worker's model directory by file name: a request names a model,
 * it does not get to open an arbitrary path on the worker.
 */
function localModels(value: unknown, modelDir: string): void {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return;
  const o = value as Record<string, unknown>;
  if (typeof o.path === 'string' && typeof o.kind === 'string' && Object.keys(o).length === 2) {
    o.path = path.resolve(modelDir, path.basename(o.path));
    return;
  }
  Object.values(o).forEach((v) => localModels(v, modelDir));
}

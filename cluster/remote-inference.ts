/**
 * Model work for client-sent images across the cluster (DDFR frames, WatchMe photos and `single_frame`s,
 * reconstruction images): a gateway sends each task as a NATS request on `sightline.infer`; the workers
 * answer from a queue group, so NATS spreads requests over them and a worker that dies simply stops being
 * picked. Tasks and results cross in the cluster codec: images, pixels, depth maps and embeddings as raw
 * bytes after a small JSON header. Replies may arrive in any order: every transport that must answer in
 * order (DDFR, WatchMe, reconstruction) already chains its replies per connection.
 *
 * A message is bounded by the server's max_payload (1 MB by default). A task too large to send, or whose
 * result is too large to send back (a 10 MB photo, a depth view at a high process_res), runs on the
 * gateway's own pool instead: slower than a worker, but answered, and counted as `local`.
 */
import path from 'node:path';
import type { NatsConnection, Subscription } from 'nats';
import type { InferenceClient } from '../inference/client.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { ModelRef, WorkerTask } from '../inference/protocol.js';
import type { InferencePool } from '../inference/pool.js';
import { coded, fromWire, toWire, type WireError } from '../core/errors.js';
import { buffersOf, decode, encode } from './codec.js';

export const INFER_SUBJECT = 'sightline.infer';
const QUEUE = 'sightline-workers';
/** The server's default, for a connection that has not received its INFO yet. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** A worker's answer; a failure carries its coded error, so callers branch on the code as they would locally. */
type Reply<R> = { ok: true; result: R; node: string } | { ok: false; error: WireError; node: string; tooLarge?: true };

const maxPayload = (nc: NatsConnection): number => nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;

export class RemoteInference implements InferenceClient {
  /** `local`: the gateway's own pool, for tasks or results too large for one NATS message. */
  constructor(private readonly nc: NatsConnection, private readonly metrics: Metrics,
    private readonly local: InferenceClient, private readonly timeoutMs = 15_000) {}

  async run<R>(task: WorkerTask, transferList: ArrayBuffer[] = []): Promise<R> {
    const bytes = encode(task);
    if (bytes.byteLength > maxPayload(this.nc)) return this.runLocally(task, transferList);
    this.metrics.clusterInferenceOps.inc({ side: 'sent', op: task.op });
    let reply: Reply<R>;
    try {
      const msg = await this.nc.request(INFER_SUBJECT, bytes, { timeout: this.timeoutMs });
      reply = decode<Reply<R>>(msg.data);
    } catch (err) {
      this.metrics.clusterInference.inc({ side: 'sent', result: 'unanswered' });
      throw coded('UNAVAILABLE', `no worker answered the ${task.op} request: ${(err as Error).message}`);
    }
    // The task's buffers were only encoded, not transferred: still whole for the local pool.
    if (!reply.ok && reply.tooLarge) return this.runLocally(task, transferList);
    this.metrics.clusterInference.inc({ side: 'sent', result: reply.ok ? 'ok' : 'error' });
    // The worker's own coded error, so callers tell bad input (BAD_IMAGE) from failures.
    if (!reply.ok) throw fromWire(reply.error);
    return reply.result;
  }

  private runLocally<R>(task: WorkerTask, transferList: ArrayBuffer[]): Promise<R> {
    this.metrics.clusterInference.inc({ side: 'sent', result: 'local' });
    return this.local.run<R>(task, transferList);
  }

  /** Workers load models on first use (each keeps them); nothing to do from a gateway. */
  async preload(_model: ModelRef): Promise<void> {}
}

/** Worker side: answers inference requests with the local pool, as one member of the queue group. */
export function serveInference(nc: NatsConnection, pool: InferencePool, modelDir: string, nodeId: string,
  metrics: Metrics, log: Logger): Subscription {
  const answer = async (data: Uint8Array): Promise<Uint8Array> => {
    let reply: Reply<unknown>;
    try {
      const task = decode<WorkerTask>(data);
      if (typeof task !== 'object' || task === null || typeof task.op !== 'string') throw coded('CODEC', 'not a worker task');
      metrics.clusterInferenceOps.inc({ side: 'served', op: task.op.slice(0, 32) });
      localModels(task, modelDir);
      reply = { ok: true, result: await pool.run(task, [...buffersOf(task)]), node: nodeId };
    } catch (err) {
      metrics.clusterInference.inc({ side: 'served', result: 'error' });
      log.debug(`inference request failed: ${(err as Error).message}`);
      return encode({ ok: false, error: toWire(err), node: nodeId } satisfies Reply<unknown>);
    }
    const bytes = encode(reply);
    if (bytes.byteLength <= maxPayload(nc)) {
      metrics.clusterInference.inc({ side: 'served', result: 'ok' });
      return bytes;
    }
    // Too large to publish: the gateway runs the task itself rather than waiting for a reply that cannot come.
    metrics.clusterInference.inc({ side: 'served', result: 'too_large' });
    return encode({ ok: false, tooLarge: true, error: toWire(coded('TOO_LARGE', `result of ${bytes.byteLength} bytes exceeds max_payload`)), node: nodeId } satisfies Reply<unknown>);
  };
  return nc.subscribe(INFER_SUBJECT, {
    queue: QUEUE,
    callback: (err, msg) => {
      if (err) { log.warn(`inference subscription: ${err.message}`); return; }
      void answer(msg.data).then((r) => msg.respond(r)).catch((e: Error) => log.warn(`inference reply not sent: ${e.message}`));
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

/**
 * Piscina worker entry: runs each task with the op registered for it. The op modules come from the catalog
 * (handed down in workerData, as GStreamer consults its registry instead of linking its plugins), each loaded
 * once when the worker starts. A failure goes back as a coded error (FailedTask), never as a bare exception.
 */
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { coded, toWire } from '../core/errors.js';
import type { FailedTask, OpEnv, WorkerOp, WorkerTask } from './protocol.js';

interface InferenceWorkerData {
  /** URLs of the op modules (each exports `ops`). */
  ops: string[];
  ortThreads?: number;
  /** Microseconds spent on tasks, added up by every worker. */
  busyMicros?: BigInt64Array;
}

const data = workerData as InferenceWorkerData;
const env: OpEnv = { threads: data.ortThreads ?? 1 };
const table = new Map<string, WorkerOp>();
for (const url of data.ops) {
  const mod = (await import(url)) as { ops?: WorkerOp[] };
  for (const op of mod.ops ?? []) table.set(op.op, op);
}

export default async function run(task: WorkerTask): Promise<unknown> {
  const t0 = performance.now();
  try {
    const op = table.get(task.op);
    if (!op) throw coded('UNKNOWN_OP', `no worker op "${String(task.op).slice(0, 64)}"`);
    const result = await op.run(task, env);
    return op.transfer ? withTransfer(result as object, op.transfer(result)) : result;
  } catch (err) {
    return { sightlineError: toWire(err) } satisfies FailedTask;
  } finally {
    if (data.busyMicros) Atomics.add(data.busyMicros, 0, BigInt(Math.round((performance.now() - t0) * 1000)));
  }
}

/** Piscina's Transferable wrapper: `value` is posted back with `transfer` moved, not cloned. */
function withTransfer(value: object, transfer: ArrayBuffer[]): unknown {
  return move({ [transferableSymbol]: transfer, [valueSymbol]: value } as unknown as Parameters<typeof move>[0]);
}

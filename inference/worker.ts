/**
 * Piscina worker entry: runs each task with the op registered for it. The op modules come from the catalog
 * (handed down in workerData, as GStreamer consults its registry instead of linking its plugins), each loaded
 * once, when a task first needs it. A failure goes back as a coded error (FailedTask), never as a bare exception.
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
const loaded = new Map<string, Promise<void>>();

function load(url: string): Promise<void> {
  let p = loaded.get(url);
  if (!p) {
    p = (import(url) as Promise<{ ops?: WorkerOp[] }>).then((mod) => { for (const op of mod.ops ?? []) table.set(op.op, op); });
    loaded.set(url, p);
  }
  return p;
}

/**
 * The op of a task, its module loaded at its first use: a worker of a graph that only detects never loads Skia,
 * libvips or the depth and reconstruction code (each worker is an isolate of its own, so that is memory and
 * start-up time per worker). The module named after the op is tried first, then the others in order.
 */
async function opFor(name: string): Promise<WorkerOp | undefined> {
  const own = data.ops.find((url) => url.endsWith(`/${name}.js`));
  for (const url of own ? [own, ...data.ops] : data.ops) {
    if (table.has(name)) break;
    await load(url);
  }
  return table.get(name);
}

export default async function run(task: WorkerTask): Promise<unknown> {
  const t0 = performance.now();
  try {
    const op = table.get(task.op) ?? (typeof task.op === 'string' ? await opFor(task.op) : undefined);
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

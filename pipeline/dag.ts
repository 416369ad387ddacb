/**
 * Turns a pipeline's stage DAG into one RxJS operator. Branches run side by side on their own copy of
 * the packet (pixels are copied once at a fork, before any branch can transfer them to a worker) and
 * are joined again, in order, at the sink.
 */
import { type Observable, type OperatorFunction, map, share, zip } from 'rxjs';
import { topologicalOrder, type StageSpec } from '../config/graph.js';
import type { Packet } from '../core/types.js';
import { copyFrame } from './sources/frame-pool.js';

export function buildDag(stages: StageSpec[],
  operatorFor: (stage: StageSpec) => OperatorFunction<Packet, Packet>): OperatorFunction<Packet, Packet> {
  const order = topologicalOrder(stages);
  const children = new Map<string | null, StageSpec[]>();
  for (const s of order) children.set(s.from, [...(children.get(s.from) ?? []), s]);

  return (root: Observable<Packet>) => {
    const outputs = new Map<string | null, Observable<Packet>>();
    // One shared stream per node; at a fork, make the copies up front, then hand one to each child.
    const fork = (id: string | null, out: Observable<Packet>): void => {
      const n = children.get(id)?.length ?? 0;
      if (n <= 1) { outputs.set(id, out.pipe(share())); return; }
      const copies = out.pipe(map((p) => [p, ...Array.from({ length: n - 1 }, () => clonePacket(p))]), share());
      children.get(id)!.forEach((child, i) => outputs.set(`${id}->${child.id}`, copies.pipe(map((c) => c[i]))));
    };
    const inputOf = (s: StageSpec): Observable<Packet> =>
      (children.get(s.from)!.length > 1 ? outputs.get(`${s.from}->${s.id}`) : outputs.get(s.from))!;

    fork(null, root);
    for (const s of order) fork(s.id, inputOf(s).pipe(operatorFor(s)));

    const leaves = order.filter((s) => !children.has(s.id));
    if (leaves.length === 0) return outputs.get(null)!;
    if (leaves.length === 1) return outputs.get(leaves[0].id)!;
    return zip(leaves.map((l) => outputs.get(l.id)!)).pipe(map(mergePackets));
  };
}

function clonePacket(p: Packet): Packet {
  return { ...p, frame: copyFrame(p.frame) };
}

/** Results of parallel branches, combined into one packet (first branch's pixels win). */
function mergePackets(branches: Packet[]): Packet {
  const merged: Packet = Object.assign({}, ...branches.slice().reverse());
  const errors = branches.flatMap((b) => b.errors ?? []);
  merged.frame = branches[0].frame;
  merged.errors = errors.length ? [...new Map(errors.map((e) => [`${e.stage}:${e.message}`, e])).values()] : undefined;
  return merged;
}

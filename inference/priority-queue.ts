/**
 * The pool's task queue, ordered by priority (lower first; ties in arrival order): a frame's tasks carry the frame's
 * capture time, so the tasks of frames already inside a pipeline run before those of frames admitted later, and no
 * camera's later stages wait behind another camera's new frames. Tasks without a priority get their arrival time.
 */
import { Piscina, type TaskQueue } from 'piscina';

type Task = Parameters<TaskQueue['push']>[0];

interface Entry { task: Task; priority: number; order: number }

/** The queue option a task carries (set with `withPriority`). */
export interface QueueOptions { priority?: number }

export function withPriority<T extends object>(task: T, priority: number | undefined): T {
  if (priority !== undefined) (task as Record<symbol, unknown>)[Piscina.queueOptionsSymbol] = { priority } satisfies QueueOptions;
  return task;
}

/** A binary min-heap on (priority, arrival). */
export class PriorityTaskQueue implements TaskQueue {
  private readonly heap: Entry[] = [];
  private order = 0;

  get size(): number {
    return this.heap.length;
  }

  push(task: Task): void {
    const options = task[Piscina.queueOptionsSymbol as never] as QueueOptions | null;
    const order = this.order++;
    this.heap.push({ task, priority: options?.priority ?? Date.now(), order });
    this.up(this.heap.length - 1);
  }

  /** A task put back at the front (piscina does so when a worker could not take it). */
  unshift(task: Task): void {
    this.heap.push({ task, priority: -Infinity, order: -this.order++ });
    this.up(this.heap.length - 1);
  }

  shift(): Task | null {
    const top = this.heap[0];
    if (!top) return null;
    const last = this.heap.pop()!;
    if (this.heap.length) { this.heap[0] = last; this.down(0); }
    return top.task;
  }

  remove(task: Task): void {
    const i = this.heap.findIndex((e) => e.task === task);
    if (i < 0) return;
    const last = this.heap.pop()!;
    if (i < this.heap.length) { this.heap[i] = last; this.down(i); this.up(i); }
  }

  private less(a: Entry, b: Entry): boolean {
    return a.priority < b.priority || (a.priority === b.priority && a.order < b.order);
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l], h[m])) m = l;
      if (r < h.length && this.less(h[r], h[m])) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }
}

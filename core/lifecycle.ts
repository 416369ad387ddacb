/**
 * Closing, the one way (mediasoup's Router.close()): idempotent — a second call gets the first call's promise —
 * and cascading — a parent closes its children, last opened first. Stopping the app is closing the root.
 */

export interface Closable { close(): void | Promise<void> }

/** Wraps a close function so it runs once; later calls share the first call's promise. */
export function closeOnce(fn: () => void | Promise<void>): () => Promise<void> {
  let done: Promise<void> | null = null;
  return () => (done ??= Promise.resolve().then(fn));
}

/** A set of children closed together, newest first; a failure in one is reported and does not stop the rest. */
export class Closer implements Closable {
  private readonly children: Closable[] = [];
  private closing: Promise<void> | null = null;

  constructor(private readonly onError: (err: Error) => void = () => undefined) {}

  get closed(): boolean {
    return this.closing !== null;
  }

  /** Adds a child (or a bare function); a child added after close is closed at once. */
  add<T extends Closable | (() => void | Promise<void>)>(child: T): T {
    const c: Closable = typeof child === 'function' ? { close: child as () => void | Promise<void> } : child;
    if (this.closing) void this.closing.then(() => c.close()).catch((e: Error) => this.onError(e));
    else this.children.push(c);
    return child;
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      for (const c of this.children.reverse()) {
        try { await c.close(); } catch (err) { this.onError(err as Error); }
      }
      this.children.length = 0;
    })());
  }
}

/**
 * Frame buffers given back when their frame is done, for the GStreamer binding to copy the next sample into.
 *
 * Each frame used to be a new ArrayBuffer, freed only when V8 next collected it: in flight across a scavenge a frame
 * is promoted, and a dead frame then waits for a full collection. Offline at 416×312, tens of megabytes of dead
 * frames sat in the main isolate between collections. A frame handed back here is reused at once.
 *
 * The rule that makes reuse safe: a frame's pixels belong to its pipeline until its packet has been published on
 * the bus (`packet`, synchronously) or the frame is dropped before entering the stages. A subscriber that needs the
 * pixels after its handler returns copies them first, as person-looks and the console's live view do.
 */
import type { Frame } from '../../core/types.js';

/** A frame with its own copy of the pixels (and of the view), for a second reader that may transfer them. */
export function copyFrame(frame: Frame): Frame {
  const copy = { ...frame, data: frame.data.slice(0) };
  if (frame.view) copy.view = { ...frame.view, data: frame.view.data.slice(0) };
  return copy;
}

export class FramePool {
  private readonly free: ArrayBuffer[] = [];

  /** `capacity` bounds the buffers kept while none is needed (a few frames per source). */
  constructor(private readonly capacity = 4) {}

  /** A buffer for the next frame, or undefined when none is free (the binding then allocates one). */
  take(): ArrayBuffer | undefined {
    return this.free.pop();
  }

  /** Hands back a done frame's buffer. */
  give(data: ArrayBuffer): void {
    // A buffer that was transferred away (a worker failed with it) has no bytes left.
    if (data.byteLength === 0 || this.free.includes(data)) return;
    // The source's frame size changed: the kept buffers would not fit the next frame.
    if (this.free.length > 0 && this.free[0].byteLength !== data.byteLength) this.free.length = 0;
    if (this.free.length < this.capacity) this.free.push(data);
  }

  get size(): number {
    return this.free.length;
  }
}

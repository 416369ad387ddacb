/**
 * Live feeds: one per watched pipeline, shared by every session tracking someone in it. The persons' looks are
 * computed where the pipeline runs (this node, or a cluster worker) as fast as the most demanding session asks
 * (services/looks); each session is answered at its own rate.
 */
import type { Subscription } from 'rxjs';
import type { Clock } from '../../core/clock.js';
import type { EventBus, PersonLooksEvent } from '../../core/events.js';

/** What a feed needs of a session watching it. */
export interface Watcher {
  /** Looks of a frame, when the session's rate lets one through. */
  onLooks(e: PersonLooksEvent, nowMs: number): void;
}

export class LiveFeed {
  readonly watchers = new Set<Watcher>();
  private readonly sub: Subscription;

  constructor(readonly pipeline: string, looksKey: string, bus: EventBus, clock: Clock) {
    this.sub = bus.on('person.looks').subscribe((e) => {
      if (e.pipeline !== pipeline || e.models !== looksKey) return;
      const now = clock.now();
      for (const w of this.watchers) w.onLooks(e, now);
    });
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

/** The feeds of one transport, by pipeline; a feed goes when its last watcher leaves. */
export class LiveFeeds {
  private readonly feeds = new Map<string, LiveFeed>();

  constructor(private readonly looksKey: string, private readonly bus: EventBus, private readonly clock: Clock) {}

  join(pipeline: string, w: Watcher): LiveFeed {
    let feed = this.feeds.get(pipeline);
    if (!feed) this.feeds.set(pipeline, (feed = new LiveFeed(pipeline, this.looksKey, this.bus, this.clock)));
    feed.watchers.add(w);
    return feed;
  }

  leave(feed: LiveFeed, w: Watcher): void {
    feed.watchers.delete(w);
    if (feed.watchers.size === 0) { feed.close(); this.feeds.delete(feed.pipeline); }
  }
}

/**
 * Source and pipeline states across the cluster. State changes are bus events and cross the results bridge
 * like any result, but a node that starts later has missed them: it asks every node that runs pipelines for
 * its states on `sightline.states` (each answers with its runtime's), then follows the events.
 */
import { RequestStrategy, type NatsConnection, type Subscription } from 'nats';
import type { BusStates, RuntimeStates, StatesSnapshot } from '../pipeline/states.js';
import type { Logger } from '../core/log.js';

export const STATES_SUBJECT = 'sightline.states';

/** Node side: answers every request with the states of the pipelines it runs. */
export function serveStates(nc: NatsConnection, local: RuntimeStates, log: Logger): Subscription {
  return nc.subscribe(STATES_SUBJECT, {
    callback: (err, msg) => {
      if (err) { log.warn(`states subscription: ${err.message}`); return; }
      msg.respond(JSON.stringify(local.snapshot()));
    },
  });
}

/** Gateway side: the states every node reports now, merged into the view (answers wait at most 2 s). */
export async function askStates(nc: NatsConnection, view: BusStates, log: Logger): Promise<number> {
  let nodes = 0;
  try {
    const replies = await nc.requestMany(STATES_SUBJECT, '', { strategy: RequestStrategy.JitterTimer, maxWait: 2000, jitter: 300 });
    for await (const m of replies) {
      try {
        const s = JSON.parse(m.string()) as StatesSnapshot;
        if (typeof s?.sources !== 'object' || typeof s.pipelines !== 'object' || !s.sources || !s.pipelines) throw new Error('not a states snapshot');
        view.merge(s);
        nodes++;
      } catch (e) {
        log.warn(`ignored a states answer: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    // No node runs pipelines yet: their state events will come as they start.
    log.debug(`no states from the cluster: ${(e as Error).message}`);
  }
  return nodes;
}

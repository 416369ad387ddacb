/**
 * A gateway joining a cluster asks every node for its states, then follows their state events. A worker that
 * reports a change just after answering (its pipeline starts while the gateway is still joining) must not be lost
 * until its next change: the gateway listens to events before it asks. Here a stand-in worker on a real
 * nats-server answers the gateway's question with nothing running, then at once reports its source and pipeline
 * running, and the gateway (a real process) must show them running.
 */
import test from 'ava';
import { connect, type NatsConnection } from 'nats';
import { encode } from '../cluster/codec.js';
import { subjectOf } from '../cluster/bridge.js';
import { STATES_SUBJECT } from '../cluster/shared-states.js';
import { Cluster, until } from './cluster-harness.js';
import { freePort } from './rtsp-server.js';

let cluster: Cluster;
let nc: NatsConnection;

test.after.always(async () => {
  await nc?.close();
  await cluster?.stop();
});

test('a state reported while a gateway joins reaches the gateway', async (t) => {
  t.timeout(120_000);
  const port = await freePort();
  cluster = await Cluster.start(`
sources:
  cam: { uri: "test://ball", width: 160, height: 120, fps: 5 }
pipelines:
  cam:
    source: cam
    stages:
      - { id: annotate, use: annotate }
transports:
  console: { port: ${port} }
`);
  nc = await connect({ servers: cluster.nats.url });
  let asked = 0;
  nc.subscribe(STATES_SUBJECT, {
    callback: (_err, msg) => {
      asked++;
      msg.respond(JSON.stringify({ sources: {}, pipelines: {} }));
      const atMs = Date.now();
      const events = [
        ['source.state', { source: 'cam', state: 'running', previous: 'starting', atMs }],
        ['pipeline.state', { pipeline: 'cam', state: 'running', atMs }],
      ] as const;
      for (const [topic, e] of events) nc.publish(subjectOf(topic, e), encode({ t: topic, e }));
    },
  });
  await nc.flush();
  await cluster.spawn('g1', 'gateway');
  t.true(asked >= 1, 'the gateway asked for states while joining');
  const o = await until('the gateway to show cam running', async () => {
    const v = await (await fetch(`http://127.0.0.1:${port}/api/overview`)).json() as { sources: { state: string }[]; pipelines: { state: string }[] };
    return v.sources[0]?.state === 'running' && v.pipelines[0]?.state === 'running' ? v : undefined;
  }, 15_000);
  t.is(o.sources[0].state, 'running');
});

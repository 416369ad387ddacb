/**
 * Cluster benchmark: what the NATS hop costs a result, and how long a source is down when its worker dies.
 *
 *   node dist/bench/cluster.js [--seconds 5] [--kills 10] [--rates 200,1000] [--only bridge|failover] [--lease 5]
 *
 * 1. Results bridge, in one process against a real nats-server: events published on a worker's bus are
 *    forwarded (encode → NATS) and republished on a gateway's bus (NATS → decode), exactly as between nodes.
 *    Measured per event kind (a count.stats, a packet with 10 tracks, the same with a 30 KB annotated JPEG,
 *    the looks of 10 persons for live WatchMe: 256 + 128 floats each):
 *    the most events/s the hop carries, and the latency it adds at steady rates (200/s: 20 cameras at 10 fps;
 *    1,000/s: 100 cameras) compared with the same events on one node's bus.
 * 2. Failover: a gateway and two workers as processes, two test:// sources; the worker running `cam1` is
 *    SIGKILLed `--kills` times (and started again each time). Time from the kill until the other worker runs
 *    cam1, and until it has processed its first frame there. Plain-text tables only; no assertions.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import { ClusterBridge } from '../cluster/bridge.js';
import { EventBus, type BusEvents } from '../core/events.js';
import { createLogger } from '../core/log.js';
import { Metrics } from '../core/metrics.js';
import type { Packet } from '../core/types.js';
import { Cluster, NatsServer, sleep, until } from '../test/cluster-harness.js';
import { freePort } from '../test/rtsp-server.js';
import { loadavg, percentile, table, waitForQuietMachine } from './report.js';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';

process.chdir(fileURLToPath(new URL('../..', import.meta.url))); // models/ are relative to the root

const { values: args } = parseArgs({ options: {
  seconds: { type: 'string', default: '5' }, kills: { type: 'string', default: '10' },
  rates: { type: 'string', default: '200,1000' }, only: { type: 'string' }, lease: { type: 'string', default: '5' },
} });
const RATES = String(args.rates).split(',').map(Number);
const SECONDS = Number(args.seconds);
const KILLS = Number(args.kills);
const log = createLogger('warn');

type Kind = 'count.stats' | 'packet' | 'packet+jpeg' | 'person.looks';
type BenchTopic = 'count.stats' | 'packet' | 'person.looks';
const topicOf = (kind: Kind): BenchTopic => (kind === 'packet+jpeg' ? 'packet' : kind);
// One pixel buffer and one JPEG for every event: the bridge drops the pixels, and allocating 900 KB per
// event would measure the allocator instead of the hop.
const PIXELS = new ArrayBuffer(640 * 480 * 3);
const JPEG = new Uint8Array(30 * 1024).map((_, i) => (i * 31) & 0xff).buffer;

function event(kind: Kind, i: number): { topic: BenchTopic; e: BusEvents[BenchTopic] } {
  const atMs = Date.now();
  if (kind === 'person.looks') {
    const unit = (n: number): Float32Array => new Float32Array(n).fill(1 / Math.sqrt(n));
    const persons = Array.from({ length: 10 }, (_, k) => ({ box: [10 * k, 20, 10 * k + 40, 120] as [number, number, number, number],
      trackId: k + 1, body: unit(256), face: unit(128) }));
    return { topic: kind, e: { pipeline: 'cam1', source: 'cam1', models: 'reid', seq: i, width: 640, height: 480, capturedAtMs: atMs, persons } };
  }
  if (kind === 'count.stats') {
    return { topic: kind, e: { pipeline: 'cam1', source: 'cam1', countIn: i, countOut: i >> 1, faceCount: 3, dailyEventCount: 1, eventActive: false, currentEventCountIn: 0, atMs } };
  }
  const tracks = Array.from({ length: 10 }, (_, k) => ({
    id: k + 1, box: [10 * k, 20, 10 * k + 40, 120] as [number, number, number, number], score: 0.8, classId: 0, label: 'person',
    state: 'confirmed' as const, velocity: [1.5, -0.25] as [number, number],
  }));
  const p: Packet = {
    pipeline: 'cam1', frame: { source: 'cam1', seq: i, ptsNs: i * 1e8, capturedAtMs: atMs, width: 640, height: 480, format: 'RGB', data: PIXELS },
    detections: tracks.map((t) => ({ box: t.box, score: t.score, classId: 0, label: 'person' })), tracks,
    ...(kind === 'packet+jpeg' ? { jpeg: { data: JPEG, width: 640, height: 480 } } : {}),
  };
  return { topic: 'packet', e: p };
}

const sentAt = (topic: BenchTopic, e: unknown): number =>
  topic === 'packet' ? (e as Packet).frame.capturedAtMs : topic === 'person.looks' ? (e as BusEvents['person.looks']).capturedAtMs : (e as BusEvents['count.stats']).atMs;

async function bridgeBench(): Promise<void> {
  const nats = new NatsServer(await freePort(), mkdtempSync(path.join(os.tmpdir(), 'sightline-bench-js-')));
  await nats.start();
  const ncOut = await connect({ servers: nats.url, noEcho: true });
  const ncIn = await connect({ servers: nats.url, noEcho: true });
  const worker = new EventBus();
  const gateway = new EventBus();
  const out = new ClusterBridge(ncOut, worker, new Metrics(), log);
  const inMetrics = new Metrics();
  const inb = new ClusterBridge(ncIn, gateway, inMetrics, log);
  out.forward();
  inb.receive();
  await ncIn.flush();
  const rows: (string | number)[][] = [];
  for (const kind of ['count.stats', 'packet', 'packet+jpeg', 'person.looks'] as Kind[]) {
    const topic = topicOf(kind);
    // (a) Throughput: publish as fast as the worker side can while the gateway keeps up (bounded backlog).
    let received = 0;
    const bytesIn = async (): Promise<number> => Number((await inMetrics.clusterBridgeBytes.get()).values.find((v) => v.labels.direction === 'in')?.value ?? 0);
    const bytes0 = await bytesIn();
    const sub = gateway.on(topic).subscribe(() => { received++; });
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() - t0 < SECONDS * 1000) {
      for (let k = 0; k < 100; k++) {
        const ev = event(kind, sent++);
        worker.publish(ev.topic, ev.e as never);
      }
      await ncOut.flush();
      // Let the receiving side drain so the figure is what crosses, not what queues.
      while (sent - received > 2000) await sleep(1);
    }
    await until('the last events', () => received >= sent, 30_000, 5);
    const elapsed = (performance.now() - t0) / 1000;
    sub.unsubscribe();
    const bytes = (await bytesIn()) - bytes0;
    // (b) Latency at steady rates, against the same events on one node's bus.
    const lat: string[] = [];
    for (const rate of RATES) {
      const hop: number[] = [];
      const local: number[] = [];
      const now = (): number => performance.timeOrigin + performance.now();
      const subHop = gateway.on(topic).subscribe((e) => hop.push(now() - sentAt(topic, e)));
      const subLocal = worker.on(topic).subscribe((e) => local.push(now() - sentAt(topic, e)));
      const n = Math.round(rate * Math.min(SECONDS, 5));
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const wait = start + (i * 1000) / rate - performance.now();
        if (wait > 1) await sleep(wait);
        const ev = event(kind, i);
        if (ev.topic === 'packet') (ev.e as Packet).frame.capturedAtMs = now();
        else if (ev.topic === 'person.looks') (ev.e as BusEvents['person.looks']).capturedAtMs = now();
        else (ev.e as BusEvents['count.stats']).atMs = now();
        worker.publish(ev.topic, ev.e as never);
      }
      await until('the latency run', () => hop.length >= n, 60_000, 5);
      subHop.unsubscribe();
      subLocal.unsubscribe();
      lat.push(percentile(local, 0.99).toFixed(3), percentile(hop, 0.5).toFixed(2), percentile(hop, 0.99).toFixed(2),
        (percentile(hop, 0.99) - percentile(local, 0.99)).toFixed(2));
    }
    rows.push([kind, Math.round(sent / elapsed), (bytes / received / 1024).toFixed(2), ...lat]);
  }
  table(`Results bridge over NATS (one process, loopback; ${SECONDS} s per kind; latency at ${RATES.join(' and ')} events/s)`,
    ['event', 'events/s max', 'KiB/event', ...RATES.flatMap((r) => [`@${r}/s one node p99 ms`, 'hop p50 ms', 'hop p99 ms', 'added p99 ms'])], rows);
  out.close();
  inb.close();
  await ncOut.close();
  await ncIn.close();
  await nats.stop();
}

const FAILOVER_GRAPH = `
sources:
  cam1: { uri: "test://ball", fps: 2, width: 160, height: 120 }
  cam2: { uri: "test://smpte", fps: 2, width: 160, height: 120 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  cam1: { source: cam1, stages: [ { id: detect, use: detect, with: { model: people, classes: [person] } } ] }
  cam2: { source: cam2, stages: [ { id: detect, use: detect, with: { model: people, classes: [person] } } ] }
`;

async function failoverBench(): Promise<void> {
  const cluster = await Cluster.start(FAILOVER_GRAPH);
  const running: number[] = [];
  const firstFrame: number[] = [];
  try {
    const lease = ['--lease-seconds', String(args.lease)];
    await Promise.all([cluster.spawn('w1', 'worker', lease), cluster.spawn('w2', 'worker', lease)]);
    const holder = async (): Promise<string | undefined> => {
      for (const w of cluster.nodes.keys()) if ((await cluster.running(w)).includes('cam1')) return w;
      return undefined;
    };
    for (let i = 0; i < KILLS; i++) {
      const victim = await until('cam1 to run', holder, 60_000);
      const survivor = victim === 'w1' ? 'w2' : 'w1';
      await until(`${survivor} to be up`, () => cluster.nodes.has(survivor) && cluster.scrape(survivor).then(() => true), 60_000);
      const framesBefore = await cluster.value(survivor, 'sightline_frames_processed_total', { pipeline: 'cam1' });
      const t0 = Date.now();
      await cluster.kill(victim, 'SIGKILL');
      await until('cam1 on the survivor', async () => (await cluster.running(survivor)).includes('cam1'), 60_000, 50);
      running.push(Date.now() - t0);
      await until('a cam1 frame on the survivor', async () =>
        (await cluster.value(survivor, 'sightline_frames_processed_total', { pipeline: 'cam1' })) > framesBefore, 60_000, 50);
      firstFrame.push(Date.now() - t0);
      console.log(`  kill ${i + 1}/${KILLS}: ${victim} → ${survivor}: running after ${running.at(-1)} ms, first frame after ${firstFrame.at(-1)} ms`);
      await cluster.spawn(victim, 'worker', lease);
    }
  } finally {
    await cluster.stop();
  }
  const row = (name: string, v: number[]) => [name, v.length, percentile(v, 0.5), percentile(v, 0.95), Math.max(...v)];
  table(`Failover after SIGKILL of the worker running a source (lease ${args.lease} s, renewed every ${Number(args.lease) / 5} s; ${running.length} kills)`,
    ['from the kill until', 'kills', 'p50 ms', 'p95 ms', 'max ms'], [row('the source runs on the other worker', running), row('its first frame is processed there', firstFrame)]);
}

await waitForQuietMachine('cluster');
console.log(`node ${process.version}, ${os.cpus().length} cores, load ${loadavg()}`);
if (args.only !== 'failover') await bridgeBench();
if (args.only !== 'bridge') await failoverBench();
console.log(`load at the end ${loadavg()}`);
process.exit(0);

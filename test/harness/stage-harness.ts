/**
 * A harness for one stage (as GstHarness is for one GStreamer element): packets are pushed in, packets and bus
 * events come out, in virtual time. The stage gets a real context — a store in a temporary data directory, an event
 * bus, metrics, a VirtualClock, and a real inference pool when the stage needs one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Subject, type Subscription } from 'rxjs';
import { catalog, WORKER_OPS } from '../../app/catalog.js';
import { withDefaults, type Graph } from '../../config/graph.js';
import { loadSettings, type ResolvedSettings } from '../../config/settings.js';
import { VirtualClock } from '../../core/clock.js';
import { EventBus, type BusEvents, type Topic } from '../../core/events.js';
import { createLogger, type Logger } from '../../core/log.js';
import { Metrics } from '../../core/metrics.js';
import type { Packet } from '../../core/types.js';
import { InferencePool } from '../../inference/pool.js';
import type { StageContext, StageDefinition } from '../../pipeline/stage.js';
import { CountsTable } from '../../services/counting/counts.js';
import { FaceCrops } from '../../services/faces/face-crops.js';
import { Store } from '../../services/store/store.js';

export interface HarnessOptions {
  pipeline?: string;
  source?: string;
  /** The graph the stage sees (models, other stages); an empty one by default. */
  graph?: Graph;
  /** Start a real inference pool of this many threads (stages that run models or encode images). */
  poolThreads?: number;
  settings?: Partial<ResolvedSettings>;
  log?: Logger;
}

export class StageHarness<O = Record<string, unknown>> {
  readonly clock = new VirtualClock();
  readonly bus = new EventBus();
  readonly metrics = new Metrics();
  readonly store: Store;
  readonly counts: CountsTable;
  readonly faces: FaceCrops;
  readonly pool: InferencePool | null;
  readonly ctx: StageContext;
  /** Every bus event, in order. */
  readonly events: { topic: Topic; event: unknown }[] = [];
  /** The complete options the stage was built with (schema defaults filled in). */
  readonly options: O;
  private readonly input = new Subject<Packet>();
  private readonly output: Packet[] = [];
  private readonly waiting: ((p: Packet) => void)[] = [];
  private readonly sub: Subscription;
  private readonly dataDir: string;
  private done = false;

  constructor(def: StageDefinition<O>, options: Record<string, unknown> = {}, o: HarnessOptions = {}) {
    this.dataDir = mkdtempSync(path.join(os.tmpdir(), 'sightline-stage-'));
    const settings: ResolvedSettings = { ...loadSettings([], {}), dataDir: this.dataDir, logLevel: 'warn', ...o.settings };
    this.store = Store.open(this.dataDir);
    this.counts = new CountsTable(this.store);
    this.faces = new FaceCrops(this.store, this.counts, this.dataDir);
    this.pool = o.poolThreads ? new InferencePool({ workers: o.poolThreads, ortThreads: 1, ops: WORKER_OPS }) : null;
    const graph: Graph = o.graph ?? { file: 'harness.yaml', sources: {}, models: {}, pipelines: {}, transports: {} };
    this.options = withDefaults<O>(def.optionsSchema, options, `${def.name} options`);
    this.ctx = {
      pipeline: o.pipeline ?? 'p', source: o.source ?? 'cam', stageId: def.name, graph, settings,
      pool: this.pool ?? (null as unknown as InferencePool), bus: this.bus, metrics: this.metrics,
      log: o.log ?? createLogger('warn', 'harness', () => undefined),
      counts: this.counts, faces: this.faces, clock: this.clock,
      modelPath: (id) => path.resolve(settings.modelDir, graph.models[id].file),
    };
    this.bus.tap((topic, event) => this.events.push({ topic, event }));
    this.sub = this.input.pipe(def.create(this.options, this.ctx)).subscribe({
      next: (p) => { const w = this.waiting.shift(); if (w) w(p); else this.output.push(p); },
      complete: () => { this.done = true; },
    });
  }

  /** Sends a packet into the stage. */
  push(p: Packet): void {
    this.input.next(p);
  }

  /** The next packet out of the stage (waits for asynchronous stages). */
  pull(): Promise<Packet> {
    const p = this.output.shift();
    if (p) return Promise.resolve(p);
    if (this.done) return Promise.reject(new Error('the stage has ended'));
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Pushes each packet, moving the clock to its capture time first, and pulls its result. */
  async run(packets: Packet[]): Promise<Packet[]> {
    const out: Packet[] = [];
    for (const p of packets) {
      this.clock.set(p.frame.capturedAtMs);
      this.push(p);
      out.push(await this.pull());
    }
    return out;
  }

  /** The events of one topic published so far. */
  eventsOf<K extends Topic>(topic: K): BusEvents[K][] {
    return this.events.filter((e) => e.topic === topic).map((e) => e.event as BusEvents[K]);
  }

  async close(): Promise<void> {
    this.input.complete();
    this.sub.unsubscribe();
    await this.pool?.close();
    this.store.close();
    this.bus.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A packet for harness tests: a frame of `width`×`height` (pixels only when asked), plus fields. */
export function packet(seq: number, atMs: number, fields: Partial<Packet> = {}, size = { width: 640, height: 480 }, pixels = false): Packet {
  return {
    pipeline: 'p',
    frame: {
      source: 'cam', seq, ptsNs: seq * 100e6, capturedAtMs: atMs, width: size.width, height: size.height, format: 'RGB',
      data: pixels ? new ArrayBuffer(size.width * size.height * 3) : new ArrayBuffer(0),
    },
    ...fields,
  };
}

export { catalog };

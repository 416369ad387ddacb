/**
 * The pose stream's streams: bus events turned into the document's messages and sent to the connections whose
 * subscriptions want them (pose data per frame, track starts and ends, occupancy, activity, hardware, system and
 * config events), plus the periodic figures (performance, analytics) and the current states a new `system_event`
 * subscriber gets at once.
 */
import type { Subscription as RxSubscription } from 'rxjs';
import type { Graph } from '../../config/graph.js';
import type { Clock } from '../../core/clock.js';
import type { BusEvents, EventBus } from '../../core/events.js';
import type { Logger } from '../../core/log.js';
import type { TrackedObject } from '../../core/types.js';
import { modelsOf } from '../../pipeline/graph-diff.js';
import type { StatesView } from '../../pipeline/states.js';
import type { Connection } from './connection.js';
import { inEnvironment, placeOf, type Place } from './environments.js';
import { analyticsStream, CpuSampler, performanceUpdate } from './figures.js';
import * as M from './messages.js';
import { SourceStats } from './source-stats.js';
import type { EventType, Subscription } from './subscriptions.js';

export interface StreamsDeps {
  bus: EventBus;
  clock: Clock;
  log: Logger;
  graph(): Graph;
  states: StatesView;
  /** The connections to serve (added and removed by the handshake). */
  connections: ReadonlySet<Connection>;
  /** Tasks waiting for a worker (performance_update's queue figure). */
  queueSize(): number;
  /** This server's session id, in system events. */
  sessionId: string;
  latencyAlertMs: number;
}

export class PoseStreams {
  private readonly stats = new Map<string, SourceStats>();
  private readonly lastFrameMs = new Map<string, number>();
  private readonly occupancy = new Map<string, number>();
  /** Model files a pipeline runs, reported as the document's model_version. */
  private readonly modelVersions = new Map<string, string>();
  /** Sources seen going down, so their return is reported as a reconnection (retries pass through `starting`). */
  private readonly down = new Set<string>();
  private readonly cpu = new CpuSampler();
  private readonly subs: RxSubscription[] = [];

  constructor(private readonly d: StreamsDeps) {
    const { bus } = d;
    this.subs.push(
      bus.on('packet').subscribe(this.guard('packet', (p) => this.onPacket(p))),
      bus.on('activity.fall').subscribe(this.guard('activity.fall', (e) => {
        const place = this.place(e.source);
        this.emit('activity_event', place, () => M.fallEvent(e, place), activityAccepts('fall_detected'));
      })),
      bus.on('activity.recovered').subscribe(this.guard('activity.recovered', (e) => {
        const place = this.place(e.source);
        this.emit('activity_event', place, () => M.recoveryEvent(e, place), activityAccepts('recovery_detected'));
      })),
      bus.on('source.state').subscribe(this.guard('source.state', (e) => this.onSourceState(e))),
      bus.on('pipeline.state').subscribe(this.guard('pipeline.state', (e) => {
        const source = d.graph().pipelines[e.pipeline]?.source;
        const place = source !== undefined ? this.place(source) : undefined;
        const data = M.systemEvent(e, place, d.sessionId, this.components(e.pipeline, source));
        this.emit('system_event', place, () => data, severityAccepts(data.severity));
      })),
      bus.on('config').subscribe(this.guard('config', (e) => this.onConfig(e))),
    );
  }

  /** An exception in a bus handler would surface as an uncaught error; log it and keep serving. */
  private guard<T>(name: string, fn: (e: T) => void): (e: T) => void {
    return (e) => {
      try { fn(e); } catch (err) { this.d.log.error(`pose-stream: ${name} handler failed: ${(err as Error).stack ?? String(err)}`); }
    };
  }

  /** Where a source's frames and events come from: the source and its environment. */
  private place(source: string): Place {
    return placeOf(this.d.graph(), source);
  }

  /** Sends `data` to every subscription of `type` that wants what comes from `place`, under the message type `type`. */
  private emit(type: EventType, place: Place | undefined, data: (s: Subscription) => unknown,
    accept?: (s: Subscription) => boolean, droppable = false): void {
    const now = this.d.clock.now();
    for (const c of this.d.connections) {
      for (const s of c.wants(type, place, now, accept)) c.send(type, data(s), { droppable, bufferSize: s.throttle.bufferSize });
    }
  }

  private statsOf(pipeline: string, source: string): SourceStats {
    // Kept per pipeline (track ids are a pipeline's own); a subscription's environment selects by source.
    let s = this.stats.get(pipeline);
    if (!s || s.source !== source) this.stats.set(pipeline, (s = new SourceStats(source)));
    return s;
  }

  private modelVersion(pipeline: string): string {
    let v = this.modelVersions.get(pipeline);
    if (v === undefined) {
      const graph = this.d.graph();
      v = graph.pipelines[pipeline] ? modelsOf(graph, pipeline).map((m) => graph.models[m]?.file ?? m).join('+') || 'none' : 'none';
      this.modelVersions.set(pipeline, v);
    }
    return v;
  }

  private onPacket(p: BusEvents['packet']): void {
    const now = this.d.clock.now();
    const source = p.frame.source;
    const st = this.statsOf(p.pipeline, source);
    const before = new Map<number, TrackedObject>(st.tracks.map((t) => [t.id, t]));
    const firstSeen = new Map(st.firstSeenMs);
    st.add(p, now);
    this.lastFrameMs.set(source, now);
    if (this.d.connections.size === 0) { this.occupancy.set(p.pipeline, p.occupancy ?? st.tracks.length); return; }

    const place = this.place(source);
    const meta = { fps: st.fps(now), quality: st.quality(), modelVersion: this.modelVersion(p.pipeline), environment: place.environment };
    for (const c of this.d.connections) {
      for (const s of c.wants('pose_data', place, now)) {
        c.send('pose_data', M.poseData(p, s.filters, meta, this.d.clock.now()), { droppable: true, bufferSize: s.throttle.bufferSize });
      }
      if (p.activities?.length && c.has(['pose_data_trajectory'])) {
        for (const s of c.wants('pose_data_trajectory', place, now)) {
          for (const a of p.activities) {
            const t = st.tracks.find((x) => x.id === a.trackId);
            if (!t || t.score < s.filters.minConfidence) continue;
            c.send('pose_data_trajectory', M.trajectory(place.environment, a, t.score), { droppable: true, bufferSize: s.throttle.bufferSize });
          }
        }
      }
    }
    // Track starts and ends, from consecutive frames of the source.
    const started = st.tracks.filter((t) => !before.has(t.id));
    const lost = [...before.values()].filter((t) => !st.tracks.some((x) => x.id === t.id));
    for (const [t, event] of [...started.map((t) => [t, 'track_started'] as const), ...lost.map((t) => [t, 'track_lost'] as const)]) {
      this.emit('tracking_update', place, () => M.trackingUpdate(place.environment, t, event, firstSeen.get(t.id) ?? st.firstSeenMs.get(t.id) ?? now),
        (s) => t.score >= s.filters.minConfidence);
    }
    // Occupancy: the activity stage's count when it runs, else the confirmed person tracks.
    const count = p.occupancy ?? st.tracks.length;
    const previous = this.occupancy.get(p.pipeline);
    this.occupancy.set(p.pipeline, count);
    if (previous !== undefined && previous !== count) {
      const e: BusEvents['occupancy'] = { pipeline: p.pipeline, source, count, previous, changeType: count > previous ? 'increase' : 'decrease', atMs: now };
      this.emit('occupancy_update', place, () => M.occupancyUpdate(e, place.environment, st.tracks, new Set(before.keys())));
    }
  }

  private onSourceState(e: BusEvents['source.state']): void {
    if (e.state === 'starting' || (e.state === 'stopped' && e.previous === 'starting')) return;
    const wasDown = this.down.has(e.source);
    if (e.state === 'running') this.down.delete(e.source);
    else if (wasDown && e.state === 'stopped') return;
    else this.down.add(e.source);
    const place = this.place(e.source);
    const data = M.hardwareEvent(e, place, wasDown, this.lastFrameMs.get(e.source));
    this.emit('hardware_event', place, () => data, severityAccepts(data.severity));
  }

  private onConfig(e: BusEvents['config']): void {
    this.modelVersions.clear();
    for (const id of e.changes?.sources.removed ?? []) { this.lastFrameMs.delete(id); this.down.delete(id); }
    for (const id of e.changes?.pipelines.removed ?? []) { this.stats.delete(id); this.occupancy.delete(id); }
    if (e.result === 'applied' && e.changes) {
      const data = M.configUpdate(e, e.changes, this.d.graph() as unknown as Record<string, Record<string, unknown>>);
      this.emit('config_update', undefined, () => data);
    } else if (e.result === 'invalid') {
      const data = { event: 'config_rejected', status: 'running', severity: 'error', session_id: this.d.sessionId, message: e.summary, errors: e.errors ?? [] };
      this.emit('system_event', undefined, () => data, severityAccepts('error'));
    }
  }

  /** Health of a pipeline's parts, in the document's component names. */
  private components(pipeline: string, source: string | undefined): Record<string, string> {
    const { states } = this.d;
    const state = source ? states.source(source)?.state : undefined;
    const spec = this.d.graph().pipelines[pipeline];
    const runner = states.pipeline(pipeline)?.state;
    return {
      // The pipeline's stages (the models run there): failed when the pipeline failed (e.g. a model did not load).
      neural_network: runner === 'running' ? 'healthy' : (runner ?? 'absent'),
      csi_processor: state === 'running' ? 'healthy' : state === 'retrying' ? 'degraded' : state === 'failed' ? 'failed' : (state ?? 'unknown'),
      tracker: spec?.stages.some((s) => s.use === 'track') ? 'healthy' : 'absent',
    };
  }

  private selected(s: Subscription): SourceStats[] {
    return [...this.stats.values()].filter((x) => inEnvironment(s.filters.environmentId, this.place(x.source)));
  }

  /** The data of a periodic stream (performance / analytics) for one subscription. */
  periodic(s: Subscription): { type: string; data: unknown } {
    if (s.eventType === 'performance_update') {
      return { type: 'performance_update', data: performanceUpdate(this.selected(s), s.filters.environmentId, this.d.queueSize(), this.cpu.percent(), this.d.latencyAlertMs) };
    }
    // The document names the stream analytics_stream and also lists analytics_update: each subscriber gets the name it asked for.
    return { type: s.eventType === 'analytics_update' ? 'analytics_update' : 'analytics_stream', data: analyticsStream(this.selected(s), s.filters.environmentId) };
  }

  /** After the ack of a new `system_event` subscription: the state of each pipeline now (wherever it runs). */
  onSubscribed(c: Connection, sub: Subscription): void {
    if (sub.eventType !== 'system_event') return;
    for (const [pipeline, { source }] of Object.entries(this.d.graph().pipelines)) {
      const now = this.d.states.pipeline(pipeline);
      if (!now) continue;
      const place = this.place(source);
      if (!inEnvironment(sub.filters.environmentId, place)) continue;
      const data = M.systemEvent({ pipeline, state: now.state, reason: now.reason, atMs: this.d.clock.now() }, place, this.d.sessionId,
        this.components(pipeline, source), true);
      if (sub.filters.severity && !sub.filters.severity.includes(data.severity as never)) continue;
      c.send('system_event', data, { droppable: false });
    }
  }

  close(): void {
    for (const s of this.subs) s.unsubscribe();
  }
}

const activityAccepts = (type: string) => (s: Subscription): boolean =>
  !s.filters.activityTypes || s.filters.activityTypes.includes(type) || (type === 'fall_detected' && s.filters.activityTypes.includes('alert_triggered'));

const severityAccepts = (severity: string) => (s: Subscription): boolean => !s.filters.severity || s.filters.severity.includes(severity as never);

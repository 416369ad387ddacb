/**
 * Drives camera outages against a running app: kill the RTSP server, wait for the source to notice,
 * bring the server back, and time how long the source takes to deliver frames again. Shared by the
 * RTSP test and the outage benchmark.
 */
import { readFileSync } from 'node:fs';
import { firstValueFrom, filter, timeout } from 'rxjs';
import type { App } from '../app/app.js';
import type { RtspServer } from './rtsp-server.js';

export interface OutageCycle {
  /** What took the source down (its retry reason). */
  reason: string;
  /** ms from the server being ready again to the source's first frame after it. */
  recoveryMs: number;
  rssBytes: number;
  threads: number;
}

/** The graph both the outage test and its benchmark run: an RTSP camera that goes away, and a steady source beside it. */
export function outageGraph(url: string): string {
  return `
sources:
  cam: { uri: "${url}", width: 384, height: 288, latency: 100, watchdog: 2 }
  steady: { uri: "test://ball", width: 160, height: 120, fps: 5 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  cam:
    source: cam
    stages:
      - { id: detect, use: detect, with: { model: people, classes: [person], score: 0.1 } }
      - { id: track, use: track }
  steady:
    source: steady
    stages: [{ id: detect, use: detect, with: { model: people } }]
transports:
  metrics: { port: 0 }
`;
}

export function processThreads(): number {
  const m = /^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** One outage of `downMs` (SIGKILL, or SIGSTOP to freeze a still-"connected" camera). */
export async function outage(app: App, server: RtspServer, sourceId: string, how: 'kill' | 'freeze', downMs: number): Promise<OutageCycle> {
  const source = app.runtime.sources.get(sourceId)!;
  const states = app.bus.on('source.state').pipe(filter((s) => s.source === sourceId));
  const retrying = firstValueFrom(states.pipe(filter((s) => s.state === 'retrying'), timeout(20_000)));
  if (how === 'kill') await server.stop('SIGKILL');
  else process.kill(server.pid, 'SIGSTOP');
  const down = await retrying;
  await new Promise((r) => setTimeout(r, downMs));
  if (how === 'kill') await server.restart();
  else process.kill(server.pid, 'SIGCONT');
  const back = Date.now();
  // `running` is published when the first frame after the reconnect arrives.
  const running = await firstValueFrom(states.pipe(filter((s) => s.state === 'running'), timeout(30_000)));
  // Make sure frames keep coming, not just one.
  const before = source.lastFrameAt;
  await firstValueFrom(app.bus.on('packet').pipe(filter((p) => p.frame.source === sourceId && p.frame.capturedAtMs > before), timeout(10_000)));
  return {
    reason: down.reason ?? '',
    recoveryMs: Math.max(0, running.atMs - back),
    rssBytes: process.memoryUsage().rss,
    threads: processThreads(),
  };
}

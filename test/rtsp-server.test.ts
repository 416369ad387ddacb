/**
 * The RTSP camera fixture, received with the project's own GStreamer binding: frames arrive at
 * 768x576 RGB, the server can die (SIGKILL) and come back on the same port for a new client, and the
 * video loops forever with the clock running on (at 100 fps the 795-frame file wraps after ~8 s).
 * Clients of one URL share one stream (one media on the server).
 */
import test from 'ava';
import type { BusMessage, Caps, Pipeline } from 'gstreamer-superficial';
import { gstreamer } from '../pipeline/sources/gstreamer.js';
import { startRtspServer, type RtspServer } from './rtsp-server.js';

const VTEST_FRAMES = 795;

/** A client pipeline that counts decoded RGB frames as they arrive. */
class Receiver {
  frames = 0;
  width = 0;
  height = 0;
  format = '';
  bytes = 0;
  /** ms from the client's start to its first frame, and the time of the last frame (performance.now()). */
  firstFrameMs: number | null = null;
  lastFrameAt = 0;
  readonly messages: string[] = [];
  private readonly startedAt = performance.now();
  private readonly pipeline: Pipeline;
  private stopped = false;
  private waiters = new Set<() => void>();

  constructor(url: string) {
    this.pipeline = new gstreamer.Pipeline(
      `rtspsrc location=${url} protocols=tcp latency=100 ! decodebin ! videoconvert ! ` +
      'video/x-raw,format=RGB ! appsink name=sink max-buffers=1 drop=true');
    const sink = this.pipeline.findChild('sink');
    if (!sink) throw new Error('client pipeline has no appsink');
    this.pipeline.pollBus((msg: BusMessage) => {
      if (msg.type === 'error' || msg.type === 'eos' || msg.type === 'warning') {
        const text = msg.message ?? msg.debug ?? '';
        this.messages.push(`${msg.type}${msg._src_element_name ? ` (${msg._src_element_name})` : ''}: ${String(text)}`);
        this.notify();
      }
    });
    this.pipeline.play();
    const pull = () => sink.pull((buf: Buffer | null, caps: Caps) => {
      if (this.stopped || !buf) return;
      const now = performance.now();
      if (this.firstFrameMs === null) this.firstFrameMs = now - this.startedAt;
      this.lastFrameAt = now;
      this.frames++;
      this.width = Number(caps.width);
      this.height = Number(caps.height);
      this.format = String(caps.format);
      this.bytes = buf.length;
      this.notify();
      pull();
    });
    pull();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves once `until()` holds; rejects after timeoutMs with what the client saw. */
  waitFor(until: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!until()) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${what}: not within ${timeoutMs} ms (frames ${this.frames}; bus: ${this.messages.join(' | ') || 'quiet'})`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  waitFrames(n: number, timeoutMs: number): Promise<void> {
    const target = this.frames + n;
    return this.waitFor(() => this.frames >= target, timeoutMs, `${n} more frames`);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.pipeline.stop(); // NULL state: the pending pull returns null
  }
}

function receiver(t: { teardown(fn: () => void): void }, url: string): Receiver {
  const r = new Receiver(url);
  t.teardown(() => r.stop());
  return r;
}

function server(t: { teardown(fn: () => Promise<void>): void }, s: RtspServer): RtspServer {
  t.teardown(() => s.stop());
  return s;
}

test('serves vtest.avi over RTSP, survives SIGKILL and serves a new client after a restart', async (t) => {
  const t0 = performance.now();
  const cam = server(t, await startRtspServer());
  const readyMs = performance.now() - t0;
  t.regex(cam.url, /^rtsp:\/\/127\.0\.0\.1:\d+\/plaza$/);
  t.true(cam.pid > 0);

  const a = receiver(t, cam.url);
  await a.waitFrames(5, 15_000);
  t.is(a.width, 768);
  t.is(a.height, 576);
  t.is(a.format, 'RGB');
  t.is(a.bytes, 768 * 576 * 3);

  // Shared media: a second client joins the same stream; the server made one media for both.
  const a2 = receiver(t, cam.url);
  await a2.waitFrames(3, 15_000);
  await a.waitFrames(3, 5_000);
  t.deepEqual(cam.lines.filter((l) => l.startsWith('MEDIA ')), ['MEDIA 1']);
  a2.stop();

  // The camera dies under a connected client.
  const firstPid = cam.pid;
  await cam.stop();
  await a.waitFor(() => a.messages.some((m) => m.startsWith('error') || m.startsWith('eos')), 10_000,
    'the old client notices the server died');
  const framesBefore = a.frames;
  a.stop();

  const r0 = performance.now();
  await cam.restart();
  const restartMs = performance.now() - r0;
  t.not(cam.pid, firstPid);

  const b = receiver(t, cam.url);
  await b.waitFrames(5, 15_000);
  t.is(b.width, 768);
  t.is(b.height, 576);
  t.is(b.format, 'RGB');
  t.log(`READY after ${readyMs.toFixed(0)} ms; first client got ${framesBefore} frames; restart ` +
    `(SIGKILL → READY) ${restartMs.toFixed(0)} ms; new client's first frame ${b.firstFrameMs!.toFixed(0)} ms ` +
    `after it started (${(restartMs + b.firstFrameMs!).toFixed(0)} ms after the restart began); ` +
    `old client saw: ${a.messages.join(' | ')}`);
  b.stop();
  await cam.stop('SIGTERM');
});

test('the stream loops past the end of the file with the clock running on (100 fps)', async (t) => {
  const fps = 100;
  const cam = server(t, await startRtspServer({ fps }));
  const readyAt = performance.now();
  const c = receiver(t, cam.url);
  await c.waitFrames(1, 15_000);

  // The server wraps the file after 795 frames: ~7.95 s at 100 fps, paced by its clock (never sooner;
  // later only on a machine too busy to decode and encode 100 fps, bounded by the wait).
  const loop = await cam.waitForLine(/^LOOP 1 /, 25_000);
  const loopAfterS = (performance.now() - readyAt) / 1000;
  t.is(loop, `LOOP 1 ${VTEST_FRAMES}`);
  t.true(loopAfterS > (VTEST_FRAMES / fps) * 0.9, `wrapped after ${loopAfterS.toFixed(2)} s: paced, not bursting`);

  // The same client session keeps receiving frames after the wrap: the stream never ended.
  const atLoop = c.frames;
  await c.waitFrames(100, 10_000);
  t.true(c.messages.every((m) => !m.startsWith('error') && !m.startsWith('eos')), c.messages.join(' | '));
  const seconds = (c.lastFrameAt - readyAt) / 1000;
  t.log(`LOOP 1 after ${loopAfterS.toFixed(2)} s; client: ${atLoop} frames by the wrap, ${c.frames} in ` +
    `${seconds.toFixed(1)} s (${(c.frames / seconds).toFixed(0)} fps received, appsink drops when behind)`);
  t.is(c.width, 768);
  t.is(c.height, 576);
});

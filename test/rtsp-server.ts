/**
 * A real RTSP camera for tests: runs test/fixtures/rtsp-server.py (GstRtspServer under Debian's
 * /usr/bin/python3) on loopback, serving a video file as an endless, clock-paced H.264 stream.
 *
 *   const cam = await startRtspServer();          // rtsp://127.0.0.1:<free port>/plaza, vtest.avi
 *   t.teardown(() => cam.stop());
 *   await cam.stop();                             // SIGKILL by default: the camera dies
 *   await cam.restart();                          // back on the same port and path
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';

/**
 * Debian packages the server needs beyond the project's base GStreamer set: PyGObject, the
 * GstRtspServer library and its introspection data, x264enc (plugins-ugly), avdec_msmpeg4 (libav)
 * to decode vtest.avi, and rtph264pay/rtspsrc (plugins-good) for serving and receiving.
 */
export const RTSP_APT_PACKAGES = [
  'python3-gi',
  'gir1.2-gstreamer-1.0',
  'gir1.2-gst-plugins-base-1.0',
  'gir1.2-gst-rtsp-server-1.0',
  'gstreamer1.0-plugins-base',
  'gstreamer1.0-plugins-good',
  'gstreamer1.0-plugins-ugly',
  'gstreamer1.0-libav',
] as const;

/** Debian's interpreter: the `python3` on PATH may be a build that cannot load Debian's python3-gi. */
export const SYSTEM_PYTHON = process.env.SIGHTLINE_SYSTEM_PYTHON ?? '/usr/bin/python3';

export interface RtspServerOptions {
  /** TCP port; a free one is picked when omitted. */
  port?: number;
  /** Mount point, default `/plaza`. */
  path?: string;
  /** Video file, default `${SIGHTLINE_MEDIA_DIR ?? 'media'}/vtest.avi`, resolved from the working directory. */
  media?: string;
  /** Frames per second, paced by the server's clock (default 10, the file's own rate). */
  fps?: number;
  /** How long to wait for READY, default 20 s. */
  readyTimeoutMs?: number;
}

export interface RtspServer {
  url: string;
  port: number;
  /** Process id of the current server process (changes on restart). */
  readonly pid: number;
  /** Kills the server (default SIGKILL: a camera dying) and waits until the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and path (stopping it first with SIGKILL if it still runs). */
  restart(): Promise<void>;
  /** Stdout lines of the current process so far (READY, LOOP <n> <frames>, …). */
  readonly lines: readonly string[];
  /** Resolves with the first stdout line (past or future) of the current process that matches. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
}

const SCRIPT = 'test/fixtures/rtsp-server.py';
const STDERR_KEEP = 16_384;
const MAX_LINES = 10_000;

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

/** One run of the server process. */
class ServerProcess {
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly listeners = new Set<() => void>();
  private readonly killOnExit = () => { this.child.kill('SIGKILL'); };

  constructor(readonly child: ChildProcess) {
    // The server also exits when this pipe closes (--watch-stdin), so a crashed test leaves no orphan.
    process.on('exit', this.killOnExit);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        process.off('exit', this.killOnExit);
        this.exitInfo = { code, signal };
        this.notify();
        resolve(this.exitInfo);
      });
    });
    child.once('error', (err) => {
      this.stderr += `\n${err.message}`;
      if (!this.exitInfo) { this.exitInfo = { code: null, signal: null }; this.notify(); }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      this.stderr = (this.stderr + s).slice(-STDERR_KEEP);
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      if (this.lines.length > MAX_LINES) this.lines.splice(1, this.lines.length - MAX_LINES); // keep READY
      this.notify();
    });
    // A forgotten server must not keep this process alive (and it exits when its stdin closes).
    // Waiting for a line is held open by its timer, and kill() refs the process again.
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?(): void } | null)?.unref?.();
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  get exitDescription(): string {
    const e = this.exitInfo;
    return !e ? 'running' : e.signal ? `killed by ${e.signal}` : `exited with code ${e.code}`;
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      // eslint-disable-next-line prefer-const -- assigned after `done`, which clears it, is declared
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        const hit = this.lines.find((l) => pattern.test(l));
        if (hit !== undefined) { done(); resolve(hit); return; }
        if (!this.running) {
          done();
          reject(new Error(`RTSP server ${this.exitDescription} before printing ${pattern}; stderr:\n${this.stderr.trim()}`));
        }
      };
      const done = () => { this.listeners.delete(check); if (timer) clearTimeout(timer); };
      timer = setTimeout(() => {
        done();
        reject(new Error(`RTSP server printed no ${pattern} within ${timeoutMs} ms; stdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr.trim()}`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (!this.running) return;
    this.child.ref();
    this.child.kill(signal);
    await this.exited;
  }
}

export async function startRtspServer(opts: RtspServerOptions = {}): Promise<RtspServer> {
  const port = opts.port ?? await freePort();
  const mount = opts.path ? (opts.path.startsWith('/') ? opts.path : `/${opts.path}`) : '/plaza';
  const media = path.resolve(opts.media ?? `${process.env.SIGHTLINE_MEDIA_DIR ?? 'media'}/vtest.avi`);
  const script = path.resolve(SCRIPT);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  const args = [script, '--port', String(port), '--path', mount, '--media', media, '--watch-stdin'];
  if (opts.fps !== undefined) args.push('--fps', String(opts.fps));
  const url = `rtsp://127.0.0.1:${port}${mount}`;

  // Debian's python must not pick up another interpreter's modules.
  const env = { ...process.env };
  delete env.PYTHONHOME;
  delete env.PYTHONPATH;

  const launch = async (): Promise<ServerProcess> => {
    const proc = new ServerProcess(spawn(SYSTEM_PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'], env }));
    try {
      const ready = await proc.waitForLine(/^READY /, readyTimeoutMs);
      if (ready !== `READY ${url}`) throw new Error(`RTSP server announced "${ready}", expected "READY ${url}"`);
    } catch (err) {
      await proc.kill('SIGKILL');
      throw new Error(`RTSP server (${SYSTEM_PYTHON} ${SCRIPT}) did not start on ${url}: ${(err as Error).message}`, { cause: err });
    }
    return proc;
  };

  let current = await launch();
  return {
    url,
    port,
    get pid() { return current.child.pid ?? -1; },
    get lines() { return current.lines; },
    waitForLine: (pattern, timeoutMs) => current.waitForLine(pattern, timeoutMs),
    stop: (signal: NodeJS.Signals = 'SIGKILL') => current.kill(signal),
    async restart() {
      await current.kill('SIGKILL');
      current = await launch();
    },
  };
}

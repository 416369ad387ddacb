/**
 * A real cluster on loopback for tests and the benchmark: a `nats-server -js` and Sightline nodes as
 * separate `sightline run --cluster` processes, each with its own data directory and metrics port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from 'nats';
import { ALLOCATOR_ENV } from '../app/allocator.js';
import { metric } from './helpers.js';
import { freePort } from './rtsp-server.js';

const BIN = path.resolve('dist/bin/sightline.cjs');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value other than undefined/false, or throws after `ms`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 60_000, every = 250): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) { last = err; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(every);
  }
}

export class NatsServer {
  proc: ChildProcess | null = null;
  constructor(readonly port: number, readonly storeDir: string) {}

  get url(): string { return `nats://127.0.0.1:${this.port}`; }

  async start(): Promise<void> {
    this.proc = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir], { stdio: 'ignore' });
    await until('nats-server to accept connections', async () => {
      const nc = await connect({ servers: this.url, reconnect: false, timeout: 1000 });
      await nc.close();
      return true;
    }, 20_000);
  }

  /** Stops the server the way an operator restarting it would (SIGTERM), and waits for it to be gone. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
  }
}

export interface NodeProcess {
  name: string;
  role: 'worker' | 'gateway' | 'all';
  metricsPort: number;
  proc: ChildProcess;
  log: string[];
  exited: Promise<void>;
}

export class Cluster {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'sightline-cluster-'));
  readonly nats: NatsServer;
  readonly nodes = new Map<string, NodeProcess>();
  graphFile = '';

  private constructor(natsPort: number) {
    this.nats = new NatsServer(natsPort, path.join(this.dir, 'jetstream'));
  }

  static async start(graphYaml: string): Promise<Cluster> {
    const c = new Cluster(await freePort());
    c.graphFile = path.join(c.dir, 'graph.yaml');
    writeFileSync(c.graphFile, graphYaml);
    await c.nats.start();
    return c;
  }

  /** Starts a node; `graphFile` lets nodes on one host differ (e.g. each gateway on its own ports). */
  async spawn(name: string, role: NodeProcess['role'], extra: string[] = [], graphFile = this.graphFile): Promise<NodeProcess> {
    const metricsPort = await freePort();
    const dataDir = path.join(this.dir, name);
    mkdirSync(dataDir, { recursive: true });
    const proc = spawn(process.execPath, [BIN, 'run', graphFile, '--cluster', this.nats.url, '--role', role,
      '--node-id', name, '--data-dir', dataDir, '--metrics-port', String(metricsPort), '--host', '127.0.0.1',
      '--workers', '1', '--log-level', 'info', ...extra], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...ALLOCATOR_ENV } });
    const log: string[] = [];
    proc.stderr!.on('data', (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean)));
    // 'close', not 'exit': the last lines of stderr are read by then.
    const exited = new Promise<void>((r) => proc.once('close', () => r()));
    const node: NodeProcess = { name, role, metricsPort, proc, log, exited };
    this.nodes.set(name, node);
    await until(`${name} to serve metrics`, () => this.scrape(name).then(() => true), 60_000);
    return node;
  }

  async scrape(name: string): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.nodes.get(name)!.metricsPort}/metrics`);
    return res.text();
  }

  async value(name: string, metricName: string, labels: Record<string, string> = {}): Promise<number> {
    return metric(await this.scrape(name), metricName, labels) ?? 0;
  }

  /** Sources a node runs, from its /health. */
  async running(name: string): Promise<string[]> {
    const res = await fetch(`http://127.0.0.1:${this.nodes.get(name)!.metricsPort}/health`);
    const h = await res.json() as { pipelines: Record<string, { state: string }> };
    return Object.entries(h.pipelines).filter(([, p]) => p.state === 'running').map(([id]) => id).sort();
  }

  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const n = this.nodes.get(name)!;
    n.proc.kill(signal);
    await n.exited;
    this.nodes.delete(name);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((n) => this.kill(n, 'SIGTERM').catch(() => undefined)));
    await this.nats.stop();
  }
}

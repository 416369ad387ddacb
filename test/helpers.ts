/** Shared fixtures for tests: real media and models from the directories the setup step fills. */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { parseGraph } from '../app/catalog.js';
import type { Graph } from '../config/graph.js';
import { loadSettings, type ResolvedSettings } from '../config/settings.js';
import { createLogger, type Logger } from '../core/log.js';

export const MEDIA_DIR = path.resolve(process.env.SIGHTLINE_MEDIA_DIR ?? 'media');
export const media = (name: string): string => path.join(MEDIA_DIR, name);

export function graph(yaml: string, file = 'test.yaml'): Graph {
  return parseGraph(yaml, file);
}

/** Settings for a test app: loopback only, quiet, and a fresh data directory of its own. */
export function testSettings(overrides: Partial<ResolvedSettings> = {}): ResolvedSettings {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sightline-data-'));
  return { ...loadSettings([], process.env), host: '127.0.0.1', logLevel: 'warn', dataDir, ...overrides };
}

/** A logger that keeps lines for assertions (and stays quiet). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(createLogger('debug', 'test', (l) => lines.push(l)), { lines });
}

export async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

/** Value of one Prometheus sample, e.g. metric(text, 'sightline_frames_in_total', { source: 'plaza' }). */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return undefined;
}

/** A JSON WebSocket client whose messages are queued, so a test awaits them one at a time, in order. */
export interface QueuedSocket<M> { ws: WebSocket; next: () => Promise<M>; send: (m: unknown) => void }

export async function openQueuedSocket<M = Record<string, unknown> & { type: string }>(url: string,
  maxPayload = 64 * 1024 * 1024): Promise<QueuedSocket<M>> {
  const ws = new WebSocket(url, { maxPayload });
  const queue: M[] = [];
  const waiters: ((m: M) => void)[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString()) as M;
    const w = waiters.shift();
    if (w) w(m); else queue.push(m);
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return {
    ws,
    next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r))),
    // A string goes as it is (tests send malformed JSON on purpose); anything else as JSON.
    send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)),
  };
}

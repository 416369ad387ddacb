/** What every benchmark prints with: plain-text tables, nearest-rank percentiles, and a quiet machine. */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { ALLOCATOR_ENV, missingAllocatorEnv } from '../app/allocator.js';

/** Nearest-rank percentile of unsorted values; q is a fraction (0.95). NaN when there are none. */
export function percentile(values: number[], q: number): number {
  return nearestRank([...values].sort((a, b) => a - b), q);
}

function nearestRank(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export interface Summary { n: number; mean: number; p50: number; p95: number; max: number }

export function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, v) => a + v, 0) / Math.max(1, s.length);
  return { n: s.length, mean, p50: nearestRank(s, 0.5), p95: nearestRank(s, 0.95), max: s[s.length - 1] ?? NaN };
}

/** Columns holding only numbers are right-aligned, the others left-aligned. */
export function table(title: string, headers: string[], rows: (string | number)[][]): void {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => i > 0 && cells.slice(1).every((r) => /^(-?[\d.]+%?|-|NaN)$/.test(r[i] ?? '')));
  const line = (r: string[]): string =>
    r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  console.log(`\n${title}`);
  console.log(line(headers));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) console.log(line(r));
}

export const loadavg = (): string => os.loadavg().map((v) => v.toFixed(2)).join(' ');

/** Waits (at most `maxWaitS`) for the 1-minute load to drop below 2.5, so other jobs skew figures less. */
export async function waitForQuietMachine(label: string, maxWaitS = 300): Promise<string> {
  const t0 = Date.now();
  while (os.loadavg()[0] >= 2.5 && (Date.now() - t0) / 1000 < maxWaitS) {
    console.log(`  [${label}] waiting for 1-min load < 2.5 (now ${os.loadavg()[0].toFixed(2)}, waited ${Math.round((Date.now() - t0) / 1000)} s)`);
    await new Promise((r) => setTimeout(r, 10_000));
  }
  if (os.loadavg()[0] >= 2.5) console.log(`  [${label}] load still ${os.loadavg()[0].toFixed(2)} after ${maxWaitS} s; measuring anyway`);
  console.log(`  [${label}] loadavg ${loadavg()}`);
  return loadavg();
}

/**
 * Runs this benchmark again in a child with UV_THREADPOOL_SIZE and the allocator settings set, when they are not
 * (each GStreamer source parks two blocking calls on libuv's pool, which is sized at its first use, before this code
 * runs; glibc reads its settings at start-up). Returns true in the parent, which should then do nothing else.
 */
export function rerunWithThreadpool(size = 256): boolean {
  if (process.env.UV_THREADPOOL_SIZE && missingAllocatorEnv().length === 0) return false;
  // The allocator settings too: the benchmarks measure Sightline as `npm start` runs it (app/allocator.ts).
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit', env: { UV_THREADPOOL_SIZE: String(size), ...ALLOCATOR_ENV, ...process.env },
  });
  process.exitCode = r.status ?? 1;
  return true;
}

/** CPU accounting for benchmarks: this process against the machine, and per thread (from /proc). */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(0)}%` : '-');

/** Busy and steal CPU seconds of the whole machine so far, from /proc/stat (null where unavailable). */
export function machineCpu(): { busyS: number; stealS: number } | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f; // idle and iowait are not busy
    const HZ = 100; // USER_HZ on Linux
    return { busyS: (user + nice + system + irq + softirq) / HZ, stealS: (steal ?? 0) / HZ };
  } catch {
    return null;
  }
}

export interface CpuUse {
  wallS: number;
  /** This process (all threads: main, workers, GStreamer, libuv pool), CPU seconds and share of the cores. */
  cpuS: number;
  utilization: number;
  /** Cores' worth of CPU used by other processes meanwhile (noise on a shared machine), and hypervisor steal. */
  otherCores: number;
  stealCores: number;
}

export function cpuMeter(): () => CpuUse {
  const c0 = process.cpuUsage();
  const m0 = machineCpu();
  const t0 = performance.now();
  return () => {
    const c = process.cpuUsage(c0);
    const m1 = machineCpu();
    const wallS = (performance.now() - t0) / 1000;
    const cpuS = (c.user + c.system) / 1e6;
    const otherCores = m0 && m1 ? Math.max(0, m1.busyS - m0.busyS - cpuS) / wallS : NaN;
    const stealCores = m0 && m1 ? (m1.stealS - m0.stealS) / wallS : NaN;
    return { wallS, cpuS, utilization: cpuS / (wallS * cores()), otherCores, stealCores };
  };
}

/** "62% of 2 cores; other processes 0.05 cores" — this process's CPU share and the noise around it. */
export function cpuNote(u: CpuUse): string {
  const other = Number.isFinite(u.otherCores) ? `; other processes ${u.otherCores.toFixed(2)} cores, steal ${u.stealCores.toFixed(2)}` : '';
  return `${pct(u.utilization)} of ${cores()} cores${other}`;
}

/** CPU seconds per thread of this process so far, from /proc/self/task (empty where unavailable). */
export function threadCpu(): Map<string, { name: string; cpuS: number }> {
  const out = new Map<string, { name: string; cpuS: number }>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out.set(tid, { name, cpuS: (Number(f[11]) + Number(f[12])) / 100 }); // utime + stime, USER_HZ
      } catch { /* thread exited */ }
    }
  } catch { /* not Linux */ }
  return out;
}

export interface ThreadShare { label: string; cpuS: number; busy: number }

/**
 * Where this process's CPU went between two threadCpu() snapshots: the main thread, the `workers` busiest
 * other "node" threads (the inference workers; their ORT runs on the same thread with 1 intra-op thread),
 * the remaining node threads (V8 GC/compiler, libuv pool) and GStreamer's own threads.
 */
export function threadShares(before: Map<string, { name: string; cpuS: number }>, after: Map<string, { name: string; cpuS: number }>,
  wallS: number, workers: number): ThreadShare[] {
  const delta = [...after].map(([tid, t]) => ({ tid, name: t.name, cpuS: t.cpuS - (before.get(tid)?.cpuS ?? 0) }));
  const main = delta.filter((t) => t.tid === String(process.pid));
  const node = delta.filter((t) => t.tid !== String(process.pid) && t.name === 'node').sort((a, b) => b.cpuS - a.cpuS);
  const gst = delta.filter((t) => t.name !== 'node');
  const sum = (ts: { cpuS: number }[]): number => ts.reduce((a, t) => a + t.cpuS, 0);
  const rows: ThreadShare[] = [{ label: 'main thread (RxJS, GstSource, Piscina)', cpuS: sum(main), busy: sum(main) / wallS }];
  node.slice(0, workers).forEach((t, i) => rows.push({ label: `worker ${i + 1} (letterbox, session.run, decode)`, cpuS: t.cpuS, busy: t.cpuS / wallS }));
  rows.push({ label: 'other node threads (V8 GC/compiler, libuv pool)', cpuS: sum(node.slice(workers)), busy: sum(node.slice(workers)) / wallS });
  // Thread names without their element's number (avidemux3:sink → avidemux:sink), so 24 cameras make one short label.
  const kinds = [...new Set(gst.filter((t) => t.cpuS > 0).map((t) => t.name.replace(/\d+(?=:|$)/, '')))];
  rows.push({ label: `GStreamer threads (${kinds.join(', ') || 'none'})`, cpuS: sum(gst), busy: sum(gst) / wallS });
  return rows;
}

export function cores(): number {
  return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

/** Progress of an offline run: frames, fps, ETA. A bar on a terminal, a line every few seconds otherwise. */
export class ProgressReporter {
  private readonly t0 = performance.now();
  private lastPrint = 0;

  constructor(private readonly out: NodeJS.WriteStream, private readonly total: () => number) {}

  elapsedSeconds(): number {
    return (performance.now() - this.t0) / 1000;
  }

  update(frames: number): void {
    const now = performance.now();
    const interval = this.out.isTTY ? 200 : 5000;
    if (now - this.lastPrint < interval) return;
    this.lastPrint = now;
    this.print(frames, false);
  }

  finish(frames: number): void {
    this.print(frames, true);
  }

  private print(frames: number, final: boolean): void {
    const secs = this.elapsedSeconds();
    const fps = frames / Math.max(secs, 1e-3);
    const total = Math.max(this.total(), frames);
    const pct = total > 0 ? frames / total : 0;
    const eta = total > 0 && fps > 0 ? (total - frames) / fps : NaN;
    const width = 30;
    const bar = total > 0 ? `[${'#'.repeat(Math.round(pct * width)).padEnd(width, '.')}] ${(pct * 100).toFixed(0).padStart(3)}% ` : '';
    const line = `${bar}${frames}${total ? `/${total}` : ''} frames  ${fps.toFixed(1)} fps  ETA ${Number.isFinite(eta) ? clock(eta) : '--:--'}`;
    if (this.out.isTTY) this.out.write(`\r${line}${final ? '\n' : ''}`);
    else this.out.write(`${line}\n`);
  }
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

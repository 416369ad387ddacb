/** Watches a graph file for saves (including editors that write a new file and rename it over the old). */
import { createHash } from 'node:crypto';
import { readFileSync, watch } from 'node:fs';
import path from 'node:path';

export function watchFile(file: string, onChange: () => void, debounceMs = 250): { close(): void } {
  const dir = path.dirname(path.resolve(file));
  const name = path.basename(file);
  const digest = (): string => {
    try { return createHash('sha256').update(readFileSync(file)).digest('hex'); } catch { return 'unreadable'; }
  };
  let last = digest();
  let timer: NodeJS.Timeout | null = null;
  const watcher = watch(dir, (_event, changed) => {
    if (changed !== null && changed !== name) return;
    if (timer) clearTimeout(timer);
    // Editors save in several steps; act once the file has settled, and only if its bytes changed.
    timer = setTimeout(() => {
      timer = null;
      const now = digest();
      if (now === last) return;
      last = now;
      onChange();
    }, debounceMs);
  });
  watcher.unref();
  return { close: () => { if (timer) clearTimeout(timer); watcher.close(); } };
}

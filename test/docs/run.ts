/**
 * Runs a document's client code as a reader would: Python under the system interpreter (which has websockets,
 * aiohttp, requests, OpenCV and NumPy), JavaScript under Node with a browser-style `WebSocket` global (the `ws`
 * package), each in a folder of its own. Output is read as it comes, so a client that runs until stopped (most of
 * them: they stream until Ctrl+C) is stopped once it has printed what the test waits for.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

/** The Debian interpreter with the documents' Python dependencies (`python3` on the PATH may be another one). */
export const SYSTEM_PYTHON = '/usr/bin/python3';

export interface RunOptions {
  /** Working directory (default: a new temporary folder): where the code finds and writes its files. */
  cwd?: string;
  /** Stop the program (SIGTERM) once its output satisfies this. */
  until?: (stdout: string) => boolean;
  /** Stop it after this long at most (default 90 s); `timedOut` then says so. */
  timeoutMs?: number;
  env?: Record<string, string>;
  /** Called with each chunk of stdout as it arrives (e.g. to act at some point of the run). */
  onOutput?: (stdout: string) => void;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number | null;
  /** Stopped because `until` was satisfied. */
  stopped: boolean;
  timedOut: boolean;
  lines: string[];
}

export const scratchDir = (name: string): string => mkdtempSync(path.join(os.tmpdir(), `sightline-docs-${name}-`));

function run(command: string, args: string[], o: RunOptions & { cwd: string }): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'],
      // Unbuffered output: a program stopped with a signal has printed everything it printed.
      env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONIOENCODING: 'utf-8', ...o.env },
    });
    let stdout = '';
    let stderr = '';
    let stopped = false;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, o.timeoutMs ?? 90_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      o.onOutput?.(stdout);
      if (!stopped && o.until?.(stdout)) { stopped = true; child.kill('SIGTERM'); }
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, stopped, timedOut, lines: stdout.split('\n').filter((l) => l.length > 0) });
    });
  });
}

/** Runs Python source (a document's block, as substituted) as `client.py` in its working directory. */
export function runPython(code: string, o: RunOptions = {}): Promise<RunResult> {
  const cwd = o.cwd ?? scratchDir('py');
  writeFileSync(path.join(cwd, 'client.py'), code);
  return run(SYSTEM_PYTHON, ['client.py'], { ...o, cwd });
}

const wsPackage = createRequire(import.meta.url).resolve('ws');

/**
 * Runs JavaScript written for a browser page's scripts under Node: `WebSocket` is the `ws` package (which takes the
 * browser's `onopen`/`onmessage`/`onclose` properties), `prelude` defines what the page would (functions the code
 * calls but does not define), and `usage` is the test's own code after the document's (for classes the document
 * shows without using them). The three run in one script scope, as a page's scripts share one.
 */
export function runNode(code: string, o: RunOptions & { prelude?: string; usage?: string } = {}): Promise<RunResult> {
  const cwd = o.cwd ?? scratchDir('js');
  const script = [
    `globalThis.WebSocket = require(${JSON.stringify(wsPackage)});`,
    o.prelude ?? '',
    '// ---- the document\'s code ----',
    code,
    '// ---- the test\'s usage ----',
    o.usage ?? '',
  ].join('\n');
  writeFileSync(path.join(cwd, 'client.cjs'), script);
  return run(process.execPath, ['client.cjs'], { ...o, cwd });
}

/** How many lines of a run match. */
export const count = (r: RunResult, re: RegExp): number => r.lines.filter((l) => re.test(l)).length;

/** What a run printed, for an assertion's message. */
export const transcript = (r: RunResult, lines = 40): string =>
  `stdout (${r.lines.length} lines):\n${r.lines.slice(0, lines).join('\n')}\nstderr:\n${r.stderr.slice(0, 3000)}`;

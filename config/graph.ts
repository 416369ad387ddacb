/**
 * The YAML graph: sources, models, pipelines (stage DAGs) and transports.
 * Loading validates everything up front against a catalog it is handed (the stages, transports and model kinds
 * of the build: app/catalog.ts); every problem is reported with file, line, key and what was expected. Options
 * left out are filled from the schemas' defaults, so stages and transports receive complete options.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, isNode, isScalar, isSeq, type Document } from 'yaml';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { SightlineError } from '../core/errors.js';

export interface OptionProblem { path: (string | number)[]; message: string }

/** What config needs to know of a stage: its options' schema and what it reads, adds and loads. */
export interface StageSchema<O = Record<string, unknown>> {
  name: string;
  /** JSON schema of the stage's `with:` options, with the defaults of the options left out. */
  optionsSchema: object;
  /** Checks that need the whole graph (e.g. that a named model exists and has the right kind). */
  check?(options: O, graph: Graph): OptionProblem[];
  /** Packet fields this stage reads, which an upstream stage must provide. */
  needs?: readonly string[];
  /** Packet fields this stage adds. */
  provides?: readonly string[];
  /** Graph models this stage loads. */
  models?(options: O): string[];
}

/** What config needs to know of a transport: its options' schema and the kinds of the models it names. */
export interface TransportSchema {
  name: string;
  schema: object;
  /** Option keys that name a graph model, with the kind(s) it must have. */
  models?: Record<string, string | readonly string[]>;
  /**
   * Checks that need the whole graph; errors refuse the graph, warnings come back on it (`graph.warnings`) for the
   * operator. `facts` says what the graph's pipelines produce, so a transport asks for packet fields, not stage names.
   */
  check?(spec: TransportSpec, graph: Graph, facts: GraphFacts): { errors?: OptionProblem[]; warnings?: OptionProblem[] };
}

/** What a transport's check may ask of a graph beyond its text. */
export interface GraphFacts {
  /** Packet fields the stages of a pipeline add (empty for an unknown pipeline). */
  provides(pipeline: string): ReadonlySet<string>;
}

/** The stages, transports and model kinds a graph may use. */
export interface GraphCatalog {
  stages: readonly StageSchema<never>[];
  transports: readonly TransportSchema[];
  modelKinds: readonly string[];
}

export interface SourceSpec {
  id: string;
  uri: string;
  /**
   * The place the camera looks at, for protocols that speak of places (the pose stream's `environment_id`); several
   * sources may share one. Without it a source is its own environment.
   */
  environment?: string;
  width?: number;
  height?: number;
  fps?: number;
  /** File sources: play at the file's own rate (live semantics) instead of as fast as the stages allow. */
  realtime: boolean;
  /** File sources: start again from the beginning at the end of the file. */
  loop: boolean;
  /** RTSP: lower transport. */
  transport: 'tcp' | 'udp';
  /** RTSP: jitter-buffer latency in ms. */
  latency: number;
  /** Live sources: seconds without a frame before the source is restarted (0 = off). */
  watchdog: number;
}

export interface ModelSpec { id: string; file: string; kind: string }

export interface StageSpec {
  id: string;
  use: string;
  /** Upstream stage id, or null when the stage reads straight from the source. */
  from: string | null;
  with: Record<string, unknown>;
}

export interface PipelineSpec {
  id: string;
  source: string;
  maxInFlight?: number;
  /** Live sources: a frame that waited this long (ms since capture) for its turn is dropped as late. */
  budgetMs?: number;
  /** Live sources: share of the inference pool relative to other pipelines (default 1). */
  weight?: number;
  stages: StageSpec[];
  /** The graph models its stages load (worked out from the catalog when the graph loads). */
  models: string[];
}

export type TransportSpec = { id: string; port?: number; pipeline?: string } & Record<string, unknown>;

export interface Graph {
  file: string;
  sources: Record<string, SourceSpec>;
  models: Record<string, ModelSpec>;
  pipelines: Record<string, PipelineSpec>;
  transports: Record<string, TransportSpec>;
}

export interface GraphIssue { file: string; line: number; col: number; key: string; message: string }

/** An invalid graph: GRAPH_INVALID, with every issue found (the message has one line per issue). */
export class GraphError extends SightlineError {
  constructor(readonly issues: GraphIssue[]) {
    super('GRAPH_INVALID', issues.map(formatIssue).join('\n'));
    this.name = 'GraphError';
  }
}

export function formatIssue(i: GraphIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.key || '(top level)'}: ${i.message}`;
}

const ID = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';

const topSchema = (catalog: GraphCatalog) => ({
  type: 'object',
  additionalProperties: false,
  properties: {
    sources: {
      type: 'object', propertyNames: { pattern: ID },
      additionalProperties: {
        type: 'object', additionalProperties: false, required: ['uri'],
        properties: {
          uri: { type: 'string', pattern: '^(file|rtsp|rtsps|test|v4l2)://.+' },
          width: { type: 'integer', minimum: 16, maximum: 7680 },
          height: { type: 'integer', minimum: 16, maximum: 4320 },
          fps: { type: 'number', exclusiveMinimum: 0, maximum: 240 },
          realtime: { type: 'boolean' },
          loop: { type: 'boolean' },
          transport: { enum: ['tcp', 'udp'] },
          latency: { type: 'integer', minimum: 0, maximum: 10000 },
          watchdog: { type: 'number', minimum: 0, maximum: 3600 },
          environment: { type: 'string', pattern: ID },
        },
      },
    },
    models: {
      type: 'object', propertyNames: { pattern: ID },
      additionalProperties: {
        type: 'object', additionalProperties: false, required: ['file', 'kind'],
        properties: { file: { type: 'string', minLength: 1 }, kind: { enum: [...catalog.modelKinds] } },
      },
    },
    pipelines: {
      type: 'object', propertyNames: { pattern: ID },
      additionalProperties: {
        type: 'object', additionalProperties: false, required: ['source', 'stages'],
        properties: {
          source: { type: 'string' },
          maxInFlight: { type: 'integer', minimum: 1, maximum: 64 },
          budgetMs: { type: 'integer', minimum: 0, maximum: 60000 },
          weight: { type: 'number', exclusiveMinimum: 0, maximum: 100 },
          stages: {
            type: 'array',
            items: {
              type: 'object', additionalProperties: false, required: ['use'],
              properties: {
                id: { type: 'string', pattern: ID },
                use: { type: 'string' },
                from: { type: 'string' },
                with: { type: 'object' },
              },
            },
          },
        },
      },
    },
    transports: {
      type: 'object',
      additionalProperties: false,
      // Each transport's options are checked with its own schema (validatorsOf), compiled when a graph uses it.
      properties: Object.fromEntries(catalog.transports.map((t) => [t.name, { type: 'object' }])),
    },
  },
});

interface Validators {
  top: ValidateFunction;
  /** The options validator of a stage or transport of the catalog (compiled at its first use); none for a name it lacks. */
  stage(name: string): ValidateFunction | undefined;
  transport(name: string): ValidateFunction | undefined;
}
/**
 * Schemas are compiled once per catalog, and a stage's or transport's options schema only when a graph uses it:
 * compiling every schema of the catalog took a fifth of a second of every start and every `sightline validate`.
 */
const compiled = new WeakMap<GraphCatalog, Validators>();
function validatorsOf(catalog: GraphCatalog): Validators {
  let v = compiled.get(catalog);
  if (!v) {
    // useDefaults: options left out get the schemas' defaults, so stages and transports see complete options.
    const ajv = new Ajv({ allErrors: true, strict: false, verbose: true, useDefaults: true });
    const functions = new Map<object, ValidateFunction>();
    const of = (schema: object | undefined): ValidateFunction | undefined => {
      if (!schema) return undefined;
      let f = functions.get(schema);
      if (!f) functions.set(schema, f = ajv.compile(schema));
      return f;
    };
    v = {
      top: ajv.compile(topSchema(catalog)),
      stage: (name) => of(catalog.stages.find((d) => d.name === name)?.optionsSchema),
      transport: (name) => of(catalog.transports.find((d) => d.name === name)?.schema),
    };
    compiled.set(catalog, v);
  }
  return v;
}

type PathKey = string | number;

class IssueCollector {
  readonly issues: GraphIssue[] = [];
  constructor(private file: string, private doc: Document, private lines: LineCounter) {}

  add(path: PathKey[], message: string): void {
    const { line, col } = this.locate(path);
    this.issues.push({ file: this.file, line, col, key: keyString(path), message });
  }

  /** Position of the deepest entry on `path` that exists: a map entry's key, a list item, or the parent of a missing key. */
  private locate(path: PathKey[]): { line: number; col: number } {
    for (let n = path.length; n > 0; n--) {
      const parent = n === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, n - 1), true);
      const last = path[n - 1];
      if (isMap(parent)) {
        const pair = parent.items.find((it) => isScalar(it.key) && String(it.key.value) === String(last));
        if (pair && isNode(pair.key) && pair.key.range) return this.lines.linePos(pair.key.range[0]);
      } else if (isSeq(parent) && typeof last === 'number') {
        const item = parent.items[last];
        if (isNode(item) && item.range) return this.lines.linePos(item.range[0]);
      }
    }
    const top = this.doc.contents;
    return isNode(top) && top.range ? this.lines.linePos(top.range[0]) : { line: 1, col: 1 };
  }
}

function keyString(path: PathKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function pointerToPath(pointer: string): PathKey[] {
  if (!pointer) return [];
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function describeAjvError(e: ErrorObject): { path: PathKey[]; message: string } {
  const path = pointerToPath(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = String(e.params.additionalProperty);
      return { path: [...path, extra], message: `unknown key "${extra}"; expected one of ${knownKeys(e)}` };
    }
    case 'required':
      return { path, message: `missing required key "${String(e.params.missingProperty)}"` };
    case 'enum':
      return { path, message: `expected one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'propertyNames': {
      const name = String(e.params.propertyName);
      return { path: [...path, name], message: `invalid name "${name}"` };
    }
    case 'pattern':
      return { path, message: `must match ${String(e.params.pattern)}` };
    default:
      return { path, message: e.message ?? 'invalid value' };
  }
}

function knownKeys(e: ErrorObject): string {
  const props = (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties;
  return props ? Object.keys(props).join(', ') : '(none)';
}

/** What a graph validated with, besides errors: warnings (file:line:col: key: message), for the operator. */
export interface GraphWarnings { warnings: string[] }

/** Parse and validate a graph from text. Throws GraphError listing every problem found. */
export function parseGraph(text: string, file: string, catalog: GraphCatalog): Graph & GraphWarnings {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const issues = new IssueCollector(file, doc, lines);
  for (const err of doc.errors) {
    const { line, col } = lines.linePos(err.pos[0]);
    issues.issues.push({ file, line, col, key: '', message: `YAML syntax: ${err.message.split('\n')[0]}` });
  }
  if (issues.issues.length) throw new GraphError(issues.issues);

  const raw: unknown = doc.toJS();
  const validators = validatorsOf(catalog);
  const addErrors = (errors: ErrorObject[] | null | undefined, prefix: PathKey[] = []): void => {
    for (const e of errors ?? []) {
      // `propertyNames` failures also report a generic error on the parent; skip those duplicates.
      if (e.keyword === 'if') continue;
      const { path, message } = describeAjvError(e);
      issues.add([...prefix, ...path], message);
    }
  };
  if (!validators.top(raw)) addErrors(validators.top.errors);
  const transports = (raw as RawGraph | null)?.transports;
  if (isPlainObject(transports)) {
    for (const [name, options] of Object.entries(transports)) {
      const validate = validators.transport(name);
      // Not an object, or not a transport of the catalog: the top schema said why.
      if (validate && isPlainObject(options) && !validate(options)) addErrors(validate.errors, ['transports', name]);
    }
  }
  if (issues.issues.length) throw new GraphError(dedupe(issues.issues));
  const graph = normalise(raw as RawGraph, file);
  const warnings = new IssueCollector(file, doc, lines);
  checkSemantics(graph, issues, warnings, catalog);
  if (issues.issues.length) throw new GraphError(dedupe(issues.issues));
  for (const p of Object.values(graph.pipelines)) {
    p.models = [...new Set(p.stages.flatMap((s) => catalog.stages.find((d) => d.name === s.use)?.models?.(s.with as never) ?? []))];
  }
  // Not enumerable: a graph compares and serialises by its sections only.
  return Object.defineProperty(graph, 'warnings', { value: dedupe(warnings.issues).map(formatIssue), enumerable: false }) as Graph & GraphWarnings;
}

/**
 * Options checked against a schema with its defaults filled in (what a stage or transport receives when the graph
 * loads): for code that builds a stage outside a graph, such as a test harness. Throws GraphError when invalid.
 */
export function withDefaults<O>(schema: object, options: unknown, what = 'options'): O {
  const copy = structuredClone(options ?? {});
  const validate = defaultsAjv.compile(schema);
  if (!validate(copy)) {
    throw new GraphError((validate.errors ?? []).map((e) => ({ file: what, line: 0, col: 0, key: e.instancePath, message: describeAjvError(e).message })));
  }
  return copy as O;
}
const defaultsAjv = new Ajv({ allErrors: true, strict: false, useDefaults: true });

/** Absolute path of a graph model's file, looked up in the model directory. */
export function modelPath(graph: Graph, modelDir: string, id: string): string {
  return path.resolve(modelDir, graph.models[id].file);
}

export function loadGraph(file: string, catalog: GraphCatalog): Graph & GraphWarnings {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new GraphError([{ file, line: 0, col: 0, key: '', message: `cannot read graph file: ${(err as Error).message}` }]);
  }
  return parseGraph(text, file, catalog);
}

function dedupe(list: GraphIssue[]): GraphIssue[] {
  const seen = new Set<string>();
  return list.filter((i) => !seen.has(formatIssue(i)) && seen.add(formatIssue(i)) !== undefined);
}

interface RawGraph {
  sources?: Record<string, Omit<SourceSpec, 'id' | 'realtime' | 'loop' | 'transport' | 'latency' | 'watchdog'> & Partial<SourceSpec>>;
  models?: Record<string, { file: string; kind: string }>;
  pipelines?: Record<string, {
    source: string; maxInFlight?: number; budgetMs?: number; weight?: number;
    stages: { id?: string; use: string; from?: string; with?: Record<string, unknown> }[];
  }>;
  transports?: Record<string, Record<string, unknown>>;
}

function normalise(raw: RawGraph, file: string): Graph {
  const sources: Record<string, SourceSpec> = {};
  for (const [id, s] of Object.entries(raw.sources ?? {})) {
    sources[id] = { realtime: false, loop: false, transport: 'tcp', latency: 200, watchdog: 5, ...s, id };
  }
  const models: Record<string, ModelSpec> = {};
  for (const [id, m] of Object.entries(raw.models ?? {})) models[id] = { ...m, id };
  const pipelines: Record<string, PipelineSpec> = {};
  for (const [id, p] of Object.entries(raw.pipelines ?? {})) {
    let previous: string | null = null;
    const stages = p.stages.map((s) => {
      const stage: StageSpec = { id: s.id ?? s.use, use: s.use, from: s.from ?? previous, with: s.with ?? {} };
      previous = stage.id;
      return stage;
    });
    pipelines[id] = {
      id, source: p.source, maxInFlight: p.maxInFlight, budgetMs: p.budgetMs, weight: p.weight, stages, models: [],
    };
  }
  const transports: Record<string, TransportSpec> = {};
  for (const [id, t] of Object.entries(raw.transports ?? {})) transports[id] = { ...t, id } as TransportSpec;
  return { file, sources, models, pipelines, transports };
}

function checkSemantics(g: Graph, issues: IssueCollector, warnings: IssueCollector, catalog: GraphCatalog): void {
  const defs = new Map(catalog.stages.map((d) => [d.name, d as StageSchema]));
  const validators = validatorsOf(catalog);
  for (const s of Object.values(g.sources)) {
    // An environment named like another source would make a filter on that name mean two things.
    if (s.environment !== undefined && s.environment !== s.id && g.sources[s.environment]) {
      issues.add(['sources', s.id, 'environment'], `environment "${s.environment}" is the id of another source; name the place differently`);
    }
  }
  for (const p of Object.values(g.pipelines)) {
    const base: PathKey[] = ['pipelines', p.id];
    if (!g.sources[p.source]) {
      issues.add([...base, 'source'], `unknown source "${p.source}"; defined sources: ${Object.keys(g.sources).join(', ')}`);
    }
    const ids = new Map<string, number>();
    p.stages.forEach((s, i) => {
      if (ids.has(s.id)) issues.add([...base, 'stages', i, 'id'], `duplicate stage id "${s.id}" (first used by stages[${ids.get(s.id)}]); give each stage a unique id`);
      else ids.set(s.id, i);
    });
    p.stages.forEach((s, i) => {
      const at: PathKey[] = [...base, 'stages', i];
      const def = defs.get(s.use);
      if (!def) {
        issues.add([...at, 'use'], `unknown stage "${s.use}"; expected one of ${[...defs.keys()].join(', ')}`);
      } else {
        const validate = validators.stage(s.use)!;
        if (!validate(s.with)) {
          for (const e of validate.errors ?? []) {
            const { path, message } = describeAjvError(e);
            issues.add([...at, 'with', ...path], message);
          }
        }
        for (const problem of def.check?.(s.with, g) ?? []) issues.add([...at, 'with', ...problem.path], problem.message);
      }
      if (s.from !== null && !ids.has(s.from)) {
        issues.add([...at, 'from'], `"from" names "${s.from}", which is not a stage of this pipeline; stages: ${[...ids.keys()].join(', ')}`);
      }
    });
    const cycle = findCycle(p.stages);
    if (cycle) {
      const i = p.stages.findIndex((s) => s.id === cycle[0]);
      issues.add([...base, 'stages', i, 'from'], `stages form a cycle: ${cycle.join(' -> ')}; "from" must name an upstream stage`);
    } else {
      checkInputs(p, defs, issues);
    }
  }
  const facts: GraphFacts = {
    provides: (pipeline) => new Set((g.pipelines[pipeline]?.stages ?? []).flatMap((s) => defs.get(s.use)?.provides ?? [])),
  };
  for (const t of Object.values(g.transports)) {
    const def = catalog.transports.find((d) => d.name === t.id);
    for (const [key, kind] of Object.entries(def?.models ?? {})) {
      if (t[key] === undefined) continue; // an optional model left out (required ones are checked by the schema)
      const id = String(t[key]);
      const model = g.models[id];
      if (!model) issues.add(['transports', t.id, key], `unknown model "${id}"; declare it under models: (defined: ${Object.keys(g.models).join(', ') || 'none'})`);
      else if (![kind].flat().includes(model.kind)) issues.add(['transports', t.id, key], `model "${id}" is of kind "${model.kind}"; ${t.id} ${key} needs kind ${[kind].flat().map((k) => `"${k}"`).join(' or ')}`);
    }
    if (t.pipeline !== undefined && !g.pipelines[t.pipeline]) {
      issues.add(['transports', t.id, 'pipeline'], `unknown pipeline "${t.pipeline}"; defined pipelines: ${Object.keys(g.pipelines).join(', ')}`);
    } else {
      const found = def?.check?.(t, g, facts);
      for (const p of found?.errors ?? []) issues.add(['transports', t.id, ...p.path], p.message);
      for (const p of found?.warnings ?? []) warnings.add(['transports', t.id, ...p.path], p.message);
    }
  }
}

/** Every stage's `needs` must be provided by a stage on its path from the source. */
function checkInputs(p: PipelineSpec, defs: Map<string, StageSchema>, issues: IssueCollector): void {
  const byId = new Map(p.stages.map((s) => [s.id, s]));
  p.stages.forEach((s, i) => {
    const needs = defs.get(s.use)?.needs ?? [];
    if (!needs.length) return;
    const provided = new Set<string>();
    for (let up = s.from ? byId.get(s.from) : undefined; up; up = up.from ? byId.get(up.from) : undefined) {
      for (const f of defs.get(up.use)?.provides ?? []) provided.add(f);
    }
    for (const need of needs.filter((n) => !provided.has(n))) {
      const makers = [...defs.values()].filter((d) => d.provides?.includes(need)).map((d) => d.name);
      issues.add(['pipelines', p.id, 'stages', i, 'use'],
        `stage "${s.use}" needs ${need}, which no upstream stage provides; put a ${makers.join(' or ')} stage before it (or point "from" at one)`);
    }
  });
}

/** A cycle among `from` links, as a list of stage ids, or null. */
function findCycle(stages: StageSpec[]): string[] | null {
  const from = new Map(stages.map((s) => [s.id, s.from]));
  for (const start of from.keys()) {
    const seen: string[] = [];
    let cur: string | null | undefined = start;
    while (cur != null && from.has(cur)) {
      if (seen.includes(cur)) return [...seen.slice(seen.indexOf(cur)), cur];
      seen.push(cur);
      cur = from.get(cur);
    }
  }
  return null;
}

/** Stage order in which every stage comes after its `from`. */
export function topologicalOrder(stages: StageSpec[]): StageSpec[] {
  const done = new Set<string>();
  const out: StageSpec[] = [];
  const byId = new Map(stages.map((s) => [s.id, s]));
  const visit = (s: StageSpec): void => {
    if (done.has(s.id)) return;
    done.add(s.id);
    if (s.from) visit(byId.get(s.from)!);
    out.push(s);
  };
  stages.forEach(visit);
  return out;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The graph page's server side: the running graph's YAML, validation of an edit with the same issues
 * (`file:line:col: key: message`) as `sightline validate`, and apply: the edit is validated, written over the graph
 * file (the one file the app was started with, never a path a client names) and applied by the live reload, whose
 * report says what restarted and what kept running.
 */
import { readFile, realpath, writeFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { stringify } from 'yaml';
import { GraphError, formatIssue, type Graph, type GraphIssue } from '../config/graph.js';
import type { ConfigEvent, GraphChanges, SectionChanges } from '../core/events.js';
import { coded } from '../core/errors.js';

export interface Issue extends GraphIssue { text: string }

export interface Validation { ok: boolean; issues: Issue[]; warnings: string[] }

/** Per section of the graph: what a reload started, restarted, stopped, and what kept running untouched. */
export interface SectionOutcome { started: string[]; restarted: string[]; stopped: string[]; kept: string[] }

export interface ApplyOutcome {
  /** `pending`: the edit changes the console itself, which restarts with it; it is applied just after this answer. */
  result: ConfigEvent['result'] | 'pending';
  summary: string;
  sections?: Record<'sources' | 'models' | 'pipelines' | 'transports', SectionOutcome>;
  /** Pipelines that kept their state but read a restarted source. */
  sourceRestarted?: string[];
  errors?: string[];
}

export class GraphEditor {
  private writing: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: {
    graphFile?: string;
    graph(): Graph;
    parseGraph(text: string, file: string): Graph;
    reload(): Promise<ConfigEvent>;
    maxBytes: number;
    /** The console's own transport id: an edit of its own options restarts it, so it answers before the reload. */
    self: string;
    later(fn: () => void): void;
  }) {}

  /** The name issues are reported against: the graph file as the app was given it (as `sightline validate` prints). */
  get file(): string {
    return this.o.graphFile ?? this.o.graph().file;
  }

  get writable(): boolean {
    return this.o.graphFile !== undefined;
  }

  /** The graph file's text, or (without a file) the running graph written out as YAML. */
  async text(): Promise<string> {
    if (this.o.graphFile) return readFile(this.o.graphFile, 'utf8');
    const { file: _file, ...sections } = this.o.graph();
    return stringify(sections);
  }

  validate(text: string): Validation & { graph?: Graph } {
    if (Buffer.byteLength(text) > this.o.maxBytes) throw coded('TOO_LARGE', `the graph is larger than ${this.o.maxBytes} bytes`);
    try {
      const graph = this.o.parseGraph(text, this.file) as Graph & { warnings?: string[] };
      return { ok: true, issues: [], warnings: graph.warnings ?? [], graph };
    } catch (err) {
      if (!(err instanceof GraphError)) throw err;
      return { ok: false, issues: err.issues.map((i) => ({ ...i, text: formatIssue(i) })), warnings: [] };
    }
  }

  /**
   * Validates, writes the graph file and reloads. An invalid edit changes nothing (GRAPH_INVALID with its issues).
   * Applies run one at a time.
   */
  apply(text: string): Promise<ApplyOutcome> {
    const run = async (): Promise<ApplyOutcome> => {
      if (!this.o.graphFile) throw coded('NOT_FOUND', 'this server was started without a graph file: the graph can be read, not changed');
      const v = this.validate(text);
      if (!v.ok) throw coded('GRAPH_INVALID', `the graph has ${v.issues.length} issue(s); nothing was changed`, { issues: v.issues });
      const before = this.o.graph();
      // The real file behind the name (a link is followed, never replaced); gone since the start: written anew.
      await writeFile(await realpath(this.o.graphFile).catch(() => this.o.graphFile!), text);
      if (!isDeepStrictEqual(before.transports[this.o.self], v.graph!.transports[this.o.self])) {
        this.o.later(() => void this.o.reload().catch(() => undefined));
        return { result: 'pending', summary: 'the console\'s own options changed: it restarts with the new graph (reload this page)' };
      }
      const report = await this.o.reload();
      return outcome(report, before, v.graph!);
    };
    const next = this.writing.then(run, run);
    this.writing = next.catch(() => undefined);
    return next;
  }
}

function section(s: SectionChanges | undefined, ids: string[]): SectionOutcome {
  const empty = { added: [], removed: [], changed: [] };
  const c = s ?? empty;
  const touched = new Set([...c.added, ...c.changed]);
  return { started: c.added, restarted: c.changed, stopped: c.removed, kept: ids.filter((id) => !touched.has(id)) };
}

/** A reload's report as the graph page shows it. */
export function outcome(report: ConfigEvent, before: Graph, after: Graph): ApplyOutcome {
  if (report.result === 'invalid') return { result: report.result, summary: report.summary, errors: report.errors };
  const c: GraphChanges | undefined = report.changes;
  const restartedSources = new Set([...(c?.sources.changed ?? [])]);
  const pipelinesTouched = new Set([...(c?.pipelines.added ?? []), ...(c?.pipelines.changed ?? [])]);
  return {
    result: report.result,
    summary: report.summary,
    sections: {
      sources: section(c?.sources, Object.keys(after.sources)),
      models: section(c?.models, Object.keys(after.models)),
      pipelines: section(c?.pipelines, Object.keys(after.pipelines)),
      transports: section(c?.transports, Object.keys(after.transports)),
    },
    sourceRestarted: Object.values(after.pipelines)
      .filter((p) => !pipelinesTouched.has(p.id) && (restartedSources.has(p.source) || before.pipelines[p.id]?.source !== p.source))
      .map((p) => p.id),
  };
}

/**
 * The web console: a page a person opens on the console port (default 8080) to see the cameras, states, counts,
 * events, faces and the graph, served by Sightline itself and bundled at build time (console/web/ → dist/console/web/,
 * no CDN). Pages only show and are open; every change (graph apply, persons) needs the console token in a header
 * (auth.ts); pages of other origins are refused. The API lives under /api (routes.ts); app/ mounts it like a transport.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ClusterLeases } from '../pipeline/states.js';
import { ConsoleAuth, consoleSecret } from './auth.js';
import type { ConsoleContext, ConsoleOptions } from './context.js';
import { GraphEditor } from './graph-editor.js';
import { History } from './history.js';
import { LiveFrames } from './live.js';
import { loopbackFor } from './persons-proxy.js';
import { consoleRoutes, WEB_DIR, type ConsoleParts } from './routes.js';
import { Timeline } from './timeline.js';

/** The code of an answer that has none of Sightline's own (Fastify's, or a plain status). */
const STATUS_CODES: Record<number, string> = {
  400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed', 413: 'too_large', 415: 'unsupported_media_type',
};
export const errorCode = (status: number, code?: string): string =>
  code && !/^fst_/i.test(code) ? code.toLowerCase() : STATUS_CODES[status] ?? (status >= 500 ? 'internal' : 'bad_request');

/** The console's error answers: `{"error": "<code>", "message": "...", ...details}` (graph issues, a token's reason). */
export const CONSOLE_ERRORS = {
  body: (status: number, message: string, code?: string, details?: Record<string, unknown>): unknown =>
    ({ error: errorCode(status, code), message, ...details }),
};

export class WebConsole implements ConsoleParts {
  readonly auth: ConsoleAuth;
  readonly history: History;
  readonly live: LiveFrames;
  readonly timeline: Timeline;
  readonly editor: GraphEditor;
  leases: ClusterLeases | null = null;
  leasesError: string | null = null;
  private closing: Promise<void> | null = null;

  constructor(readonly spec: ConsoleOptions & { port: number }, readonly ctx: ConsoleContext) {
    const { bus, metrics, pool, clock, log } = ctx;
    this.auth = new ConsoleAuth(consoleSecret(spec.auth, ctx.settings.dataDir));
    this.live = new LiveFrames(bus, pool, clock, log, { fps: spec.liveFps, width: spec.liveWidth, quality: spec.liveQuality });
    this.timeline = new Timeline({ bus, counts: ctx.counts, clock, log, graph: ctx.graph, live: this.live });
    this.editor = new GraphEditor({
      graphFile: ctx.graphFile, graph: ctx.graph, parseGraph: ctx.parseGraph, reload: ctx.reload, maxBytes: spec.maxGraphBytes,
      self: spec.id, later: (fn) => clock.timeout(fn, 200),
    });
    this.history = new History({
      metrics, pool, bus, clock, log, stepMs: spec.sampleSeconds * 1000, keepMs: spec.historyMinutes * 60_000,
      onSample: () => this.readLeases(),
    });
    if (!existsSync(path.join(WEB_DIR, 'index.html'))) log.warn(`console: ${WEB_DIR} has no bundled page; run npm run build`);
  }

  private readLeases(): void {
    this.ctx.cluster?.leases().then((l) => { this.leases = l; this.leasesError = null; }, (err: Error) => { this.leasesError = err.message; });
  }

  /** The persons API this console forwards to, where it listens now. */
  personsTarget(): { host: string; port: number } | undefined {
    const port = this.ctx.portOf(this.spec.personsApi);
    return port === undefined ? undefined : { host: loopbackFor(this.ctx.settings.host), port };
  }

  routes(app: FastifyInstance): void {
    consoleRoutes(app, this);
  }

  countError(status: number, code: string | undefined): void {
    this.ctx.metrics.consoleErrors.inc({ code: errorCode(status, code) });
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      this.history.close();
      this.timeline.close();
      this.live.close();
    })());
  }
}

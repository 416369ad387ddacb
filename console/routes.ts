/**
 * The console's HTTP API (under /api) and its bundled page. Reads are open; `PUT /api/graph` and changes to persons
 * need the token (auth.ts). Every refusal is a coded error in the console's shape (`{"error", "message", ...}`),
 * counted in sightline_console_errors_total{code}.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { coded } from '../core/errors.js';
import type { ClusterLeases } from '../pipeline/states.js';
import { refuseOtherOrigins, type ConsoleAuth } from './auth.js';
import type { ConsoleContext, ConsoleOptions } from './context.js';
import type { GraphEditor } from './graph-editor.js';
import type { History } from './history.js';
import { liveMessage, type LiveFrames } from './live.js';
import { overview } from './overview.js';
import { personsProxy, type PersonsTarget } from './persons-proxy.js';
import type { Timeline } from './timeline.js';

/** The bundled page: dist/console/web/ beside this module once built. */
export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'web');

/** The parts of the console its routes answer from. */
export interface ConsoleParts {
  spec: ConsoleOptions;
  ctx: ConsoleContext;
  auth: ConsoleAuth;
  history: History;
  live: LiveFrames;
  timeline: Timeline;
  editor: GraphEditor;
  leases: ClusterLeases | null;
  leasesError: string | null;
  personsTarget(): PersonsTarget | undefined;
}

const ID = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' };
const NUMBER = { type: 'string', pattern: '^[0-9]{1,15}$' };
const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

/** What every answer carries: no framing by other sites, no sniffing, nothing loaded from elsewhere. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    + "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

export function consoleRoutes(app: FastifyInstance, c: ConsoleParts): void {
  const { ctx, spec } = c;
  refuseOtherOrigins(app, '/api/');
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.headers(SECURITY_HEADERS);
    return payload;
  });
  // Bodies: a graph as YAML text only; nothing else is parsed (the persons proxy reads its own).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(coded('UNSUPPORTED_MEDIA_TYPE', 'send the graph as application/yaml'), undefined));
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string', bodyLimit: spec.maxGraphBytes }, (_req, body, done) => done(null, body));

  if (existsSync(WEB_DIR)) {
    // Only the files the build made are routes (wildcard: false; index.html also answers `/`): nothing else can be asked for.
    void app.register(fastifyStatic, {
      root: WEB_DIR, prefix: '/', wildcard: false, cacheControl: false,
      setHeaders: (res) => res.setHeader('cache-control', 'no-cache'),
    });
  }

  app.get('/api/overview', async () => overview(ctx, c.history.latest, c.history.reading, c.leases, c.leasesError));
  app.get('/api/history', async () => c.history.columns());

  app.get('/api/live', async () => ({ pipelines: c.live.pipelines() }));
  app.get<{ Params: { pipeline: string }; Querystring: { after?: string; wait?: string } }>('/api/live/:pipeline', {
    schema: {
      params: { type: 'object', required: ['pipeline'], properties: { pipeline: ID } },
      querystring: { type: 'object', additionalProperties: false, properties: { after: NUMBER, wait: { type: 'string', pattern: '^[0-9]{1,5}$' } } },
    },
  }, async (req, reply) => {
    if (!ctx.graph().pipelines[req.params.pipeline]) throw coded('NOT_FOUND', `no pipeline ${req.params.pipeline}`);
    const wait = Math.min(10_000, Number(req.query.wait ?? 5000));
    const got = await c.live.next(req.params.pipeline, Number(req.query.after ?? 0), wait);
    reply.header('cache-control', 'no-store');
    if (!got) return reply.code(204).send();
    return reply.header('content-type', 'application/octet-stream').send(liveMessage(got.results, got.image));
  });

  app.get('/api/counts', async () => ({ pipelines: c.timeline.counts(), falls: c.timeline.fallList() }));
  app.get<{ Querystring: { after?: string; kinds?: string } }>('/api/events', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { after: NUMBER, kinds: { type: 'string', pattern: '^[a-z,]{0,100}$' } } } },
  }, async (req) => {
    const kinds = req.query.kinds ? new Set(req.query.kinds.split(',').filter(Boolean)) : undefined;
    return { events: c.timeline.events(Number(req.query.after ?? 0), kinds) };
  });
  app.get<{ Params: { id: string } }>('/api/falls/:id/snapshot', {
    schema: { params: { type: 'object', required: ['id'], properties: { id: NUMBER } } },
  }, async (req, reply) => {
    const shot = c.timeline.fall(Number(req.params.id))?.snapshot;
    if (!shot) throw coded('NOT_FOUND', `no snapshot of fall ${req.params.id}`);
    return reply.header('content-type', 'image/jpeg').header('cache-control', 'max-age=3600').send(Buffer.from(shot.jpeg));
  });

  app.get<{ Querystring: { limit?: string } }>('/api/faces', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'string', pattern: '^[0-9]{1,4}$' } } } },
  }, async (req) => {
    const limit = Math.max(1, Math.min(500, Number(req.query.limit ?? 100)));
    return {
      faces: ctx.faces.newest(limit).map((f) => ({
        pipeline: f.pipeline, faceId: f.faceId, score: f.score, createdMs: f.createdMs, image: `/api/faces/${encodeURIComponent(f.pipeline)}/${f.faceId}`,
      })),
    };
  });
  app.get<{ Params: { pipeline: string; faceId: string } }>('/api/faces/:pipeline/:faceId', {
    schema: { params: { type: 'object', required: ['pipeline', 'faceId'], properties: { pipeline: ID, faceId: NUMBER } } },
  }, async (req, reply) => {
    // The file name is built from the integer id and the validated pipeline id, never from client text.
    const bytes = await ctx.faces.read(req.params.pipeline, Number(req.params.faceId));
    if (!bytes) throw coded('NOT_FOUND', `no face ${req.params.faceId} of ${req.params.pipeline}`);
    return reply.header('content-type', 'image/jpeg').header('cache-control', 'no-cache').send(bytes);
  });

  personsProxy(app, { target: () => c.personsTarget(), auth: c.auth, maxBytes: 20 * 1024 * 1024 });

  app.get('/api/graph', async () => ({ file: c.editor.file, writable: c.editor.writable, yaml: await c.editor.text() }));
  app.post('/api/graph/validate', async (req) => {
    const { graph: _graph, ...v } = c.editor.validate(textOf(req.body));
    return v;
  });
  app.put('/api/graph', async (req) => {
    await c.auth.caller(req);
    const out = await c.editor.apply(textOf(req.body));
    ctx.metrics.consoleGraphApplies.inc({ result: out.result });
    return out;
  });

  app.get('/api/auth', async (req) => {
    const who = await c.auth.caller(req);
    return { ok: true, subject: who.subject, expiresAtMs: who.expiresAtMs ?? null };
  });
}

function textOf(body: unknown): string {
  if (typeof body !== 'string') throw coded('UNSUPPORTED_MEDIA_TYPE', 'send the graph as application/yaml');
  return body;
}

/**
 * Errors over HTTP: a coded error (core/errors.ts) or one of Fastify's own (body too large, unsupported media type,
 * malformed JSON, schema validation) becomes a status and a message a client may see; anything else is a bug, answered
 * 500 without details and logged. Each protocol gives the body its documented shape.
 */
import { ERRORS, publicMessage, SightlineError } from '../../core/errors.js';

/** The body of an error answer in one protocol's documented shape. */
export interface ErrorShape {
  /** `details` are a coded error's own (safe for the client); shapes that have no room for them leave them out. */
  body(status: number, message: string, code?: string, details?: Record<string, unknown>): unknown;
  /** Status for a request that fails its route's schema (FastAPI-style APIs answer 422). */
  validationStatus?: number;
}

/** `{"detail": "..."}`: DDFR's persons API, reconstruction, WatchMe (FastAPI's shape). */
export const DETAIL: ErrorShape = { body: (_status, message) => ({ detail: message }) };
/** The same with 422 for a request that fails its schema, as FastAPI answers. */
export const DETAIL_422: ErrorShape = { ...DETAIL, validationStatus: 422 };
/** `{"error": "...", "message": "..."}`: the pose stream's handshake refusals, metrics. */
export const ERROR_MESSAGE: ErrorShape = {
  body: (status, message, code) => ({ error: code ?? (status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : 'bad_request'), message }),
};

/** Fastify's own error codes a client can cause, by status. */
const FASTIFY_CLIENT = new Map<string, number>([
  ['FST_ERR_CTP_BODY_TOO_LARGE', 413], ['FST_ERR_CTP_INVALID_MEDIA_TYPE', 415], ['FST_ERR_CTP_INVALID_CONTENT_LENGTH', 400],
  ['FST_ERR_CTP_EMPTY_JSON_BODY', 400], ['FST_ERR_CTP_INVALID_JSON_BODY', 400], ['FST_ERR_BAD_URL', 400], ['FST_ERR_VALIDATION', 400],
  ['FST_ERR_ASYNC_CONSTRAINT', 400], ['FST_INVALID_MULTIPART_CONTENT_TYPE', 415], ['FST_REQ_FILE_TOO_LARGE', 413], ['FST_FILES_LIMIT', 413],
  ['FST_FIELDS_LIMIT', 413], ['FST_PARTS_LIMIT', 413], ['FST_PROTO_VIOLATION', 400], ['FST_INVALID_JSON_FIELD_ERROR', 400],
]);

/** Clearer words for some of Fastify's messages. */
const FRIENDLY = new Map<string, string>([
  ['FST_ERR_CTP_BODY_TOO_LARGE', 'request body is larger than this route takes'],
  ['FST_REQ_FILE_TOO_LARGE', 'uploaded file is larger than this route takes'],
  ['FST_ERR_CTP_INVALID_JSON_BODY', 'request body is not valid JSON'],
  ['FST_ERR_CTP_EMPTY_JSON_BODY', 'request body is not valid JSON'],
  ['FST_ERR_BAD_URL', 'the request target is not a valid URL'],
]);

export interface HttpFailure {
  status: number; message: string; code?: string; internal: boolean; validation: boolean;
  /** A coded error's details (safe for the client), for shapes that have room for them. */
  details?: Record<string, unknown>;
}

/** What to answer for an error thrown while handling a request. */
export function errorStatus(err: unknown): HttpFailure {
  if (err instanceof SightlineError) {
    const internal = err.code === 'INTERNAL';
    const details = internal ? undefined : err.details;
    return { status: ERRORS[err.code].status, message: publicMessage(err), code: err.code, internal, validation: false, details };
  }
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown; validation?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const known = code ? FASTIFY_CLIENT.get(code) : undefined;
  const statusCode = typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  // JSON.parse errors inside Fastify's parser carry statusCode 400 and a SyntaxError message about the body only.
  const status = known ?? (statusCode !== undefined && statusCode >= 400 && statusCode < 500 ? statusCode : undefined);
  if (status !== undefined) {
    const message = FRIENDLY.get(code ?? '') ?? String(e?.message ?? 'bad request').slice(0, 300);
    return { status, message, code, internal: false, validation: e?.validation !== undefined || code === 'FST_ERR_VALIDATION' };
  }
  return { status: 500, message: 'internal error', code: 'INTERNAL', internal: true, validation: false };
}

/** The shape of the mount that owns `path` (its longest matching prefix), else `{detail}`. */
export function mountedShape(mounts: readonly { prefixes: string[]; shape: ErrorShape }[], path: string): ErrorShape {
  let best: { len: number; shape: ErrorShape } | null = null;
  for (const m of mounts) {
    for (const p of m.prefixes) {
      if ((path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`) || p === '/') && (!best || p.length > best.len)) best = { len: p.length, shape: m.shape };
    }
  }
  return best?.shape ?? DETAIL;
}

export function httpErrorBody(shape: ErrorShape, status: number, message: string, code?: string, details?: Record<string, unknown>): unknown {
  return shape.body(status, message, code, details);
}

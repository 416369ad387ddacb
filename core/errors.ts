/**
 * Every error Sightline raises on purpose, in one table (as Fastify's lib/errors.js): a code, the HTTP status
 * it maps to by default, and what it means. The code is what crosses a worker thread or a NATS hop (see
 * `toWire`/`fromWire`), so callers branch on codes, never on message text. Each protocol maps codes to its
 * own documented error shape; the metric label of a client error is its code in lower case.
 */

export const ERRORS = {
  // ---- client input ------------------------------------------------------------------------------
  INVALID_JSON: { status: 400, about: 'a message or body is not valid JSON' },
  BAD_FORMAT: { status: 400, about: 'a message or body has the wrong shape, a missing or wrong-typed field' },
  BAD_BASE64: { status: 400, about: 'a field that must hold base64 does not' },
  BAD_TOKEN: { status: 400, about: 'an embedding token was altered, truncated or sealed with another key' },
  UNKNOWN_TYPE: { status: 400, about: 'a message type the protocol does not have' },
  UNKNOWN_SOURCE: { status: 400, about: 'a source the graph does not have (or one nobody detects persons in)' },
  BAD_SESSION_ID: { status: 400, about: 'a session id that is malformed or already connected' },
  BAD_REQUEST: { status: 400, about: 'a parameter or field is out of range' },
  NOT_FOUND: { status: 404, about: 'no such resource' },
  UNKNOWN_SESSION: { status: 404, about: 'no such session' },
  METHOD_NOT_ALLOWED: { status: 405, about: 'the path exists, not with this method' },
  UNAUTHORIZED: { status: 401, about: 'a token is missing, invalid or expired (details.reason says which)' },
  BAD_SUBSCRIPTION: { status: 400, about: 'a subscription filter is invalid (details name the field and reason)' },
  FORBIDDEN: { status: 403, about: 'the request came from a page of another origin, or lacks a needed token' },
  TOO_LARGE: { status: 413, about: 'a body, message or image is larger than allowed' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, about: 'a body of a content type the route does not take' },
  BAD_IMAGE: { status: 422, about: 'the bytes are not an image of an accepted format, or cannot be decoded' },
  IMAGE_TOO_LARGE: { status: 422, about: 'an image declares more pixels than allowed (refused before decoding)' },
  NO_PERSON: { status: 422, about: 'no person in a reference photo' },
  NO_FACE: { status: 422, about: 'no face (or more than one) in an enrolment photo' },
  FINALIZED: { status: 409, about: 'the session is finalized and takes no more images' },
  TOO_MANY_IMAGES: { status: 409, about: 'the session holds its maximum of images' },
  NO_IMAGES: { status: 409, about: 'generate asked of a session without images' },
  RATE_LIMITED: { status: 429, about: 'more messages than the protocol allows per second' },
  BUSY: { status: 429, about: 'too many frames of one connection waiting to be processed' },
  SESSION_LIMIT: { status: 503, about: 'the server holds its maximum of sessions or connections' },
  // ---- the server's own state ---------------------------------------------------------------------
  UNAVAILABLE: { status: 503, about: 'shared state (a cluster log) cannot take a change now; try again' },
  GRAPH_INVALID: { status: 400, about: 'a graph that does not validate (each issue with file:line:col)' },
  MODEL_FAILED: { status: 500, about: 'a model file is missing, corrupt or of an unexpected shape' },
  UNKNOWN_OP: { status: 500, about: 'a worker task with an op no worker registered' },
  CODEC: { status: 400, about: 'a cluster message that does not decode' },
  ASSET: { status: 500, about: 'an asset (model, media) is missing or does not match its checksum' },
  INTERNAL: { status: 500, about: 'a bug: logged, counted, answered without details' },
} as const satisfies Record<string, { status: number; about: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a code from the table. `details` are safe to show to the client (never internals). */
export class SightlineError extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = 'SightlineError';
  }

  get status(): number {
    return ERRORS[this.code].status;
  }
}

/** Shorthand: `fail('BAD_IMAGE', 'not an image')`. */
export const coded = (code: ErrorCode, message: string, details?: Record<string, unknown>): SightlineError =>
  new SightlineError(code, message, details);

/** The code of any thrown value: its own for a SightlineError, INTERNAL for anything else. */
export function codeOf(err: unknown): ErrorCode {
  return err instanceof SightlineError ? err.code : 'INTERNAL';
}

export function isCode(err: unknown, ...codes: ErrorCode[]): err is SightlineError {
  return err instanceof SightlineError && codes.includes(err.code);
}

/** An error as it crosses a thread or the network: plain data. */
export interface WireError { code: ErrorCode; message: string; details?: Record<string, unknown> }

export function toWire(err: unknown): WireError {
  if (err instanceof SightlineError) return { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) };
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

export function fromWire(w: WireError): SightlineError {
  const code: ErrorCode = typeof w.code === 'string' && w.code in ERRORS ? w.code : 'INTERNAL';
  return new SightlineError(code, String(w.message ?? 'unknown error'), w.details);
}

/** The message a client may see: its own for a coded error, a fixed text for a bug (internals stay in the log). */
export function publicMessage(err: unknown, internal = 'internal error'): string {
  return err instanceof SightlineError && err.code !== 'INTERNAL' ? err.message : internal;
}

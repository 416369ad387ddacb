/**
 * JWT verification for the pose stream (`?token=` or `Authorization: Bearer`), with `jose`: an HS256
 * shared secret, or an RSA/EC public key. Unsigned (`alg: none`) tokens are never accepted: jose's
 * jwtVerify only verifies signed tokens, and the algorithm list is pinned to the key's family.
 */
import { SightlineError } from '../../core/errors.js';
import { secretFromFile } from '../../core/secret-file.js';
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import { errors, jwtVerify, type JWTPayload } from 'jose';

export interface AuthOptions {
  /** HS256 shared secret, given inline (prefer secretEnv). */
  secret?: string;
  /** Name of an environment variable holding the HS256 secret. */
  secretEnv?: string;
  /**
   * File holding the HS256 secret, relative to the data directory; created with a random secret on first
   * start, so a fresh server is secure without configuration (`sightline token` signs with it).
   */
  secretFile?: string;
  /** PEM public key (SPKI) for RSA or EC signed tokens (RS, PS, ES algorithms), inline or from a file. */
  publicKey?: string;
  publicKeyFile?: string;
  /** Accepted algorithms; defaults to the key's family. */
  algorithms?: string[];
  issuer?: string;
  audience?: string;
  /** Seconds of clock skew tolerated on exp/nbf. */
  clockTolerance?: number;
  /** Refuse tokens without `exp` (default true: a token that never expires cannot be cut off). */
  requireExpiry?: boolean;
}

export interface Verified {
  payload: JWTPayload;
  subject: string | undefined;
  expiresAtMs: number | undefined;
  /** A valid token past its expiry: admitted only to be told `token_expired` and closed. */
  expired?: boolean;
}

/** Why a handshake was refused; `reason` goes into the 401 body and the metrics label. */
export class AuthError extends SightlineError {
  constructor(readonly reason: 'missing_token' | 'invalid_token', message: string) {
    super('UNAUTHORIZED', message, { reason });
  }
}

export class TokenVerifier {
  private readonly key: KeyObject;
  private readonly algorithms: string[];

  constructor(private readonly opts: AuthOptions, env: NodeJS.ProcessEnv = process.env, dataDir = '.') {
    if (opts.secret !== undefined || opts.secretEnv !== undefined || opts.secretFile !== undefined) {
      const secret = opts.secretFile !== undefined ? secretFromFile(path.resolve(dataDir, opts.secretFile)) : opts.secret ?? env[opts.secretEnv!];
      if (!secret) throw new Error(`pose-stream-v1: auth.secretEnv names ${opts.secretEnv}, which is not set or empty`);
      // RFC 7518 §3.2: an HS256 key must be at least as long as the hash.
      if (Buffer.byteLength(secret) < 32) throw new Error('pose-stream-v1: the HS256 secret must be at least 32 bytes long');
      this.key = createSecretKey(Buffer.from(secret));
      this.algorithms = opts.algorithms ?? ['HS256'];
    } else if (opts.publicKey !== undefined || opts.publicKeyFile !== undefined) {
      this.key = createPublicKey(opts.publicKey ?? readFileSync(opts.publicKeyFile!, 'utf8'));
      const type = this.key.asymmetricKeyType;
      this.algorithms = opts.algorithms
        ?? (type === 'ec' ? ['ES256', 'ES384', 'ES512'] : type === 'rsa' ? ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] : []);
      if (this.algorithms.length === 0) throw new Error(`pose-stream-v1: unsupported public key type ${type}`);
    } else {
      throw new Error('pose-stream-v1: auth needs secret, secretEnv, secretFile, publicKey or publicKeyFile');
    }
    if (this.algorithms.some((a) => a.toLowerCase() === 'none')) throw new Error('pose-stream-v1: alg "none" cannot be accepted');
  }

  /** The token of a handshake: `?token=` first, else `Authorization: Bearer`. */
  static tokenOf(req: http.IncomingMessage, query: Record<string, unknown>): string | undefined {
    const q = query.token;
    if (typeof q === 'string' && q) return q;
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
    return m?.[1];
  }

  async verify(token: string | undefined): Promise<Verified> {
    if (!token) throw new AuthError('missing_token', 'A JWT is required: pass ?token=<jwt> or an Authorization: Bearer header');
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: this.algorithms, issuer: this.opts.issuer, audience: this.opts.audience,
        clockTolerance: this.opts.clockTolerance ?? 0,
        requiredClaims: this.opts.requireExpiry === false ? [] : ['exp'],
      });
      // Valid until the expiry plus the tolerated clock skew.
      const tolerance = (this.opts.clockTolerance ?? 0) * 1000;
      return { payload, subject: payload.sub, expiresAtMs: payload.exp !== undefined ? payload.exp * 1000 + tolerance : undefined };
    } catch (err) {
      // Signed with our key and its other claims valid (jose checks the expiry last), only out of date: the client is
      // told so the documented way, by a `token_expired` event on the socket, instead of a bare 401.
      if (err instanceof errors.JWTExpired && err.claim === 'exp' && typeof err.payload.exp === 'number') {
        return { payload: err.payload, subject: err.payload.sub, expiresAtMs: err.payload.exp * 1000, expired: true };
      }
      const why = err instanceof errors.JOSEError ? `${err.code}: ${err.message}` : 'malformed token';
      throw new AuthError('invalid_token', `Invalid JWT (${why})`);
    }
  }
}

/**
 * Who may change things through the console: a request carrying the console's token in a header (`Authorization:
 * Bearer <token>` or `X-Sightline-Token`), never a cookie, so a page of another site cannot borrow a browser's
 * credentials. The token is a JWT signed with the console's HS256 secret (`sightline token --console`), or the
 * configured secret itself. Requests from pages of another origin are refused whatever they carry.
 */
import { createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errors, jwtVerify, SignJWT } from 'jose';
import { coded } from '../core/errors.js';
import { secretOf, type SecretSource } from '../core/secret-file.js';

/** The audience of console tokens: a pose-stream token signed with the same secret does not open the console. */
export const CONSOLE_AUDIENCE = 'sightline-console';
export const TOKEN_HEADER = 'x-sightline-token';

/** The console's secret, as its `auth` names it (created in the data directory on first use for `secretFile`). */
export function consoleSecret(auth: SecretSource, dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const secret = secretOf(auth, dataDir, env);
  if (!secret) throw new Error(`console: auth.secretEnv names ${auth.secretEnv}, which is not set or empty`);
  // RFC 7518 §3.2: an HS256 key must be at least as long as the hash.
  if (Buffer.byteLength(secret) < 32) throw new Error('console: the token secret must be at least 32 bytes long');
  return secret;
}

/** A console token (what `sightline token --console` prints). */
export function signConsoleToken(secret: string, o: { subject?: string; ttlSeconds?: number } = {}): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setAudience(CONSOLE_AUDIENCE)
    .setSubject(o.subject ?? 'console').setIssuedAt().setExpirationTime(`${o.ttlSeconds ?? 12 * 3600}s`)
    .sign(createSecretKey(Buffer.from(secret)));
}

export interface Caller { subject: string; expiresAtMs?: number }

export class ConsoleAuth {
  private readonly key: KeyObject;
  private readonly raw: Buffer;

  constructor(secret: string) {
    this.raw = Buffer.from(secret);
    this.key = createSecretKey(this.raw);
  }

  /** The token of a request, from its headers only. */
  static tokenOf(req: FastifyRequest): string | undefined {
    const h = req.headers.authorization;
    const bearer = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h)?.[1] : undefined;
    const own = req.headers[TOKEN_HEADER];
    return bearer ?? (typeof own === 'string' && own ? own.trim() : undefined);
  }

  /** Who sent the request; UNAUTHORIZED (with `reason`) when the token is missing, invalid or expired. */
  async caller(req: FastifyRequest): Promise<Caller> {
    const token = ConsoleAuth.tokenOf(req);
    if (!token) throw coded('UNAUTHORIZED', 'this change needs the console token in an Authorization: Bearer header', { reason: 'missing_token' });
    const given = Buffer.from(token);
    if (given.length === this.raw.length && timingSafeEqual(given, this.raw)) return { subject: 'secret' };
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], audience: CONSOLE_AUDIENCE, requiredClaims: ['exp'] });
      return { subject: payload.sub ?? 'console', expiresAtMs: (payload.exp ?? 0) * 1000 };
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw coded('UNAUTHORIZED', 'the console token has expired', { reason: 'expired_token' });
      throw coded('UNAUTHORIZED', 'the console token is not valid here', { reason: 'invalid_token' });
    }
  }
}

const hostOf = (origin: string): string | null => {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
};

/**
 * Refuses requests made by pages of another origin: an `Origin` that is not this server (the `Host` the request came
 * to), and API requests a browser marks as cross-site (`Sec-Fetch-Site`), such as an image or script of another site
 * pointing here. Navigating to the console from a link elsewhere is allowed (pages only show). No CORS header is ever
 * sent, so no other origin reads an answer either.
 */
export function refuseOtherOrigins(app: FastifyInstance, apiPrefix: string): void {
  app.addHook('onRequest', async (req) => {
    const origin = req.headers.origin;
    if (origin !== undefined && (hostOf(origin) === null || hostOf(origin) !== req.headers.host)) {
      throw coded('FORBIDDEN', `requests from pages of another origin (${origin.slice(0, 100)}) are refused`, { reason: 'cross_origin' });
    }
    const site = req.headers['sec-fetch-site'];
    if (req.url.startsWith(apiPrefix) && (site === 'cross-site' || site === 'same-site')) {
      throw coded('FORBIDDEN', 'requests from pages of another site are refused', { reason: 'cross_origin' });
    }
  });
}

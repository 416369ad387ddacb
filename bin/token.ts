/** `sightline token`: signs a pose-stream-v1 JWT (or with --console, a console token) with the graph's HS256 secret. */
import { createSecretKey } from 'node:crypto';
import path from 'node:path';
import { SignJWT } from 'jose';
import type { Graph } from '../config/graph.js';
import type { ResolvedSettings } from '../config/settings.js';
import { consoleSecret, signConsoleToken } from '../console/auth.js';
import { CONSOLE_SCHEMA } from '../console/context.js';
import { secretFromFile, type SecretSource } from '../core/secret-file.js';
import type { AuthOptions } from '../transports/pose-stream/auth.js';

export async function signToken(graph: Graph, settings: ResolvedSettings,
  opts: { subject?: string; ttlSeconds?: number }): Promise<string> {
  const spec = graph.transports['pose-stream-v1'];
  if (!spec) throw new Error('the graph has no pose-stream-v1 transport');
  const auth = spec.auth as AuthOptions;
  const secret = auth.secretFile !== undefined ? secretFromFile(path.resolve(settings.dataDir, auth.secretFile))
    : auth.secret ?? (auth.secretEnv ? process.env[auth.secretEnv] : undefined);
  if (!secret) throw new Error('pose-stream-v1 auth has no HS256 secret here (public-key tokens are signed by their issuer)');
  let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.subject ?? 'sightline-client').setIssuedAt().setExpirationTime(`${opts.ttlSeconds ?? 3600}s`);
  if (auth.issuer) jwt = jwt.setIssuer(auth.issuer);
  if (auth.audience) jwt = jwt.setAudience(auth.audience);
  return jwt.sign(createSecretKey(Buffer.from(secret)));
}

/** A token for the graph's web console: changes (graph apply, persons) need it. */
export async function signConsoleTokenFor(graph: Graph, settings: ResolvedSettings,
  opts: { subject?: string; ttlSeconds?: number }): Promise<string> {
  const spec = graph.transports.console;
  if (!spec) throw new Error('the graph has no console transport');
  const auth = (spec.auth as SecretSource | undefined) ?? CONSOLE_SCHEMA.properties.auth.default;
  return signConsoleToken(consoleSecret(auth, settings.dataDir), { subject: opts.subject, ttlSeconds: opts.ttlSeconds });
}

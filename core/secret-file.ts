/**
 * HS256 secrets kept in a file of the data directory: created with random bytes (owner-only) on first use, so a
 * fresh server is secure without configuration, and read back by the command line that signs tokens with it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Reads an HS256 secret file, creating it (owner-only) with 48 random bytes when it does not exist. */
export function secretFromFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(path.dirname(file), { recursive: true });
    const secret = randomBytes(48).toString('base64url');
    // 'wx': two servers starting at once must not overwrite each other's secret.
    try { writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' }); } catch { return readFileSync(file, 'utf8').trim(); }
    return secret;
  }
}

/** Where a secret of an `auth` block comes from: inline, an environment variable, or a file of the data directory. */
export interface SecretSource { secret?: string; secretEnv?: string; secretFile?: string }

/** The secret an `auth` block names (undefined when it names none, or an unset variable). */
export function secretOf(auth: SecretSource, dataDir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (auth.secretFile !== undefined) return secretFromFile(path.resolve(dataDir, auth.secretFile));
  return auth.secret ?? (auth.secretEnv !== undefined ? env[auth.secretEnv] || undefined : undefined);
}

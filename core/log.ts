/** Minimal levelled logger to stderr; one line per message so logs stay greppable. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const rank: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string, fields?: object): void;
  warn(msg: string, fields?: object): void;
  info(msg: string, fields?: object): void;
  debug(msg: string, fields?: object): void;
  child(scope: string): Logger;
}

export function createLogger(level: LogLevel = 'info', scope = 'sightline',
  write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const emit = (at: LogLevel, msg: string, fields?: object): void => {
    if (rank[at] > rank[level]) return;
    const extra = fields && Object.keys(fields).length ? ' ' + JSON.stringify(fields) : '';
    write(`${new Date().toISOString()} ${at.toUpperCase().padEnd(5)} [${scope}] ${msg}${extra}`);
  };
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
    child: (s) => createLogger(level, `${scope}:${s}`, write),
  };
}

/**
 * Structured logger: one line per event, JSON in production (machine-readable) or a short
 * human form for terminals. Child loggers add fields (module, table, connection id).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** Lowest level written. Default: `LOG_LEVEL` from the environment, else `info`. */
  level?: LogLevel;
  /** `json` (default when not a TTY) or `pretty`. */
  format?: 'json' | 'pretty';
  /** Where lines go. Default: stderr. */
  write?: (line: string) => void;
  fields?: LogFields;
}

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && value in LEVEL_ORDER;
}

function serialiseError(value: unknown): unknown {
  if (value instanceof Error) {
    const out: LogFields = { name: value.name, message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    if (value.cause !== undefined) out.cause = serialiseError(value.cause);
    return out;
  }
  return value;
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  return serialiseError(value);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const envLevel = process.env.LOG_LEVEL;
  const level: LogLevel = options.level ?? (isLogLevel(envLevel) ? envLevel : 'info');
  const format = options.format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const base = options.fields ?? {};
  const threshold = LEVEL_ORDER[level];

  const log = (lvl: LogLevel, message: string, fields?: LogFields) => {
    if (LEVEL_ORDER[lvl] < threshold) return;
    const all = { ...base, ...fields };
    if (format === 'json') {
      write(JSON.stringify({ time: new Date().toISOString(), level: lvl, message, ...all }, jsonReplacer));
    } else {
      const extra = Object.keys(all).length > 0 ? ` ${JSON.stringify(all, jsonReplacer)}` : '';
      write(`${new Date().toISOString().slice(11, 23)} ${lvl.toUpperCase().padEnd(5)} ${message}${extra}`);
    }
  };

  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    child: (fields) => createLogger({ level, format, write, fields: { ...base, ...fields } }),
  };
}

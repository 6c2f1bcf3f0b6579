/**
 * Structured logging for the core: one JSON object per line (or the Functions context's logger),
 * properties instead of interpolated strings, and secrets redacted by key name before anything is written.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogProperties = Record<string, unknown>;

export interface Logger {
  debug(message: string, properties?: LogProperties): void;
  info(message: string, properties?: LogProperties): void;
  warn(message: string, properties?: LogProperties): void;
  error(message: string, properties?: LogProperties): void;
  /** A logger that adds `properties` to every line (e.g. the entity ref or the invocation id). */
  child(properties: LogProperties): Logger;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Keys whose values are never written, at any level. */
const SECRET_KEY = /token|secret|password|authorization|credential|signature|connectionstring|accountkey|sharedaccesskey|^key$/i;

/** Makes properties safe and JSON-friendly: secrets redacted, errors flattened (with their causes). */
export function sanitize(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[…]';
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    const statusCode = (value as { statusCode?: unknown }).statusCode ?? (value as { status?: unknown }).status;
    if (statusCode !== undefined) out.statusCode = statusCode;
    if (value.cause !== undefined) out.cause = sanitize(value.cause, depth + 1);
    return out;
  }
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => sanitize(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : sanitize(v, depth + 1);
    return out;
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

export interface JsonLoggerOptions {
  level?: LogLevel;
  /** Where lines go; stdout by default. */
  write?: (line: string) => void;
  base?: LogProperties;
}

export function createJsonLogger(options: JsonLoggerOptions = {}): Logger {
  const threshold = LEVELS[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const base = options.base ?? {};
  const log = (level: LogLevel, message: string, properties?: LogProperties) => {
    if (LEVELS[level] < threshold) return;
    const record = { time: new Date().toISOString(), level, message, ...(sanitize({ ...base, ...properties }) as object) };
    write(JSON.stringify(record));
  };
  return {
    debug: (m, p) => log('debug', m, p),
    info: (m, p) => log('info', m, p),
    warn: (m, p) => log('warn', m, p),
    error: (m, p) => log('error', m, p),
    child: (properties) => createJsonLogger({ ...options, base: { ...base, ...properties } }),
  };
}

/** Adapts any `{debug, info, warn, error}(message)` sink (e.g. a Functions InvocationContext) to {@link Logger}. */
export function createSinkLogger(
  sink: { debug(...a: unknown[]): void; info(...a: unknown[]): void; warn(...a: unknown[]): void; error(...a: unknown[]): void },
  base: LogProperties = {},
): Logger {
  const format = (message: string, properties?: LogProperties) => {
    const merged = sanitize({ ...base, ...properties }) as Record<string, unknown>;
    return Object.keys(merged).length === 0 ? message : `${message} ${JSON.stringify(merged)}`;
  };
  return {
    debug: (m, p) => sink.debug(format(m, p)),
    info: (m, p) => sink.info(format(m, p)),
    warn: (m, p) => sink.warn(format(m, p)),
    error: (m, p) => sink.error(format(m, p)),
    child: (properties) => createSinkLogger(sink, { ...base, ...properties }),
  };
}

export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

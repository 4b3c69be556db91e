/**
 * Where the guard reports what an operator must know without wiring `onDecision`: an issuer,
 * introspection endpoint or shared store that fails (with the reason), and a refusal that a
 * configuration change would fix (a hint, once). Any pino-compatible logger fits; the default
 * writes one JSON line per entry to stderr. Entries never hold a token, a proof or a secret: only
 * reasons, issuer and endpoint URLs, and values escaped with `logValue`.
 */

/** The part of a pino (or bunyan-style) logger the guard uses: `(object, message)` calls. */
export interface GuardLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
  info?(obj: Record<string, unknown>, msg: string): void;
  debug?(obj: Record<string, unknown>, msg: string): void;
}

type Level = 'error' | 'warn' | 'info';

/**
 * The default: warnings and errors as one JSON line each on stderr (`{"level":"warn","time":…,
 * "name":"fapi-guard","msg":…,…}`), which log collectors parse and a terminal still reads.
 * `info` and `debug` entries are dropped.
 */
export const stderrLogger: GuardLogger = {
  warn: (obj, msg) => writeLine('warn', obj, msg),
  error: (obj, msg) => writeLine('error', obj, msg),
};

function writeLine(level: Level, obj: Record<string, unknown>, msg: string): void {
  try {
    process.stderr.write(`${JSON.stringify({ level, time: Date.now(), name: 'fapi-guard', msg, ...obj })}\n`);
  } catch {
    // A closed stderr must not change a decision.
  }
}

const silent: GuardLogger = { warn: () => undefined, error: () => undefined };

/** The logger in use for the `logger` option: `undefined` → stderr, `false` → none. */
export function resolveLogger(value: GuardLogger | false | undefined): GuardLogger {
  if (value === false) return silent;
  if (value === undefined) return stderrLogger;
  if (typeof value !== 'object' || value === null || typeof value.warn !== 'function' || typeof value.error !== 'function') {
    throw new TypeError('fapi-guard: logger must have warn(obj, msg) and error(obj, msg) (e.g. a pino logger), or be false');
  }
  return value;
}

/**
 * Rate-limited reporting, so a failure seen on every request costs one line per `windowMs` and
 * key, with the number of repeats left out since the last line (`repeated`).
 */
export class Notices {
  private readonly last = new Map<string, { at: number; repeated: number }>();

  constructor(
    private readonly logger: GuardLogger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs now, or counts the entry when the same key was logged less than `windowMs` ago. */
  report(level: Level, key: string, windowMs: number, obj: Record<string, unknown>, msg: string): void {
    const now = this.now();
    const seen = this.last.get(key);
    if (seen && now - seen.at < windowMs) {
      seen.repeated++;
      return;
    }
    // Keys are a fixed set (reasons, issuers, hint kinds): the map stays small.
    this.last.set(key, { at: now, repeated: 0 });
    this.log(level, seen?.repeated ? { ...obj, repeated: seen.repeated } : obj, msg);
  }

  /** Logs at once, whatever was logged before (for events already bounded at their source). */
  log(level: Level, obj: Record<string, unknown>, msg: string): void {
    try {
      if (level === 'info') this.logger.info?.(obj, msg);
      else this.logger[level](obj, msg);
    } catch {
      // A logger failure must not change a decision.
    }
  }
}

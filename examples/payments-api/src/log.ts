/**
 * Structured logs: one JSON line per decision, in pino's format and on pino's destination, with
 * the guard's own warnings and errors (`logger` option) on the same pino instance.
 *
 * What a line per request costs the DPoP route (bench/README.md): writing each line on its own —
 * synchronously, or asynchronously on libuv's thread pool, where the proof signatures are
 * verified too — about a tenth of its throughput, so lines are written 4 KiB at a time; and
 * pino's general serialiser, which walks and escapes every field of every event, about as much
 * again, so the decision event (a flat object of strings and numbers) is serialised with
 * `JSON.stringify`.
 */
import type { DecisionEvent } from '@fapi-guard/core';
import pino, { type Logger } from 'pino';

/** Bytes gathered before a write: about 15 decision lines. */
const BATCH_BYTES = 4096;
/** The longest a line waits in memory when traffic is low. */
const FLUSH_MS = 1000;

/**
 * A pino logger on a file descriptor (stdout by default), buffered and written off the request
 * path. pino writes what is still buffered when the process exits.
 */
export function createLogger(fd = 1): Logger {
  return pino({ name: 'payments-api' }, pino.destination({ dest: fd, sync: false, minLength: BATCH_BYTES, periodicFlush: FLUSH_MS }));
}

/**
 * `onDecision` writing the decision as fields of one JSON line, as `logger.info(event,
 * 'decision')` (`warn` for a 5xx) would: pino's level, time and base fields (`pid`, `hostname`,
 * `name`), then the event and `msg`. The logger's level still applies; its serializers, hooks and
 * redaction do not (this logger has none). Values from the request are already escaped by the
 * guard, and `JSON.stringify` escapes the rest: a line break or an ANSI escape in a header cannot
 * start a line of its own.
 */
export function logDecisions(logger: Logger): (event: DecisionEvent) => void {
  // pino.symbols: pino's documented hooks for integrations (its destination, time function and
  // serialised base fields).
  const { chindingsSym, streamSym, timeSym } = pino.symbols;
  const internals = logger as unknown as Record<symbol, unknown>;
  const stream = internals[streamSym] as { write(line: string): unknown };
  const time = internals[timeSym] as () => string;
  const head = (level: 'info' | 'warn') => `{"level":${logger.levels.values[level]}`;
  const [info, warn] = [head('info'), head('warn')];
  return (event) => {
    const level = event.status >= 500 ? 'warn' : 'info';
    if (!logger.isLevelEnabled(level)) return;
    // The event always has `outcome`: its JSON is `{"outcome":…}`, joined after pino's fields.
    const fields = JSON.stringify(event).slice(1, -1);
    stream.write(`${level === 'warn' ? warn : info}${time()}${internals[chindingsSym] as string},${fields},"msg":"decision"}\n`);
  };
}

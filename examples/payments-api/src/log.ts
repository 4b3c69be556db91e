/**
 * Structured logs: one JSON line per decision, with pino, written asynchronously (a synchronous
 * write per request costs the DPoP route about a tenth of its throughput; see bench/README.md).
 * The guard's own warnings and errors (`logger` option) go to the same pino instance.
 */
import type { DecisionEvent } from '@fapi-guard/core';
import pino, { type Logger } from 'pino';

/** A pino logger on a file descriptor (stdout by default), buffered and written off the request path. */
export function createLogger(fd = 1): Logger {
  return pino({ name: 'payments-api' }, pino.destination({ dest: fd, sync: false }));
}

/**
 * `onDecision` writing the decision as fields of one JSON line. Values from the request are
 * already escaped by the guard, and JSON escapes the rest: a line break or an ANSI escape in a
 * header cannot start a line of its own.
 */
export function logDecisions(logger: Logger): (event: DecisionEvent) => void {
  return (event) => {
    if (event.status >= 500) logger.warn(event, 'decision');
    else logger.info(event, 'decision');
  };
}

/**
 * How a refusal leaves an adapter: the body in the team's format (`errorBody`), and, when the
 * adapter hands the refusal to the framework's own error handling (`errors: 'framework'`), the
 * status and challenge headers pinned on the response. RFC 6750 §3 and RFC 9449 §7.1 fix the
 * status and `WWW-Authenticate` (and `DPoP-Nonce`, `Retry-After`); only the body is the team's.
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { GuardError } from '../errors.js';

/**
 * The body of a refusal:
 * - `'oauth'`: `{ error, error_description }` as `application/json` (RFC 6750 §3);
 * - `'problem'`: RFC 9457 problem details as `application/problem+json`, the OAuth error code as
 *   the extension member `error`;
 * - a function: the JSON value to send (UK Open Banking `{ Code, Id, Message, Errors }`, Brazil
 *   Open Finance `{ errors, meta }`), as `application/json`. If it throws, the `'oauth'` body is
 *   sent instead: a formatter fault never turns a refusal into a 500.
 */
export type ErrorBody = 'oauth' | 'problem' | ((refusal: GuardError) => unknown);

/** What every adapter takes on how refusals are answered. */
export interface RefusalOptions {
  /**
   * `'respond'`: the adapter writes the refusal itself. `'framework'`: it hands the refusal (the
   * typed `GuardError`: `status`, `headers`, `reason`, OAuth `error`) to the framework's error
   * handling — Express `next(err)`, Koa `throw`, Fastify's error handler, Hono's `onError`, Nest's
   * exception filters — with the status and the challenge headers already set and pinned: a
   * handler that writes another status or drops a header does not change what is sent.
   * @default 'respond'
   */
  errors?: 'respond' | 'framework';
  /** The body of refusals the adapter writes itself (see {@link ErrorBody}). @default 'oauth' */
  errorBody?: ErrorBody;
}

const REFUSAL_KEYS = ['errors', 'errorBody'];

/** The adapter's refusal options, checked once at start-up (an unknown value fails closed). */
export function checkRefusalOptions(adapter: string, options: RefusalOptions): void {
  const { errors, errorBody } = options;
  if (errors !== undefined && errors !== 'respond' && errors !== 'framework') {
    throw new TypeError(`fapi-guard: ${adapter} option errors must be 'respond' or 'framework'`);
  }
  if (errorBody !== undefined && errorBody !== 'oauth' && errorBody !== 'problem' && typeof errorBody !== 'function') {
    throw new TypeError(`fapi-guard: ${adapter} option errorBody must be 'oauth', 'problem' or a function`);
  }
}

/** Splits the refusal options off an options object; the rest is returned for the guard. */
export function takeRefusalOptions<T extends object>(options: T & RefusalOptions, adapter: string): { refusals: RefusalOptions; rest: T } {
  const rest: Record<string, unknown> = {};
  const refusals: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) (REFUSAL_KEYS.includes(key) ? refusals : rest)[key] = value;
  checkRefusalOptions(adapter, refusals);
  return { refusals, rest: rest as T };
}

/** RFC 9457 §3: problem details of a refusal (`about:blank`: the title is the status phrase, §4.2.1). */
export function problemDetails(refusal: GuardError): Record<string, unknown> {
  const { error, error_description } = refusal.body;
  return {
    type: 'about:blank',
    title: STATUS_CODES[refusal.status] ?? 'Error',
    status: refusal.status,
    detail: error_description,
    ...(error ? { error } : {}),
  };
}

/** The content type and bytes of a refusal's body in the format asked for. */
export function refusalBody(refusal: GuardError, format: ErrorBody = 'oauth'): { contentType: string; body: string } {
  if (format === 'problem')
    return { contentType: 'application/problem+json; charset=utf-8', body: JSON.stringify(problemDetails(refusal)) };
  if (typeof format === 'function') {
    try {
      const body = JSON.stringify(format(refusal));
      if (typeof body === 'string') return { contentType: 'application/json; charset=utf-8', body };
    } catch {
      // Documented: the OAuth body instead.
    }
  }
  return { contentType: 'application/json; charset=utf-8', body: JSON.stringify(refusal.body) };
}

/**
 * Pins a refusal on a Node response that the framework's error handling will write: the status
 * and every header of the refusal (`WWW-Authenticate`, `DPoP-Nonce`, `Retry-After`, …) are set
 * now and set again when the head is written, over whatever the handler chose. A handler that
 * answers 200 sends the refusal's status; one that removes the challenge sends it anyway.
 */
export function pinRefusal(res: ServerResponse, refusal: GuardError): void {
  for (const [name, value] of Object.entries(refusal.headers)) res.setHeader(name, value);
  res.statusCode = refusal.status;
  const { writeHead } = res;
  // The handler's status is dropped: the refusal's is sent.
  res.writeHead = function pinnedWriteHead(this: ServerResponse, _status: number, ...rest: unknown[]) {
    res.writeHead = writeHead;
    const headersArg = typeof rest[0] === 'string' ? rest[1] : rest[0];
    const own = new Set(Object.keys(refusal.headers).map((name) => name.toLowerCase()));
    const theirs = withoutPinned(headersArg, own);
    for (const [name, value] of Object.entries(refusal.headers)) res.setHeader(name, value);
    return (writeHead as (...args: unknown[]) => ServerResponse).call(
      this,
      refusal.status,
      STATUS_CODES[refusal.status],
      ...(theirs ? [theirs] : []),
    );
  } as typeof res.writeHead;
}

/** `writeHead`'s headers argument without the pinned names (an object or a flat array of pairs). */
function withoutPinned(headers: unknown, pinned: ReadonlySet<string>): unknown {
  if (Array.isArray(headers)) {
    const kept: unknown[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (!pinned.has(String(headers[i]).toLowerCase())) kept.push(headers[i], headers[i + 1]);
    }
    return kept;
  }
  if (headers && typeof headers === 'object') {
    return Object.fromEntries(Object.entries(headers).filter(([name]) => !pinned.has(name.toLowerCase())));
  }
  return undefined;
}

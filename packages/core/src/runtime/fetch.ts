/**
 * The seam between Web-standard runtimes — a Fetch API `Request` in, a `Response` out: Hono,
 * and the shape of Next.js route handlers — and the core, so that their adapters stay thin.
 *
 * What the core sees of a Fetch request depends on what the runtime hands over
 * ({@link RequestConnection}). The `Headers` object folds repeated header lines into one
 * comma-joined value (Fetch standard, "combine"), so two `Authorization` or two `DPoP` lines
 * arrive as one. With Node's `rawHeaders` (on `@hono/node-server`: `c.env.incoming`) every line
 * is seen and refused exactly as on the Node adapters (RFC 9449 §4.3 step 1, RFC 6750 §2).
 * Without them a folded pair is still never accepted — neither token68 (RFC 9110 §11.2) nor a
 * compact JWS (RFC 7515 §7.1) may contain `,` or a space — but it is refused as one malformed
 * value: 400 "The Authorization header is malformed" instead of "More than one set of credentials
 * was sent", and `invalid_dpop_proof` with the detail "not a compact JWS".
 */

import { isFormEncoded } from '../credentials.js';
import type { GuardError } from '../errors.js';
import type { Authorized, Guard } from '../guard.js';
import type { CompiledPolicy } from '../policy.js';
import { announcesBody, type GuardHeaders, type GuardRequest, headersFromRaw } from '../request.js';
import { guardRequestOn, type RequestConnection } from './connection.js';
import { authorizationOf, rememberAuthorization, rememberRefusal } from './layers.js';
import { errorResponse, type ResponseParts } from './node.js';
import type { ErrorBody } from './refusals.js';

/**
 * The most body bytes read on a route without `messageSigning` — only form bodies are read there,
 * to refuse an `access_token` in them (RFC 6750 §2.2). Same as `messageSigning.maxBodyBytes`'s default.
 */
export const FORM_BODY_LIMIT = 1024 * 1024;

/** A Fetch `Headers` object by lower-cased name. Repeated lines arrive folded into one value; `Set-Cookie` lines stay apart. */
export function headersFromFetch(headers: Headers): GuardHeaders {
  const lines: Record<string, string[]> = Object.create(null);
  for (const [name, value] of headers) {
    const known = lines[name];
    if (known) known.push(value);
    else lines[name] = [value];
  }
  return lines;
}

/**
 * Path and query of a Fetch request's URL (origin-form, RFC 9112 §3.2.1). Read from the string,
 * not parsed: a runtime may build it from the client's `Host` without validating it
 * (`@hono/node-server` does for hosts such as `xn--a`, on which `new URL` throws).
 */
export function requestTarget(url: string): string {
  const scheme = url.indexOf('//');
  const start = scheme < 0 ? -1 : url.indexOf('/', scheme + 2);
  if (start < 0) return '/';
  const fragment = url.indexOf('#', start);
  return fragment < 0 ? url.slice(start) : url.slice(start, fragment);
}

/**
 * The core's view of a Fetch request: the headers (`connection.rawHeaders` when the runtime has
 * them), the absolute URL from the guard's origin rules (never from `request.url` alone: its host
 * comes from the client's `Host`), and the peer the runtime reports. A request whose URL cannot
 * be trusted is refused (400).
 */
export function guardRequestFromFetch(
  guard: Guard,
  request: Request,
  connection: RequestConnection = {},
  policy?: CompiledPolicy,
): GuardRequest | GuardError {
  const headers = connection.rawHeaders ? headersFromRaw(connection.rawHeaders) : headersFromFetch(request.headers);
  return guardRequestOn(
    guard,
    request.method,
    headers,
    {
      ...connection,
      target: connection.target ?? requestTarget(request.url),
      encrypted: connection.encrypted ?? request.url.startsWith('https:'),
    },
    policy,
  );
}

export type FetchBody = { ok: true; body: Uint8Array } | { ok: false; reason: 'too_large' | 'aborted' | 'used' };

/**
 * Reads the whole body of `request` as received (content coding applied), at most `limit`
 * bytes: a declared `Content-Length` past it is refused before a byte is read, and reading stops
 * at the first chunk past it. The stream is consumed: hand the bytes on (see
 * {@link FetchAuthorization.body}). A request without a stream has the empty body: Fetch gives GET
 * and HEAD none, whatever the headers announce, so the application cannot read another.
 */
export async function readFetchBody(request: Request, limit: number): Promise<FetchBody> {
  if (request.bodyUsed) return { ok: false, reason: 'used' };
  const stream = request.body;
  if (!stream) return { ok: true, body: new Uint8Array(0) };
  const declared = request.headers.get('content-length');
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > limit) return { ok: false, reason: 'too_large' };
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    // Each turn takes at least one byte (or ends), and the size is bounded by `limit`.
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      size += next.value.byteLength;
      if (size > limit) {
        reader.cancel().catch(() => undefined);
        return { ok: false, reason: 'too_large' };
      }
      chunks.push(next.value);
    }
  } catch {
    return { ok: false, reason: 'aborted' };
  }
  if (chunks.length === 1) return { ok: true, body: chunks[0] as Uint8Array };
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { ok: true, body };
}

/** The decision on a Fetch request, and the body bytes when the guard had to read them. */
export interface FetchAuthorization {
  result: Authorized | GuardError;
  /**
   * The body as received, when the guard read it (form bodies, `signedRequest` routes): the
   * request's stream is consumed, so build the request the application sees from these bytes,
   * e.g. `new Request(request, { body })`.
   */
  body?: Uint8Array;
}

/**
 * Both phases of the guard for a Fetch request: {@link Guard.authenticate} on the headers, then,
 * only for an authenticated request, the body — read (bounded by `messageSigning.maxBodyBytes`,
 * else {@link FORM_BODY_LIMIT}) when it is a form (an `access_token` in it is refused, RFC 6750
 * §2.2) or the route checks request signatures — and {@link Guard.complete}.
 */
export async function authorizeFetchRequest(
  guard: Guard,
  request: Request,
  connection: RequestConnection,
  policy: CompiledPolicy,
): Promise<FetchAuthorization> {
  const checked = guardRequestFromFetch(guard, request, connection, policy);
  if (!('method' in checked)) return { result: checked };
  const authenticated = await guard.authenticate(checked, policy);
  if (!authenticated.ok) return { result: authenticated };
  return withBody(guard, request, checked, policy, () => guard.complete(authenticated, checked));
}

/**
 * Every layer of protection on a Fetch request (an app-wide middleware, a sub-app's, a route's):
 * the first one this guard runs for `key` — the framework's per-request object, e.g. Hono's
 * `Context` — authorizes the request with {@link authorizeFetchRequest}; each later one checks only
 * its own policy ({@link Guard.authorizeLayer}), so the DPoP proof is checked, and its `jti` spent,
 * once. `request` is the one the application sees now (with the body bytes handed on).
 */
export async function protectFetchRequest(
  guard: Guard,
  key: object,
  request: Request,
  connection: RequestConnection,
  policy: CompiledPolicy,
): Promise<FetchAuthorization> {
  const earlier = authorizationOf(guard, key);
  let answer: FetchAuthorization;
  if (earlier) {
    const checked = guardRequestFromFetch(guard, request, connection, policy);
    if (!('method' in checked)) return { result: checked };
    answer = await withBody(guard, request, checked, policy, () => guard.authorizeLayer(earlier, checked, policy));
  } else {
    answer = await authorizeFetchRequest(guard, request, connection, policy);
  }
  if (answer.result.ok) rememberAuthorization(guard, key, answer.result);
  else rememberRefusal(key);
  return answer;
}

/**
 * The body, read (bounded by `messageSigning.maxBodyBytes`, else {@link FORM_BODY_LIMIT}) only
 * when it is a form (an `access_token` in it is refused, RFC 6750 §2.2) or the route checks
 * request signatures, then `decide`.
 */
async function withBody(
  guard: Guard,
  request: Request,
  checked: GuardRequest,
  policy: CompiledPolicy,
  decide: () => Promise<Authorized | GuardError>,
): Promise<FetchAuthorization> {
  const { headers } = checked;
  const form = isFormEncoded(headers);
  if (!announcesBody(headers) || !(form || policy.readsBody)) return { result: await decide() };
  const limit = guard.options.messageSigning?.maxBodyBytes ?? FORM_BODY_LIMIT;
  const read = await readFetchBody(request, limit);
  if (read.ok) {
    checked.rawBody = read.body;
    if (form) checked.body = new URLSearchParams(new TextDecoder().decode(read.body));
    const result = await decide();
    return request.body ? { result, body: read.body } : { result };
  }
  if (read.reason === 'too_large') {
    return { result: guard.refuse('body_too_large', `request body exceeds ${limit} bytes`, policy, headers) };
  }
  // A form whose body cannot be seen might carry a token next to the header: not let through.
  if (form) return { result: guard.refuse('body_unavailable', `form body ${read.reason}`, policy, headers) };
  // No bytes: the core refuses with body_unavailable where the signature needed them.
  return { result: await decide() };
}

/** A Fetch `Response` from the parts the core describes (refusals, the metadata document). */
export function fetchResponse(parts: ResponseParts): Response {
  return new Response(parts.body, { status: parts.status, headers: parts.headers });
}

/** A refusal as a Fetch `Response`: status, challenge headers and the short JSON body. */
export function fetchErrorResponse(error: GuardError, format?: ErrorBody): Response {
  return fetchResponse(errorResponse(error, format));
}

/**
 * The Fetch standard's null body statuses (§2.2.3): a `Response` with one of them refuses any
 * body, even an empty one; none carries content (RFC 9110 §15.2, §15.3.5, §15.3.6, §15.4.5).
 */
export const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([101, 103, 204, 205, 304]);

/**
 * The response of a route with `signResponse`, signed (FAPI 2.0 Message Signing §5.6.2.1): the
 * whole body is read (a signed response cannot be streamed), digested and signed with the status
 * and headers; the response goes out unchanged otherwise. Other routes' responses are returned
 * as they are. A response that cannot be signed is never sent unsigned: the client gets a 500.
 * `replayed`: `response` is a stored response replayed to a retry (idempotency keys).
 */
export async function signFetchResponse(
  guard: Guard,
  auth: Authorized,
  method: string,
  response: Response,
  replayed = false,
): Promise<Response> {
  if (!guard.signsResponse(auth)) return response;
  try {
    const empty = NULL_BODY_STATUSES.has(response.status);
    const bytes = new Uint8Array(await response.arrayBuffer());
    // HEAD: the body the handler produced is not sent, so nothing is digested (RFC 9110 §9.3.2).
    const content = empty || method === 'HEAD' ? undefined : bytes;
    const signed = guard.signResponse(auth, {
      status: response.status,
      headers: headersFromFetch(response.headers),
      body: content,
      replayed,
    });
    const headers = new Headers(response.headers);
    for (const [name, value] of Object.entries(signed?.headers ?? {})) headers.set(name, value);
    // Open Finance Brasil: the signed JWT takes the place of the body.
    return new Response(empty ? null : (signed?.body ?? bytes), { status: response.status, statusText: response.statusText, headers });
  } catch {
    return fetchResponse({
      status: 500,
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ error_description: 'The response could not be signed' }),
    });
  }
}

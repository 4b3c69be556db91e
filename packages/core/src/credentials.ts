/**
 * Where the access token comes from: the `Authorization` header and nowhere else
 * (FAPI 2.0 §5.3.4 #1–2; RFC 6750 §2.1; RFC 9449 §7.1).
 */
import type { AuthScheme, GuardErrorReason } from './errors.js';
import { type GuardHeaders, type GuardRequest, headerLines } from './request.js';

/** `Authorization: <scheme> 1*SP token68` (RFC 9110 §11.4, RFC 6750 §2.1). */
const CREDENTIALS = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?: +([A-Za-z0-9\-._~+/]+=*))? *$/;

export type CredentialsResult =
  | { ok: true; scheme: AuthScheme; token: string }
  | { ok: false; reason: GuardErrorReason; usedScheme?: AuthScheme; detail: string };

function schemeOf(name: string): AuthScheme | undefined {
  const lower = name.toLowerCase();
  if (lower === 'bearer') return 'Bearer';
  if (lower === 'dpop') return 'DPoP';
  return undefined;
}

/** True when the content is `application/x-www-form-urlencoded`, where RFC 6750 §2.2 puts a body token. */
export function isFormEncoded(headers: GuardHeaders): boolean {
  return headerLines(headers, 'content-type')[0]?.toLowerCase().startsWith('application/x-www-form-urlencoded') === true;
}

/** True when a form-encoded body carries `access_token` (RFC 6750 §2.2, refused here). */
export function bodyHasToken(request: GuardRequest): boolean {
  const body = request.body;
  if (!isFormEncoded(request.headers)) return false;
  if (body instanceof URLSearchParams) return body.has('access_token');
  if (typeof body === 'string') return new URLSearchParams(body).has('access_token');
  // The bytes as received (a raw body parser): form-encoded text (RFC 6750 §2.2 names UTF-8 forms).
  if (body instanceof Uint8Array) return new URLSearchParams(new TextDecoder().decode(body)).has('access_token');
  return typeof body === 'object' && body !== null && Object.hasOwn(body, 'access_token');
}

function queryHasToken(url: string): boolean {
  const query = url.indexOf('?') + 1;
  return query > 0 && new URLSearchParams(url.slice(query)).has('access_token');
}

/**
 * Reads the credentials of a request. `Proxy-Authorization` is never read (RFC 9449 §7.1:
 * DPoP is not valid there), and a token in the query or a form body is never used.
 */
export function readCredentials(request: GuardRequest): CredentialsResult {
  const lines = headerLines(request.headers, 'authorization');
  const inQuery = queryHasToken(request.url);
  const inBody = bodyHasToken(request);
  if (lines.length > 1) {
    return { ok: false, reason: 'credentials_ambiguous', detail: `${lines.length} Authorization headers` };
  }
  const line = lines[0];
  if (line === undefined) {
    if (inQuery) return { ok: false, reason: 'token_in_query', detail: 'access_token in the query is never accepted' };
    if (inBody) return { ok: false, reason: 'token_in_body', detail: 'access_token in the body is never accepted' };
    return { ok: false, reason: 'credentials_missing', detail: 'no Authorization header' };
  }
  const match = CREDENTIALS.exec(line.trim());
  const scheme = match ? schemeOf(match[1] as string) : schemeOf(line.trim().split(/[ ,]/, 1)[0] as string);
  if (inQuery || inBody) {
    return {
      ok: false,
      reason: 'credentials_ambiguous',
      usedScheme: scheme,
      detail: `Authorization header and access_token in the ${inQuery ? 'query' : 'body'}`,
    };
  }
  if (!scheme) {
    // Another scheme (Basic, Negotiate…): for this route there are no credentials (RFC 6750 §3.1).
    return { ok: false, reason: 'credentials_missing', detail: 'unsupported authentication scheme' };
  }
  if (!match || match[2] === undefined) {
    return { ok: false, reason: 'credentials_malformed', usedScheme: scheme, detail: `${scheme} credentials are not one token68` };
  }
  return { ok: true, scheme, token: match[2] };
}

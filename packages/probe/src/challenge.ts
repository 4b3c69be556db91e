/**
 * A strict reader of `WWW-Authenticate` (RFC 9110 §11.6.1) and of the RFC 6750 §3 / RFC 9449
 * §7.1 auth-params: the probe judges the syntax a server writes, so it never guesses.
 */

export interface Challenge {
  scheme: string;
  token68?: string;
  /** auth-params in order, names lower-cased; duplicates kept (they are an error to report). */
  params: Array<[string, string]>;
}

export type ParseResult = { ok: true; challenges: Challenge[] } | { ok: false; error: string };

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

/** Parses one or more `WWW-Authenticate` field values (a list, RFC 9110 §5.3). */
export function parseChallenges(values: readonly string[]): ParseResult {
  const challenges: Challenge[] = [];
  for (const value of values) {
    const one = parseField(value);
    if (!one.ok) return one;
    challenges.push(...one.challenges);
  }
  return { ok: true, challenges };
}

function parseField(s: string): ParseResult {
  let i = 0;
  const challenges: Challenge[] = [];
  const ows = () => {
    while (s[i] === ' ' || s[i] === '\t') i++;
  };
  const token = () => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i] as string)) i++;
    return s.slice(start, i);
  };
  const fail = (what: string): ParseResult => ({ ok: false, error: `${what} at offset ${i} of ${JSON.stringify(s)}` });
  /** At `i`: does an auth-param (token BWS "=" BWS token/quoted-string) start here? */
  const paramAhead = () => {
    let j = i;
    while (j < s.length && TCHAR.test(s[j] as string)) j++;
    if (j === i) return false;
    while (s[j] === ' ' || s[j] === '\t') j++;
    if (s[j] !== '=') return false;
    j++;
    while (s[j] === ' ' || s[j] === '\t') j++;
    return s[j] === '"' || (j < s.length && TCHAR.test(s[j] as string) && s[j] !== '=');
  };
  const value = (): string | undefined => {
    if (s[i] !== '"') {
      const t = token();
      return t === '' ? undefined : t;
    }
    i++;
    let out = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\') i++;
      const c = s[i];
      if (c === undefined) return undefined;
      // qdtext / quoted-pair: HTAB, SP, VCHAR, obs-text; no other controls.
      if (c !== '\t' && (c < ' ' || c === '\x7f')) return undefined;
      out += c;
      i++;
    }
    if (s[i] !== '"') return undefined;
    i++;
    return out;
  };
  for (;;) {
    // #challenge allows empty list elements.
    while (s[i] === ',' || s[i] === ' ' || s[i] === '\t') i++;
    if (i >= s.length) break;
    const scheme = token();
    if (scheme === '') return fail('auth-scheme expected');
    const challenge: Challenge = { scheme, params: [] };
    challenges.push(challenge);
    // A bare scheme ends its list element: OWS, then "," or the end (RFC 9110 §5.6.1).
    let j = i;
    while (s[j] === ' ' || s[j] === '\t') j++;
    if (j >= s.length || s[j] === ',') {
      i = j;
      continue;
    }
    if (s[i] !== ' ') return fail('SP expected after the auth-scheme');
    while (s[i] === ' ') i++;
    if (i >= s.length || s[i] === ',') continue;
    if (!paramAhead()) {
      const start = i;
      while (i < s.length && TOKEN68_CHAR.test(s[i] as string)) i++;
      // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=": padding alone is none.
      if (i === start) return fail('token68 or auth-param expected');
      while (s[i] === '=') i++;
      challenge.token68 = s.slice(start, i);
      ows();
      if (i < s.length && s[i] !== ',') return fail('"," expected after token68');
      continue;
    }
    for (;;) {
      const name = token().toLowerCase();
      ows();
      i++; // "=", checked by paramAhead
      ows();
      const v = value();
      if (v === undefined) return fail(`malformed value of auth-param "${name}"`);
      challenge.params.push([name, v]);
      ows();
      if (i >= s.length) break;
      if (s[i] !== ',') return fail('"," expected between auth-params');
      while (s[i] === ',' || s[i] === ' ' || s[i] === '\t') i++;
      if (i >= s.length || !paramAhead()) break;
    }
  }
  return { ok: true, challenges };
}

/** The value of a parameter (first occurrence). */
export function param(challenge: Challenge, name: string): string | undefined {
  return challenge.params.find(([n]) => n === name)?.[1];
}

// RFC 6750 §3: error / error_description characters, scope-tokens.
const NQSCHAR = /^[\x20-\x21\x23-\x5B\x5D-\x7E]*$/;
const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/;

/** RFC 3986 §2: unreserved, reserved, and percent-encoded octets: the characters of a URI-reference. */
const URI_REFERENCE_CHARS = /^(?:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/;
/** RFC 3986 §3.2.2: brackets only around an IP-literal host, right after `//` (and any userinfo). */
const IP_LITERAL_AUTHORITY = /^(?:[A-Za-z][A-Za-z0-9+.-]*:)?\/\/(?:[^/?#@[\]]*@)?\[[0-9A-Za-z:.\-_~!$&'()*+,;=]+\](?::[0-9]*)?(?=[/?#]|$)/;

/**
 * RFC 3986 §4.1 URI-reference, as far as its characters and structure go: a URI, or a relative
 * reference whose first segment has no ":" (§4.2), at most one "#", brackets only around an
 * IP-literal host.
 */
export function isUriReference(value: string): boolean {
  if (!URI_REFERENCE_CHARS.test(value)) return false;
  const fragment = value.indexOf('#');
  if (fragment !== -1 && value.includes('#', fragment + 1)) return false;
  // The first ":" before any "/", "?" or "#" ends a scheme.
  const delimiter = value.search(/[:/?#]/);
  if (delimiter !== -1 && value[delimiter] === ':' && !SCHEME.test(value.slice(0, delimiter))) return false;
  if (!value.includes('[') && !value.includes(']')) return true;
  const authority = IP_LITERAL_AUTHORITY.exec(value);
  return authority !== null && !/[[\]]/.test(value.slice(authority[0].length));
}

/**
 * The registered error codes for resource access (RFC 6750 §3.1, RFC 9449 §7.1 and §9, RFC 9470 §3):
 * a client acts on these and no others.
 */
const ERROR_CODES = [
  'invalid_request',
  'invalid_token',
  'insufficient_scope',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'insufficient_user_authentication',
];

/**
 * Problems of one challenge against the MUSTs of RFC 6750 §3 (Bearer) and RFC 9449 §7.1 (DPoP),
 * which use the same parameters: each at most once, values in the allowed characters, Bearer with
 * at least one auth-param, no token68.
 */
export function challengeProblems(c: Challenge): string[] {
  const problems: string[] = [];
  // RFC 9110 §11.2: "each parameter name MUST only occur once per challenge", in every scheme
  // (names are compared case-insensitively; the parser lower-cases them).
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const [name] of c.params) (seen.has(name) ? repeated : seen).add(name);
  for (const name of repeated) problems.push(`${c.scheme} challenge repeats "${name}"`);
  const scheme = c.scheme.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'dpop') return problems;
  if (c.token68 !== undefined) problems.push(`${c.scheme} challenge carries a token68, not auth-params`);
  if (scheme === 'bearer' && c.params.length === 0) problems.push('Bearer challenge without any auth-param (RFC 6750 §3)');
  for (const [name, v] of c.params) {
    // RFC 6750 §3 limits the characters of error, error_description, scope and error_uri; realm is
    // any quoted-string (RFC 9110 §11.5).
    if ((name === 'error' || name === 'error_description') && !NQSCHAR.test(v)) {
      problems.push(`"${name}" holds characters RFC 6750 §3 does not allow`);
    }
    if (name === 'scope' && !SCOPE.test(v)) problems.push('"scope" is not a space-separated list of scope-tokens');
    if (name === 'error_uri' && !isUriReference(v)) problems.push('"error_uri" is not a URI-reference (RFC 3986 §4.1)');
    if (name === 'algs' && !SCOPE.test(v)) problems.push('"algs" is not a space-separated list of algorithms');
  }
  return problems;
}

/**
 * What a client cannot act on although no MUST forbids it: an `error` outside the registered
 * resource-access codes (extension codes are allowed through the IANA registry, RFC 6750 §6.2).
 */
export function challengeAdvice(c: Challenge): string[] {
  const scheme = c.scheme.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'dpop') return [];
  return c.params
    .filter(([name, v]) => name === 'error' && NQSCHAR.test(v) && !ERROR_CODES.includes(v))
    .map(([, v]) => `"error" ${JSON.stringify(v)} is not a registered resource-access error code (clients act on registered codes)`);
}

/**
 * The shape of every configuration object, checked once at start-up: each key must be known and
 * each value of the right type, so a typo fails closed. `{ scope: ['accounts'] }` (for `scopes`)
 * would otherwise be a route with no scope rule; it throws instead, naming the nearest valid key.
 * Ranges and meanings (a port, a URL, an algorithm) stay with the code of each option.
 *
 * Each shape is typed against its interface (`Fields<T>`), so an option added to an interface
 * without a checker here does not compile.
 */
import type { CertificateProxyOptions, MtlsOptions } from '../binding/mtls.js';
import type { DpopNonceOptions } from '../binding/nonce.js';
import type { IdempotencyOptions, IdempotencyPolicy } from '../idempotency/policy.js';
import type { ResourceMetadataOptions } from '../metadata.js';
import type { ClientProfileOptions } from '../regimes/profiles.js';
import type { OutboundOptions } from '../tokens/http.js';
import type { IntrospectionOptions } from '../tokens/introspection.js';
import type { IssuerConfig, KeySetOptions } from '../tokens/issuer.js';
import type {
  CompatOptions,
  DpopOptions,
  GuardOptions,
  MessageSigningOptions,
  OpenFinanceBrasilOptions,
  UkOpenBankingOptions,
} from './options.js';
import type { RoutePolicy } from './route-policy.js';

/** Where a value sits: what a key is called ("option", "route policy key"), the root's name, the key path. */
interface At {
  readonly kind: string;
  readonly root: string;
  readonly path: string;
}

/** Throws a `TypeError` when `value` does not fit. `undefined` never reaches a check. */
export type Check = (value: unknown, at: At) => void;

/** One checker per key of `T`, no more, no less. */
type Fields<T> = { readonly [K in keyof Required<T>]: Check };

function fail(at: At, message: string): never {
  throw new TypeError(`fapi-guard: ${at.path === '' ? at.root : `${at.kind} ${at.path}`} ${message}`);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

const child = (at: At, key: string): At => ({ ...at, path: at.path === '' ? key : `${at.path}.${key}` });

/**
 * Optimal string alignment distance (Levenshtein with adjacent transpositions): the number of
 * single-character edits between two keys. Keys are short; quadratic is fine.
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[];
    const up = d[i - 1] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((up[j] as number) + 1, (row[j - 1] as number) + 1, (up[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, (d[i - 2]?.[j - 2] as number) + 1);
      row[j] = best;
    }
  }
  return d[a.length]?.[b.length] as number;
}

/**
 * The valid key closest to `key` (case ignored), when it is close enough to be a typo: a few
 * edits, one key inside the other (`secret` for `clientSecret`), or a shared stem (`proxies`).
 */
export function nearestKey(key: string, valid: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of valid) {
    const c = candidate.toLowerCase();
    const distance = editDistance(k, c);
    let stem = 0;
    while (stem < k.length && k[stem] === c[stem]) stem++;
    const close = distance <= Math.max(2, Math.floor(k.length / 3)) || c.includes(k) || k.includes(c) || stem >= 4;
    if (close && distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);

export const string: Check = (v, at) => typeof v === 'string' || fail(at, `must be a string (got ${describe(v)})`);
export const number: Check = (v, at) => (typeof v === 'number' && !Number.isNaN(v)) || fail(at, `must be a number (got ${describe(v)})`);
export const boolean: Check = (v, at) => typeof v === 'boolean' || fail(at, `must be true or false (got ${describe(v)})`);
export const func: Check = (v, at) => typeof v === 'function' || fail(at, `must be a function (got ${describe(v)})`);
/** An object whose members are not ours to list (a JWK, a store, a JWK set). */
export const object: Check = (v, at) => isRecord(v) || fail(at, `must be an object (got ${describe(v)})`);
const bytes: Check = (v, at) => v instanceof Uint8Array || fail(at, `must be a string or bytes (got ${describe(v)})`);

export function oneOf(...values: readonly unknown[]): Check {
  const names = values.map((v) => JSON.stringify(v)).join(', ');
  return (v, at) => values.includes(v) || fail(at, `must be one of ${names} (got ${describe(v)})`);
}

/**
 * A list. `nonEmpty` (a hint) refuses an explicitly empty list: a requirement written as `[]`
 * is almost always a mistake, and leaving the key out says "no rule" plainly.
 */
export function listOf(item: Check, options: { nonEmpty?: string } = {}): Check {
  return (v, at) => {
    if (!Array.isArray(v)) fail(at, `must be an array (got ${describe(v)})`);
    if (v.length === 0 && options.nonEmpty) fail(at, `is empty; ${options.nonEmpty}`);
    v.forEach((entry, i) => {
      item(entry, { ...at, path: `${at.path}[${i}]` });
    });
  };
}

/** An object with any keys (ids, claim names), each value checked. */
export function recordOf(item: Check, options: { nonEmpty?: string } = {}): Check {
  return (v, at) => {
    if (!isRecord(v)) fail(at, `must be an object (got ${describe(v)})`);
    const entries = Object.entries(v);
    if (entries.length === 0 && options.nonEmpty) fail(at, `is empty; ${options.nonEmpty}`);
    for (const [key, value] of entries) if (value !== undefined) item(value, child(at, key));
  };
}

/** An object with these keys only; each key that is set is checked. */
export function shape<T>(fields: Fields<T>): Check {
  const valid = Object.keys(fields);
  return (v, at) => {
    if (!isRecord(v)) fail(at, `must be an object (got ${describe(v)})`);
    for (const key of Object.keys(v)) {
      if (!Object.hasOwn(fields, key)) {
        const near = nearestKey(key, valid);
        const where = (k: string) => JSON.stringify(child(at, k).path);
        throw new TypeError(
          `fapi-guard: unknown ${at.kind} ${where(key)}; ${near ? `did you mean ${where(near)}?` : `valid keys: ${valid.join(', ')}`}`,
        );
      }
      const value = v[key];
      if (value !== undefined) (fields[key as keyof T] as Check)(value, child(at, key));
    }
  };
}

/** A union told apart by the JavaScript type of the value. */
function byType(cases: { string?: Check; boolean?: Check; object?: Check; array?: Check; function?: Check }, expected: string): Check {
  return (v, at) => {
    const type = Array.isArray(v) ? 'array' : v instanceof Uint8Array || isRecord(v) ? 'object' : typeof v;
    const check = cases[type as keyof typeof cases];
    if (!check) fail(at, `must be ${expected} (got ${describe(v)})`);
    check(v, at);
  };
}

/** A union told apart by one member (e.g. `method`), each variant with its own keys. */
function variants(member: string, cases: Readonly<Record<string, Check>>): Check {
  return (v, at) => {
    if (!isRecord(v)) fail(at, `must be an object (got ${describe(v)})`);
    const variant = v[member];
    const check = typeof variant === 'string' && Object.hasOwn(cases, variant) ? cases[variant] : undefined;
    if (!check) fail(child(at, member), `must be one of ${Object.keys(cases).join(', ')} (got ${describe(variant)})`);
    check(v, at);
  };
}

const strings = listOf(string);

// ---- Guard options -------------------------------------------------------------------------

const issuerConfig = shape<IssuerConfig>({ issuer: string, jwksUri: string, jwks: object });
const issuerEntry = byType({ string, object: issuerConfig }, 'an issuer URL or { issuer, jwksUri?, jwks? }');

const keySet = shape<KeySetOptions>({ maxAgeMs: number, cooldownMs: number, timeoutMs: number });

const nonceSecret = byType({ string, object: bytes }, 'a string or bytes');
const dpopNonce = shape<DpopNonceOptions>({
  secret: byType({ string, object: bytes, array: listOf(nonceSecret) }, 'a string, bytes, or a list of them'),
  stepSec: number,
  required: boolean,
});
const dpop = shape<DpopOptions>({
  maxAgeSec: number,
  maxFutureSec: number,
  replayStore: object,
  nonce: dpopNonce,
  verifyOn: oneOf('main', 'threadpool'),
});

const certificateProxy = shape<CertificateProxyOptions>({
  format: oneOf('rfc9440', 'nginx', 'envoy'),
  header: string,
  trustedPeers: strings,
  sharedSecret: shape<{ header: string; value: string }>({ header: string, value: string }),
});
const mtls = byType({ boolean, object: shape<MtlsOptions>({ proxy: certificateProxy }) }, 'true, false or { proxy }');

const secretAuth = shape<{ method: string; clientSecret: string }>({ method: string, clientSecret: string });
const introspection = shape<IntrospectionOptions>({
  endpoint: string,
  issuer: string,
  clientId: string,
  clientAuth: variants('method', {
    client_secret_basic: secretAuth,
    client_secret_post: secretAuth,
    private_key_jwt: shape<{ method: string; privateKey: unknown; alg: unknown }>({
      method: string,
      privateKey: object,
      alg: oneOf('ES256', 'PS256', 'EdDSA'),
    }),
    tls_client_auth: shape<{ method: string; cert: string; key: string }>({ method: string, cert: string, key: string }),
  }),
  signedResponse: boolean,
  timeoutMs: number,
  maxConcurrent: number,
  maxQueued: number,
  ca: string,
  cache: byType(
    {
      boolean: oneOf(false),
      object: shape<{ maxTtlSec: number; negativeTtlSec: number; max: number; store: unknown }>({
        maxTtlSec: number,
        negativeTtlSec: number,
        max: number,
        store: object,
      }),
    },
    'false or { maxTtlSec?, negativeTtlSec?, max?, store? }',
  ),
});

const clientKeySource = shape<{ jwks: unknown; jwksUri: string }>({ jwks: object, jwksUri: string });
const openFinanceBrasil = shape<OpenFinanceBrasilOptions>({
  clients: recordOf(
    shape<{ organisationId: string; jwks: unknown; jwksUri: string }>({ organisationId: string, jwks: object, jwksUri: string }),
    {
      nonEmpty: 'name at least one client',
    },
  ),
  organisationId: string,
  responseKey: object,
  maxAgeSec: number,
  maxFutureSec: number,
});
const ukOpenBanking = shape<UkOpenBankingOptions>({
  trustAnchors: recordOf(string, { nonEmpty: 'name at least one trust anchor' }),
  clients: recordOf(string),
  resolveIssuer: func,
  version: oneOf('3.1.3', '3.1.4'),
  maxAgeSec: number,
  maxFutureSec: number,
  responseKey: object,
  responseIssuer: string,
  responseTrustAnchor: string,
});
const messageSigning = shape<MessageSigningOptions>({
  clients: recordOf(clientKeySource),
  resolveClient: func,
  cacheMs: number,
  cooldownMs: number,
  timeoutMs: number,
  maxAgeSec: number,
  maxFutureSec: number,
  responseKey: object,
  jwksUri: string,
  maxBodyBytes: number,
  ukOpenBanking,
  openFinanceBrasil,
  onSignedExchange: func,
});

const resourceMetadata = shape<ResourceMetadataOptions>({
  resource: string,
  scopesSupported: strings,
  resourceName: string,
  resourceDocumentation: string,
  resourcePolicyUri: string,
  resourceTosUri: string,
  jwksUri: string,
  signingAlgorithms: strings,
  maxAgeSec: number,
});

const compat = shape<CompatOptions>({
  acceptJwtTyp: boolean,
  acceptMissingTyp: boolean,
  clientIdClaim: string,
  // Which names are allowed is checked with the other options (its message names the fix).
  optionalClaims: strings,
  acceptNonFapiAlgorithms: boolean,
});

const clientProfiles = shape<ClientProfileOptions>({
  clients: recordOf(oneOf('fapi2', 'fapi1-advanced')),
  claim: string,
});

const guardOptions = shape<GuardOptions>({
  profile: oneOf('fapi2', 'fapi1-advanced', 'oauth2'),
  clientProfiles,
  compat,
  resourceMetadata: byType({ boolean, object: resourceMetadata }, 'true, false or an object'),
  interactionId: boolean,
  issuer: issuerEntry,
  issuers: listOf(issuerEntry),
  audience: byType({ string, array: strings }, 'a URI or a list of URIs'),
  algorithms: strings,
  clockToleranceSec: number,
  realm: string,
  keys: keySet,
  tokenCache: byType({ boolean: oneOf(false), object: shape<{ max: number }>({ max: number }) }, 'false or { max }'),
  mtls,
  introspection,
  tokenFormat: oneOf('jwt', 'opaque', 'auto'),
  introspectJwts: boolean,
  dpop,
  messageSigning,
  onDecision: func,
  logger: byType({ boolean: oneOf(false), object }, 'false or a pino-compatible logger'),
  outbound: shape<OutboundOptions>({ proxy: string, agent: object }),
  clock: func,
  publicUrl: byType(
    { string, array: listOf(string, { nonEmpty: 'give at least one origin, or leave publicUrl out' }) },
    'an origin or a list of origins',
  ),
  trustedProxies: strings,
  idempotency: shape<IdempotencyOptions>({ store: object, maxRequestBytes: number }),
});

/** Throws on an unknown key or a value of the wrong type anywhere in the guard options. */
export function checkGuardOptions(options: unknown): void {
  guardOptions(options, { kind: 'option', root: 'options', path: '' });
}

// ---- Route policies ------------------------------------------------------------------------

/**
 * Scopes are a list of scope-tokens. A string (even RFC 6749 §3.3 space-separated syntax) is
 * refused rather than parsed: `[...'accounts']` would be eight one-letter scopes, and one way of
 * writing a rule leaves no doubt about which one a reviewer is reading.
 */
function scopeList(hint: string): Check {
  const list = listOf(string, { nonEmpty: hint });
  return (v, at) => {
    if (typeof v === 'string')
      fail(
        at,
        `must be a list of scope-tokens, e.g. [${v
          .split(' ')
          .filter(Boolean)
          .map((s) => `'${s}'`)
          .join(', ')}], not a string`,
      );
    list(v, at);
  };
}

const claimCheck: Check = (v, at) => {
  if (typeof v === 'function') return;
  const keys = isRecord(v) ? Object.keys(v) : [];
  if (keys.length !== 1 || !['equals', 'includes'].includes(keys[0] as string)) {
    const near = keys.length === 1 ? nearestKey(keys[0] as string, ['equals', 'includes']) : undefined;
    fail(at, `must be a function, { equals } or { includes } (got ${describe(v)}${near ? `; did you mean "${near}"?` : ''})`);
  }
};

const routePolicy = shape<RoutePolicy>({
  scopes: scopeList('leave scopes out for no all-of scope rule'),
  anyScopes: scopeList('leave anyScopes out for no any-of scope rule'),
  claims: recordOf(claimCheck, { nonEmpty: 'leave claims out for no claim rule' }),
  allowBearer: boolean,
  dpopNonce: boolean,
  clientCertificate: func,
  acrValues: listOf(string, { nonEmpty: 'leave acrValues out for no acr rule' }),
  maxAuthAgeSec: number,
  authorizationDetails: listOf(object, { nonEmpty: 'leave authorizationDetails out for no rule' }),
  signedRequest: oneOf('required', 'optional'),
  signResponse: boolean,
  idempotency: byType(
    {
      string: oneOf('required', 'optional'),
      object: shape<IdempotencyPolicy>({
        mode: oneOf('required', 'optional'),
        syntax: oneOf('ietf', 'uk-ob', 'br-of'),
        header: string,
        ttlSec: number,
        leaseSec: number,
        maxResponseBytes: number,
      }),
    },
    "'required', 'optional' or { mode, syntax?, header?, ttlSec?, leaseSec?, maxResponseBytes? }",
  ),
  profiles: listOf(oneOf('fapi2', 'fapi1-advanced', 'oauth2'), { nonEmpty: 'leave profiles out to serve every profile' }),
  jwsSignature: shape<{ request: unknown; response: unknown }>({ request: oneOf('required', 'optional'), response: boolean }),
  jwtBody: shape<{ request: unknown; response: unknown }>({ request: oneOf('required'), response: boolean }),
});

/** Throws on an unknown key, a value of the wrong type or an empty requirement in a route policy. */
export function checkRoutePolicy(policy: unknown): void {
  routePolicy(policy, { kind: 'route policy key', root: 'route policy', path: '' });
}

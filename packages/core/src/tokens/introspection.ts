/**
 * Token introspection (RFC 7662) with signed answers (RFC 9701): for opaque tokens, and for
 * JWTs whose revocation must be checked (FAPI 2.0 §5.3.4 #3). The answer feeds the same checks
 * as a JWT: audience, expiry, scope and the `cnf` binding, re-checked on every request.
 *
 * Cache: keyed by the token's SHA-256 (never the token), bounded, each answer kept at most
 * `maxTtlSec` and never past the token's `exp`; inactive answers for `negativeTtlSec`.
 * Concurrent requests with one token share one call. A cached answer is a statement about the
 * token only: route-specific checks (scope, binding, policy) are never cached.
 */
import { randomUUID } from 'node:crypto';
import { type CryptoKey, compactVerify, importJWK, type JWK, SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';
import { decodeJsonSegment, isExplicitType } from '../common/jws.js';
import type { GuardErrorReason } from '../errors.js';
import { postForm, ServiceUnavailable } from './http.js';
import type { IssuerKeys } from './issuer.js';
import { type AccessTokenClaims, deepFreeze, type TokenResult, type VerifiedAccessToken } from './jwt.js';
import { introspectedType } from './token-kind.js';

/** How this resource server authenticates to the introspection endpoint (RFC 7662 §2.1). */
export type IntrospectionClientAuth =
  | { method: 'client_secret_basic'; clientSecret: string }
  | { method: 'client_secret_post'; clientSecret: string }
  /** RFC 7523 client assertion signed with this private key (FAPI 2.0 §5.3.3.3). */
  | { method: 'private_key_jwt'; privateKey: JWK; alg?: 'ES256' | 'PS256' | 'EdDSA' }
  /** RFC 8705 §2.1: the client certificate on the connection authenticates. */
  | { method: 'tls_client_auth'; cert: string; key: string };

/** A shared store for introspection answers (see `@fapi-guard/redis`). */
export interface IntrospectionCache {
  /** The cached answer, or `undefined`. Errors count as a miss. */
  get(key: string): Promise<CachedIntrospection | undefined>;
  /** Keep `value` until `expiresAt` (ms since the epoch). Errors are ignored. */
  set(key: string, value: CachedIntrospection, expiresAt: number): Promise<void>;
}

/** What is cached: the (active) claims, or the fact that the token is not active. */
export type CachedIntrospection = { active: true; claims: AccessTokenClaims } | { active: false };

export interface IntrospectionOptions {
  /** The endpoint. @default `introspection_endpoint` from the issuer's metadata */
  endpoint?: string;
  /** The issuer whose tokens are introspected. @default the only configured issuer */
  issuer?: string;
  /** This resource server's client id at the authorization server (also the `aud` of signed answers). */
  clientId: string;
  clientAuth: IntrospectionClientAuth;
  /**
   * Ask for RFC 9701 signed answers (`Accept: application/token-introspection+jwt`) and refuse
   * plain JSON ones. Register an explicit FAPI algorithm at the AS (RFC 9701 §6: the default RS256 is outside FAPI).
   * @default false
   */
  signedResponse?: boolean;
  /** Time allowed for one introspection call. @default 3000 */
  timeoutMs?: number;
  /**
   * Introspection calls in flight at once. Tokens the cache does not know cost one call each, so
   * a flood of made-up opaque tokens would otherwise become a flood of calls to the authorization
   * server. Raise it for an API with many distinct tokens at once and an AS that can take them.
   * @default 16
   */
  maxConcurrent?: number;
  /**
   * Calls that may wait for one of the `maxConcurrent` slots, each for at most `timeoutMs`.
   * A request beyond them, or whose wait runs out, is answered 503 with `Retry-After` at once
   * (never an accepted request), without a call.
   * @default 64
   */
  maxQueued?: number;
  /** A CA (PEM) to trust for the endpoint, besides the system's. */
  ca?: string;
  /**
   * Cache of answers. `maxTtlSec` bounds how long a revoked token stays usable.
   * `false` introspects on every request.
   * @default { maxTtlSec: 30, negativeTtlSec: 5, max: 10000 } in memory
   */
  cache?: { maxTtlSec?: number; negativeTtlSec?: number; max?: number; store?: IntrospectionCache } | false;
}

export interface IntrospectorSettings {
  issuer: IssuerKeys;
  audiences: readonly string[];
  algorithms: readonly string[];
  clockToleranceSec: number;
  now: () => number;
  /** Told when the cache fails (the call goes on as a miss, or without storing the answer). */
  onCacheError?: (error: unknown) => void;
}

type Fail = Extract<TokenResult, { ok: false }>;
const fail = (reason: GuardErrorReason, detail: string): Fail => ({ ok: false, reason, detail });
const unavailable = (detail: string): Fail => ({ ok: false, reason: 'issuer_unavailable', detail });

/** RFC 9701 §5: signed answers are fresh; older than this (plus leeway) is refused. */
const SIGNED_ANSWER_MAX_AGE_SEC = 60;

/** An in-memory {@link IntrospectionCache} on lru-cache. */
export class MemoryIntrospectionCache implements IntrospectionCache {
  private readonly cache: LRUCache<string, { value: CachedIntrospection; expiresAt: number }>;

  constructor(
    max: number,
    private readonly now: () => number = Date.now,
  ) {
    this.cache = new LRUCache({ max });
  }

  async get(key: string): Promise<CachedIntrospection | undefined> {
    const entry = this.cache.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.cache.delete(key);
      return undefined;
    }
    return entry.value;
  }

  async set(key: string, value: CachedIntrospection, expiresAt: number): Promise<void> {
    this.cache.set(key, { value, expiresAt });
  }
}

export class Introspector {
  private readonly cache: IntrospectionCache | undefined;
  private readonly maxTtlMs: number;
  private readonly negativeTtlMs: number;
  private readonly timeoutMs: number;
  private readonly inflight = new Map<string, Promise<TokenResult>>();
  private readonly limit: CallLimit;
  private assertionKey: Promise<CryptoKey> | undefined;

  constructor(
    private readonly options: IntrospectionOptions,
    private readonly settings: IntrospectorSettings,
  ) {
    const cache = options.cache === false ? undefined : { ...options.cache };
    this.maxTtlMs = (cache?.maxTtlSec ?? 30) * 1000;
    this.negativeTtlMs = (cache?.negativeTtlSec ?? 5) * 1000;
    this.cache = cache ? (cache.store ?? new MemoryIntrospectionCache(cache.max ?? 10_000, settings.now)) : undefined;
    this.timeoutMs = options.timeoutMs ?? 3000;
    const maxConcurrent = options.maxConcurrent ?? 16;
    const maxQueued = options.maxQueued ?? 64;
    if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 1))
      throw new TypeError('fapi-guard: introspection.maxConcurrent must be an integer ≥ 1');
    if (!(Number.isInteger(maxQueued) && maxQueued >= 0)) throw new TypeError('fapi-guard: introspection.maxQueued must be an integer ≥ 0');
    this.limit = new CallLimit(maxConcurrent, maxQueued);
  }

  /** A cache failure is a miss, reported to the operator. */
  private readonly cacheFailed = (error: unknown): undefined => {
    this.settings.onCacheError?.(error);
    return undefined;
  };

  /** The issuer identifier whose tokens this introspector answers for. */
  get issuer(): string {
    return this.settings.issuer.issuer;
  }

  /** Introspects (or takes the cached answer for) the token whose SHA-256 is `hash`. */
  async introspect(token: string, hash: string): Promise<TokenResult> {
    const cached = await this.cache?.get(hash).catch(this.cacheFailed);
    if (cached) return cached.active ? this.check(cached.claims, hash) : fail('token_inactive', 'cached: not active');
    let call = this.inflight.get(hash);
    if (!call) {
      call = this.call(token, hash).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, call);
    }
    return call;
  }

  private async call(token: string, hash: string): Promise<TokenResult> {
    const admitted = this.limit.enter(this.timeoutMs);
    // Stryker disable next-line ConditionalExpression: equivalent, a fast path (awaiting true gives true, a microtask later)
    if (!(admitted === true || (await admitted))) {
      return unavailable(`introspection: more than ${this.limit.describe()} calls at once`);
    }
    let answer: Record<string, unknown>;
    try {
      const result = await this.request(token);
      if (!result.ok) return result;
      answer = result.answer;
    } catch (e) {
      return unavailable(`introspection: ${(e as Error).message}`);
    } finally {
      this.limit.leave();
    }
    const now = this.settings.now();
    // RFC 7662 §2.2: only a boolean true is active.
    if (answer.active !== true) {
      // Stryker disable next-line ObjectLiteral: equivalent, a cached entry without active: true is an inactive token either way
      if (this.cache) await this.cache.set(hash, { active: false }, now + this.negativeTtlMs).catch(this.cacheFailed);
      return fail('token_inactive', 'introspection: not active');
    }
    const claims = { ...answer, iss: answer.iss ?? this.issuer } as AccessTokenClaims;
    const checked = this.check(claims, hash);
    if (checked.ok && this.cache) {
      const exp = typeof claims.exp === 'number' ? claims.exp * 1000 : Number.POSITIVE_INFINITY;
      const expiresAt = Math.min(now + this.maxTtlMs, exp);
      if (expiresAt > now) await this.cache.set(hash, { active: true, claims }, expiresAt).catch(this.cacheFailed);
    }
    return checked;
  }

  /** Checks of an active answer (RFC 7662 §2.2, RFC 9068 §4, RFC 9449 §6.2); run on every request. */
  private check(claims: AccessTokenClaims, hash: string): TokenResult {
    const s = this.settings;
    const c = claims as Record<string, unknown>;
    if (c.iss !== this.issuer) return fail('token_issuer', `introspection iss ${JSON.stringify(c.iss)}`);
    // RFC 7662 §2.1: the AS may ignore token_type_hint and answer for a refresh token.
    const type = introspectedType(c.token_type);
    if (!type.ok) return type;
    // AUD-04 / RFC 9068 §4: under FAPI an answer without aud is refused.
    const aud = c.aud;
    const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
    if (!auds) return fail('token_audience', 'introspection answer has no aud');
    if (!auds.some((a) => s.audiences.includes(a))) return fail('token_audience', `aud ${JSON.stringify(aud)}`);
    if (typeof c.client_id !== 'string') return fail('token_claim_missing', 'introspection answer has no client_id');
    for (const name of ['exp', 'nbf', 'iat', 'auth_time'] as const) {
      if (c[name] !== undefined && !Number.isFinite(c[name])) return fail('token_claim_invalid', `${name} is not a number`);
    }
    if (c.scope !== undefined && typeof c.scope !== 'string') return fail('token_claim_invalid', 'scope is not a string');
    const cnf = c.cnf as Record<string, unknown> | undefined;
    if (cnf !== undefined && (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)))
      return fail('token_claim_invalid', 'cnf is not an object');
    // RFC 9449 §6.2 (DPOP-18): a DPoP-bound token's token_type, when given, is DPoP; no other's is.
    if (c.token_type !== undefined && (cnf?.jkt !== undefined) !== (type.scheme === 'dpop')) {
      return fail('token_claim_invalid', `token_type ${type.scheme ?? 'of the access-token kind'} does not match cnf`);
    }
    const now = s.now() / 1000;
    const tol = s.clockToleranceSec;
    // exp, nbf and iat are finite numbers (above) or absent, and an absent one compares false (NaN, undefined > n).
    if (now >= (c.exp as number) + tol) return fail('token_expired', `exp ${c.exp} is past`);
    if ((c.nbf as number) > now + tol) return fail('token_not_yet_valid', `nbf ${c.nbf} is in the future`);
    // As on the JWT path (RFC 7519 §4.1.6): an answer issued in the future is not yet a token.
    if ((c.iat as number) > now + tol) return fail('token_issued_in_future', `iat ${c.iat} is in the future`);
    // Frozen, as on the JWT path: the cached claims are handed to every request with this token.
    const token: VerifiedAccessToken = deepFreeze({ claims, hash, source: 'introspection' });
    return { ok: true, token };
  }

  private async request(token: string): Promise<{ ok: true; answer: Record<string, unknown> } | Fail> {
    const o = this.options;
    const endpoint = await this.endpoint();
    const form = new URLSearchParams({ token, token_type_hint: 'access_token' });
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      // RFC 9701 §4 / JIR-01.
      accept: o.signedResponse ? 'application/token-introspection+jwt' : 'application/json',
    };
    const auth = o.clientAuth;
    let tls: { cert?: string; key?: string; ca?: string } | undefined = o.ca ? { ca: o.ca } : undefined;
    if (auth.method === 'client_secret_basic') {
      // RFC 6749 §2.3.1: form-urlencode both parts before base64.
      const id = encodeURIComponent(o.clientId);
      const secret = encodeURIComponent(auth.clientSecret);
      headers.authorization = `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
    } else if (auth.method === 'client_secret_post') {
      form.set('client_id', o.clientId);
      form.set('client_secret', auth.clientSecret);
    } else if (auth.method === 'private_key_jwt') {
      form.set('client_id', o.clientId);
      form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      form.set('client_assertion', await this.clientAssertion(auth));
    } else {
      form.set('client_id', o.clientId);
      tls = { ...tls, cert: auth.cert, key: auth.key };
    }
    const res = await postForm(endpoint, {
      headers,
      body: form.toString(),
      timeoutMs: this.timeoutMs,
      tls,
      what: 'introspection_endpoint',
      outbound: this.settings.issuer.outbound,
    });
    if (res.status !== 200) return unavailable(`introspection endpoint answered ${res.status}`);
    if (o.signedResponse) {
      if (!res.contentType.startsWith('application/token-introspection+jwt')) {
        // JIR-04: an unsigned answer is not acceptable once signed answers are configured.
        return fail('token_introspection_unsigned', `answer of type ${res.contentType || 'none'}`);
      }
      return this.verifySignedAnswer(res.body.trim());
    }
    try {
      const answer: unknown = JSON.parse(res.body);
      if (typeof answer !== 'object' || answer === null || Array.isArray(answer))
        return unavailable('introspection answer is not an object');
      return { ok: true, answer: answer as Record<string, unknown> };
    } catch {
      return unavailable('introspection answer is not JSON');
    }
  }

  /** RFC 9701 §5 (JIR-02): issuer key and FAPI algorithm, typ, iss, aud = our client id, fresh iat. */
  private async verifySignedAnswer(jwt: string): Promise<{ ok: true; answer: Record<string, unknown> } | Fail> {
    const s = this.settings;
    const parts = jwt.split('.');
    if (parts.length !== 3) return fail('token_introspection_invalid', 'signed answer is not a JWS');
    const header = decodeJsonSegment(parts[0] as string);
    if (!header) return fail('token_introspection_invalid', 'signed answer header is not a JSON object');
    const typed = isExplicitType(header.typ, 'token-introspection+jwt');
    if (!typed) return fail('token_introspection_invalid', `typ ${JSON.stringify(header.typ)}`);
    // A string once it is in the allow-list; a value of another type is not in it.
    const alg = header.alg as string;
    if (!s.algorithms.includes(alg)) return fail('token_introspection_invalid', `alg ${JSON.stringify(alg)}`);
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    const keys = await s.issuer.keysFor(alg, kid);
    if (!keys.ok) return keys.reason === 'issuer_unavailable' ? unavailable(keys.detail) : fail('token_introspection_invalid', keys.detail);
    let payload: Record<string, unknown> | undefined;
    for (const key of keys.keys) {
      try {
        // Stryker disable next-line ObjectLiteral: equivalent, the header's alg is the only one this list holds and it passed the allow-list above
        const { payload: bytes } = await compactVerify(jwt, key, { algorithms: [alg] });
        payload = JSON.parse(new TextDecoder().decode(bytes));
        break;
      } catch {
        // try the next key with this kid
      }
    }
    if (!payload) return fail('token_introspection_invalid', 'signature does not verify with the issuer keys');
    if (payload.iss !== this.issuer) return fail('token_introspection_invalid', `iss ${JSON.stringify(payload.iss)}`);
    const aud = payload.aud;
    if (!(aud === this.options.clientId || (Array.isArray(aud) && aud.includes(this.options.clientId)))) {
      return fail('token_introspection_invalid', `aud ${JSON.stringify(aud)} is not ${this.options.clientId}`);
    }
    const now = s.now() / 1000;
    const iat = payload.iat;
    if (typeof iat !== 'number' || iat > now + s.clockToleranceSec || iat < now - SIGNED_ANSWER_MAX_AGE_SEC - s.clockToleranceSec) {
      return fail('token_introspection_invalid', `iat ${JSON.stringify(iat)} is not fresh`);
    }
    const answer = payload.token_introspection;
    if (typeof answer !== 'object' || answer === null || Array.isArray(answer))
      return fail('token_introspection_invalid', 'no token_introspection object');
    return { ok: true, answer: answer as Record<string, unknown> };
  }

  private async endpoint(): Promise<string> {
    if (this.options.endpoint) return this.options.endpoint;
    let meta: Record<string, unknown>;
    try {
      meta = await this.settings.issuer.metadata();
    } catch (e) {
      throw new ServiceUnavailable(`metadata: ${(e as Error).message}`);
    }
    const endpoint = meta.introspection_endpoint;
    if (typeof endpoint !== 'string') throw new ServiceUnavailable(`${this.issuer} metadata has no introspection_endpoint`);
    return endpoint;
  }

  /** RFC 7523 §3: a short-lived assertion for the introspection endpoint. */
  private async clientAssertion(auth: Extract<IntrospectionClientAuth, { method: 'private_key_jwt' }>): Promise<string> {
    const alg = auth.alg ?? 'ES256';
    this.assertionKey ??= importJWK(auth.privateKey, alg) as Promise<CryptoKey>;
    const now = Math.floor(this.settings.now() / 1000);
    const header: { alg: string; kid?: string } = { alg };
    // Stryker disable next-line ConditionalExpression: equivalent, a kid set to undefined is left out of the JSON header like an absent one
    if (auth.privateKey.kid) header.kid = auth.privateKey.kid;
    return (
      new SignJWT({})
        .setProtectedHeader(header)
        .setIssuer(this.options.clientId)
        .setSubject(this.options.clientId)
        // FAPI 2.0 §5.3.2.1 (clients, private_key_jwt) and draft-ietf-oauth-rfc7523bis: the issuer
        // identifier as the sole audience, a string; ASes that apply rfc7523bis refuse any other.
        .setAudience(this.issuer)
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .setJti(randomUUID())
        .sign(await this.assertionKey)
    );
  }
}

/**
 * At most `max` introspection calls at once; up to `maxQueued` more wait in arrival order, each
 * for at most the time it is given; anything beyond is refused at once.
 */
class CallLimit {
  private active = 0;
  /** Admission callbacks in arrival order (a Set keeps insertion order and deletes in O(1)). */
  private readonly waiting = new Set<() => void>();

  constructor(
    private readonly max: number,
    private readonly maxQueued: number,
  ) {}

  /** `true` when a slot is free now; otherwise a promise of whether one was given in time. */
  enter(waitMs: number): boolean | Promise<boolean> {
    if (this.active < this.max) {
      this.active++;
      return true;
    }
    if (this.waiting.size >= this.maxQueued) return false;
    return new Promise((resolve) => {
      const admit = () => {
        clearTimeout(timer);
        this.waiting.delete(admit);
        this.active++;
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiting.delete(admit);
        resolve(false);
      }, waitMs);
      this.waiting.add(admit);
    });
  }

  leave(): void {
    this.active--;
    const next = this.waiting.values().next();
    if (!next.done) next.value();
  }

  describe(): string {
    return `${this.max} (+${this.maxQueued} waiting)`;
  }
}

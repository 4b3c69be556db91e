/**
 * One trusted issuer's verification keys: RFC 8414 / OpenID discovery, JWKS fetching and
 * caching, and key selection by `kid` together with `kty`/`crv`/`use`/`alg` (FAPI 2.0 §5.4.3).
 *
 * Cache behaviour, chosen so that a bank can run on it:
 * - keys are fetched once and shared by concurrent requests (one request in flight);
 * - after `maxAgeMs` they are refreshed in the background while the old ones keep working;
 * - a failed refresh keeps the old keys (the issuer being down does not take the API down);
 * - an unknown `kid` triggers at most one unscheduled fetch per `cooldownMs`;
 * - with no keys at all the result is `unavailable` (503), never an accepted request.
 */
import { type CryptoKey, importJWK, type JWK } from 'jose';
import { MIN_RSA_MODULUS_BITS } from '../common/rsa.js';
import { exchange, type Outbound, ServiceUnavailable } from './http.js';

/** A JSON Web Key Set (RFC 7517 §5). */
export interface JSONWebKeySet {
  keys: JWK[];
}

/** One trusted authorization server. */
export interface IssuerConfig {
  /** The issuer identifier, compared exactly with the token's `iss` (RFC 9068 §4 #3). */
  issuer: string;
  /**
   * Where its keys are published. When neither this nor `jwks` is set, it is discovered
   * from RFC 8414 metadata (`/.well-known/oauth-authorization-server`), falling back to
   * OpenID Connect Discovery (`/.well-known/openid-configuration`).
   */
  jwksUri?: string;
  /** A static key set; nothing is fetched. */
  jwks?: JSONWebKeySet;
}

/** JWKS cache tuning, shared by all issuers of a guard. */
export interface KeySetOptions {
  /** Age after which keys are refreshed in the background. @default 600000 (10 min) */
  maxAgeMs?: number;
  /**
   * Minimum time between unscheduled fetches (unknown `kid`, retry after a failure), so a
   * flood of tokens with made-up `kid`s costs the issuer at most one request per period.
   * @default 30000
   */
  cooldownMs?: number;
  /** Time allowed for one discovery or JWKS request. @default 5000 */
  timeoutMs?: number;
}

export type KeyLookup =
  | { ok: true; keys: CryptoKey[]; generation: number }
  | { ok: false; reason: 'token_key_unknown' | 'issuer_unavailable'; detail: string; retryAfterMs?: number };

/** JWS `alg` → the key type and curve it needs (RFC 7518 §3, RFC 8037 §3.1). */
const KEY_FOR_ALG: Readonly<Record<string, { kty: string; crv?: string }>> = {
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519' },
};

/** Bits of an RSA modulus given as base64url (leading zero octets do not count). */
export function rsaModulusBits(n: string): number {
  const bytes = Buffer.from(n, 'base64url');
  const first = bytes.findIndex((byte) => byte !== 0);
  if (first < 0) return 0;
  return (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes[first] as number));
}

/** True when a JWK may verify a JWS with this `alg` (FAPI 2.0 §5.4.3: match every member, not just `kid`). */
export function keyMatches(jwk: JWK, alg: string, kid: string | undefined): boolean {
  const need = KEY_FOR_ALG[alg];
  if (!need) return false;
  if (kid !== undefined && jwk.kid !== kid) return false;
  if (jwk.kty !== need.kty) return false;
  if (need.crv && jwk.crv !== need.crv) return false;
  if (jwk.use !== undefined && jwk.use !== 'sig') return false;
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return false;
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  if (jwk.kty === 'RSA' && (typeof jwk.n !== 'string' || rsaModulusBits(jwk.n) < MIN_RSA_MODULUS_BITS)) return false;
  return true;
}

/** Imported keys, per JWK object and algorithm, so a key is imported once per fetch. */
const imported = new WeakMap<JWK, Map<string, Promise<CryptoKey>>>();

export function importVerificationKey(jwk: JWK, alg: string): Promise<CryptoKey> {
  let byAlg = imported.get(jwk);
  if (!byAlg) {
    byAlg = new Map();
    imported.set(jwk, byAlg);
  }
  let key = byAlg.get(alg);
  if (!key) {
    // Only public members go in: a JWKS that leaks `d` must not turn into a signing key.
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, ...pub } = jwk;
    key = importJWK({ ...pub, ext: false }, alg) as Promise<CryptoKey>;
    key.catch(() => byAlg.delete(alg));
    byAlg.set(alg, key);
  }
  return key;
}

const MAX_DOCUMENT_BYTES = 512 * 1024;

export class FetchError extends ServiceUnavailable {}

/**
 * GETs a JSON document (metadata, a JWK set) through the one outbound path: URL checked before
 * anything is sent, at most 512 KiB read, a deadline for the whole exchange.
 */
export async function fetchJson(url: string, timeoutMs: number, accept: string, what: string, outbound?: Outbound): Promise<unknown> {
  const answer = await exchange(url, { method: 'GET', headers: { accept }, timeoutMs, maxBytes: MAX_DOCUMENT_BYTES, what, outbound });
  if (answer.status !== 200) throw new FetchError(`GET ${what} ${url} answered ${answer.status}`);
  try {
    return JSON.parse(answer.body);
  } catch {
    throw new FetchError(`GET ${what} ${url}: not JSON`);
  }
}

/** A parsed JSON document that is a JWK set: `keys`, an array of objects that each name a `kty`. */
function isKeySet(value: unknown): value is JSONWebKeySet {
  // JSON.parse never answers undefined; null (and null members) end the chain.
  const keys = (value as { keys?: unknown } | null)?.keys;
  return Array.isArray(keys) && keys.every((k) => typeof (k as JWK | null)?.kty === 'string');
}

/** RFC 8414 §3.1: the well-known segment goes between host and path. */
export function discoveryUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/$/, '');
  return [`${url.origin}/.well-known/oauth-authorization-server${path}`, `${url.origin}${path}/.well-known/openid-configuration`];
}

export class IssuerKeys {
  readonly issuer: string;
  private jwksUri: string | undefined;
  private jwks: JSONWebKeySet | undefined;
  /** The set as last fetched, serialized: a refresh that brings the same set changes nothing. */
  private jwksText: string | undefined;
  private readonly isStatic: boolean;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private lastAttempt = Number.NEGATIVE_INFINITY;
  private lastError: string | undefined;
  private inflight: Promise<void> | undefined;
  /** Changes whenever the key set changes; cached verifications from an older set are redone. */
  generation = 0;
  /** Fetches made (discovery + JWKS), for operators and tests. */
  fetches = 0;
  private readonly maxAgeMs: number;
  private readonly cooldownMs: number;
  private readonly timeoutMs: number;

  constructor(
    config: IssuerConfig,
    options: KeySetOptions,
    private readonly now: () => number,
    /** Told the outcome of every fetch: the reason it failed, or `undefined` once it succeeds. */
    private readonly onFetched: (failure: string | undefined, keptOldKeys: boolean) => void = () => undefined,
    /** How fetches leave the process (`GuardOptions.outbound`). */
    readonly outbound?: Outbound,
  ) {
    this.issuer = config.issuer;
    this.jwksUri = config.jwksUri;
    this.jwks = config.jwks;
    this.isStatic = config.jwks !== undefined;
    this.maxAgeMs = options.maxAgeMs ?? 600_000;
    this.cooldownMs = options.cooldownMs ?? 30_000;
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  /** Verification keys for a JWS header, fetching or refreshing the set as the rules above say. */
  async keysFor(alg: string, kid: string | undefined): Promise<KeyLookup> {
    const now = this.now();
    if (!this.isStatic) {
      if (!this.jwks) {
        if (now - this.lastAttempt < this.cooldownMs && !this.inflight) return this.unavailable(now);
        await this.refresh();
        if (!this.jwks) return this.unavailable(this.now());
      } else {
        this.refreshIfStale(now);
      }
    }
    let candidates = this.select(alg, kid);
    // A kid the set does not serve (rotation): a key selected for a kid carries it (keyMatches),
    // so a set that knows the kid has nothing more to give, whichever alg was asked.
    if (!this.isStatic && kid !== undefined && !this.knowsKid(kid)) {
      if (this.inflight || this.now() - this.lastAttempt >= this.cooldownMs) {
        await this.refresh();
        if (this.lastError !== undefined) return this.unavailable(this.now());
        candidates = this.select(alg, kid);
      }
    }
    if (candidates.length === 0) {
      return { ok: false, reason: 'token_key_unknown', detail: `no ${alg} key${kid ? ` with kid "${kid}"` : ''} at ${this.issuer}` };
    }
    const generation = this.generation;
    try {
      const keys = await Promise.all(candidates.map((jwk) => importVerificationKey(jwk, alg)));
      return { ok: true, keys, generation };
    } catch (e) {
      return { ok: false, reason: 'token_key_unknown', detail: `key import failed: ${(e as Error).message}` };
    }
  }

  /**
   * Stale-while-revalidate: once the keys are older than `maxAgeMs`, a refresh starts in the
   * background and the current request goes on with the keys it has. Also called for tokens
   * whose verification is cached, so a rotated-out key stops working for them too.
   */
  refreshIfStale(now = this.now()): void {
    if (this.isStatic || !this.jwks) return;
    if (now - this.fetchedAt > this.maxAgeMs && now - this.lastAttempt >= this.cooldownMs) void this.refresh();
  }

  // Both only once a set is loaded (keysFor returns before them when none is).
  private knowsKid(kid: string): boolean {
    return (this.jwks as JSONWebKeySet).keys.some((k) => k.kid === kid);
  }

  private select(alg: string, kid: string | undefined): JWK[] {
    return (this.jwks as JSONWebKeySet).keys.filter((k) => keyMatches(k, alg, kid));
  }

  private unavailable(now: number): KeyLookup {
    return {
      ok: false,
      reason: 'issuer_unavailable',
      // Stryker disable next-line StringLiteral: unreachable fallback, no set without a fetch that failed and said why (lastError)
      detail: `no keys for ${this.issuer}: ${this.lastError ?? 'not fetched yet'}`,
      retryAfterMs: Math.max(0, this.lastAttempt + this.cooldownMs - now),
    };
  }

  /**
   * Resolves once the keys are loaded (discovery and JWK set; at once for a static set), or
   * rejects with the reason they are not. Starts a fetch unless one failed less than
   * `cooldownMs` ago (then it rejects with that failure), so a readiness probe costs the issuer
   * no more than requests do. Bounded by the fetch timeouts: two discovery locations and the
   * JWK set, `timeoutMs` each.
   */
  async ready(): Promise<void> {
    if (this.jwks) return;
    if (this.inflight || this.now() - this.lastAttempt >= this.cooldownMs) await this.refresh();
    // Stryker disable next-line StringLiteral: unreachable fallback, as in unavailable()
    if (!this.jwks) throw new Error(`issuer ${this.issuer}: ${this.lastError ?? 'keys not fetched yet'}`);
  }

  /** One fetch at a time; concurrent callers share it. Never rejects. */
  refresh(): Promise<void> {
    if (!this.inflight) {
      this.lastAttempt = this.now();
      this.inflight = this.load()
        .then(
          () => {
            if (this.lastError !== undefined) this.onFetched(undefined, false);
            this.lastError = undefined;
          },
          (e: Error) => {
            this.lastError = e.message;
            this.onFetched(e.message, this.jwks !== undefined);
          },
        )
        .finally(() => {
          this.inflight = undefined;
        });
    }
    return this.inflight;
  }

  private async load(): Promise<void> {
    const jwksUri = this.jwksUri ?? (await this.discover());
    this.fetches++;
    const body = await fetchJson(jwksUri, this.timeoutMs, 'application/jwk-set+json, application/json', 'jwks_uri', this.outbound);
    if (!isKeySet(body)) throw new FetchError(`${jwksUri} is not a JWK set`);
    const text = JSON.stringify(body);
    if (text !== this.jwksText) {
      this.jwks = body;
      this.jwksText = text;
      this.generation++;
    }
    this.fetchedAt = this.now();
  }

  private async discover(): Promise<string> {
    const meta = await this.metadata();
    const jwksUri = meta.jwks_uri;
    if (typeof jwksUri !== 'string') throw new FetchError(`${this.issuer} metadata has no jwks_uri`);
    this.jwksUri = jwksUri;
    return jwksUri;
  }

  private metadataDocument: Promise<Record<string, unknown>> | undefined;

  /**
   * The issuer's RFC 8414 (or OpenID) metadata, fetched once; a failed fetch is retried on the
   * next call. The document must name exactly this issuer (RFC 8414 §3.3).
   */
  metadata(): Promise<Record<string, unknown>> {
    if (!this.metadataDocument) {
      this.metadataDocument = this.fetchMetadata();
      this.metadataDocument.catch(() => {
        this.metadataDocument = undefined;
      });
    }
    return this.metadataDocument;
  }

  private async fetchMetadata(): Promise<Record<string, unknown>> {
    // Every location's failure is kept: the reason at the RFC 8414 location is the one an
    // operator needs even when the OpenID fallback then answers 404.
    const failures: string[] = [];
    for (const url of discoveryUrls(this.issuer)) {
      try {
        this.fetches++;
        const meta = (await fetchJson(url, this.timeoutMs, 'application/json', 'issuer metadata', this.outbound)) as Record<
          string,
          unknown
        >;
        if (meta?.issuer !== this.issuer) {
          throw new FetchError(`${url} names issuer ${JSON.stringify(meta?.issuer)}, not ${this.issuer}`);
        }
        return meta;
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    throw new FetchError(failures.join('; '));
  }
}

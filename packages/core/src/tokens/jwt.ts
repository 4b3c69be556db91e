/**
 * RFC 9068 JWT access-token verification, with the JWT BCP (RFC 8725) rules:
 * explicit typing, an algorithm allow-list, the issuer chosen before any key is looked up
 * (each issuer verified only with its own keys), header `jku`/`x5u`/`jwk` never followed.
 *
 * The signature of a token is verified once: a successful verification is cached under the
 * SHA-256 of the token (never the token itself) until the token expires or the issuer's key set
 * changes. Every time-dependent and route-dependent check runs again on every request.
 */
import { type CryptoKey, compactVerify, errors } from 'jose';
import { LRUCache } from 'lru-cache';
import { sha256base64url } from '../common/hash.js';
import { decodeJsonSegment, isExplicitType } from '../common/jws.js';
import type { GuardErrorReason } from '../errors.js';
import type { IssuerKeys } from './issuer.js';
import { otherJwtKind } from './token-kind.js';

/** The claims this library reads; any other claim is kept as is. */
export interface AccessTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  nbf?: number;
  scope?: string;
  cnf?: { jkt?: string; 'x5t#S256'?: string; [member: string]: unknown };
  acr?: string;
  auth_time?: number;
  [claim: string]: unknown;
}

export interface VerifiedAccessToken {
  /** The protected header (`alg`, `kid`, `typ`) of a JWT; absent for an introspected token. */
  header?: { alg: string; kid?: string; typ: string };
  /** How the token was verified: locally (RFC 9068) or by the authorization server (RFC 7662). */
  source: 'jwt' | 'introspection';
  claims: AccessTokenClaims;
  /** base64url SHA-256 of the token: a safe handle for logs and caches (RFC 9700 §4.9.3). */
  hash: string;
}

export type TokenResult =
  | { ok: true; token: VerifiedAccessToken }
  | { ok: false; reason: GuardErrorReason; detail: string; retryAfterMs?: number };

export interface JwtVerifierSettings {
  issuers: ReadonlyMap<string, IssuerKeys>;
  audiences: readonly string[];
  algorithms: readonly string[];
  clockToleranceSec: number;
  now: () => number;
  cacheMax: number;
  /** Loosenings for non-RFC 9068 issuers (`GuardOptions.compat`). */
  compat?: { acceptJwtTyp?: boolean; acceptMissingTyp?: boolean; clientIdClaim?: string; optionalClaims?: readonly string[] };
}

/** RFC 9068 §2.2: claims every access token carries. */
const REQUIRED_CLAIMS = ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'] as const;
/** Tokens larger than this are refused before any parsing. */
const MAX_TOKEN_LENGTH = 16 * 1024;

type Fail = Extract<TokenResult, { ok: false }>;
const fail = (reason: GuardErrorReason, detail: string): Fail => ({ ok: false, reason, detail });

/** base64url SHA-256 of a token: the only form in which tokens are kept (RFC 9700 §4.9.3). */
export function tokenHash(token: string): string {
  return sha256base64url(token);
}

/** True when the token is a JWS whose (unverified) `iss` is one of `issuers`: a candidate for local checks. */
export function isJwtFrom(token: string, issuers: ReadonlyMap<string, unknown>): boolean {
  const parts = token.split('.');
  if (parts.length !== 3) return false;
  const payload = decodeJsonSegment(parts[1] as string);
  // The map is keyed by strings: an iss of another type (or none) is in it as little as another issuer.
  return issuers.has(payload?.iss as string);
}

/** RFC 9068 §4 #1: `at+jwt`, media-type comparison is case-insensitive, `application/` optional. */
export function isAccessTokenTyp(typ: unknown): boolean {
  return isExplicitType(typ, 'at+jwt');
}

interface CachedVerification {
  token: VerifiedAccessToken;
  generation: number;
}

export class JwtAccessTokenVerifier {
  private readonly cache: LRUCache<string, CachedVerification> | undefined;

  constructor(private readonly settings: JwtVerifierSettings) {
    this.cache = settings.cacheMax > 0 ? new LRUCache({ max: settings.cacheMax }) : undefined;
  }

  /** Verifies a JWT access token: synchronously when its verification is cached, else with the issuer's keys. */
  verify(jwt: string): TokenResult | Promise<TokenResult> {
    const s = this.settings;
    if (jwt.length > MAX_TOKEN_LENGTH) return fail('token_malformed', `token of ${jwt.length} characters`);
    const hash = tokenHash(jwt);
    const cached = this.cache?.get(hash);
    if (cached) {
      const issuer = s.issuers.get(cached.token.claims.iss);
      issuer?.refreshIfStale();
      // Only tokens whose shape passed are cached: the time checks remain.
      if (cached.generation === issuer?.generation) return this.checkTime(cached.token);
    }
    return this.verifyUncached(jwt, hash);
  }

  private async verifyUncached(jwt: string, hash: string): Promise<TokenResult> {
    const s = this.settings;

    const parts = jwt.split('.');
    if (parts.length !== 3) return fail('token_malformed', `${parts.length} segments, a JWS has 3`);
    const header = decodeJsonSegment(parts[0] as string);
    const payload = decodeJsonSegment(parts[1] as string);
    if (!header || !payload) return fail('token_malformed', 'header or payload is not a JSON object');
    // RFC 8725 §3.11/§3.12: explicit typing keeps ID tokens, DPoP proofs, logout tokens out.
    const compat = s.compat ?? {};
    const typAccepted =
      isAccessTokenTyp(header.typ) ||
      (compat.acceptJwtTyp === true && typeof header.typ === 'string' && header.typ.toLowerCase() === 'jwt') ||
      (compat.acceptMissingTyp === true && header.typ === undefined);
    if (!typAccepted) return fail('token_type', `typ ${JSON.stringify(header.typ)}`);
    // Without at+jwt the token does not say it is an access token: refuse the marks of other kinds.
    const other = isAccessTokenTyp(header.typ) ? undefined : otherJwtKind(payload, s.audiences);
    if (other) return fail('token_type', other);
    // A string once it is in the allow-list; a value of another type is not in it.
    const alg = header.alg as string;
    if (!s.algorithms.includes(alg)) {
      return fail('token_algorithm', `alg ${JSON.stringify(alg)} not in ${s.algorithms.join(' ')}`);
    }
    const kid = header.kid;
    if (kid !== undefined && typeof kid !== 'string') return fail('token_malformed', 'kid is not a string');
    // RFC 8725 §3.8: the issuer picks the keys; a token can never pick an issuer's keys for another.
    const iss = payload.iss;
    const issuer = s.issuers.get(iss as string);
    if (!issuer) return fail('token_issuer', `iss ${JSON.stringify(iss)} is not a trusted issuer`);

    const lookup = await issuer.keysFor(alg, kid);
    if (!lookup.ok) return lookup;
    const verified = await verifyWithAny(jwt, lookup.keys, alg);
    if (!verified.ok) return verified;

    if (payload.client_id === undefined && compat.clientIdClaim && typeof payload[compat.clientIdClaim] === 'string') {
      payload.client_id = payload[compat.clientIdClaim];
    }
    // Frozen, claims and all: the same object is handed to every request that presents this token.
    const token: VerifiedAccessToken = deepFreeze({
      header: { alg, typ: String(header.typ), ...(kid === undefined ? {} : { kid }) },
      claims: payload as AccessTokenClaims,
      hash,
      source: 'jwt',
    });
    const checked = this.checkShape(payload) ?? this.checkTime(token);
    if (checked.ok && this.cache) {
      // Kept until expiry at most; a changed key set (rotation, revoked key) forces re-verification.
      const ttl = Math.max(1, (token.claims.exp + s.clockToleranceSec) * 1000 - s.now());
      this.cache.set(hash, { token, generation: lookup.generation }, { ttl });
    }
    return checked;
  }

  /**
   * The time checks of RFC 9068 §4 and RFC 7519 §4.1, on every request. The other claim checks
   * ({@link checkShape}) depend only on the (frozen) token and the configuration: a cached token
   * passed them when it was verified.
   */
  private checkTime(token: VerifiedAccessToken): TokenResult {
    const s = this.settings;
    const c = token.claims as Record<string, unknown>;
    const now = s.now() / 1000;
    const tol = s.clockToleranceSec;
    if (now >= (c.exp as number) + tol) return fail('token_expired', `exp ${c.exp} is past`);
    // nbf and iat are finite numbers (checkShape) or absent, and an absent one compares false (undefined > n).
    if ((c.nbf as number) > now + tol) return fail('token_not_yet_valid', `nbf ${c.nbf} is in the future`);
    if ((c.iat as number) > now + tol) return fail('token_issued_in_future', `iat ${c.iat} is in the future`);
    return { ok: true, token };
  }

  /** Presence, types and audience (RFC 9068 §2.2, §4 #3); `undefined` when they pass. */
  private checkShape(c: Record<string, unknown>): Fail | undefined {
    const s = this.settings;
    // Stryker disable next-line ArrayDeclaration: equivalent, a list of made-up claim names lets no required claim be absent either
    const optional = s.compat?.optionalClaims ?? [];
    for (const name of REQUIRED_CLAIMS) {
      if (c[name] === undefined && !optional.includes(name)) return fail('token_claim_missing', `no ${name} claim`);
    }
    for (const name of ['sub', 'client_id', 'jti'] as const) {
      if (c[name] !== undefined && typeof c[name] !== 'string') return fail('token_claim_invalid', `${name} is not a string`);
    }
    for (const name of ['exp', 'iat', 'nbf'] as const) {
      if (c[name] !== undefined && !Number.isFinite(c[name])) return fail('token_claim_invalid', `${name} is not a number`);
    }
    if (c.scope !== undefined && typeof c.scope !== 'string') return fail('token_claim_invalid', 'scope is not a string');
    if (c.cnf !== undefined && (typeof c.cnf !== 'object' || c.cnf === null || Array.isArray(c.cnf))) {
      return fail('token_claim_invalid', 'cnf is not an object');
    }
    const aud = c.aud;
    const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
    if (!auds?.every((a) => typeof a === 'string')) return fail('token_claim_invalid', 'aud is not a string or array');
    if (!auds.some((a) => s.audiences.includes(a))) {
      return fail('token_audience', `aud ${JSON.stringify(aud)} does not contain ${s.audiences.join(' or ')}`);
    }
    return undefined;
  }
}

/** Verifies the JWS with each candidate key (same `kid` may be on several keys), `alg` pinned. */
async function verifyWithAny(jwt: string, keys: readonly CryptoKey[], alg: string): Promise<TokenResult | { ok: true }> {
  for (const key of keys) {
    try {
      // Stryker disable next-line ObjectLiteral: equivalent today, alg is the header's own and the key was imported for it; pinned so that no caller can widen it
      await compactVerify(jwt, key, { algorithms: [alg] });
      return { ok: true };
    } catch (e) {
      if (e instanceof errors.JWSSignatureVerificationFailed) continue;
      if (e instanceof errors.JOSEError) return fail('token_malformed', `${e.code}: ${e.message}`);
      return fail('token_signature', (e as Error).message);
    }
  }
  return fail('token_signature', 'signature does not verify with the issuer keys');
}

/** Freezes `value` and everything reachable from it. */
export function deepFreeze<T>(value: T): T {
  // Iterative: a deeply nested claim must not exhaust the stack.
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    // Primitives and null count as frozen (ES2015 Object.isFrozen): only unfrozen objects and arrays pass.
    if (!Object.isFrozen(item)) {
      Object.freeze(item);
      for (const member of Object.values(item as object)) pending.push(member);
    }
  }
  return value;
}

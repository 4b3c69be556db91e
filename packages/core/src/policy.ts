/**
 * Per-route requirements: scopes (all-of and any-of), claim checks and how the token must be
 * bound (FAPI 2.0 §5.3.4 #4–5; RFC 6750 §3.1; RFC 9068 §4 and §2.2.3).
 */
import { isDeepStrictEqual } from 'node:util';
import type { ClientCertificate } from './binding/mtls.js';
import { checkRoutePolicy } from './config/check.js';
import type { AuthorizationDetailRequirement, ClaimCheck, RoutePolicy } from './config/route-policy.js';
import type { GuardErrorReason } from './errors.js';
import { type CompiledIdempotency, compileIdempotency } from './idempotency/policy.js';
import type { ProfileName } from './regimes/profiles.js';
import type { AccessTokenClaims } from './tokens/jwt.js';

export type { AuthorizationDetailRequirement, ClaimCheck, RoutePolicy };

/** A policy checked once at start-up. */
export interface CompiledPolicy {
  readonly scopes: readonly string[];
  readonly anyScopes: readonly string[];
  readonly claims: readonly (readonly [string, ClaimCheck])[];
  readonly allowBearer: boolean;
  readonly dpopNonce: boolean | undefined;
  readonly clientCertificate: ((certificate: ClientCertificate) => boolean) | undefined;
  readonly acrValues: readonly string[];
  readonly maxAuthAgeSec: number | undefined;
  readonly authorizationDetails: readonly AuthorizationDetailRequirement[];
  readonly signedRequest: 'required' | 'optional' | undefined;
  readonly signResponse: boolean;
  readonly idempotency: CompiledIdempotency | undefined;
  /** `undefined`: every profile of the guard. */
  readonly profiles: readonly ProfileName[] | undefined;
  readonly jwsSignature: { readonly request?: 'required' | 'optional'; readonly response?: boolean } | undefined;
  readonly jwtBody: { readonly request?: 'required'; readonly response?: boolean } | undefined;
  /** The body bytes are needed (FAPI 2.0 or UK Open Banking request signatures). */
  readonly readsBody: boolean;
}

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export function compilePolicy(policy: RoutePolicy = {}, defaults: { allowBearer?: boolean } = {}): CompiledPolicy {
  checkRoutePolicy(policy);
  const scopes = [...(policy.scopes ?? [])];
  const anyScopes = [...(policy.anyScopes ?? [])];
  for (const scope of [...scopes, ...anyScopes]) {
    if (!SCOPE_TOKEN.test(scope)) {
      throw new TypeError(`fapi-guard: scope ${JSON.stringify(scope)} is not an RFC 6749 scope-token (no spaces or quotes)`);
    }
  }
  // Shapes (known keys, types, no empty requirement) are checked above; meanings below.
  const claims = Object.entries(policy.claims ?? {});
  const acrValues = [...(policy.acrValues ?? [])];
  if (acrValues.some((v) => !SCOPE_TOKEN.test(v))) throw new TypeError('fapi-guard: acrValues must be strings without spaces or quotes');
  const maxAge = policy.maxAuthAgeSec;
  if (maxAge !== undefined && !(Number.isInteger(maxAge) && maxAge >= 0))
    throw new TypeError('fapi-guard: maxAuthAgeSec must be a non-negative integer (RFC 9470 §3)');
  const details = [...(policy.authorizationDetails ?? [])];
  if (details.some((d) => typeof d.type !== 'string')) {
    throw new TypeError('fapi-guard: each authorizationDetails entry needs a string type (RFC 9396 §2)');
  }
  return Object.freeze({
    signedRequest: policy.signedRequest,
    signResponse: policy.signResponse === true,
    idempotency: policy.idempotency === undefined ? undefined : compileIdempotency(policy.idempotency),
    acrValues,
    maxAuthAgeSec: maxAge,
    authorizationDetails: details,
    scopes,
    anyScopes,
    claims,
    allowBearer: policy.allowBearer ?? defaults.allowBearer === true,
    dpopNonce: policy.dpopNonce,
    clientCertificate: policy.clientCertificate,
    profiles: policy.profiles === undefined ? undefined : Object.freeze([...policy.profiles]),
    jwsSignature: policy.jwsSignature === undefined ? undefined : Object.freeze({ ...policy.jwsSignature }),
    jwtBody: policy.jwtBody === undefined ? undefined : Object.freeze({ ...policy.jwtBody }),
    readsBody: policy.signedRequest !== undefined || policy.jwsSignature?.request !== undefined || policy.jwtBody?.request !== undefined,
  });
}

/** Granted scopes: the space-separated `scope` claim (RFC 9068 §2.2.3, RFC 6749 §3.3). */
export function grantedScopes(claims: Readonly<AccessTokenClaims>): readonly string[] {
  // Verified claims are frozen and shared by every request with the same token: split once.
  const known = scopeLists.get(claims);
  // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the same list is split again
  if (known) return known;
  const list = Object.freeze(typeof claims.scope === 'string' ? claims.scope.split(' ').filter(Boolean) : []);
  // Stryker disable next-line ConditionalExpression: equivalent, decides only whether the list is remembered (verified claims never change)
  if (Object.isFrozen(claims)) scopeLists.set(claims, list);
  return list;
}

const scopeLists = new WeakMap<object, readonly string[]>();

export type PolicyResult =
  | { ok: true }
  | { ok: false; reason: GuardErrorReason; detail: string; scope?: string; acrValues?: string; maxAge?: number };

/** True when the token's entry satisfies the required one: same type, every member equal or contained. */
function detailMatches(required: AuthorizationDetailRequirement, entry: unknown): boolean {
  // A primitive has none of the members (every requirement names a `type`); only these would throw.
  if (entry === null || entry === undefined) return false;
  const e = entry as Record<string, unknown>;
  return Object.entries(required).every(([name, want]) => {
    const have = e[name];
    if (isDeepStrictEqual(have, want)) return true;
    // A required list is satisfied by a granted list that contains all of it.
    return Array.isArray(want) && Array.isArray(have) && want.every((w) => have.some((h) => isDeepStrictEqual(h, w)));
  });
}

/**
 * RFC 9470 §3: is the user authentication behind the token strong and recent enough? Checked
 * only for a valid token (STEP-04), before scopes; a short scope is named in the same challenge.
 */
function checkStepUp(policy: CompiledPolicy, claims: Readonly<AccessTokenClaims>, nowSec: number, toleranceSec: number): PolicyResult {
  // acrValues holds strings only: an acr of another type is in none of them.
  const acrOk = policy.acrValues.length === 0 || policy.acrValues.includes(claims.acr as string);
  const age = typeof claims.auth_time === 'number' ? nowSec - claims.auth_time : Number.POSITIVE_INFINITY;
  // An auth_time in the future (beyond the clock tolerance) is no recent authentication: it would
  // pass any max age for as long as it stays ahead (RFC 9470 §3, OIDC Core §2 auth_time).
  const future = age < -toleranceSec;
  const ageOk = policy.maxAuthAgeSec === undefined || (age <= policy.maxAuthAgeSec && !future);
  if (acrOk && ageOk) return { ok: true };
  return {
    ok: false,
    reason: 'user_authentication_insufficient',
    detail: acrOk
      ? `auth_time ${claims.auth_time ?? 'absent'} is ${future ? 'in the future' : `older than ${policy.maxAuthAgeSec} s`}`
      : `acr ${JSON.stringify(claims.acr)}`,
    ...(acrOk ? {} : { acrValues: policy.acrValues.join(' ') }),
    ...(ageOk ? {} : { maxAge: policy.maxAuthAgeSec }),
  };
}

/** A claim check given as a function passes only on `true`; one that throws does not pass. */
function functionPasses(
  check: Extract<ClaimCheck, (...args: never[]) => unknown>,
  value: unknown,
  claims: Readonly<AccessTokenClaims>,
): boolean {
  try {
    return check(value, claims) === true;
  } catch {
    // the application's check failed: fail closed
  }
  return false;
}

function claimPasses(check: ClaimCheck, value: unknown, claims: Readonly<AccessTokenClaims>): boolean {
  if (typeof check === 'function') return functionPasses(check, value, claims);
  if ('equals' in check) return isDeepStrictEqual(value, check.equals);
  if (Array.isArray(value)) return value.includes(check.includes);
  // A number or boolean `includes` is no word of a string: split words never equal it.
  return typeof value === 'string' && value.split(' ').includes(check.includes as string);
}

/** Scope and claim rules of one route against a valid token. */
export function checkPolicy(
  policy: CompiledPolicy,
  claims: Readonly<AccessTokenClaims>,
  granted: readonly string[],
  nowSec: number = Date.now() / 1000,
  /** Seconds an `auth_time` may lie ahead of `nowSec` (the guard's `clockToleranceSec`). @default 0 */
  clockToleranceSec = 0,
): PolicyResult {
  const missing = policy.scopes.filter((s) => !granted.includes(s));
  const stepUp = checkStepUp(policy, claims, nowSec, clockToleranceSec);
  if (!stepUp.ok) return missing.length > 0 ? { ...stepUp, scope: policy.scopes.join(' ') } : stepUp;
  if (missing.length > 0) {
    return { ok: false, reason: 'scope_insufficient', detail: `missing scope ${missing.join(' ')}`, scope: policy.scopes.join(' ') };
  }
  if (policy.anyScopes.length > 0 && !policy.anyScopes.some((s) => granted.includes(s))) {
    return {
      ok: false,
      reason: 'scope_insufficient',
      detail: `none of ${policy.anyScopes.join(' ')}`,
      scope: policy.anyScopes.join(' '),
    };
  }
  // RFC 9396: each required entry needs a matching granted one (no requirement: nothing to find).
  const details = claims.authorization_details;
  const unmet = policy.authorizationDetails.find(
    (required) => !Array.isArray(details) || !details.some((entry: unknown) => detailMatches(required, entry)),
  );
  if (unmet) {
    return {
      ok: false,
      reason: 'authorization_details_insufficient',
      detail: `no authorization_details entry of type ${unmet.type} matches`,
    };
  }
  for (const [name, check] of policy.claims) {
    if (!claimPasses(check, claims[name], claims)) return { ok: false, reason: 'claim_check_failed', detail: `claim ${name} check failed` };
  }
  return { ok: true };
}

/**
 * Per-route requirements: scopes (all-of and any-of), claim checks and how the token must be
 * bound (FAPI 2.0 §5.3.4 #4–5; RFC 6750 §3.1; RFC 9068 §4 and §2.2.3).
 */
import { isDeepStrictEqual } from 'node:util';
import type { ClientCertificate } from './binding/mtls.js';
import type { GuardErrorReason } from './errors.js';
import type { AccessTokenClaims } from './tokens/jwt.js';

/** A check on one claim of the access token. */
export type ClaimCheck =
  /** The claim equals this value (deep equality for arrays and objects). */
  | { equals: unknown }
  /** The claim is an array containing this value, or a space-separated string containing this word. */
  | { includes: string | number | boolean }
  /** Any other rule; return `true` to allow. Exceptions count as a refusal. */
  | ((value: unknown, claims: Readonly<AccessTokenClaims>) => boolean);

/** What one route requires. */
export interface RoutePolicy {
  /** Scopes that must all be granted (`scope` claim, RFC 9068 §2.2.3). @default [] */
  scopes?: readonly string[];
  /** Scopes of which at least one must be granted. @default [] (no any-of rule) */
  anyScopes?: readonly string[];
  /** Claim checks that must all pass, by claim name. @default {} */
  claims?: Readonly<Record<string, ClaimCheck>>;
  /**
   * Accept tokens that carry no sender constraint (`cnf`). FAPI 2.0 §5.3.4 #5 forbids this;
   * turn it on only for routes outside the FAPI profile.
   * @default false
   */
  allowBearer?: boolean;
  /**
   * Require a server-provided DPoP nonce on this route (RFC 9449 §9).
   * @default the guard's `dpop.nonce.required` (false)
   */
  dpopNonce?: boolean;
  /**
   * Decides whether the client certificate of a certificate-bound token is acceptable here
   * (e.g. its issuer or subject). `false` or an exception → 403 (RFC 9440 §2.4); a certificate
   * that does not match the token stays 401 (RFC 8705 §3).
   * @default undefined (any certificate that matches the token)
   */
  clientCertificate?: (certificate: ClientCertificate) => boolean;
}

/** A policy checked once at start-up. */
export interface CompiledPolicy {
  readonly scopes: readonly string[];
  readonly anyScopes: readonly string[];
  readonly claims: readonly (readonly [string, ClaimCheck])[];
  readonly allowBearer: boolean;
  readonly dpopNonce: boolean | undefined;
  readonly clientCertificate: ((certificate: ClientCertificate) => boolean) | undefined;
}

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export function compilePolicy(policy: RoutePolicy = {}): CompiledPolicy {
  const scopes = [...(policy.scopes ?? [])];
  const anyScopes = [...(policy.anyScopes ?? [])];
  for (const scope of [...scopes, ...anyScopes]) {
    if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope)) {
      throw new TypeError(`fapi-guard: scope ${JSON.stringify(scope)} is not an RFC 6749 scope-token (no spaces or quotes)`);
    }
  }
  const claims = Object.entries(policy.claims ?? {});
  for (const [name, check] of claims) {
    const valid =
      typeof check === 'function' || (typeof check === 'object' && check !== null && ('equals' in check || 'includes' in check));
    if (!valid) throw new TypeError(`fapi-guard: claim check for "${name}" must be { equals }, { includes } or a function`);
  }
  if (policy.dpopNonce !== undefined && typeof policy.dpopNonce !== 'boolean')
    throw new TypeError('fapi-guard: dpopNonce must be a boolean');
  if (policy.clientCertificate !== undefined && typeof policy.clientCertificate !== 'function') {
    throw new TypeError('fapi-guard: clientCertificate must be a function');
  }
  return Object.freeze({
    scopes,
    anyScopes,
    claims,
    allowBearer: policy.allowBearer === true,
    dpopNonce: policy.dpopNonce,
    clientCertificate: policy.clientCertificate,
  });
}

/** Granted scopes: the space-separated `scope` claim (RFC 9068 §2.2.3, RFC 6749 §3.3). */
export function grantedScopes(claims: Readonly<AccessTokenClaims>): string[] {
  return typeof claims.scope === 'string' ? claims.scope.split(' ').filter(Boolean) : [];
}

export type PolicyResult = { ok: true } | { ok: false; reason: GuardErrorReason; detail: string; scope?: string };

function claimPasses(check: ClaimCheck, value: unknown, claims: Readonly<AccessTokenClaims>): boolean {
  if (typeof check === 'function') {
    try {
      return check(value, claims) === true;
    } catch {
      return false;
    }
  }
  if ('equals' in check) return isDeepStrictEqual(value, check.equals);
  if (Array.isArray(value)) return value.includes(check.includes);
  return typeof value === 'string' && typeof check.includes === 'string' && value.split(' ').includes(check.includes);
}

/** Scope and claim rules of one route against a valid token. */
export function checkPolicy(policy: CompiledPolicy, claims: Readonly<AccessTokenClaims>, granted: readonly string[]): PolicyResult {
  const missing = policy.scopes.filter((s) => !granted.includes(s));
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
  for (const [name, check] of policy.claims) {
    if (!claimPasses(check, claims[name], claims)) return { ok: false, reason: 'claim_check_failed', detail: `claim ${name} check failed` };
  }
  return { ok: true };
}

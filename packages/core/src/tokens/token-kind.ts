/**
 * Is the token an access token at all? RFC 8725 §3.11–3.12 (JWTBCP-10): an ID token, a refresh
 * token or a logout token must never pass as an access token, whatever else about it checks out.
 *
 * - An RFC 9068 JWT says so itself with `typ: at+jwt`. The compat loosenings (`acceptJwtTyp`,
 *   `acceptMissingTyp`) give that up, so a JWT accepted under them must not carry the marks of
 *   another kind ({@link otherJwtKind}).
 * - An introspection answer's `token_type` (RFC 7662 §2.2) is an RFC 6749 §7.1 access token type;
 *   RFC 7662 §2.1 lets the AS ignore `token_type_hint`, so it may answer for a refresh token.
 *   Any other type is refused ({@link introspectedType}).
 */
import type { GuardErrorReason } from '../errors.js';

/**
 * Access token types this RS takes (RFC 6749 §7.1, §11.1 registry): `Bearer` (RFC 6750, also
 * certificate-bound tokens, RFC 8705) and `DPoP` (RFC 9449 §6.2). Compared case-insensitively
 * (RFC 6749 §5.1). `N_A` is registered too, for a token that is *not* an access token (RFC 8693
 * §2.2.1): refused like every type not listed.
 */
const ACCESS_TOKEN_TYPES = new Set(['bearer', 'dpop']);

/**
 * Names of the access-token kind some servers put in `token_type` instead: the `token_type_hint`
 * value (RFC 7009 §2.1, RFC 7662 §2.1) and the token type identifier (RFC 8693 §3). Exact.
 */
const ACCESS_TOKEN_KINDS = new Set(['access_token', 'urn:ietf:params:oauth:token-type:access_token']);

/** An introspection answer's `token_type`: an access token type, the access-token kind only, or refused. */
export type IntrospectedType =
  | { ok: true; scheme: 'bearer' | 'dpop' | undefined }
  | { ok: false; reason: Extract<GuardErrorReason, 'token_type' | 'token_claim_invalid'>; detail: string };

/**
 * The `token_type` of an active introspection answer: absent or an access-token kind pass
 * (`scheme` undefined); `Bearer` / `DPoP` pass with their scheme (lower case); anything else is
 * another kind of token. A given `token_type` must then match `cnf` (RFC 9449 §6.2): `DPoP`
 * exactly for a DPoP-bound token, so the access-token kind names unbound tokens only.
 */
export function introspectedType(value: unknown): IntrospectedType {
  if (value === undefined) return { ok: true, scheme: undefined };
  if (typeof value !== 'string') return { ok: false, reason: 'token_claim_invalid', detail: 'introspection token_type is not a string' };
  const type = value.toLowerCase();
  if (ACCESS_TOKEN_TYPES.has(type)) return { ok: true, scheme: type as 'bearer' | 'dpop' };
  if (ACCESS_TOKEN_KINDS.has(value)) return { ok: true, scheme: undefined };
  return {
    ok: false,
    reason: 'token_type',
    detail: `introspection token_type ${JSON.stringify(value.slice(0, 80))} is not an access token type`,
  };
}

/** ID token claims (OIDC Core §2, §3.1.3.6, §3.3.2.11; FAPI 1.0 Advanced §5.1 `s_hash`). */
const ID_TOKEN_CLAIMS = ['nonce', 'at_hash', 'c_hash', 's_hash'] as const;

/**
 * Why a JWT accepted without `typ: at+jwt` is another kind of token, or `undefined`:
 * - `events`: a Security Event Token (RFC 8417 §2.2), such as a back-channel logout token
 *   (OIDC Back-Channel Logout 1.0 §2.4);
 * - the issuer's own typing in the payload, when there is one, decides: Keycloak's `typ` must be
 *   `Bearer`, or `DPoP` for a DPoP-bound token (Keycloak ≥ 23; its ID, refresh and logout tokens
 *   say `ID`, `Refresh`, `Offline`, `Logout`),
 *   Amazon Cognito's `token_use` must be `access` (`id` for ID tokens). Keycloak before 24 also
 *   copies the ID token's `nonce` into its access tokens, which then still pass;
 * - otherwise an ID token claim (`nonce`, `at_hash`, `c_hash`, `s_hash`), or `azp` naming an
 *   audience of this API (an ID token issued to this API as a client: OIDC Core §2, the ID
 *   token's `aud` contains the client it was issued to, `azp` names it).
 */
export function otherJwtKind(claims: Readonly<Record<string, unknown>>, audiences: readonly string[]): string | undefined {
  if (claims.events !== undefined) return 'events claim of a security event (logout) token';
  if (claims.typ !== undefined) {
    // Keycloak ≥ 23 types a DPoP-bound access token `DPoP` (its own verifier takes Bearer and DPoP).
    return typeof claims.typ === 'string' && ACCESS_TOKEN_TYPES.has(claims.typ.toLowerCase())
      ? undefined
      : `payload typ ${quoted(claims.typ)}`;
  }
  if (claims.token_use !== undefined) return claims.token_use === 'access' ? undefined : `token_use ${quoted(claims.token_use)}`;
  for (const name of ID_TOKEN_CLAIMS) if (claims[name] !== undefined) return `${name} claim of an ID token`;
  // A string list: an azp of another type is none of them.
  if (audiences.includes(claims.azp as string)) return 'azp is this API: an ID token issued to it';
  return undefined;
}

/**
 * A claim value for a log line: short and JSON-escaped. `JSON.stringify`, never `String()`: a
 * JSON object such as `{"toString":1}` cannot be converted to a string (a TypeError).
 */
// Stryker disable next-line StringLiteral: equivalent, the values quoted are JSON values, which JSON.stringify always writes
const quoted = (value: unknown) => (JSON.stringify(value) ?? 'null').slice(0, 40);

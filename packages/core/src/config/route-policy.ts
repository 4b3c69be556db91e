/**
 * What a route asks of a request, as its author writes it (the type `checkRoutePolicy` checks
 * and `compilePolicy` compiles; the checks themselves are in policy.ts).
 */
import type { ClientCertificate } from '../binding/mtls.js';
import type { IdempotencyPolicy } from '../idempotency/policy.js';
import type { ProfileName } from '../regimes/profiles.js';
import type { AccessTokenClaims } from '../tokens/jwt.js';

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
  /**
   * Scopes that must all be granted (`scope` claim, RFC 9068 §2.2.3), one scope-token each
   * (RFC 6749 §3.3). A string such as `'accounts payments'` is refused at start-up, not split:
   * write `['accounts', 'payments']`. An empty list is refused too; leave the key out instead.
   * @default undefined (no all-of rule)
   */
  scopes?: readonly string[];
  /** Scopes of which at least one must be granted; a list, as for `scopes`. @default undefined (no any-of rule) */
  anyScopes?: readonly string[];
  /** Claim checks that must all pass, by claim name (an empty object is refused). @default undefined (no claim rule) */
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
  /**
   * RFC 9470 step-up: the token's `acr` must be one of these (in order of preference, sent as
   * `acr_values` in the challenge).
   * @default undefined (no acr rule; an empty list is refused)
   */
  acrValues?: readonly string[];
  /** RFC 9470 step-up: the user authenticated (`auth_time`) at most this many seconds ago. */
  maxAuthAgeSec?: number;
  /**
   * RFC 9396: `authorization_details` the token must carry. Each entry needs a token entry of
   * the same `type` whose other members equal (or, for arrays, contain) the values given.
   * @default undefined (no rule; an empty list is refused)
   */
  authorizationDetails?: readonly AuthorizationDetailRequirement[];
  /**
   * FAPI 2.0 Message Signing (§5.6.1.2): `required` refuses requests without a valid
   * `fapi-2-request` signature by a key of the token's client (401, with `Accept-Signature`);
   * `optional` checks such a signature when one is sent. Needs the guard's `messageSigning`.
   * @default undefined (signatures are not looked at)
   */
  signedRequest?: 'required' | 'optional';
  /**
   * Sign this route's responses (FAPI 2.0 Message Signing §5.6.2.1) with
   * `messageSigning.responseKey`, binding each to its request.
   * @default false
   */
  signResponse?: boolean;
  /**
   * Idempotency keys on this route (draft-ietf-httpapi-idempotency-key-header; UK Open Banking
   * and Brazil Open Finance `x-idempotency-key`): a retry of a request with the same key is
   * answered with the first response, byte for byte, and processed once. `'required'` or
   * `'optional'` with the defaults (`Idempotency-Key`, 24 h), or an {@link IdempotencyPolicy}.
   * Applies to unsafe methods (not GET, HEAD, OPTIONS, TRACE).
   * @default undefined (keys are not looked at)
   */
  idempotency?: 'required' | 'optional' | IdempotencyPolicy;
  /**
   * The profiles this route serves. A client served under another profile (its own, never a
   * weaker one) gets 403 here; e.g. `['fapi2']` for an endpoint only migrated clients may call.
   * @default undefined (every profile of the guard)
   */
  profiles?: readonly ProfileName[];
  /**
   * UK Open Banking `x-jws-signature` (needs `messageSigning.ukOpenBanking`): `request` checks the
   * detached JWS over the request body (`required` refuses a request without one, 400
   * `UK.OBIE.Signature.Missing`); `response: true` signs this route's responses with
   * `ukOpenBanking.responseKey`. Refusals on such routes use the OB error envelope.
   * @default undefined (no OB signatures)
   */
  jwsSignature?: { request?: 'required' | 'optional'; response?: boolean };
  /**
   * Open Finance Brasil signed JWT bodies (needs `messageSigning.openFinanceBrasil`): `request`
   * requires an `application/jwt` body signed by the client, whose `data` claim reaches the
   * handler as `auth.jwtBody.data`; `response: true` returns the handler's JSON as a JWT signed by
   * the bank. Refusals on such routes use the Brazil error envelope (signed once the client is known).
   * @default undefined
   */
  jwtBody?: { request?: 'required'; response?: boolean };
}

/** One required `authorization_details` entry (RFC 9396 §2). */
export interface AuthorizationDetailRequirement {
  type: string;
  [member: string]: unknown;
}

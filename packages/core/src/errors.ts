/**
 * Refusals as values: one `GuardError` type with a stable `reason`, mapped to the
 * status and `error` code of RFC 6750 §3.1, RFC 9449 §7.1 and RFC 9470 §3, and the
 * rendering of `WWW-Authenticate` challenges.
 */

/** The `error` codes a challenge can carry (RFC 6750 §3.1, RFC 9449 §7.1/§9, RFC 9470 §3). */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'insufficient_user_authentication';

/** Authentication schemes a route can accept in `Authorization`. */
export type AuthScheme = 'Bearer' | 'DPoP';

/**
 * Stable machine-readable reasons. Switch on these, never on messages.
 * Each maps to one HTTP status and one OAuth `error` (see {@link REASONS}).
 */
export type GuardErrorReason =
  // credentials (RFC 6750 §2, RFC 9449 §7.1)
  | 'credentials_missing'
  | 'credentials_malformed'
  | 'credentials_ambiguous'
  | 'token_in_query'
  | 'token_in_body'
  | 'request_host_unknown'
  | 'request_target_form'
  // the access token (RFC 9068 §4, RFC 8725)
  | 'token_malformed'
  | 'token_type'
  | 'token_algorithm'
  | 'token_signature'
  | 'token_key_unknown'
  | 'token_issuer'
  | 'token_audience'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'token_issued_in_future'
  | 'token_claim_missing'
  | 'token_claim_invalid'
  | 'token_inactive'
  | 'token_introspection_invalid'
  | 'token_introspection_unsigned'
  // sender constraint (RFC 9449 §7, RFC 8705 §3, FAPI 2.0 §5.3.4 #5)
  | 'binding_missing'
  | 'binding_downgrade'
  | 'binding_mismatch'
  | 'dpop_proof_missing'
  | 'dpop_proof_invalid'
  | 'dpop_proof_replayed'
  | 'dpop_nonce_required'
  | 'certificate_missing'
  | 'certificate_mismatch'
  | 'certificate_not_allowed'
  // profiles (FAPI 1.0 Advanced, FAPI 2.0, migration between them)
  | 'binding_not_allowed'
  | 'profile_unknown'
  | 'profile_not_allowed'
  | 'fapi_header_invalid'
  // UK Open Banking x-jws-signature (Read/Write API "Message Signing"; UK.OBIE.Signature.*)
  | 'ob_signature_missing'
  | 'ob_signature_malformed'
  | 'ob_signature_claim_missing'
  | 'ob_signature_claim_invalid'
  | 'ob_signature_invalid'
  // Open Finance Brasil signed JWT bodies
  | 'br_client_unknown'
  | 'br_jwt_media_type'
  | 'br_jwt_malformed'
  | 'br_jwt_invalid'
  | 'br_jwt_replayed'
  // authorization (RFC 6750 §3.1, FAPI 2.0 §5.3.4 #4)
  | 'scope_insufficient'
  | 'authorization_details_insufficient'
  | 'user_authentication_insufficient'
  | 'claim_check_failed'
  // HTTP Message Signatures (FAPI 2.0 Message Signing §5.6.1.2, DEC-02)
  | 'signature_missing'
  | 'signature_invalid'
  | 'body_too_large'
  | 'body_unavailable'
  // idempotency keys (draft-ietf-httpapi-idempotency-key-header §2.7, UK Open Banking, Brazil Open Finance)
  | 'idempotency_key_missing'
  | 'idempotency_key_malformed'
  | 'idempotency_key_in_flight'
  | 'idempotency_key_reused'
  | 'idempotency_response_unkept'
  // dependencies (DEC-09): never a 500, never an accepted request
  | 'issuer_unavailable'
  | 'store_unavailable'
  | 'signature_keys_unavailable'
  | 'internal';

/** Statuses a refusal can have. */
export type GuardErrorStatus = 400 | 401 | 403 | 409 | 413 | 422 | 500 | 503;

interface ReasonInfo {
  status: GuardErrorStatus;
  error?: OAuthErrorCode;
  /** False for refusals that are not about authentication: no `WWW-Authenticate` challenge. */
  challenge?: false;
  /** One line for the client; the detail goes to the decision hook only. */
  description: string;
}

/** Status, `error` code and client-facing description of every reason. */
export const REASONS: Readonly<Record<GuardErrorReason, ReasonInfo>> = {
  credentials_missing: { status: 401, description: 'An access token is required' },
  credentials_malformed: {
    status: 400,
    error: 'invalid_request',
    description: 'The Authorization header is malformed',
  },
  credentials_ambiguous: {
    status: 400,
    error: 'invalid_request',
    description: 'More than one set of credentials was sent',
  },
  // RFC 6750 §2.3 / FAPI 2.0 §5.3.4 #2: a query token alone counts as no credentials.
  token_in_query: { status: 401, description: 'An access token is required in the Authorization header' },
  token_in_body: { status: 401, description: 'An access token is required in the Authorization header' },
  request_host_unknown: {
    status: 400,
    error: 'invalid_request',
    description: 'The request does not address a configured origin of this API',
  },
  // RFC 9112 §3.2.1: the guard checks proofs and signatures against the path the router serves.
  request_target_form: {
    status: 400,
    error: 'invalid_request',
    description: 'The request target must be a path (origin-form)',
  },
  token_malformed: { status: 401, error: 'invalid_token', description: 'The access token is malformed' },
  token_type: { status: 401, error: 'invalid_token', description: 'The token is not an access token' },
  token_algorithm: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token algorithm is not allowed',
  },
  token_signature: { status: 401, error: 'invalid_token', description: 'The access token signature is invalid' },
  token_key_unknown: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token was signed with an unknown key',
  },
  token_issuer: { status: 401, error: 'invalid_token', description: 'The access token issuer is not trusted' },
  token_audience: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token is not intended for this resource',
  },
  token_expired: { status: 401, error: 'invalid_token', description: 'The access token has expired' },
  token_not_yet_valid: { status: 401, error: 'invalid_token', description: 'The access token is not yet valid' },
  token_issued_in_future: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token was issued in the future',
  },
  token_claim_missing: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token lacks a required claim',
  },
  token_claim_invalid: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token has an invalid claim',
  },
  // RFC 7662 §2.2 / FAPI 2.0 §5.3.4 #3: revoked, expired or unknown at the authorization server.
  token_inactive: { status: 401, error: 'invalid_token', description: 'The access token is not active' },
  // DEC-09: an introspection answer that cannot be verified never grants access.
  token_introspection_invalid: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token could not be verified',
  },
  token_introspection_unsigned: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token could not be verified',
  },
  binding_missing: {
    status: 401,
    error: 'invalid_token',
    description: 'A sender-constrained access token is required',
  },
  binding_downgrade: {
    status: 401,
    error: 'invalid_token',
    description: 'A DPoP-bound access token must be sent with the DPoP scheme',
  },
  binding_mismatch: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token is not bound to the key of this request',
  },
  dpop_proof_missing: { status: 401, error: 'invalid_dpop_proof', description: 'A DPoP proof is required' },
  dpop_proof_invalid: { status: 401, error: 'invalid_dpop_proof', description: 'The DPoP proof is invalid' },
  dpop_proof_replayed: {
    status: 401,
    error: 'invalid_dpop_proof',
    description: 'The DPoP proof has already been used',
  },
  dpop_nonce_required: {
    status: 401,
    error: 'use_dpop_nonce',
    description: 'Resource server requires nonce in DPoP proof',
  },
  certificate_missing: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token requires a client certificate',
  },
  certificate_mismatch: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token is not bound to this client certificate',
  },
  // RFC 9440 §2.4 / CCH-07: a certificate refused by policy is 403; a PoP mismatch stays 401.
  certificate_not_allowed: {
    status: 403,
    error: 'insufficient_scope',
    description: 'The client certificate is not allowed for this resource',
  },
  // FAPI 1.0 Part 2 §6.2.1 #2: a client served under fapi1-advanced uses certificate-bound tokens only.
  binding_not_allowed: {
    status: 401,
    error: 'invalid_token',
    description: "The access token's sender constraint is not accepted for this client",
  },
  profile_unknown: {
    status: 401,
    error: 'invalid_token',
    description: 'The access token names no security profile this client can be served under',
  },
  // A route limited to some profiles: like a certificate refused by policy, the token is valid but not enough here.
  profile_not_allowed: {
    status: 403,
    error: 'insufficient_scope',
    description: "This resource is not available under the client's security profile",
  },
  // DEC-14: a malformed FAPI customer header under a profile that validates it.
  fapi_header_invalid: {
    status: 400,
    error: 'invalid_request',
    description: 'An x-fapi-auth-date or x-fapi-customer-ip-address header is malformed',
  },
  // OB Read/Write API: a signature that fails is a 400 with a UK.OBIE.Signature.* code (OB_ERROR_CODES).
  ob_signature_missing: { status: 400, error: 'invalid_request', description: 'The request requires an x-jws-signature' },
  ob_signature_malformed: { status: 400, error: 'invalid_request', description: 'The x-jws-signature is malformed' },
  ob_signature_claim_missing: {
    status: 400,
    error: 'invalid_request',
    description: 'The x-jws-signature lacks a required header parameter',
  },
  ob_signature_claim_invalid: {
    status: 400,
    error: 'invalid_request',
    description: 'The x-jws-signature has an invalid header parameter',
  },
  ob_signature_invalid: { status: 400, error: 'invalid_request', description: 'The x-jws-signature is invalid' },
  // Open Finance Brasil answers are addressed to the client's organisation (aud): a client without one is not served there.
  br_client_unknown: {
    status: 403,
    error: 'insufficient_scope',
    description: 'This resource serves only clients with an Open Finance Brasil organisation',
  },
  br_jwt_media_type: { status: 400, error: 'invalid_request', description: 'The request body must be a signed JWT (application/jwt)' },
  br_jwt_malformed: { status: 400, error: 'invalid_request', description: 'The signed request body is malformed' },
  br_jwt_invalid: { status: 400, error: 'invalid_request', description: 'The signed request body is invalid' },
  br_jwt_replayed: { status: 400, error: 'invalid_request', description: 'The signed request body was already used' },
  scope_insufficient: {
    status: 403,
    error: 'insufficient_scope',
    description: 'The access token lacks the scope this resource requires',
  },
  // RFC 9396 §9 / FAPI 2.0 §5.3.4 #4: answered like missing scope (RFC 6750 §3.1).
  authorization_details_insufficient: {
    status: 403,
    error: 'insufficient_scope',
    description: 'The access token lacks the authorization details this resource requires',
  },
  // RFC 9470 §3.
  user_authentication_insufficient: {
    status: 401,
    error: 'insufficient_user_authentication',
    description: 'A different or more recent user authentication is required',
  },
  claim_check_failed: {
    status: 403,
    error: 'insufficient_scope',
    description: 'The access token does not grant access to this resource',
  },
  // DEC-02: 401 with the token's scheme and invalid_request; the client learns what to sign from Accept-Signature.
  signature_missing: {
    status: 401,
    error: 'invalid_request',
    description: 'This resource requires a signed request (RFC 9421, tag fapi-2-request)',
  },
  signature_invalid: { status: 401, error: 'invalid_request', description: 'The request signature is invalid' },
  body_too_large: { status: 413, description: 'The request body is too large to be checked' },
  // An API whose body parser read the body before fapi-guard could: an operator error, reported as such.
  body_unavailable: { status: 500, description: 'The server could not read the request body to check its signature' },
  // draft-ietf-httpapi-idempotency-key-header §2.7: 400 missing, 422 reused, 409 still in flight.
  idempotency_key_missing: {
    status: 400,
    error: 'invalid_request',
    challenge: false,
    description: 'This request requires an idempotency key header',
  },
  idempotency_key_malformed: {
    status: 400,
    error: 'invalid_request',
    challenge: false,
    description: 'The idempotency key header is malformed or sent more than once',
  },
  idempotency_key_in_flight: {
    status: 409,
    challenge: false,
    description: 'A request with this idempotency key is still being processed; retry later',
  },
  idempotency_key_reused: {
    status: 422,
    challenge: false,
    description: 'This idempotency key was already used for a different request',
  },
  // Our choice (packages/core README): processed once, response too large to keep; never processed again.
  idempotency_response_unkept: {
    status: 409,
    challenge: false,
    description:
      'The request with this idempotency key was processed but its response was not kept; look the result up instead of retrying',
  },
  signature_keys_unavailable: { status: 503, description: "The client's signing keys cannot be fetched; try again later" },
  issuer_unavailable: { status: 503, description: 'The authorization server cannot be reached; try again later' },
  store_unavailable: { status: 503, description: 'A required service is unavailable; try again later' },
  internal: { status: 401, error: 'invalid_token', description: 'The access token could not be verified' },
};

/** The UK Open Banking error codes (OBError1.ErrorCode) of the refusals that have one. */
export const OB_ERROR_CODES: Readonly<Partial<Record<GuardErrorReason, string>>> = {
  ob_signature_missing: 'UK.OBIE.Signature.Missing',
  ob_signature_malformed: 'UK.OBIE.Signature.Malformed',
  ob_signature_claim_missing: 'UK.OBIE.Signature.MissingClaim',
  ob_signature_claim_invalid: 'UK.OBIE.Signature.InvalidClaim',
  ob_signature_invalid: 'UK.OBIE.Signature.Invalid',
  fapi_header_invalid: 'UK.OBIE.Header.Invalid',
  credentials_malformed: 'UK.OBIE.Header.Invalid',
  credentials_ambiguous: 'UK.OBIE.Header.Invalid',
  request_host_unknown: 'UK.OBIE.Header.Invalid',
  request_target_form: 'UK.OBIE.Field.Invalid',
};

/**
 * The OB Read/Write API error envelope (OBErrorResponse1) for a refusal with an OB code:
 * `{ Code, Id, Message, Errors: [{ ErrorCode, Message }] }`; `Id` is the interaction id.
 */
export function obErrorEnvelope(reason: GuardErrorReason, id: string | undefined): Record<string, unknown> | undefined {
  const code = OB_ERROR_CODES[reason];
  if (code === undefined) return undefined;
  const { status, description } = REASONS[reason];
  return {
    Code: `${status} ${status === 400 ? 'BadRequest' : 'Error'}`,
    ...(id === undefined ? {} : { Id: id }),
    Message: description,
    Errors: [{ ErrorCode: code, Message: description }],
  };
}

/** The Open Finance Brasil error codes of the refusals that have their own. */
const BR_ERROR_CODES: Readonly<Partial<Record<GuardErrorReason, string>>> = {
  br_jwt_media_type: 'CONTENT_TYPE_NAO_SUPORTADO',
  br_jwt_malformed: 'BAD_SIGNATURE',
  br_jwt_invalid: 'BAD_SIGNATURE',
  br_jwt_replayed: 'BAD_SIGNATURE',
};

/**
 * The Open Finance Brasil error envelope, `{ errors: [{ code, title, detail }], meta:
 * { requestDateTime } }`; the code is the reason's own or the OAuth `error` in capitals.
 */
export function brErrorEnvelope(reason: GuardErrorReason, nowMs: number): Record<string, unknown> {
  const { status, error, description } = REASONS[reason];
  const code = BR_ERROR_CODES[reason] ?? (error ?? (status === 503 ? 'temporarily_unavailable' : 'unauthorized')).toUpperCase();
  return {
    errors: [{ code, title: description, detail: description }],
    meta: { requestDateTime: new Date(nowMs).toISOString().replace(/\.\d{3}Z$/, 'Z') },
  };
}

/** What a refused request needs so that its response can be rendered. */
export interface ChallengeContext {
  /** Schemes the route accepts; each gets a challenge (RFC 9449 §7.2). */
  schemes: readonly AuthScheme[];
  /** The scheme the client used, if any: only its challenge carries `error` (RFC 9449 §7.2). */
  usedScheme?: AuthScheme;
  realm: string;
  /** DPoP `algs` (RFC 9449 §7.1). */
  dpopAlgorithms: readonly string[];
  /** Space-separated scope for `insufficient_scope` (RFC 6750 §3) and with step-up (RFC 9470 §3). */
  scope?: string;
  /** RFC 9470 §3: `acr_values` and `max_age` of an `insufficient_user_authentication` challenge. */
  acrValues?: string;
  maxAge?: number;
  /** RFC 9728 §5.1: the URL of the protected resource metadata, on every challenge. */
  resourceMetadata?: string;
}

/** A refusal: everything an adapter needs to write the response, plus the reason for logs. */
export class GuardError extends Error {
  readonly ok = false as const;
  readonly reason: GuardErrorReason;
  readonly status: GuardErrorStatus;
  readonly error: OAuthErrorCode | undefined;
  /** One line safe to show to the client. */
  readonly description: string;
  /** Detailed reason for the decision hook and logs; never sent to the client. */
  readonly detail: string | undefined;
  /** Response headers: `WWW-Authenticate`, `DPoP-Nonce`, `Cache-Control`, `Retry-After`. */
  readonly headers: Readonly<Record<string, string>>;

  /** A body another regime's envelope gives this refusal (UK Open Banking), in place of the OAuth one. */
  private readonly envelope: Record<string, unknown> | undefined;
  /** The refusal as a signed JWT (Open Finance Brasil), sent as `application/jwt` in place of the JSON body. */
  readonly signedBody: string | undefined;

  constructor(
    reason: GuardErrorReason,
    detail: string | undefined,
    headers: Record<string, string>,
    envelope?: Record<string, unknown>,
    signedBody?: string,
  ) {
    const info = REASONS[reason];
    super(info.description);
    this.name = 'GuardError';
    this.reason = reason;
    this.status = info.status;
    this.error = info.error;
    this.description = info.description;
    this.detail = detail;
    this.headers = headers;
    this.envelope = envelope;
    this.signedBody = signedBody;
  }

  /** The short JSON body: `{ error?, error_description }`, or the regime's envelope on its routes. */
  get body(): { error?: string; error_description: string } | Record<string, unknown> {
    if (this.envelope) return this.envelope;
    if (this.status === 503) return { error: 'temporarily_unavailable', error_description: this.description };
    return this.error === undefined ? { error_description: this.description } : { error: this.error, error_description: this.description };
  }
}

/**
 * RFC 6750 §3: `scope`, `error` and `error_description` may only hold
 * %x20-21 / %x23-5B / %x5D-7E; anything else is dropped rather than escaped.
 */
export function challengeParamValue(value: string): string {
  return value.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '');
}

function param(name: string, value: string): string {
  return `${name}="${challengeParamValue(value)}"`;
}

/**
 * Renders the `WWW-Authenticate` value: one challenge per accepted scheme, `realm` always on
 * Bearer (RFC 6750 §3 asks for at least one auth-param), `algs` always on DPoP, `error` only on the scheme the client used, or on both
 * when the request was ambiguous (RFC 9449 §7.2, DPOP-21).
 */
export function renderChallenges(reason: GuardErrorReason, ctx: ChallengeContext): string | undefined {
  const info = REASONS[reason];
  // Service and server faults, and an oversized body, are not authentication failures.
  if (info.status === 503 || info.status === 500 || info.status === 413 || info.challenge === false) return undefined;
  const schemes = [...ctx.schemes];
  if (ctx.usedScheme && !schemes.includes(ctx.usedScheme)) schemes.push(ctx.usedScheme);
  const errorOnAll = reason === 'credentials_ambiguous';
  return schemes
    .map((scheme) => {
      const params: string[] = [];
      if (scheme === 'Bearer') params.push(param('realm', ctx.realm));
      if (scheme === 'DPoP') params.push(param('algs', ctx.dpopAlgorithms.join(' ')));
      const carriesError = info.error !== undefined && (errorOnAll || scheme === ctx.usedScheme);
      if (carriesError && info.error) {
        params.push(param('error', info.error));
        params.push(param('error_description', info.description));
        if ((info.error === 'insufficient_scope' || info.error === 'insufficient_user_authentication') && ctx.scope) {
          params.push(param('scope', ctx.scope));
        }
        if (info.error === 'insufficient_user_authentication') {
          if (ctx.acrValues) params.push(param('acr_values', ctx.acrValues));
          if (ctx.maxAge !== undefined) params.push(param('max_age', String(ctx.maxAge)));
        }
      }
      if (ctx.resourceMetadata) params.push(param('resource_metadata', ctx.resourceMetadata));
      return `${scheme} ${params.join(', ')}`;
    })
    .join(', ');
}

/** True for a refusal (works across copies of this package, unlike `instanceof`). */
export function isGuardError(value: unknown): value is GuardError {
  return typeof value === 'object' && value !== null && (value as { ok?: unknown }).ok === false && 'reason' in value;
}

/** RFC 9449 §7.1, §8: browser clients must be able to read the challenge and the nonce. */
export const EXPOSE = { 'access-control-expose-headers': 'WWW-Authenticate, DPoP-Nonce' } as const;

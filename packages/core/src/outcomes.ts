/**
 * The values the steps of a request hand each other, and what the guard gives back: a request
 * that passed every check (`Authorized`), one that waits for its body (`Authenticated`), a
 * refusal on its way to becoming a `GuardError`, and a response the guard writes itself.
 */
import type { ClientCertificate } from './binding/mtls.js';
import type { AuthScheme, GuardErrorReason } from './errors.js';
import type { InteractionId } from './interaction.js';
import type { CompiledPolicy } from './policy.js';
import type { VerifiedJwtBody } from './regimes/br-signed-jwt.js';
import type { FapiCustomerHeaders } from './regimes/fapi-headers.js';
import type { Profile, ProfileName } from './regimes/profiles.js';
import type { VerifiedObSignature } from './regimes/uk-ob-signature.js';
import type { SignedResponse, VerifiedRequestSignature } from './signatures/fapi.js';
import type { AccessTokenClaims, VerifiedAccessToken } from './tokens/jwt.js';

/** How the token was bound to the request. */
export type Binding = { type: 'bearer' } | { type: 'dpop'; jkt: string } | { type: 'mtls'; x5t: string };

/** What signing a response gives the adapter: headers to set, and for a signed JWT body the bytes to send instead. */
export interface SignedOutgoing {
  headers: Record<string, string>;
  /** FAPI 2.0 Message Signing: what proves the exchange. */
  record?: SignedResponse['record'];
  /** Open Finance Brasil: the signed JWT that is sent in place of the body. */
  body?: Uint8Array;
}

/** A request that passed every check. */
export interface Authorized {
  readonly ok: true;
  /** The verified access token (header, claims and its SHA-256 handle; never the token string). */
  readonly token: VerifiedAccessToken;
  readonly claims: Readonly<AccessTokenClaims>;
  readonly scopes: readonly string[];
  readonly clientId: string;
  /** `sub`; an introspection answer may leave it out (RFC 7662 §2.2). */
  readonly subject: string | undefined;
  readonly issuer: string;
  readonly binding: Binding;
  /** Headers to add to the successful response (e.g. the next `DPoP-Nonce`). */
  readonly headers: Readonly<Record<string, string>>;
  /** The client certificate a certificate-bound token was checked against (RFC 8705). */
  readonly certificate?: ClientCertificate;
  /** The `x-fapi-interaction-id` of this exchange, when the guard sets one. */
  readonly interactionId?: string;
  /** The verified `fapi-2-request` signature, on routes with `signedRequest` (FAPI 2.0 Message Signing). */
  readonly signature?: VerifiedRequestSignature;
  /** The profile the client was served under (its own: `clientProfiles`, else the guard's `profile`). */
  readonly profile: ProfileName;
  /**
   * `x-fapi-auth-date` and `x-fapi-customer-ip-address` as the client sent them, when well formed
   * (FAPI 1.0 Part 1 §6.2.2 #3–4). Each is absent when not sent.
   */
  readonly fapiCustomer: FapiCustomerHeaders;
  /** The verified UK Open Banking `x-jws-signature`, on routes with `jwsSignature.request`. */
  readonly jwsSignature?: VerifiedObSignature;
  /** The verified Open Finance Brasil signed body (its `data` claim is the payload), on routes with `jwtBody.request`. */
  readonly jwtBody?: VerifiedJwtBody;
}

/**
 * A request that passed the checks of its headers — credentials, token, binding, policy — and
 * waits for {@link Guard.complete}. Opaque: it grants nothing by itself.
 */
export interface Authenticated {
  readonly ok: true;
  readonly authenticated: true;
}

/** What the binding step found: the sender constraint, headers for the response, the certificate. */
export interface Bound {
  ok: true;
  binding: Binding;
  headers: Record<string, string>;
  certificate?: ClientCertificate;
  /** The DPoP proof carried a server nonce that was checked (RFC 9449 §9). */
  nonced?: true;
}

/** What the first phase found. */
export interface Authentication {
  ok: true;
  scheme: AuthScheme;
  token: VerifiedAccessToken;
  bound: Bound;
  scopes: readonly string[];
  profile: Profile;
  fapiCustomer: FapiCustomerHeaders;
}

/** One decision in progress. */
export interface Pass {
  started: number;
  policy: CompiledPolicy;
  interaction: InteractionId | undefined;
}

/** Why a step refused the request, with what the refusal response and the decision event need. */
export interface Refusal {
  ok?: false;
  reason: GuardErrorReason;
  detail: string;
  usedScheme?: AuthScheme;
  scope?: string;
  acrValues?: string;
  maxAge?: number;
  retryAfterMs?: number;
  /** A DPoP nonce to send with the refusal (`use_dpop_nonce`, RFC 9449 §9). */
  nonce?: string;
  /** Something an operator should know (e.g. an ignored certificate header). */
  note?: string;
  /** RFC 9421 §5.1: what the client should sign (HMS-13). */
  acceptSignature?: string;
  token?: VerifiedAccessToken;
  /** A DPoP proof for this path at another origin (see {@link DpopResult}): a configuration hint. */
  htuOrigin?: { proof: string; request: string };
}

/** What an adapter writes for a refusal or a published document: status, headers and the body text. */
export interface ResponseParts {
  status: number;
  headers: Readonly<Record<string, string>>;
  /** Serialised once here so every adapter sends the same bytes. */
  body: string;
}

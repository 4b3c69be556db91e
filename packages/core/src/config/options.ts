/**
 * Guard configuration: one typed object, validated once at start-up. A configuration that
 * cannot be safe throws a `TypeError` whose message says what to change.
 */

import type { ClientCertificate, MtlsOptions } from '../binding/mtls.js';
import type { DpopNonceOptions } from '../binding/nonce.js';
import type { ReplayStore } from '../common/stores.js';
import type { GuardError } from '../errors.js';
import type { IdempotencyOptions } from '../idempotency/policy.js';
import type { ResourceMetadataOptions } from '../metadata.js';
import type { GuardLogger } from '../observe/logger.js';
import { type ClientProfileOptions, FAPI2_ALGORITHMS, type ProfileName } from '../regimes/profiles.js';
import type { ObSigningVersion } from '../regimes/uk-ob-signature.js';
import type { OriginOptions } from '../request.js';
import type { ClientKeyOptions, ClientKeySource } from '../signatures/client-keys.js';
import type { SignedExchangeRecord } from '../signatures/fapi.js';
import type { SignatureJwk } from '../signatures/keys.js';
import type { OutboundOptions } from '../tokens/http.js';
import type { IntrospectionOptions } from '../tokens/introspection.js';
import type { IssuerConfig, KeySetOptions } from '../tokens/issuer.js';

/** FAPI 2.0 §5.4.1 #1.2: the algorithms allowed for JWTs, in challenge order (RFC 9449 §7.1 `algs`). */
export const FAPI_ALGORITHMS = FAPI2_ALGORITHMS;

/** Asymmetric JWS algorithms this library can verify. `none` and MACs are never among them. */
export const SUPPORTED_ALGORITHMS: ReadonlySet<string> = new Set([
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
  'Ed25519',
  // RFC 9068 §2.1 makes RS256 mandatory to implement; FAPI 2.0 §5.4.1 forbids it, so the fapi2
  // profile refuses it at start-up unless `compat.acceptNonFapiAlgorithms` names the loosening.
  'RS256',
  'RS384',
  'RS512',
]);

/**
 * One line per request decision, for logs and audit. Never contains the token. String values
 * taken from the request or the token (`detail`, `note`, `method`, `url`, `clientId`, `subject`,
 * `issuer`, interaction ids) are escaped as inside a JSON string (quotes, backslashes, control
 * characters, Unicode line separators and bidi overrides) and cut to 512 characters, so they can
 * be printed as they are.
 */
export interface DecisionEvent {
  outcome: 'allow' | 'deny';
  /**
   * The guard's answer: the status of the refusal, or 200 for every allowed request. The status
   * your handler then sends (201, 404, …) is not known to the guard when it decides; count it in
   * your HTTP server's metrics.
   */
  status: number;
  /**
   * Stable reason of a refusal (see `GuardError.reason`), or `idempotency_replayed` on an allowed
   * retry answered with the stored response of its first request.
   */
  reason?: GuardError['reason'] | 'idempotency_replayed';
  /**
   * Set on the idempotency decision of a request on a route with `idempotency`, reported as a
   * second event after its access decision (`allow`): `refused` (400, 409, 413, 422 or 503, the
   * `reason` says which) or `replayed` (the retry got the first request's stored response; `status`
   * is that response's). A first request that goes on to the handler adds no second event.
   */
  idempotency?: 'refused' | 'replayed';
  /** OAuth `error` code sent to the client. */
  error?: string;
  /** Why, in detail; for operators only. */
  detail?: string;
  method: string;
  /** Request URL without its query. */
  url: string;
  issuer?: string;
  clientId?: string;
  subject?: string;
  /** base64url SHA-256 of the access token. */
  tokenHash?: string;
  /**
   * The sender constraint: when allowed, the one proven; when refused after the token was
   * verified, the one the token asks for (`cnf.jkt` → `dpop`, `cnf.x5t#S256` → `mtls`, no `cnf` →
   * `bearer`). Absent when the request was refused before its token was verified (no or a
   * malformed credential, an invalid token, an issuer that cannot be reached).
   */
  binding?: 'bearer' | 'dpop' | 'mtls';
  /** The profile an allowed client was served under. */
  profile?: ProfileName;
  /** Something an operator should know, e.g. a certificate header from an untrusted peer was ignored. */
  note?: string;
  /** `x-fapi-interaction-id` sent back (XFAPI-02: logged with the decision). */
  interactionId?: string;
  /** A malformed `x-fapi-interaction-id` the client sent, replaced by a new one (both are logged). */
  refusedInteractionId?: string;
  durationMs: number;
}

/** DPoP proof checks (RFC 9449). */
export interface DpopOptions {
  /** Oldest accepted proof `iat`, in seconds (RFC 9449 §11.1). At most 300. @default 60 */
  maxAgeSec?: number;
  /** Furthest accepted proof `iat` in the future, in seconds (FAPI-RS-19). At most 60. @default 10 */
  maxFutureSec?: number;
  /**
   * Where used proofs are remembered (RFC 9449 §11.1). Always on; with several API
   * instances, pass a shared store (`@fapi-guard/redis`).
   * @default a per-process `MemoryReplayStore`
   */
  replayStore?: ReplayStore;
  /**
   * Server-provided nonces (RFC 9449 §9). Routes require them when `required` is true or when
   * their policy sets `dpopNonce: true`.
   * @default { required: false, stepSec: 60, secret: random per process }
   */
  nonce?: DpopNonceOptions;
  /**
   * Where each proof's signature — the one check no cache can remove — is verified: on libuv's
   * thread pool (`'threadpool'`), beside the event loop on the machine's other cores, or on the
   * event loop (`'main'`), which saves the hand-over on a single core. Pool threads are shared
   * with `fs`, `dns` and `zlib` (size: `UV_THREADPOOL_SIZE`, default 4).
   * @default 'threadpool' when the machine has more than one core, else 'main'
   */
  verifyOn?: 'main' | 'threadpool';
}

/**
 * Loosenings for issuers whose access tokens break RFC 9068. Each one weakens a check;
 * use the smallest set your issuer needs. `aud`, `iss`, `exp` and the signature are always checked.
 */
export interface CompatOptions {
  /**
   * Accept `typ: JWT` as well as `at+jwt` (RFC 9068 §4 #1 loosened; explicit typing, RFC 8725
   * §3.11, is lost). A JWT with the marks of an ID, logout or refresh token (`nonce`, `at_hash`,
   * `events`, `azp` = this API, payload `typ` other than `Bearer` or `DPoP`, …) is still refused (§3.12).
   * @default false
   */
  acceptJwtTyp?: boolean;
  /** Accept a token without `typ`; the same marks of other kinds are refused. @default false */
  acceptMissingTyp?: boolean;
  /** Read the client id from this claim when `client_id` is absent (e.g. `azp`). */
  clientIdClaim?: string;
  /**
   * RFC 9068 §2.2 claims the issuer leaves out. `client_id` cannot be one: the client is always
   * known (use `clientIdClaim` to read it from another claim).
   */
  optionalClaims?: readonly ('jti' | 'sub' | 'iat')[];
  /**
   * Under the `fapi2` profile, let `algorithms` name algorithms FAPI 2.0 §5.4.1 #1.2 does not
   * allow (anything but PS256, ES256 and EdDSA, e.g. RS256 from an issuer that cannot sign
   * otherwise). Without it such an `algorithms` list is a start-up error. The `oauth2` profile
   * needs no opt-in.
   * @default false
   */
  acceptNonFapiAlgorithms?: boolean;
}

/**
 * Known issuers' token shapes, each loosening named. Review them against your issuer's
 * configuration: many can issue RFC 9068 tokens, which need none of these.
 */
export const COMPAT_PRESETS = {
  /** Keycloak: `typ: JWT` (payload `typ: Bearer`, or `DPoP` when DPoP-bound), client in `azp`. */
  keycloak: { acceptJwtTyp: true, clientIdClaim: 'azp' },
  /** Microsoft Entra ID v2 tokens: `typ: JWT`, client in `azp`, no `jti` (it uses `uti`). */
  entra: { acceptJwtTyp: true, clientIdClaim: 'azp', optionalClaims: ['jti'] },
  /** Auth0 without its RFC 9068 token profile: `typ: JWT`, client in `azp`. */
  auth0: { acceptJwtTyp: true, clientIdClaim: 'azp' },
} as const satisfies Record<string, CompatOptions>;

/** Options of `createGuard`. Only `issuer`/`issuers` and `audience` are required. */
export interface GuardOptions extends OriginOptions {
  /**
   * The profile clients are served under unless `clientProfiles` says otherwise.
   * `fapi2` (the default) is the strict FAPI 2.0 profile. `fapi1-advanced` is FAPI 1.0 Advanced
   * (Part 1 and Part 2 §6.2.1): certificate-bound tokens only (needs `mtls`), PS256 and ES256
   * only, `x-fapi-interaction-id` always on, and `x-fapi-auth-date` / `x-fapi-customer-ip-address`
   * validated. `oauth2` is a documented relaxation for APIs outside FAPI: routes accept unbound
   * bearer tokens unless they set `allowBearer: false`, RS256 is allowed, `x-fapi-interaction-id`
   * is off. Every other check stays, under every profile.
   * @default 'fapi2'
   */
  profile?: ProfileName;
  /**
   * Serve some clients under another profile than `profile` (moving clients from FAPI 1.0
   * Advanced to FAPI 2.0 one by one): a list by client id, and/or an access-token claim naming
   * the profile. Routes can limit which profiles they serve (`profiles` in the route policy).
   * @default undefined (every client is served under `profile`)
   */
  clientProfiles?: ClientProfileOptions;
  /** Loosenings for non-RFC 9068 issuers (see {@link COMPAT_PRESETS}). @default none */
  compat?: CompatOptions;
  /**
   * Publish RFC 9728 protected resource metadata (adapters serve it at the well-known path built
   * from `resource`, §3.1). Challenges name it (`resource_metadata`, §5.1) only when the request's
   * URL is the resource identifier itself: RFC 9728 §3.3 has a client discard a document reached
   * from a challenge whose `resource` is not the URL it requested.
   * @default false
   */
  resourceMetadata?: boolean | ResourceMetadataOptions;
  /**
   * `x-fapi-interaction-id` on every response of a protected route, errors included. FAPI 1.0
   * Part 1 §6.2.1 #11 requires it, so it cannot be turned off when a client is served under
   * `fapi1-advanced`.
   * @default true under `fapi2` and `fapi1-advanced`, false under `oauth2`
   */
  interactionId?: boolean;
  /** The trusted authorization server: its issuer identifier, or its full configuration. */
  issuer?: string | IssuerConfig;
  /**
   * Several trusted authorization servers. Each token is verified only with the keys of the
   * issuer its `iss` names (FAPI 2.0 §6.3, RFC 8725 §3.8). Give `issuer` or `issuers`.
   */
  issuers?: readonly (string | IssuerConfig)[];
  /**
   * This API's resource identifier(s) (RFC 8707): an absolute URI without fragment, which the
   * token's `aud` must contain (RFC 9068 §4 #4, RFC 9700 §2.3). Required.
   */
  audience: string | readonly string[];
  /**
   * Allowed JWS algorithms for access tokens and DPoP proofs (FAPI 2.0 §5.4.1), for clients
   * served under `profile`. `none` and symmetric algorithms are refused at start-up. RSA keys
   * must be ≥ 2048 bits. Under `fapi1-advanced` only PS256 and ES256 can be listed (FAPI 1.0
   * Part 2 §8.6); under `fapi2` an algorithm outside PS256, ES256 and EdDSA (e.g. RS256) only with
   * `compat.acceptNonFapiAlgorithms`. Clients moved to another profile by `clientProfiles` get that profile's
   * default list.
   * @default ['ES256', 'PS256', 'EdDSA']; ['PS256', 'ES256'] under `fapi1-advanced`
   */
  algorithms?: readonly string[];
  /**
   * Leeway for `exp`, `nbf` and `iat`, in seconds (RFC 9068 §4 #6). At most 60.
   * @default 10
   */
  clockToleranceSec?: number;
  /** `realm` of `Bearer` challenges (RFC 6750 §3). @default the first audience */
  realm?: string;
  /** JWKS cache tuning. @default { maxAgeMs: 600000, cooldownMs: 30000, timeoutMs: 5000 } */
  keys?: KeySetOptions;
  /**
   * Cache of verified access-token signatures, keyed by the token's SHA-256 and kept until it
   * expires. Claims, binding and policy are still checked on every request. `false` turns it off.
   * @default { max: 10000 }
   */
  tokenCache?: { max?: number } | false;
  /**
   * Certificate-bound tokens (RFC 8705). `true` or an object also offers the `Bearer` challenge
   * on every route (mTLS-bound tokens travel with that scheme); `proxy` trusts a TLS-terminating
   * proxy's certificate header (RFC 9440). Certificate-bound tokens are always checked against
   * the certificate of the TLS connection, whatever this says.
   * @default false
   */
  mtls?: boolean | MtlsOptions;
  /**
   * Token introspection (RFC 7662, signed answers RFC 9701): for opaque tokens, and for JWTs
   * when `introspectJwts` is on (revocation, FAPI 2.0 §5.3.4 #3).
   * @default undefined (JWTs are checked locally only; a revoked JWT works until its `exp`)
   */
  introspection?: IntrospectionOptions;
  /**
   * Which tokens are accepted and how they are checked: `jwt` (locally only), `opaque`
   * (introspected only), `auto` (a JWT from a trusted issuer locally, anything else introspected).
   * @default 'auto' with `introspection`, else 'jwt'
   */
  tokenFormat?: 'jwt' | 'opaque' | 'auto';
  /**
   * Also introspect JWTs that passed the local checks, so a revoked token is refused within the
   * introspection cache time instead of working until it expires. Only the JWTs of
   * `introspection.issuer`: another trusted issuer's tokens are never sent to its endpoint and are
   * checked locally only.
   * @default false
   */
  introspectJwts?: boolean;
  /** DPoP proof checks. @default { maxAgeSec: 60, maxFutureSec: 10, in-memory replay store, nonces off } */
  dpop?: DpopOptions;
  /**
   * FAPI 2.0 Message Signing (RFC 9421): where clients' request-signing keys are, the key this
   * API signs responses with, and the audit hook. Routes opt in with `signedRequest` and
   * `signResponse`.
   * @default undefined (no route can ask for signatures)
   */
  messageSigning?: MessageSigningOptions;
  /**
   * Idempotency keys (draft-ietf-httpapi-idempotency-key-header; UK Open Banking and Brazil
   * Open Finance `x-idempotency-key`): the store shared by every route whose policy sets
   * `idempotency`, and the request body limit for fingerprints.
   * @default { store: a per-process MemoryIdempotencyStore, maxRequestBytes: 1048576 }
   */
  idempotency?: IdempotencyOptions;
  /** Called once per decision, allowed or refused. Exceptions it throws are ignored. */
  onDecision?: (event: DecisionEvent) => void;
  /**
   * Where failures an operator must see are reported without `onDecision`: issuer discovery and
   * JWK set fetches that fail, introspection and shared-store failures (each 503 reason at most
   * once a minute, with a `repeated` count), and a hint, at most once every ten minutes, when a
   * refusal looks like a configuration problem (e.g. DPoP proofs naming another origin than the
   * one this API computes: `publicUrl` missing behind a proxy). Any pino-compatible logger
   * (`warn(obj, msg)`, `error(obj, msg)`; `info` is used when present). Entries never contain a
   * token, a proof or a secret. `false` turns reporting off.
   * @default one JSON line per warning or error on stderr
   */
  logger?: GuardLogger | false;
  /**
   * How discovery, JWK set, introspection and client-key fetches leave the process: through a
   * forward proxy (`{ proxy: 'env' }` reads `HTTPS_PROXY` / `NO_PROXY`; `{ proxy: 'http://…' }`)
   * or with an agent of the application's. A proxy that cannot be reached is a 503 with
   * `Retry-After`, like an issuer that cannot (FAPI 2.0 §5.3.4: never an accepted request).
   * @default undefined (direct connections; proxy variables are ignored)
   */
  outbound?: OutboundOptions;
  /** Current time in milliseconds. For tests (the RFC vectors are from 2019–2022). @default Date.now */
  clock?: () => number;
}

/** FAPI 2.0 Message Signing settings (see {@link GuardOptions.messageSigning}). */
export interface MessageSigningOptions extends ClientKeyOptions {
  /** Oldest accepted `created` of a request signature, in seconds (RFC 9421 §3.2.1). @default 60 */
  maxAgeSec?: number;
  /** How far in the future `created` may be, in seconds (clock skew). @default 5 */
  maxFutureSec?: number;
  /**
   * The private JWK this API signs responses with (Ed25519, P-256 or RSA ≥ 2048 bits, with a
   * `kid`); needed by routes with `signResponse`. Its public half is served at `jwksUri`.
   */
  responseKey?: SignatureJwk;
  /**
   * Absolute URL where this API publishes its response-verification keys. The adapters' metadata
   * handler serves the JWK set at this URL's path, and the RFC 9728 document names it
   * (`jwks_uri`, SIG-15).
   * @default undefined (not published)
   */
  jwksUri?: string;
  /** Largest request body read to check its digest; larger ones get 413. @default 1048576 (1 MiB) */
  maxBodyBytes?: number;
  /**
   * UK Open Banking `x-jws-signature` (detached JWS over the body): trust anchors, who each client
   * signs as, and the bank's response key. Routes opt in with `jwsSignature`. The key-set cache
   * settings above (`cacheMs`, `cooldownMs`, `timeoutMs`) and `maxBodyBytes` apply to it too.
   * @default undefined (no route can ask for OB signatures)
   */
  ukOpenBanking?: UkOpenBankingOptions;
  /**
   * Open Finance Brasil signed JWT bodies: each client's organisation id and keys, the bank's
   * organisation id and response key. Routes opt in with `jwtBody`. The key-set cache settings
   * above and `maxBodyBytes` apply to it too; `jti` values go to `dpop.replayStore`.
   * @default undefined (no route can ask for signed JWT bodies)
   */
  openFinanceBrasil?: OpenFinanceBrasilOptions;
  /**
   * Receives, for every verified request signature and every response signature, what must be
   * stored to prove the exchange later. For requests the guard waits for the returned promise;
   * if it rejects, the request is refused with 503 (no proof kept, no payment made). For
   * responses it is called as the response is sent; failures are ignored.
   * @default undefined
   */
  onSignedExchange?: (record: SignedExchangeRecord) => void | Promise<void>;
}

/** Open Finance Brasil signed payloads ("Como assinar o payload"). */
export interface OpenFinanceBrasilOptions {
  /** By `client_id`: the client's organisation id (its `iss`) and where its signing keys are. Required. */
  clients: Readonly<Record<string, { organisationId: string } & ClientKeySource>>;
  /** The bank's organisation id: `iss` of signed responses. Required. */
  organisationId: string;
  /** The bank's private RSA JWK (with `kid`) that signs responses (PS256). Needed by routes with `jwtBody.response`. */
  responseKey?: SignatureJwk;
  /** Oldest accepted `iat`, in seconds. At most 300. @default 60 */
  maxAgeSec?: number;
  /** How far in the future `iat` may be, in seconds. At most 60. @default 5 */
  maxFutureSec?: number;
}

/** UK Open Banking message signing (Read/Write API "Message Signing", v3.1.x). */
export interface UkOpenBankingOptions {
  /**
   * Accepted trust anchors: the `http://openbanking.org.uk/tan` value (a domain, e.g.
   * `openbanking.org.uk`) and the URL of a signer's JWK set there, with `{iss}` standing for the
   * signer's `iss` (e.g. `https://keystore.openbanking.org.uk/{iss}.jwks`, where `iss` is
   * `org-id/software-statement-id`). Required, at least one.
   */
  trustAnchors: Readonly<Record<string, string>>;
  /** The `iss` each client signs as, by `client_id` of its access token. @default {} */
  clients?: Readonly<Record<string, string>>;
  /**
   * The `iss` of a client `clients` does not list, e.g. read from its certificate (organisation
   * and software statement ids); `undefined` = the client cannot sign.
   * @default undefined
   */
  resolveIssuer?: (client: { clientId: string; certificate: ClientCertificate | undefined }) => string | undefined;
  /** `3.1.3` and earlier: `b64: false`; `3.1.4` and later: no `b64`. @default '3.1.4' */
  version?: ObSigningVersion;
  /** Oldest accepted `http://openbanking.org.uk/iat`, in seconds. At most 300. @default 60 */
  maxAgeSec?: number;
  /** How far in the future `iat` may be, in seconds. At most 60. @default 5 */
  maxFutureSec?: number;
  /** The bank's private RSA JWK (with `kid`, registered with its trust anchor) that signs responses. */
  responseKey?: SignatureJwk;
  /** The bank's `iss` on response signatures (its organisation id). Required with `responseKey`. */
  responseIssuer?: string;
  /** The bank's `tan` on response signatures. Required with `responseKey`. */
  responseTrustAnchor?: string;
}

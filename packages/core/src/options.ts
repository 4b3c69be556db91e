/**
 * Guard configuration: one typed object, validated once at start-up. A configuration that
 * cannot be safe throws a `TypeError` whose message says what to change.
 */

import { availableParallelism } from 'node:os';
import type { ClientCertificate, MtlsOptions } from './binding/mtls.js';
import type { DpopNonceOptions } from './binding/nonce.js';
import { checkGuardOptions } from './config-keys.js';
import type { GuardError } from './errors.js';
import { type IdempotencyOptions, idempotencyRequestLimit } from './idempotency/policy.js';
import type { IdempotencyStore } from './idempotency/store.js';
import { type GuardLogger, resolveLogger } from './logger.js';
import type { ResourceMetadataOptions } from './metadata.js';
import {
  type ClientProfileOptions,
  FAPI1_ALGORITHMS,
  FAPI2_ALGORITHMS,
  type Profile,
  type ProfileName,
  Profiles,
  profileSettings,
} from './regimes/profiles.js';
import { type ObKey, type ObSigningKey, type ObSigningVersion, obSigningKey, obVerificationKey } from './regimes/uk-ob-signature.js';
import type { OriginOptions } from './request.js';
import { type ClientKeyOptions, type ClientKeySource, ClientKeys } from './signatures/client-keys.js';
import type { SignedExchangeRecord } from './signatures/fapi.js';
import { type ResponseSigningKey, type SignatureJwk, signingKey } from './signatures/keys.js';
import { MemoryReplayStore, type ReplayStore } from './stores.js';
import { type Outbound, type OutboundOptions, resolveOutbound } from './tokens/http.js';
import type { IntrospectionOptions } from './tokens/introspection.js';
import type { IssuerConfig, JSONWebKeySet, KeySetOptions } from './tokens/issuer.js';
import { assertSecureUrl } from './url.js';

/** FAPI 2.0 §5.4.1 #1.2: the algorithms allowed for JWTs, in challenge order (RFC 9449 §7.1 `algs`). */
export const FAPI_ALGORITHMS = FAPI2_ALGORITHMS;

/** FAPI 2.0 §5.4.1 #1.2 also allows `Ed25519`, the fully-specified name of EdDSA with Ed25519 (RFC 9864). */
const FAPI_ALLOWED: ReadonlySet<string> = new Set([...FAPI_ALGORITHMS, 'Ed25519']);

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
   * Publish RFC 9728 protected resource metadata (adapters serve it at the well-known path) and
   * point to it from every challenge (`resource_metadata`, RFC 9728 §5.1).
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
   * introspection cache time instead of working until it expires.
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

export interface ResolvedOpenFinanceBrasil {
  keys: ClientKeys<ObKey>;
  organisations: ReadonlyMap<string, string>;
  organisationId: string;
  signer: ObSigningKey | undefined;
  maxAgeSec: number;
  maxFutureSec: number;
}

function resolveOpenFinanceBrasil(
  value: OpenFinanceBrasilOptions,
  cache: ClientKeyOptions,
  now: () => number,
  outbound: Outbound | undefined,
): ResolvedOpenFinanceBrasil {
  if (typeof value.organisationId !== 'string' || value.organisationId === '') {
    throw configError('messageSigning.openFinanceBrasil.organisationId is required (the bank organisation id)');
  }
  const organisations = new Map<string, string>();
  const sources: Record<string, ClientKeySource> = {};
  for (const [clientId, { organisationId, ...source }] of Object.entries(value.clients ?? {})) {
    if (typeof organisationId !== 'string' || organisationId === '') {
      throw configError(`messageSigning.openFinanceBrasil.clients["${clientId}"].organisationId is required`);
    }
    organisations.set(clientId, organisationId);
    sources[clientId] = source as ClientKeySource;
  }
  if (organisations.size === 0) throw configError('messageSigning.openFinanceBrasil.clients must name at least one client');
  return {
    keys: new ClientKeys<ObKey>({ ...cache, clients: sources, resolveClient: undefined }, now, outbound, obVerificationKey),
    organisations,
    organisationId: value.organisationId,
    signer: value.responseKey && obSigningKey(value.responseKey, 'messageSigning.openFinanceBrasil.responseKey'),
    maxAgeSec: window(value.maxAgeSec, 60, 300, 'messageSigning.openFinanceBrasil.maxAgeSec', 1),
    maxFutureSec: window(value.maxFutureSec, 5, 60, 'messageSigning.openFinanceBrasil.maxFutureSec'),
  };
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

export interface ResolvedUkOpenBanking {
  version: ObSigningVersion;
  trustAnchors: ReadonlySet<string>;
  keys: ClientKeys<ObKey>;
  clients: Readonly<Record<string, string>>;
  resolveIssuer: UkOpenBankingOptions['resolveIssuer'];
  maxAgeSec: number;
  maxFutureSec: number;
  signer: { key: ObSigningKey; iss: string; tan: string; version: ObSigningVersion } | undefined;
}

/** An OB `iss`: an organisation id, or `org-id/software-statement-id`. */
const OB_ISSUER = /^[A-Za-z0-9._~-]{1,64}(?:\/[A-Za-z0-9._~-]{1,64})?$/;

function window(value: number | undefined, fallback: number, max: number, what: string, min = 0): number {
  const n = value ?? fallback;
  if (!Number.isFinite(n) || n < min || n > max) throw configError(`${what} must be between ${min} and ${max} seconds`);
  return n;
}

function resolveUkOpenBanking(
  value: UkOpenBankingOptions,
  cache: ClientKeyOptions,
  now: () => number,
  outbound: Outbound | undefined,
): ResolvedUkOpenBanking {
  const anchors = Object.entries(value.trustAnchors ?? {});
  if (anchors.length === 0) throw configError('messageSigning.ukOpenBanking.trustAnchors must name at least one trust anchor');
  for (const [tan, template] of anchors) {
    if (!template.includes('{iss}')) throw configError(`messageSigning.ukOpenBanking.trustAnchors["${tan}"] must contain {iss}`);
    assertSecureUrl(template.replace('{iss}', 'iss'), `messageSigning.ukOpenBanking.trustAnchors["${tan}"]`);
  }
  const templates = new Map(anchors);
  for (const [clientId, iss] of Object.entries(value.clients ?? {})) {
    if (!OB_ISSUER.test(iss))
      throw configError(`messageSigning.ukOpenBanking.clients["${clientId}"] is not an OB iss (org-id/software-statement-id)`);
  }
  // One key set per trust anchor and signer, fetched with the cache and cool-down of the other key sets.
  const keys = new ClientKeys<ObKey>(
    {
      ...cache,
      clients: undefined,
      resolveClient: (owner) => {
        const [tan, iss] = owner.split('|', 2) as [string, string];
        const template = templates.get(tan);
        return template && OB_ISSUER.test(iss) ? { jwksUri: template.replace('{iss}', iss) } : undefined;
      },
    },
    now,
    outbound,
    obVerificationKey,
  );
  let signer: ResolvedUkOpenBanking['signer'];
  if (value.responseKey !== undefined) {
    if (typeof value.responseIssuer !== 'string' || typeof value.responseTrustAnchor !== 'string') {
      throw configError('messageSigning.ukOpenBanking.responseKey needs responseIssuer and responseTrustAnchor');
    }
    const version = value.version ?? '3.1.4';
    signer = {
      key: obSigningKey(value.responseKey, 'messageSigning.ukOpenBanking.responseKey'),
      iss: value.responseIssuer,
      tan: value.responseTrustAnchor,
      version,
    };
  }
  return {
    version: value.version ?? '3.1.4',
    trustAnchors: new Set(templates.keys()),
    keys,
    clients: { ...value.clients },
    resolveIssuer: value.resolveIssuer,
    maxAgeSec: window(value.maxAgeSec, 60, 300, 'messageSigning.ukOpenBanking.maxAgeSec', 1),
    maxFutureSec: window(value.maxFutureSec, 5, 60, 'messageSigning.ukOpenBanking.maxFutureSec'),
    signer,
  };
}

/** Options after validation, with every default filled in. */
export interface ResolvedOptions {
  issuers: IssuerConfig[];
  audiences: string[];
  /** Every algorithm some profile accepts for access tokens; each request is held to its profile's. */
  algorithms: string[];
  clockToleranceSec: number;
  realm: string;
  keys: KeySetOptions;
  tokenCacheMax: number;
  onDecision: ((event: DecisionEvent) => void) | undefined;
  logger: GuardLogger;
  now: () => number;
  origin: OriginOptions;
  dpop: { maxAgeSec: number; maxFutureSec: number; replayStore: ReplayStore; nonce: DpopNonceOptions; verifyOn: 'main' | 'threadpool' };
  /** `undefined` when mTLS is not offered. */
  mtls: MtlsOptions | undefined;
  introspection: IntrospectionOptions | undefined;
  profile: ProfileName;
  /** The profiles of this guard and how a client is matched to one. */
  profiles: Profiles;
  /** Algorithms of DPoP proofs and of the DPoP challenge (`algs`); empty when no profile accepts DPoP. */
  dpopAlgorithms: readonly string[];
  compat: CompatOptions;
  resourceMetadata: ResourceMetadataOptions | undefined;
  interactionId: boolean;
  tokenFormat: 'jwt' | 'opaque' | 'auto';
  introspectJwts: boolean;
  messageSigning: ResolvedMessageSigning | undefined;
  outbound: Outbound | undefined;
  /** `store` is `undefined` when the default per-process store is used (made on first use). */
  idempotency: { store: IdempotencyStore | undefined; maxRequestBytes: number };
}

export interface ResolvedMessageSigning {
  /** FAPI 2.0 request-signing keys; `undefined` when only UK Open Banking signatures are configured. */
  keys: ClientKeys | undefined;
  ukOpenBanking: ResolvedUkOpenBanking | undefined;
  openFinanceBrasil: ResolvedOpenFinanceBrasil | undefined;
  maxAgeSec: number;
  maxFutureSec: number;
  responseKey: ResponseSigningKey | undefined;
  jwksUri: string | undefined;
  maxBodyBytes: number;
  onSignedExchange: ((record: SignedExchangeRecord) => void | Promise<void>) | undefined;
}

function resolveMessageSigning(
  value: MessageSigningOptions | undefined,
  now: () => number,
  outbound: Outbound | undefined,
): ResolvedMessageSigning | undefined {
  if (value === undefined) return undefined;
  const maxAgeSec = value.maxAgeSec ?? 60;
  const maxFutureSec = value.maxFutureSec ?? 5;
  if (!Number.isFinite(maxAgeSec) || maxAgeSec < 1 || maxAgeSec > 300)
    throw configError('messageSigning.maxAgeSec must be between 1 and 300 seconds');
  if (!Number.isFinite(maxFutureSec) || maxFutureSec < 0 || maxFutureSec > 60) {
    throw configError('messageSigning.maxFutureSec must be between 0 and 60 seconds');
  }
  const maxBodyBytes = value.maxBodyBytes ?? 1024 * 1024;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw configError('messageSigning.maxBodyBytes must be a positive integer');
  if (value.jwksUri !== undefined) assertSecureUrl(value.jwksUri, 'messageSigning.jwksUri');
  if (value.jwksUri !== undefined && value.responseKey === undefined)
    throw configError('messageSigning.jwksUri needs responseKey (the key it publishes)');
  const fapiKeys =
    value.clients !== undefined ||
    value.resolveClient !== undefined ||
    (value.ukOpenBanking === undefined && value.openFinanceBrasil === undefined);
  return {
    keys: fapiKeys ? new ClientKeys(value, now, outbound) : undefined,
    ukOpenBanking: value.ukOpenBanking && resolveUkOpenBanking(value.ukOpenBanking, value, now, outbound),
    openFinanceBrasil: value.openFinanceBrasil && resolveOpenFinanceBrasil(value.openFinanceBrasil, value, now, outbound),
    maxAgeSec,
    maxFutureSec,
    responseKey: value.responseKey === undefined ? undefined : signingKey(value.responseKey),
    jwksUri: value.jwksUri,
    maxBodyBytes,
    onSignedExchange: value.onSignedExchange,
  };
}

function configError(message: string): TypeError {
  return new TypeError(`fapi-guard: ${message}`);
}

function resolveIssuer(entry: string | IssuerConfig): IssuerConfig {
  const config = typeof entry === 'string' ? { issuer: entry } : { ...entry };
  if (typeof config.issuer !== 'string' || config.issuer === '') throw configError('each issuer needs an issuer identifier');
  const url = assertSecureUrl(config.issuer, 'issuer');
  // RFC 8414 §2: no query or fragment in an issuer identifier.
  if (url.search || url.hash) throw configError(`issuer "${config.issuer}" must not have a query or fragment`);
  if (config.jwksUri !== undefined) assertSecureUrl(config.jwksUri, 'jwksUri');
  if (config.jwks !== undefined) assertKeySet(config.jwks, config.issuer);
  return config;
}

function assertKeySet(jwks: JSONWebKeySet, issuer: string): void {
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray(jwks.keys)) {
    throw configError(`jwks of issuer "${issuer}" must be a JWK set ({ keys: [...] })`);
  }
  for (const key of jwks.keys) {
    if (key.d !== undefined || key.k !== undefined) {
      throw configError(`jwks of issuer "${issuer}" holds private or symmetric key material; give public keys only`);
    }
  }
}

function resolveAudience(value: unknown): string[] {
  const list = typeof value === 'string' && value !== '' ? [value] : Array.isArray(value) ? [...value] : [];
  if (list.length === 0) {
    throw configError('audience is required: set it to this API\'s resource identifier, e.g. "https://api.bank.example"');
  }
  for (const aud of list) {
    let url: URL;
    try {
      url = new URL(aud);
    } catch {
      throw configError(`audience "${aud}" must be an absolute URI (RFC 8707 §2)`);
    }
    if (aud.includes('#') || url.hash) throw configError(`audience "${aud}" must not contain a fragment (RFC 8707 §2)`);
  }
  return list as string[];
}

/**
 * Without `publicUrl`, the origins `htu` and `@target-uri` are checked against come from the
 * configuration, never from the client's `Host`: the resource identifier is the URL clients
 * address (RFC 8707 §2), so its origin is the one to expect.
 */
function audienceOrigins(audiences: readonly string[]): string[] {
  const origins = new Set<string>();
  for (const aud of audiences) {
    const url = new URL(aud);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw configError(
        `audience "${aud}" is not an http(s) URL, so it cannot tell which origin clients address (DPoP htu, RFC 9449 §4.3; RFC 9421 @target-uri): set publicUrl, e.g. publicUrl: 'https://api.example'`,
      );
    }
    origins.add(url.origin);
  }
  return [...origins];
}

function resolveAlgorithms(value: readonly string[] | undefined, fapi: boolean, acceptNonFapi: boolean): string[] {
  const list = value === undefined ? [...FAPI_ALGORITHMS] : [...value];
  if (list.length === 0) throw configError('algorithms must not be empty; leave it unset for the FAPI 2.0 default (ES256, PS256, EdDSA)');
  for (const alg of list) {
    if (!SUPPORTED_ALGORITHMS.has(alg)) {
      throw configError(
        `algorithm "${alg}" is not allowed: only asymmetric signature algorithms can be used (${[...SUPPORTED_ALGORITHMS].join(', ')}); 'none' and HMAC never`,
      );
    }
    if (fapi && !acceptNonFapi && !FAPI_ALLOWED.has(alg)) {
      throw configError(
        `algorithm "${alg}" is outside FAPI 2.0 §5.4.1 (PS256, ES256, EdDSA), which the default profile 'fapi2' enforces: remove it, or accept the weaker check explicitly with compat: { acceptNonFapiAlgorithms: true } (profile 'oauth2' for an API outside FAPI)`,
      );
    }
  }
  return list;
}

export function resolveOptions(options: GuardOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw configError('options are required');
  checkGuardOptions(options);
  const entries = [...(options.issuers ?? []), ...(options.issuer === undefined ? [] : [options.issuer])];
  if (entries.length === 0) throw configError('set issuer (or issuers): the authorization server(s) whose tokens this API accepts');
  const issuers = entries.map(resolveIssuer);
  const seen = new Set<string>();
  for (const { issuer } of issuers) {
    if (seen.has(issuer)) throw configError(`issuer "${issuer}" is configured twice`);
    seen.add(issuer);
  }
  const audiences = resolveAudience(options.audience);
  const tolerance = options.clockToleranceSec ?? 10;
  if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > 60) {
    throw configError('clockToleranceSec must be between 0 and 60 seconds');
  }
  const cacheMax = options.tokenCache === false ? 0 : (options.tokenCache?.max ?? 10_000);
  if (!Number.isInteger(cacheMax) || cacheMax < 0) throw configError('tokenCache.max must be a non-negative integer');
  for (const [name, value] of Object.entries(options.keys ?? {})) {
    if (typeof value !== 'number' || !(value >= 0)) throw configError(`keys.${name} must be a non-negative number of milliseconds`);
  }
  const dpop = options.dpop ?? {};
  const maxAgeSec = dpop.maxAgeSec ?? 60;
  const maxFutureSec = dpop.maxFutureSec ?? 10;
  if (!Number.isFinite(maxAgeSec) || maxAgeSec < 1 || maxAgeSec > 300)
    throw configError('dpop.maxAgeSec must be between 1 and 300 seconds');
  if (!Number.isFinite(maxFutureSec) || maxFutureSec < 0 || maxFutureSec > 60) {
    throw configError('dpop.maxFutureSec must be between 0 and 60 seconds (FAPI 2.0 §5.3.2.1 #14)');
  }
  if (dpop.replayStore !== undefined && typeof dpop.replayStore?.claim !== 'function') {
    throw configError('dpop.replayStore must implement claim(key, expiresAt)');
  }
  const now = options.clock ?? Date.now;
  const outbound = resolveOutbound(options.outbound);
  const introspection = resolveIntrospection(options.introspection, issuers);
  const tokenFormat = options.tokenFormat ?? (introspection ? 'auto' : 'jwt');
  if ((tokenFormat !== 'jwt' || options.introspectJwts) && !introspection) {
    throw configError(`tokenFormat "${tokenFormat}"${options.introspectJwts ? ' with introspectJwts' : ''} needs introspection options`);
  }
  const optional = (options.compat?.optionalClaims ?? []) as readonly string[];
  if (optional.some((c) => !['jti', 'sub', 'iat'].includes(c))) {
    throw configError('compat.optionalClaims may name jti, sub and iat only; for a client id in another claim set compat.clientIdClaim');
  }
  const profile = options.profile ?? 'fapi2';
  const profiles = resolveProfiles(profile, options);
  const fapi1 = profiles.all.some((p) => p.name === 'fapi1-advanced');
  if (fapi1 && !options.mtls) {
    throw configError(
      'the fapi1-advanced profile accepts certificate-bound access tokens only (FAPI 1.0 Part 2 §6.2.1 #2): configure mtls',
    );
  }
  if (fapi1 && options.interactionId === false) {
    throw configError('interactionId cannot be false where clients are served under fapi1-advanced (FAPI 1.0 Part 1 §6.2.1 #11)');
  }
  const metadata = options.resourceMetadata === true ? {} : options.resourceMetadata || undefined;
  if (metadata?.resource !== undefined && !audiences.includes(metadata.resource)) {
    throw configError(`resourceMetadata.resource "${metadata.resource}" must be one of the audiences (RFC 9728 §3.3)`);
  }
  if (metadata?.jwksUri !== undefined) assertSecureUrl(metadata.jwksUri, 'resourceMetadata.jwksUri');
  return {
    profile,
    compat: { ...options.compat },
    resourceMetadata: metadata,
    interactionId: options.interactionId ?? profile !== 'oauth2',
    profiles,
    dpopAlgorithms: profiles.dpop?.algorithms ?? [],
    introspection,
    tokenFormat,
    introspectJwts: options.introspectJwts === true,
    messageSigning: resolveMessageSigning(options.messageSigning, now, outbound),
    idempotency: { store: options.idempotency?.store, maxRequestBytes: idempotencyRequestLimit(options.idempotency) },
    outbound,
    issuers,
    audiences,
    algorithms: [...new Set(profiles.all.flatMap((p) => p.algorithms))],
    clockToleranceSec: tolerance,
    realm: options.realm ?? (audiences[0] as string),
    keys: { ...options.keys },
    tokenCacheMax: cacheMax,
    onDecision: options.onDecision,
    logger: resolveLogger(options.logger),
    now,
    origin: { publicUrl: options.publicUrl ?? audienceOrigins(audiences), trustedProxies: options.trustedProxies },
    mtls: options.mtls === true ? {} : options.mtls || undefined,
    dpop: {
      maxAgeSec,
      maxFutureSec,
      verifyOn: dpop.verifyOn ?? (availableParallelism() > 1 ? 'threadpool' : 'main'),
      replayStore: dpop.replayStore ?? new MemoryReplayStore({ clock: now }),
      nonce: dpop.nonce ?? {},
    },
  };
}

/**
 * The guard's profile with its algorithms, and the profiles `clientProfiles` can move clients to
 * (each with its own default algorithms).
 */
function resolveProfiles(name: ProfileName, options: GuardOptions): Profiles {
  const algorithms =
    options.algorithms === undefined
      ? undefined
      : resolveAlgorithms(options.algorithms, name === 'fapi2', options.compat?.acceptNonFapiAlgorithms === true);
  if (name === 'fapi1-advanced' && algorithms?.some((alg) => !(FAPI1_ALGORITHMS as readonly string[]).includes(alg))) {
    throw configError('under the fapi1-advanced profile algorithms may list PS256 and ES256 only (FAPI 1.0 Part 2 §8.6)');
  }
  const fallback = profileSettings(name, algorithms);
  const { clients = {}, claim } = options.clientProfiles ?? {};
  if (options.clientProfiles !== undefined && name === 'oauth2') {
    throw configError('clientProfiles needs profile fapi2 or fapi1-advanced: oauth2 is a relaxation for a whole API, not a client');
  }
  if (claim === '') throw configError('clientProfiles.claim must name a claim');
  const names = new Set<ProfileName>(claim === undefined ? [] : ['fapi2', 'fapi1-advanced']);
  for (const [client, value] of Object.entries(clients)) {
    if (value !== 'fapi2' && value !== 'fapi1-advanced') {
      throw configError(`clientProfiles.clients["${client}"] must be "fapi2" or "fapi1-advanced"`);
    }
    names.add(value);
  }
  names.delete(name);
  const others: Profile[] = [...names].map((n) => profileSettings(n));
  return new Profiles(fallback, others, clients, claim);
}

const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth'];

function resolveIntrospection(value: IntrospectionOptions | undefined, issuers: IssuerConfig[]): IntrospectionOptions | undefined {
  if (value === undefined) return undefined;
  if (typeof value.clientId !== 'string' || value.clientId === '') throw configError('introspection.clientId is required');
  const auth = value.clientAuth as { method?: string; clientSecret?: unknown; privateKey?: { d?: unknown }; cert?: unknown; key?: unknown };
  if (!auth || !CLIENT_AUTH_METHODS.includes(auth.method ?? '')) {
    throw configError(`introspection.clientAuth.method must be one of ${CLIENT_AUTH_METHODS.join(', ')}`);
  }
  if ((auth.method === 'client_secret_basic' || auth.method === 'client_secret_post') && typeof auth.clientSecret !== 'string') {
    throw configError(`introspection.clientAuth.clientSecret is required for ${auth.method}`);
  }
  if (auth.method === 'private_key_jwt' && typeof auth.privateKey?.d !== 'string') {
    throw configError('introspection.clientAuth.privateKey must be a private JWK for private_key_jwt');
  }
  if (auth.method === 'tls_client_auth' && (typeof auth.cert !== 'string' || typeof auth.key !== 'string')) {
    throw configError('introspection.clientAuth needs cert and key (PEM) for tls_client_auth');
  }
  // FAPI 2.0 §5.2.1 / INTRO-05: introspection only over TLS (loopback excepted for development).
  if (value.endpoint !== undefined) assertSecureUrl(value.endpoint, 'introspection.endpoint');
  const issuer = value.issuer ?? (issuers.length === 1 ? issuers[0]?.issuer : undefined);
  const config = issuers.find((i) => i.issuer === issuer);
  if (!config) throw configError('introspection.issuer must name one of the configured issuers (required with several issuers)');
  if (value.endpoint === undefined && (config.jwks !== undefined || config.jwksUri !== undefined)) {
    throw configError(`introspection.endpoint is required: issuer "${config.issuer}" is configured without discovery`);
  }
  const cache = value.cache;
  if (cache) {
    for (const name of ['maxTtlSec', 'negativeTtlSec', 'max'] as const) {
      const n = cache[name];
      if (n !== undefined && (!Number.isFinite(n) || n < 0)) throw configError(`introspection.cache.${name} must be a non-negative number`);
    }
  }
  if (value.timeoutMs !== undefined && !(value.timeoutMs > 0 && value.timeoutMs <= 60_000)) {
    throw configError('introspection.timeoutMs must be between 1 and 60000');
  }
  return { ...value, issuer };
}

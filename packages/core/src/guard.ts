/**
 * `createGuard(options)`: the one entry point adapters call. It wires the steps of a request —
 * credentials, token, binding, policy — and turns every outcome into a value.
 */
import { type DpopResult, DpopVerifier } from './binding/dpop.js';
import { CertificateSource, type ClientCertificate } from './binding/mtls.js';
import { DpopNonces } from './binding/nonce.js';
import { bodyHasToken, readCredentials } from './credentials.js';
import { fromEnvironment, renameForEnvironment, withVariableNames } from './env-names.js';
import {
  type AuthScheme,
  brErrorEnvelope,
  GuardError,
  type GuardErrorReason,
  obErrorEnvelope,
  REASONS,
  renderChallenges,
} from './errors.js';
import { type InteractionId, interactionId } from './interaction.js';
import { logValue } from './log-value.js';
import { Notices } from './logger.js';
import { buildMetadata, metadataPath, metadataUrl, type ResourceMetadataOptions } from './metadata.js';
import type { ResponseParts } from './node.js';
import { type DecisionEvent, type GuardOptions, type ResolvedMessageSigning, type ResolvedOptions, resolveOptions } from './options.js';
import { type CompiledPolicy, checkPolicy, compilePolicy, grantedScopes, type RoutePolicy } from './policy.js';
import { type JwtBodyFailure, signJwtBody, type VerifiedJwtBody, verifyJwtBody } from './regimes/br-signed-jwt.js';
import { type FapiCustomerHeaders, readFapiCustomerHeaders } from './regimes/fapi-headers.js';
import type { Profile, ProfileName } from './regimes/profiles.js';
import { type ObSignatureFailure, signObBody, type VerifiedObSignature, verifyObSignature } from './regimes/uk-ob-signature.js';
import {
  announcesBody,
  type ConnectionInfo,
  type GuardHeaders,
  type GuardRequest,
  headerLines,
  OriginResolver,
  type UrlResult,
} from './request.js';
import type { ClientKeys } from './signatures/client-keys.js';
import {
  acceptSignature,
  type OutgoingResponse,
  type ResponseSigningContext,
  type SignedResponse,
  signResponse,
  type VerifiedRequestSignature,
  verifyRequestSignature,
} from './signatures/fapi.js';
import { Introspector } from './tokens/introspection.js';
import { IssuerKeys } from './tokens/issuer.js';
import {
  type AccessTokenClaims,
  isJwtFrom,
  JwtAccessTokenVerifier,
  type TokenResult,
  tokenHash,
  type VerifiedAccessToken,
} from './tokens/jwt.js';

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

interface Bound {
  ok: true;
  binding: Binding;
  headers: Record<string, string>;
  certificate?: ClientCertificate;
  /** The DPoP proof carried a server nonce that was checked (RFC 9449 §9). */
  nonced?: true;
}

function acceptsCertificate(rule: (certificate: ClientCertificate) => boolean, certificate: ClientCertificate): boolean {
  try {
    return rule(certificate) === true;
  } catch {
    return false;
  }
}

export interface Guard {
  /**
   * Checks one request against one route policy: {@link Guard.authenticate} then
   * {@link Guard.complete}, for a request whose body is at hand. Never throws, never rejects.
   */
  check(request: GuardRequest, policy?: RoutePolicy | CompiledPolicy): Promise<Authorized | GuardError>;
  /**
   * The first phase of `check`, on the headers alone: credentials, token, binding (DPoP proof,
   * client certificate) and the route policy. It needs neither `body` nor `rawBody`, so adapters
   * call it before reading the body: only an authenticated client's body is read. Never rejects.
   */
  authenticate(request: GuardRequest, policy?: RoutePolicy | CompiledPolicy): Promise<Authenticated | GuardError>;
  /**
   * The second phase, once for each value `authenticate` returned: refuses an `access_token` in a
   * form `body` (RFC 6750 §2.2) and verifies the request signature over `rawBody` on
   * `signedRequest` routes (FAPI 2.0 Message Signing). `request` is the one `authenticate` saw,
   * with the body added. Rejects only when given a value it did not issue, or one already used.
   */
  complete(authenticated: Authenticated, request: GuardRequest): Promise<Authorized | GuardError>;
  /**
   * A further layer on a request `auth` came from (a route's check behind an app-wide one): nothing
   * is verified again — not the token, not the DPoP proof, whose `jti` is spent — and `policy` is
   * checked against what the first layer established, so every layer's requirements hold:
   * scopes, claims, step-up and `authorization_details`; no unbound token unless `allowBearer`;
   * the `clientCertificate` rule; a checked nonce if `dpopNonce`; no `access_token` in the body
   * parsed since; a request signature (`signedRequest`) and response signing (`signResponse`)
   * when no earlier layer did them. Resolves to `auth` itself when nothing is added, else to a new
   * value. Rejects only when `auth` was not issued by this guard. Refusals are reported to
   * `onDecision`; a layer that lets the request through is not (the first layer was).
   */
  authorizeLayer(auth: Authorized, request: GuardRequest, policy?: RoutePolicy | CompiledPolicy): Promise<Authorized | GuardError>;
  /** Validates a route policy once, at start-up (throws on a policy that cannot work). */
  policy(policy?: RoutePolicy): CompiledPolicy;
  /** Builds the absolute URL the client addressed, from `publicUrl` / `trustedProxies`. */
  requestUrl(connection: ConnectionInfo): UrlResult;
  /** The refusal for a request whose URL cannot be trusted (adapters call this). */
  refuse(reason: GuardErrorReason, detail: string, policy?: CompiledPolicy, headers?: GuardHeaders): GuardError;
  /**
   * Reports the idempotency decision on a request `auth` allowed (a {@link DecisionEvent} with
   * `idempotency` set): a refusal, or a replay with the stored response's `status`. `started` is
   * `performance.now()` when the decision began. 5xx refusals also reach the logger.
   */
  reportIdempotency(
    auth: Authorized,
    request: Pick<GuardRequest, 'method' | 'url'>,
    outcome: GuardError | { replayed: number },
    started: number,
  ): void;
  /**
   * The RFC 9728 metadata response for `GET`/`HEAD` of the well-known path, or `undefined` for
   * any other request (or when `resourceMetadata` is off). Adapters serve it.
   */
  metadataResponse(method: string, path: string): ResponseParts | undefined;
  /** The well-known path of the metadata document, when published. */
  readonly metadataPath: string | undefined;
  /** Paths of the documents `metadataResponse` answers: the metadata document and the response-signing JWK set. */
  readonly publishedPaths: readonly string[];
  /**
   * Signs a response of a route with `signResponse` (FAPI 2.0 Message Signing §5.6.2.1), bound to
   * the request `auth` came from, or with `jwsSignature.response` (UK Open Banking). Returns the
   * headers to set (`Content-Digest`, `Signature-Input`, `Signature`, and `Cache-Control` with
   * `no-transform` so that nothing re-codes the signed content; or `x-jws-signature`, with no
   * `record`; or, with `jwtBody.response` (Open Finance Brasil), a `body` that replaces the
   * response body), or `undefined` when the route does not sign. Adapters call it with the final
   * status, headers and body bytes.
   */
  signResponse(auth: Authorized, response: OutgoingResponse): SignedOutgoing | undefined;
  /** True when `auth` came from a route whose responses must be signed. */
  signsResponse(auth: Authorized | null | undefined): boolean;
  /**
   * Resolves once every issuer's verification keys are loaded (discovery and JWK set; static
   * key sets at once); rejects with each issuer's reason otherwise. A readiness probe can await it
   * on every call: it fetches only what is missing, at most once per `keys.cooldownMs` after a
   * failure, and never waits longer than the fetch timeouts (`keys.timeoutMs` for each of the
   * two discovery locations and the JWK set).
   */
  ready(): Promise<void>;
  /** Issuer key sets, by issuer identifier (for health checks and metrics). */
  readonly issuers: ReadonlyMap<string, IssuerKeys>;
  readonly options: Readonly<ResolvedOptions>;
}

const compiled = new WeakSet<object>();

/** What the first phase found. */
interface Authentication {
  ok: true;
  scheme: AuthScheme;
  token: VerifiedAccessToken;
  bound: Bound;
  scopes: readonly string[];
  profile: Profile;
  fapiCustomer: FapiCustomerHeaders;
}

/** One decision in progress. */
interface Pass {
  started: number;
  policy: CompiledPolicy;
  interaction: InteractionId | undefined;
}

/** The sender constraint a token asks for: `cnf.jkt` (checked first, as in `bind`), `cnf.x5t#S256`, or none. */
function requestedBinding(claims: Readonly<AccessTokenClaims>): Binding['type'] {
  const cnf = claims.cnf as Record<string, unknown> | undefined;
  if (typeof cnf?.jkt === 'string') return 'dpop';
  if (typeof cnf?.['x5t#S256'] === 'string') return 'mtls';
  return 'bearer';
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

interface Refusal {
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

/** UK.OBIE.Signature.* failures as refusal reasons; a key set that cannot be fetched is a 503, never an accepted request. */
const OB_FAILURES: Readonly<Record<ObSignatureFailure, GuardErrorReason>> = {
  Missing: 'ob_signature_missing',
  Malformed: 'ob_signature_malformed',
  MissingClaim: 'ob_signature_claim_missing',
  InvalidClaim: 'ob_signature_claim_invalid',
  Invalid: 'ob_signature_invalid',
  Unavailable: 'signature_keys_unavailable',
};

/** Signed-body failures as refusal reasons; a key set or replay store that cannot be reached is a 503, never an accepted request. */
const BR_FAILURES: Readonly<Record<JwtBodyFailure, GuardErrorReason>> = {
  media_type: 'br_jwt_media_type',
  malformed: 'br_jwt_malformed',
  header: 'br_jwt_invalid',
  claims: 'br_jwt_invalid',
  signature: 'br_jwt_invalid',
  replayed: 'br_jwt_replayed',
  unavailable: 'signature_keys_unavailable',
};

/** How often the same failure (per 503 reason) or configuration hint is logged. */
const FAILURE_LOG_WINDOW_MS = 60_000;
const HINT_LOG_WINDOW_MS = 600_000;

/** RFC 9449 §7.1, §8: browser clients must be able to read the challenge and the nonce. */
const EXPOSE = { 'access-control-expose-headers': 'WWW-Authenticate, DPoP-Nonce' } as const;

export function createGuard(options: GuardOptions): Guard {
  try {
    return buildGuard(options);
  } catch (error) {
    // Start-up errors of options read by guardOptionsFromEnv name the variables.
    throw renameForEnvironment(error, options);
  }
}

function buildGuard(options: GuardOptions): Guard {
  const opts = resolveOptions(options);
  const origin = new OriginResolver(opts.origin);
  // Hints to the operator name what they configured: the variable, or the option.
  const optionName = (path: string) => (fromEnvironment(options) ? withVariableNames(path) : path);
  // Rate limits are about the operator's real time, not the (possibly fixed) clock option.
  const notices = new Notices(opts.logger);
  const issuerFetched = (issuer: string) => (failure: string | undefined, keptOldKeys: boolean) => {
    // Bounded at the source: one fetch per cooldownMs (or maxAgeMs) per issuer.
    if (failure === undefined) notices.log('info', { issuer }, 'fapi-guard: issuer keys fetched again');
    else if (keptOldKeys)
      notices.log('warn', { issuer, reason: failure }, 'fapi-guard: issuer keys could not be refreshed; the old keys stay in use');
    else
      notices.log('error', { issuer, reason: failure }, 'fapi-guard: issuer keys could not be fetched; its tokens get 503 until they are');
  };
  const issuers = new Map(
    opts.issuers.map((config) => [config.issuer, new IssuerKeys(config, opts.keys, opts.now, issuerFetched(config.issuer), opts.outbound)]),
  );
  const nonces = new DpopNonces(opts.dpop.nonce, opts.now);
  const dpop = new DpopVerifier({
    algorithms: opts.dpopAlgorithms,
    maxAgeSec: opts.dpop.maxAgeSec,
    maxFutureSec: opts.dpop.maxFutureSec,
    verifyOn: opts.dpop.verifyOn,
    replayStore: opts.dpop.replayStore,
    nonces,
    now: opts.now,
  });
  const certificates = new CertificateSource(opts.mtls);
  const jwt = new JwtAccessTokenVerifier({
    issuers,
    audiences: opts.audiences,
    algorithms: opts.algorithms,
    clockToleranceSec: opts.clockToleranceSec,
    now: opts.now,
    cacheMax: opts.tokenCacheMax,
    compat: opts.compat,
  });
  // What the routes ask for, collected as they are compiled: the metadata document lists it.
  const knownScopes = new Set<string>();
  const knownDetailTypes = new Set<string>();
  const metadataResource = opts.resourceMetadata && (opts.resourceMetadata.resource ?? (opts.audiences[0] as string));
  const resourceMetadataUrl = metadataResource && metadataUrl(metadataResource);
  const wellKnownPath = metadataResource && metadataPath(metadataResource);

  // What response signing needs of each authorized request, kept off the public `Authorized` value
  // (it holds the Authorization header, which must not end up in logs of `req.auth`).
  const signing = new WeakMap<Authorized, ResponseSigningContext>();
  // Authorized values whose responses carry an OB x-jws-signature.
  const obSigning = new WeakSet<Authorized>();
  // Authorized values whose responses go back as JWTs signed by the bank (Open Finance Brasil).
  const brSigning = new WeakSet<Authorized>();
  const responseJwksPath = opts.messageSigning?.jwksUri ? new URL(opts.messageSigning.jwksUri).pathname : undefined;

  const introspector =
    opts.introspection &&
    new Introspector(opts.introspection, {
      issuer: issuers.get(opts.introspection.issuer as string) as IssuerKeys,
      audiences: opts.audiences,
      algorithms: opts.algorithms,
      clockToleranceSec: opts.clockToleranceSec,
      now: opts.now,
      onCacheError: (e) =>
        notices.report(
          'warn',
          'introspection-cache',
          FAILURE_LOG_WINDOW_MS,
          { reason: logValue((e as Error)?.message ?? String(e)) },
          'fapi-guard: the introspection cache failed; answers are fetched from the introspection endpoint',
        ),
    });

  /** Step 2: local JWT checks, introspection, or both, as `tokenFormat` and `introspectJwts` say. */
  function verifyToken(token: string): TokenResult | Promise<TokenResult> {
    const local = opts.tokenFormat === 'jwt' || (opts.tokenFormat === 'auto' && isJwtFrom(token, issuers));
    if (local) {
      const verified = jwt.verify(token);
      if (!opts.introspectJwts || !introspector) return verified;
      return (async () => {
        const result = await verified;
        if (!result.ok) return result;
        // Revocation check: the AS must still call the token active (FAPI 2.0 §5.3.4 #3).
        const status = await introspector.introspect(token, result.token.hash);
        return status.ok ? result : status;
      })();
    }
    return (introspector as Introspector).introspect(token, tokenHash(token));
  }

  function toPolicy(policy: RoutePolicy | CompiledPolicy | undefined): CompiledPolicy {
    if (policy && compiled.has(policy)) return policy as CompiledPolicy;
    const result = compilePolicy(policy as RoutePolicy | undefined, { allowBearer: opts.profiles.fallback.bearerByDefault });
    const unserved = result.profiles?.find((name) => !opts.profiles.all.some((p) => p.name === name));
    if (unserved !== undefined) {
      throw new TypeError(`fapi-guard: a route serves profile "${unserved}", which no client of this guard is served under`);
    }
    if (result.jwsSignature && !opts.messageSigning?.ukOpenBanking) {
      throw new TypeError('fapi-guard: a route asks for x-jws-signature; configure messageSigning.ukOpenBanking');
    }
    if ((result.signedRequest || result.signResponse) && !opts.messageSigning) {
      throw new TypeError('fapi-guard: a route asks for message signatures; configure messageSigning (client keys) in the guard options');
    }
    if (result.signedRequest && !opts.messageSigning?.keys) {
      throw new TypeError('fapi-guard: signedRequest needs messageSigning.clients or resolveClient (where the keys of each client are)');
    }
    if (result.jwtBody && !opts.messageSigning?.openFinanceBrasil) {
      throw new TypeError('fapi-guard: a route asks for a signed JWT body; configure messageSigning.openFinanceBrasil');
    }
    if (result.jwtBody?.response && !opts.messageSigning?.openFinanceBrasil?.signer) {
      throw new TypeError('fapi-guard: jwtBody.response needs messageSigning.openFinanceBrasil.responseKey');
    }
    if (result.jwsSignature?.response && !opts.messageSigning?.ukOpenBanking?.signer) {
      throw new TypeError('fapi-guard: jwsSignature.response needs messageSigning.ukOpenBanking.responseKey');
    }
    if (result.signResponse && !opts.messageSigning?.responseKey) {
      throw new TypeError('fapi-guard: signResponse needs messageSigning.responseKey (the private JWK responses are signed with)');
    }
    compiled.add(result);
    for (const scope of [...result.scopes, ...result.anyScopes]) knownScopes.add(scope);
    for (const detail of result.authorizationDetails) knownDetailTypes.add(detail.type);
    return result;
  }

  function schemesOf(policy: CompiledPolicy): AuthScheme[] {
    // DPoP where a profile the route serves accepts it; mTLS-bound tokens travel with Bearer (RFC 8705 §3).
    const dpopServed = opts.profiles.all.some((p) => p.dpop && (policy.profiles === undefined || policy.profiles.includes(p.name)));
    const schemes: AuthScheme[] = dpopServed ? ['DPoP'] : [];
    if (policy.allowBearer || opts.mtls) schemes.push('Bearer');
    return schemes;
  }

  function toError(refusal: Refusal, policy: CompiledPolicy, interaction?: string): GuardError {
    const headers: Record<string, string> = {};
    if (interaction) headers['x-fapi-interaction-id'] = interaction;
    const challenge = renderChallenges(refusal.reason, {
      schemes: schemesOf(policy),
      usedScheme: refusal.usedScheme,
      realm: opts.realm,
      dpopAlgorithms: opts.dpopAlgorithms,
      scope: refusal.scope,
      acrValues: refusal.acrValues,
      maxAge: refusal.maxAge,
      resourceMetadata: resourceMetadataUrl,
    });
    if (challenge) headers['www-authenticate'] = challenge;
    if (refusal.nonce) headers['dpop-nonce'] = refusal.nonce;
    if (refusal.acceptSignature) headers['accept-signature'] = refusal.acceptSignature;
    Object.assign(headers, EXPOSE);
    // RFC 9110 §10.2.3: a 503 says when to come back; 1 s unless the failing part knows better.
    const retryAfterMs = refusal.retryAfterMs ?? (REASONS[refusal.reason].status === 503 ? 1000 : undefined);
    if (retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
    headers['cache-control'] = 'no-store';
    // The detail quotes request and token values (kid, htu, ...): escaped and bounded for logs.
    const envelope = policy.jwsSignature
      ? obErrorEnvelope(refusal.reason, interaction)
      : policy.jwtBody
        ? brErrorEnvelope(refusal.reason, opts.now())
        : undefined;
    // Open Finance Brasil: errors are signed too, once the client (the audience) is known.
    const brazil = policy.jwtBody && opts.messageSigning?.openFinanceBrasil;
    const audience = brazil && refusal.token && brazil.organisations.get(refusal.token.claims.client_id);
    const signed =
      brazil?.signer && audience
        ? signJwtBody(envelope, { key: brazil.signer, iss: brazil.organisationId }, audience, opts.now() / 1000)
        : undefined;
    return new GuardError(refusal.reason, logValue(refusal.detail), headers, envelope, signed);
  }

  /**
   * Steps 1–4, on the headers alone: no body is read before the client has authenticated
   * (an unauthenticated client must not hold the request by trickling a body).
   */
  async function authenticateRequest(request: GuardRequest, policy: CompiledPolicy): Promise<Authentication | Refusal> {
    const credentials = readCredentials(request);
    if (!credentials.ok) return credentials;
    const { scheme } = credentials;
    // No profile of this API accepts DPoP (FAPI 1.0 Advanced alone): the scheme is as unknown as Basic.
    if (scheme === 'DPoP' && opts.dpopAlgorithms.length === 0) {
      return { reason: 'credentials_missing', detail: 'the DPoP scheme is not accepted by this API' };
    }
    // Cached tokens and in-process replay stores answer at once: no promise to wait for.
    const pendingToken = verifyToken(credentials.token);
    const verified = pendingToken instanceof Promise ? await pendingToken : pendingToken;
    if (!verified.ok) return { ...verified, usedScheme: scheme };
    const token = verified.token;
    const claims = token.claims;

    const served = serveUnder(request, scheme, token);
    if (!served.ok) return { ...served, usedScheme: scheme, token };
    const { profile, fapiCustomer } = served;

    const pendingBinding = bind(request, scheme, credentials.token, token, policy);
    const bound = pendingBinding instanceof Promise ? await pendingBinding : pendingBinding;
    if (!bound.ok) return { ...bound, usedScheme: scheme, token };

    // A route limited to some profiles serves no client of another (the client's own is never swapped).
    if (policy.profiles !== undefined && !policy.profiles.includes(profile.name)) {
      return { reason: 'profile_not_allowed', detail: `client served under ${profile.name}`, usedScheme: scheme, token };
    }
    const scopes = grantedScopes(claims);
    const decision = checkPolicy(policy, claims, scopes, opts.now() / 1000, opts.clockToleranceSec);
    if (!decision.ok) return { ...decision, usedScheme: scheme, token };
    return { ok: true, scheme, token, bound, scopes, profile, fapiCustomer };
  }

  /**
   * The client's profile and what it selects, before any proof is verified: the token's
   * algorithm, the kind of sender constraint, and the FAPI customer headers.
   */
  function serveUnder(
    request: GuardRequest,
    scheme: AuthScheme,
    token: VerifiedAccessToken,
  ): { ok: true; profile: Profile; fapiCustomer: FapiCustomerHeaders } | Refusal {
    const chosen = opts.profiles.choose(token.claims.client_id, token.claims);
    if (!chosen.ok) return { reason: 'profile_unknown', detail: chosen.detail };
    const { profile } = chosen;
    const alg = token.header?.alg;
    // FAPI 1.0 Part 2 §8.6: the token verified with the guard's algorithms; the client's profile may allow fewer.
    if (alg !== undefined && !profile.algorithms.includes(alg)) {
      return { reason: 'token_algorithm', detail: `alg ${alg} is not allowed under ${profile.name}` };
    }
    // FAPI 1.0 Part 2 §6.2.1 #2: certificate-bound tokens only; a DPoP-bound one is refused however it is sent.
    if (!profile.dpop && (scheme === 'DPoP' || token.claims.cnf?.jkt !== undefined)) {
      return { reason: 'binding_not_allowed', detail: `DPoP is not accepted under ${profile.name}` };
    }
    // FAPI 1.0 Part 2 §6.2.1 #2 (FAPIA-RS-02): and no unbound token, whatever the route's allowBearer says.
    if (profile.certificateBoundOnly && token.claims.cnf?.['x5t#S256'] === undefined) {
      return { reason: 'binding_missing', detail: `an unbound token is not accepted under ${profile.name}` };
    }
    const customer = readFapiCustomerHeaders(request.headers, opts.now(), opts.clockToleranceSec);
    if (customer.ok) return { ok: true, profile, fapiCustomer: customer.headers };
    // Profiles that do not validate them hand over nothing malformed and refuse nothing (XFAPI-03).
    return profile.validatesCustomerHeaders
      ? { reason: 'fapi_header_invalid', detail: customer.detail }
      : { ok: true, profile, fapiCustomer: {} };
  }

  /** What needs the body, on an authenticated request: the body-token refusal and step 5. */
  async function completeRequest(
    request: GuardRequest,
    policy: CompiledPolicy,
    found: Authentication,
    interaction?: string,
  ): Promise<Authorized | Refusal> {
    const { scheme, token, bound, scopes, profile, fapiCustomer } = found;
    const claims = token.claims;
    // RFC 6750 §2.2 (FAPI-RS-03): an adapter that authenticates before its parser runs shows the
    // parsed body only now; a token in it next to the header is still refused.
    if (bodyHasToken(request)) {
      return { reason: 'credentials_ambiguous', usedScheme: scheme, detail: 'Authorization header and access_token in the body', token };
    }
    const signed = policy.signedRequest || policy.signResponse ? await checkSignature(request, policy, token, interaction) : undefined;
    if (signed && !signed.ok) return { ...signed, usedScheme: scheme, token };
    const jws = policy.jwsSignature?.request ? await checkObSignature(request, policy, claims.client_id, bound.certificate) : undefined;
    if (jws && !jws.ok) return { ...jws, usedScheme: scheme, token };
    const jwtBody = policy.jwtBody?.request ? await checkJwtBody(request, claims.client_id) : undefined;
    if (jwtBody && !jwtBody.ok) return { ...jwtBody, usedScheme: scheme, token };
    const authorized: Authorized = {
      ok: true,
      token,
      claims,
      scopes,
      clientId: claims.client_id,
      subject: claims.sub,
      issuer: claims.iss,
      binding: bound.binding,
      headers: bound.headers,
      profile: profile.name,
      fapiCustomer,
      ...(bound.certificate ? { certificate: bound.certificate } : {}),
      ...(signed?.verified ? { signature: signed.verified } : {}),
      ...(jws?.verified ? { jwsSignature: jws.verified } : {}),
      ...(jwtBody?.ok ? { jwtBody: jwtBody.verified } : {}),
    };
    if (policy.jwtBody?.response) brSigning.add(authorized);
    if (signed?.context) signing.set(authorized, signed.context);
    layers.set(authorized, found);
    if (policy.jwsSignature?.response) obSigning.add(authorized);
    return authorized;
  }

  /** Open Finance Brasil: the body is a JWT signed by the client that holds the token, for this URL, used once. */
  async function checkJwtBody(request: GuardRequest, clientId: string): Promise<{ ok: true; verified: VerifiedJwtBody } | Refusal> {
    const settings = opts.messageSigning?.openFinanceBrasil as NonNullable<ResolvedMessageSigning['openFinanceBrasil']>;
    const organisationId = settings.organisations.get(clientId);
    if (organisationId === undefined) return { reason: 'br_jwt_invalid', detail: `client ${clientId} has no organisation id` };
    const body = request.rawBody;
    if (body === undefined && announcesBody(request.headers)) {
      return {
        reason: 'body_unavailable',
        detail: 'the request has a body but no raw bytes reached the guard (mount rawBody() before body parsers)',
      };
    }
    const result = await verifyJwtBody(
      { contentType: headerLines(request.headers, 'content-type')[0], body: body ?? new Uint8Array(), url: request.url },
      { clientId, organisationId },
      { ...settings, replayStore: opts.dpop.replayStore },
      opts.now() / 1000,
    );
    if (result.ok) return result;
    return { reason: BR_FAILURES[result.failure], detail: result.detail };
  }

  /**
   * UK Open Banking `x-jws-signature` over the exact body bytes, by the client that holds the
   * token (its `iss` from `clients`, else `resolveIssuer` with its certificate).
   */
  async function checkObSignature(
    request: GuardRequest,
    policy: CompiledPolicy,
    clientId: string,
    certificate: ClientCertificate | undefined,
  ): Promise<{ ok: true; verified?: VerifiedObSignature } | Refusal> {
    const settings = opts.messageSigning?.ukOpenBanking as NonNullable<ResolvedMessageSigning['ukOpenBanking']>;
    const lines = headerLines(request.headers, 'x-jws-signature');
    if (lines.length === 0 && policy.jwsSignature?.request === 'optional') return { ok: true };
    const body = request.rawBody;
    if (body === undefined && announcesBody(request.headers)) {
      return {
        reason: 'body_unavailable',
        detail: 'the request has a body but no raw bytes reached the guard (mount rawBody() before body parsers)',
      };
    }
    const iss = Object.hasOwn(settings.clients, clientId)
      ? settings.clients[clientId]
      : settings.resolveIssuer?.({ clientId, certificate });
    if (typeof iss !== 'string') return { reason: 'ob_signature_claim_invalid', detail: `client ${clientId} has no OB iss` };
    const result = await verifyObSignature(lines, body ?? new Uint8Array(), iss, settings, opts.now() / 1000);
    if (result.ok) return { ok: true, verified: result.verified };
    return { reason: OB_FAILURES[result.failure], detail: result.detail };
  }

  /**
   * What a further layer's `policy` adds on a request an earlier layer authenticated (see
   * {@link Guard.authorizeLayer}), in the order of the first phase: binding rules, then the policy.
   */
  function checkLayer(found: Authentication, policy: CompiledPolicy): Refusal | undefined {
    const { bound, token, scheme, profile } = found;
    // A layer limited to some profiles serves no client of another, as on a single layer.
    if (policy.profiles !== undefined && !policy.profiles.includes(profile.name)) {
      return { reason: 'profile_not_allowed', detail: `client served under ${profile.name}` };
    }
    // FAPI 2.0 §5.3.4 #5: an unbound token passes only where every layer allows it.
    if (bound.binding.type === 'bearer' && !policy.allowBearer)
      return { reason: 'binding_missing', detail: 'token has no cnf (sender constraint)' };
    if (bound.certificate && policy.clientCertificate && !acceptsCertificate(policy.clientCertificate, bound.certificate)) {
      return { reason: 'certificate_not_allowed', detail: 'route policy refused the client certificate' };
    }
    // RFC 9449 §9: a route that requires a nonce gets one, though an earlier layer did not ask.
    if (scheme === 'DPoP' && (policy.dpopNonce ?? opts.dpop.nonce.required === true) && !bound.nonced) {
      return { reason: 'dpop_nonce_required', detail: 'no nonce (required by a later layer)', nonce: nonces.current() };
    }
    const decision = checkPolicy(policy, token.claims, found.scopes, opts.now() / 1000, opts.clockToleranceSec);
    return decision.ok ? undefined : decision;
  }

  /**
   * Step 5, FAPI 2.0 Message Signing (§5.6.1.2): the request signature on routes that ask for it,
   * and what the response signer must keep of the request.
   */
  async function checkSignature(
    request: GuardRequest,
    policy: CompiledPolicy,
    token: VerifiedAccessToken,
    interaction: string | undefined,
  ): Promise<{ ok: true; verified?: VerifiedRequestSignature; context?: ResponseSigningContext } | Refusal> {
    const settings = opts.messageSigning as ResolvedMessageSigning;
    const body = request.rawBody;
    // DEC-07 fails closed: announced content that the adapter could not hand over is never treated as none.
    const signaturesSent =
      headerLines(request.headers, 'signature-input').length > 0 || headerLines(request.headers, 'signature').length > 0;
    if (
      body === undefined &&
      announcesBody(request.headers) &&
      (policy.signedRequest === 'required' || (policy.signedRequest && signaturesSent))
    ) {
      return {
        reason: 'body_unavailable',
        detail: 'the request has a body but no raw bytes reached the guard (mount rawBody() before body parsers)',
      };
    }
    const message = { method: request.method, url: request.url, headers: request.headers };
    const clientId = token.claims.client_id;
    let verified: VerifiedRequestSignature | undefined;
    let context: ResponseSigningContext | undefined;
    if (policy.signedRequest) {
      const result = await verifyRequestSignature({
        message,
        body,
        clientId,
        tokenHash: token.hash,
        ...(interaction ? { interactionId: interaction } : {}),
        mode: policy.signedRequest,
        keys: settings.keys as ClientKeys,
        now: opts.now() / 1000,
        maxAgeSec: settings.maxAgeSec,
        maxFutureSec: settings.maxFutureSec,
      });
      if (!result.ok) {
        const refusal: Refusal = { reason: result.reason, detail: result.detail };
        if (result.reason !== 'signature_keys_unavailable')
          refusal.acceptSignature = acceptSignature(request.headers, (body?.length ?? 0) > 0);
        return refusal;
      }
      if (result.verified) {
        verified = result.verified;
        if (settings.onSignedExchange) {
          try {
            await settings.onSignedExchange(result.record);
          } catch (e) {
            // Non-repudiation: a signed request whose proof cannot be kept is not carried out.
            return { reason: 'store_unavailable', detail: `onSignedExchange failed: ${(e as Error)?.message ?? String(e)}` };
          }
        }
        context = { request: message, requestSignature: result.signature, requestRecord: result.record, clientId, tokenHash: token.hash };
      }
    }
    if (policy.signResponse) {
      context ??= { request: message, requestSignature: undefined, requestRecord: undefined, clientId, tokenHash: token.hash };
      if (interaction) context.interactionId = interaction;
    }
    return { ok: true, ...(verified ? { verified } : {}), ...(policy.signResponse && context ? { context } : {}) };
  }

  /**
   * Step 3, the sender constraint: every binding the token carries is checked (RFC 8705 §3, RFC 9449 §6), and a
   * token that carries none passes only on routes that allow bearer tokens (FAPI 2.0 §5.3.4 #5).
   * Synchronous unless the replay store answers through a promise.
   */
  function bind(
    request: GuardRequest,
    scheme: AuthScheme,
    accessToken: string,
    token: VerifiedAccessToken,
    policy: CompiledPolicy,
  ): Bound | Refusal | Promise<Bound | Refusal> {
    const jkt = token.claims.cnf?.jkt;
    const bound: Bound = { ok: true, binding: { type: 'bearer' }, headers: {} };
    if (scheme !== 'DPoP') {
      // RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is a downgrade.
      if (jkt !== undefined) return { reason: 'binding_downgrade', detail: 'cnf.jkt token sent with the Bearer scheme' };
      return bindCertificate(request, token, policy, bound, false);
    }
    const proof = dpop.verify({
      proofs: headerLines(request.headers, 'dpop'),
      method: request.method,
      url: request.url,
      accessToken,
      accessTokenHash: token.hash,
      requireNonce: policy.dpopNonce ?? opts.dpop.nonce.required === true,
      boundJkt: typeof jkt === 'string' ? jkt : undefined,
    });
    const afterProof = (result: DpopResult): Bound | Refusal => {
      if (!result.ok) return result;
      bound.binding = { type: 'dpop', jkt: result.jkt };
      if (result.nonced) bound.nonced = true;
      if (result.nextNonce) Object.assign(bound.headers, { 'dpop-nonce': result.nextNonce, 'cache-control': 'no-store', ...EXPOSE });
      return bindCertificate(request, token, policy, bound, true);
    };
    return proof instanceof Promise ? proof.then(afterProof) : afterProof(proof);
  }

  /** RFC 8705 §3: a certificate-bound token needs the certificate it is bound to. */
  function bindCertificate(
    request: GuardRequest,
    token: VerifiedAccessToken,
    policy: CompiledPolicy,
    bound: Bound,
    constrained: boolean,
  ): Bound | Refusal {
    const x5t = token.claims.cnf?.['x5t#S256'];
    if (x5t !== undefined) {
      const { certificate, note } = certificates.lookup(request, x5t);
      if (!certificate) return { reason: 'certificate_missing', detail: 'cnf.x5t#S256 token without a client certificate', note };
      if (certificate.thumbprint !== x5t) {
        return { reason: 'certificate_mismatch', detail: `${certificate.source} certificate thumbprint differs from cnf.x5t#S256`, note };
      }
      if (policy.clientCertificate && !acceptsCertificate(policy.clientCertificate, certificate)) {
        return { reason: 'certificate_not_allowed', detail: 'route policy refused the client certificate' };
      }
      // RFC 9440 §2.4: a response chosen by a forwarded certificate must not be cached.
      if (certificate.source === 'proxy') bound.headers['cache-control'] = 'no-store';
      bound.certificate = certificate;
      if (!constrained) bound.binding = { type: 'mtls', x5t };
      return bound;
    }
    if (!constrained && !policy.allowBearer) return { reason: 'binding_missing', detail: 'token has no cnf (sender constraint)' };
    return bound;
  }

  function report(
    request: Pick<GuardRequest, 'method' | 'url'>,
    started: number,
    result: Authorized | GuardError,
    token?: VerifiedAccessToken,
    note?: string,
    interaction?: InteractionId,
    extra?: Partial<Pick<DecisionEvent, 'idempotency' | 'reason' | 'status'>>,
  ): void {
    if (!opts.onDecision) return;
    const t = result.ok ? result.token : token;
    // Every value from the request or the token enters the event through logValue (the detail
    // did so in toError): none can forge a log line.
    const event: DecisionEvent = {
      outcome: result.ok ? 'allow' : 'deny',
      status: result.ok ? 200 : result.status,
      method: logValue(request.method),
      url: logValue(request.url.split('?', 1)[0] as string),
      durationMs: performance.now() - started,
    };
    if (interaction) {
      event.interactionId = logValue(interaction.id);
      if (interaction.refused !== undefined) event.refusedInteractionId = logValue(interaction.refused);
    }
    if (!result.ok) {
      event.reason = result.reason;
      if (result.error) event.error = result.error;
      if (result.detail) event.detail = result.detail;
      if (note) event.note = logValue(note);
    } else {
      event.binding = result.binding.type;
      event.profile = result.profile;
    }
    // A refusal after the token was verified names the binding the token asks for (its cnf), so
    // metrics tell a DPoP client's failures from a bearer client's; before that, none is known.
    if (!result.ok && t) event.binding = requestedBinding(t.claims);
    if (t) {
      const { iss, client_id, sub } = t.claims as Record<string, unknown>;
      if (typeof iss === 'string') event.issuer = logValue(iss);
      if (typeof client_id === 'string') event.clientId = logValue(client_id);
      if (typeof sub === 'string') event.subject = logValue(sub);
      event.tokenHash = t.hash;
    }
    Object.assign(event, extra);
    try {
      opts.onDecision(event);
    } catch {
      // A logger failure must not change the decision.
    }
  }

  /** What the first layer established, for the further layers a request passes (kept off `Authorized`). */
  const layers = new WeakMap<Authorized, Authentication>();

  /** A request between the two phases: what `complete` needs of `authenticate`. */
  const pending = new WeakMap<Authenticated, Pass & { found: Authentication }>();

  function begin(request: GuardRequest, routePolicy: RoutePolicy | CompiledPolicy | undefined): Pass {
    return {
      // The clock is read only for the decision hook's duration.
      started: opts.onDecision ? performance.now() : 0,
      policy: toPolicy(routePolicy),
      interaction: opts.interactionId ? interactionId(request.headers) : undefined,
    };
  }

  /** RFC 9449 §7.1 / DPOP-16: an unexpected failure inside a check never grants access. */
  async function guarded<T>(step: () => Promise<T | Refusal>): Promise<T | Refusal> {
    try {
      return await step();
    } catch (e) {
      return { reason: 'internal', detail: `unexpected: ${(e as Error)?.message ?? String(e)}` };
    }
  }

  /**
   * What the operator must see without `onDecision`: a 503 or 500 with its reason (per reason,
   * rate-limited), and a refusal that points to the configuration (a hint, rarely).
   */
  function notify(refusal: Refusal, error: GuardError): void {
    if (error.status >= 500) {
      notices.report(
        'error',
        `refusal:${refusal.reason}`,
        FAILURE_LOG_WINDOW_MS,
        { reason: refusal.reason, status: error.status, detail: error.detail },
        `fapi-guard: requests refused with ${error.status}: ${REASONS[refusal.reason].description}`,
      );
    }
    if (refusal.htuOrigin) {
      notices.report(
        'warn',
        'hint:htu-origin',
        HINT_LOG_WINDOW_MS,
        { proofOrigin: logValue(refusal.htuOrigin.proof), requestOrigin: logValue(refusal.htuOrigin.request) },
        'fapi-guard: DPoP proofs name this path at another origin than the one this API computes for its requests; ' +
          `behind a proxy or load balancer set ${optionName('publicUrl')} (or ${optionName('trustedProxies')}) to the URL clients use (RFC 9449 §4.3 step 9)`,
      );
    }
  }

  /**
   * The decision: the refusal rendered, or the interaction id added; reported once (a further
   * layer's consent is not reported: the first layer's was).
   */
  function settle(request: GuardRequest, pass: Pass, outcome: Refusal): GuardError;
  function settle(request: GuardRequest, pass: Pass, outcome: Authorized | Refusal, layer?: boolean): Authorized | GuardError;
  function settle(request: GuardRequest, pass: Pass, outcome: Authorized | Refusal, layer = false): Authorized | GuardError {
    let result = outcome.ok ? outcome : toError(outcome, pass.policy, pass.interaction?.id);
    if (!outcome.ok && !result.ok) notify(outcome, result);
    const { interaction } = pass;
    if (result.ok && interaction) {
      const context = signing.get(result);
      const found = layers.get(result);
      const ob = obSigning.has(result);
      const br = brSigning.has(result);
      result = { ...result, interactionId: interaction.id, headers: { ...result.headers, 'x-fapi-interaction-id': interaction.id } };
      if (context) signing.set(result, context);
      if (found) layers.set(result, found);
      if (ob) obSigning.add(result);
      if (br) brSigning.add(result);
    }
    if (!(layer && result.ok)) report(request, pass.started, result, (outcome as Refusal).token, (outcome as Refusal).note, interaction);
    return result;
  }

  return {
    issuers,
    options: opts,
    async ready() {
      const outcomes = await Promise.allSettled([...issuers.values()].map((keys) => keys.ready()));
      const reasons = outcomes.flatMap((o) => (o.status === 'rejected' ? [(o.reason as Error).message] : []));
      if (reasons.length > 0) throw new Error(`fapi-guard is not ready: ${reasons.join('; ')}`);
    },
    policy: toPolicy,
    requestUrl: (connection) => origin.resolve(connection),
    // With the request's headers the refusal carries its x-fapi-interaction-id too.
    refuse: (reason, detail, policy, headers) =>
      toError({ reason, detail }, toPolicy(policy), opts.interactionId && headers ? interactionId(headers).id : undefined),
    reportIdempotency(auth, request, outcome, started) {
      const interaction = auth.interactionId === undefined ? undefined : { id: auth.interactionId };
      if ('replayed' in outcome) {
        report(request, started, auth, undefined, undefined, interaction, {
          idempotency: 'replayed',
          reason: 'idempotency_replayed',
          status: outcome.replayed,
        });
        return;
      }
      notify({ reason: outcome.reason, detail: outcome.detail ?? '' }, outcome);
      report(request, started, outcome, auth.token, undefined, interaction, { idempotency: 'refused' });
    },
    metadataPath: wellKnownPath,
    publishedPaths: [wellKnownPath, responseJwksPath].filter((p): p is string => p !== undefined),
    signsResponse: (auth) => auth != null && (signing.has(auth) || obSigning.has(auth) || brSigning.has(auth)),
    signResponse(auth, response): SignedOutgoing | undefined {
      const brazil = opts.messageSigning?.openFinanceBrasil;
      if (brSigning.has(auth) && brazil?.signer) {
        // The handler's JSON as the data claim; a body that is not JSON throws, and nothing unsigned is sent.
        const text = Buffer.from(response.body ?? new Uint8Array()).toString('utf8');
        const data: unknown = text === '' ? {} : JSON.parse(text);
        const audience = brazil.organisations.get(auth.clientId) as string;
        const jwt = Buffer.from(signJwtBody(data, { key: brazil.signer, iss: brazil.organisationId }, audience, opts.now() / 1000));
        return { headers: { 'content-type': 'application/jwt', 'content-length': String(jwt.length) }, body: jwt };
      }
      const signer = opts.messageSigning?.ukOpenBanking?.signer;
      if (obSigning.has(auth) && signer) {
        // OB Read/Write API "Message Signing": the response body bytes, signed by the bank.
        return { headers: { 'x-jws-signature': signObBody(response.body ?? new Uint8Array(), signer, opts.now() / 1000) } };
      }
      const context = signing.get(auth);
      const key = opts.messageSigning?.responseKey;
      if (!context || !key) return undefined;
      const signed = signResponse(context, response, key, opts.now() / 1000);
      const hook = opts.messageSigning?.onSignedExchange;
      if (hook) {
        try {
          Promise.resolve(hook(signed.record)).catch(() => undefined);
        } catch {
          // Documented: failures of the response hook are ignored.
        }
      }
      return signed;
    },
    metadataResponse(method, path) {
      if (method !== 'GET' && method !== 'HEAD') return undefined;
      const target = path.split('?', 1)[0];
      if (responseJwksPath && target === responseJwksPath) {
        const jwk = opts.messageSigning?.responseKey?.publicJwk;
        return {
          status: 200,
          headers: { 'content-type': 'application/jwk-set+json', 'cache-control': 'max-age=3600' },
          body: method === 'HEAD' ? '' : JSON.stringify({ keys: [jwk] }),
        };
      }
      if (!wellKnownPath || !metadataResource || target !== wellKnownPath) return undefined;
      const doc = buildMetadata(
        {
          resource: metadataResource,
          authorizationServers: opts.issuers.map((i) => i.issuer),
          scopes: [...knownScopes],
          dpopAlgorithms: opts.dpopAlgorithms,
          mtls: opts.mtls !== undefined,
          authorizationDetailsTypes: [...knownDetailTypes],
        },
        {
          // SIG-15: the response-verification keys, unless the document names other ones.
          jwksUri: opts.messageSigning?.jwksUri,
          signingAlgorithms: opts.messageSigning?.responseKey?.publicJwk.alg ? [opts.messageSigning.responseKey.publicJwk.alg] : undefined,
          ...definedOnly(opts.resourceMetadata as ResourceMetadataOptions),
        },
      );
      return {
        status: 200,
        headers: {
          'content-type': 'application/json; charset=utf-8',
          // RFC 9728 §7.10: cacheable.
          'cache-control': `max-age=${opts.resourceMetadata?.maxAgeSec ?? 3600}`,
        },
        body: method === 'HEAD' ? '' : JSON.stringify(doc),
      };
    },
    async check(request, routePolicy) {
      const pass = begin(request, routePolicy);
      const outcome = await guarded(async () => {
        const found = await authenticateRequest(request, pass.policy);
        return found.ok ? completeRequest(request, pass.policy, found, pass.interaction?.id) : found;
      });
      return settle(request, pass, outcome);
    },
    async authenticate(request, routePolicy) {
      const pass = begin(request, routePolicy);
      const found = await guarded(() => authenticateRequest(request, pass.policy));
      if (!found.ok) return settle(request, pass, found);
      const authenticated: Authenticated = { ok: true, authenticated: true };
      pending.set(authenticated, { ...pass, found });
      return authenticated;
    },
    async complete(authenticated, request) {
      const pass = pending.get(authenticated);
      if (!pass) throw new TypeError('fapi-guard: complete() takes the value of one authenticate() call, once');
      pending.delete(authenticated);
      const outcome = await guarded(() => completeRequest(request, pass.policy, pass.found, pass.interaction?.id));
      return settle(request, pass, outcome);
    },
    async authorizeLayer(auth, request, routePolicy) {
      const found = layers.get(auth);
      if (!found) throw new TypeError('fapi-guard: authorizeLayer() takes a value this guard authorized');
      const pass = begin(request, routePolicy);
      const { policy } = pass;
      // The same exchange: a refusal here carries the interaction id the first layer answered with.
      if (auth.interactionId) pass.interaction = { id: auth.interactionId };
      const refused = checkLayer(found, policy);
      if (refused) return settle(request, pass, { ...refused, usedScheme: found.scheme, token: found.token });
      // Body checks and response signers no earlier layer ran (FAPI 2.0, UK Open Banking, Open Finance Brasil).
      const signs =
        (policy.signedRequest !== undefined && !auth.signature) ||
        (policy.signResponse && !signing.has(auth)) ||
        (policy.jwsSignature?.request !== undefined && !auth.jwsSignature) ||
        (policy.jwsSignature?.response && !obSigning.has(auth)) ||
        (policy.jwtBody?.request !== undefined && !auth.jwtBody) ||
        (policy.jwtBody?.response && !brSigning.has(auth));
      if (signs) return settle(request, pass, await guarded(() => completeRequest(request, policy, found, auth.interactionId)), true);
      // RFC 6750 §2.2: a body parsed since the first layer is looked at too.
      if (bodyHasToken(request)) {
        return settle(request, pass, {
          reason: 'credentials_ambiguous',
          usedScheme: found.scheme,
          detail: 'Authorization header and access_token in the body',
          token: found.token,
        });
      }
      return auth;
    },
  };
}

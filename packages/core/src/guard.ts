/**
 * `createGuard(options)`: the one entry point adapters call. It wires the steps of a request —
 * credentials, token, binding, policy — and turns every outcome into a value.
 */
import { type DpopResult, DpopVerifier } from './binding/dpop.js';
import { CertificateSource, type ClientCertificate } from './binding/mtls.js';
import { DpopNonces } from './binding/nonce.js';
import { bodyHasToken, readCredentials } from './credentials.js';
import { type AuthScheme, GuardError, type GuardErrorReason, REASONS, renderChallenges } from './errors.js';
import { type InteractionId, interactionId } from './interaction.js';
import { logValue } from './log-value.js';
import { Notices } from './logger.js';
import { buildMetadata, metadataPath, metadataUrl, type ResourceMetadataOptions } from './metadata.js';
import type { ResponseParts } from './node.js';
import { type DecisionEvent, type GuardOptions, type ResolvedMessageSigning, type ResolvedOptions, resolveOptions } from './options.js';
import { type CompiledPolicy, checkPolicy, compilePolicy, grantedScopes, type RoutePolicy } from './policy.js';
import {
  announcesBody,
  type ConnectionInfo,
  type GuardHeaders,
  type GuardRequest,
  headerLines,
  OriginResolver,
  type UrlResult,
} from './request.js';
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
   * the request `auth` came from. Returns the headers to set (`Content-Digest`, `Signature-Input`,
   * `Signature`), or `undefined` when the route does not sign. Adapters call it with the final
   * status, headers and body bytes.
   */
  signResponse(auth: Authorized, response: OutgoingResponse): SignedResponse | undefined;
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
}

/** One decision in progress. */
interface Pass {
  started: number;
  policy: CompiledPolicy;
  interaction: InteractionId | undefined;
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

/** How often the same failure (per 503 reason) or configuration hint is logged. */
const FAILURE_LOG_WINDOW_MS = 60_000;
const HINT_LOG_WINDOW_MS = 600_000;

/** RFC 9449 §7.1, §8: browser clients must be able to read the challenge and the nonce. */
const EXPOSE = { 'access-control-expose-headers': 'WWW-Authenticate, DPoP-Nonce' } as const;

export function createGuard(options: GuardOptions): Guard {
  const opts = resolveOptions(options);
  const origin = new OriginResolver(opts.origin);
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
  const dpop = new DpopVerifier({
    algorithms: opts.algorithms,
    maxAgeSec: opts.dpop.maxAgeSec,
    maxFutureSec: opts.dpop.maxFutureSec,
    verifyOn: opts.dpop.verifyOn,
    replayStore: opts.dpop.replayStore,
    nonces: new DpopNonces(opts.dpop.nonce, opts.now),
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
    const result = compilePolicy(policy as RoutePolicy | undefined, { allowBearer: opts.profile === 'oauth2' });
    if ((result.signedRequest || result.signResponse) && !opts.messageSigning) {
      throw new TypeError('fapi-guard: a route asks for message signatures; configure messageSigning (client keys) in the guard options');
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
    // mTLS-bound tokens travel with the Bearer scheme (RFC 8705 §3).
    return policy.allowBearer || opts.mtls ? ['DPoP', 'Bearer'] : ['DPoP'];
  }

  function toError(refusal: Refusal, policy: CompiledPolicy, interaction?: string): GuardError {
    const headers: Record<string, string> = {};
    if (interaction) headers['x-fapi-interaction-id'] = interaction;
    const challenge = renderChallenges(refusal.reason, {
      schemes: schemesOf(policy),
      usedScheme: refusal.usedScheme,
      realm: opts.realm,
      dpopAlgorithms: opts.algorithms,
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
    return new GuardError(refusal.reason, logValue(refusal.detail), headers);
  }

  /**
   * Steps 1–4, on the headers alone: no body is read before the client has authenticated
   * (an unauthenticated client must not hold the request by trickling a body).
   */
  async function authenticateRequest(request: GuardRequest, policy: CompiledPolicy): Promise<Authentication | Refusal> {
    const credentials = readCredentials(request);
    if (!credentials.ok) return credentials;
    const { scheme } = credentials;
    // Cached tokens and in-process replay stores answer at once: no promise to wait for.
    const pendingToken = verifyToken(credentials.token);
    const verified = pendingToken instanceof Promise ? await pendingToken : pendingToken;
    if (!verified.ok) return { ...verified, usedScheme: scheme };
    const token = verified.token;
    const claims = token.claims;

    const pendingBinding = bind(request, scheme, credentials.token, token, policy);
    const bound = pendingBinding instanceof Promise ? await pendingBinding : pendingBinding;
    if (!bound.ok) return { ...bound, usedScheme: scheme, token };

    const scopes = grantedScopes(claims);
    const decision = checkPolicy(policy, claims, scopes, opts.now() / 1000, opts.clockToleranceSec);
    if (!decision.ok) return { ...decision, usedScheme: scheme, token };
    return { ok: true, scheme, token, bound, scopes };
  }

  /** What needs the body, on an authenticated request: the body-token refusal and step 5. */
  async function completeRequest(
    request: GuardRequest,
    policy: CompiledPolicy,
    found: Authentication,
    interaction?: string,
  ): Promise<Authorized | Refusal> {
    const { scheme, token, bound, scopes } = found;
    const claims = token.claims;
    // RFC 6750 §2.2 (FAPI-RS-03): an adapter that authenticates before its parser runs shows the
    // parsed body only now; a token in it next to the header is still refused.
    if (bodyHasToken(request)) {
      return { reason: 'credentials_ambiguous', usedScheme: scheme, detail: 'Authorization header and access_token in the body', token };
    }
    const signed = policy.signedRequest || policy.signResponse ? await checkSignature(request, policy, token, interaction) : undefined;
    if (signed && !signed.ok) return { ...signed, usedScheme: scheme, token };
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
      ...(bound.certificate ? { certificate: bound.certificate } : {}),
      ...(signed?.verified ? { signature: signed.verified } : {}),
    };
    if (signed?.context) signing.set(authorized, signed.context);
    return authorized;
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
        keys: settings.keys,
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
   * Step 3, the sender constraint: every binding the token carries is checked (DEC-12), and a
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
    }
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
          'behind a proxy or load balancer set publicUrl (or trustedProxies) to the URL clients use (RFC 9449 §4.3 step 9)',
      );
    }
  }

  /** The decision: the refusal rendered, or the interaction id added; reported once. */
  function settle(request: GuardRequest, pass: Pass, outcome: Refusal): GuardError;
  function settle(request: GuardRequest, pass: Pass, outcome: Authorized | Refusal): Authorized | GuardError;
  function settle(request: GuardRequest, pass: Pass, outcome: Authorized | Refusal): Authorized | GuardError {
    let result = outcome.ok ? outcome : toError(outcome, pass.policy, pass.interaction?.id);
    if (!outcome.ok && !result.ok) notify(outcome, result);
    const { interaction } = pass;
    if (result.ok && interaction) {
      const context = signing.get(result);
      result = { ...result, interactionId: interaction.id, headers: { ...result.headers, 'x-fapi-interaction-id': interaction.id } };
      if (context) signing.set(result, context);
    }
    report(request, pass.started, result, (outcome as Refusal).token, (outcome as Refusal).note, interaction);
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
    signsResponse: (auth) => auth != null && signing.has(auth),
    signResponse(auth, response) {
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
          dpopAlgorithms: opts.algorithms,
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
  };
}

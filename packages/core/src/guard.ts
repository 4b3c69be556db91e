/**
 * `createGuard(options)`: the one entry point adapters call. It wires the steps of a request —
 * credentials, token, binding, policy — and turns every outcome into a value.
 */
import { DpopVerifier } from './binding/dpop.js';
import { certificateThumbprint } from './binding/mtls.js';
import { DpopNonces } from './binding/nonce.js';
import { readCredentials } from './credentials.js';
import { type AuthScheme, GuardError, type GuardErrorReason, renderChallenges } from './errors.js';
import { type DecisionEvent, type GuardOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { type CompiledPolicy, checkPolicy, compilePolicy, grantedScopes, type RoutePolicy } from './policy.js';
import { type ConnectionInfo, type GuardRequest, headerLines, OriginResolver, type UrlResult } from './request.js';
import { IssuerKeys } from './tokens/issuer.js';
import { type AccessTokenClaims, JwtAccessTokenVerifier, type VerifiedAccessToken } from './tokens/jwt.js';

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
  readonly subject: string;
  readonly issuer: string;
  readonly binding: Binding;
  /** Headers to add to the successful response (e.g. the next `DPoP-Nonce`). */
  readonly headers: Readonly<Record<string, string>>;
}

export interface Guard {
  /** Checks one request against one route policy. Never throws, never rejects. */
  check(request: GuardRequest, policy?: RoutePolicy | CompiledPolicy): Promise<Authorized | GuardError>;
  /** Validates a route policy once, at start-up (throws on a policy that cannot work). */
  policy(policy?: RoutePolicy): CompiledPolicy;
  /** Builds the absolute URL the client addressed, from `publicUrl` / `trustedProxies`. */
  requestUrl(connection: ConnectionInfo): UrlResult;
  /** The refusal for a request whose URL cannot be trusted (adapters call this). */
  refuse(reason: GuardErrorReason, detail: string, policy?: CompiledPolicy): GuardError;
  /** Issuer key sets, by issuer identifier (for health checks and metrics). */
  readonly issuers: ReadonlyMap<string, IssuerKeys>;
  readonly options: Readonly<ResolvedOptions>;
}

const compiled = new WeakSet<object>();

interface Refusal {
  ok?: false;
  reason: GuardErrorReason;
  detail: string;
  usedScheme?: AuthScheme;
  scope?: string;
  retryAfterMs?: number;
  /** A DPoP nonce to send with the refusal (`use_dpop_nonce`, RFC 9449 §9). */
  nonce?: string;
  token?: VerifiedAccessToken;
}

/** RFC 9449 §7.1, §8: browser clients must be able to read the challenge and the nonce. */
const EXPOSE = { 'access-control-expose-headers': 'WWW-Authenticate, DPoP-Nonce' } as const;

export function createGuard(options: GuardOptions): Guard {
  const opts = resolveOptions(options);
  const origin = new OriginResolver(opts.origin);
  const issuers = new Map(opts.issuers.map((config) => [config.issuer, new IssuerKeys(config, opts.keys, opts.now)]));
  const dpop = new DpopVerifier({
    algorithms: opts.algorithms,
    maxAgeSec: opts.dpop.maxAgeSec,
    maxFutureSec: opts.dpop.maxFutureSec,
    replayStore: opts.dpop.replayStore,
    nonces: new DpopNonces(opts.dpop.nonce, opts.now),
    now: opts.now,
  });
  const jwt = new JwtAccessTokenVerifier({
    issuers,
    audiences: opts.audiences,
    algorithms: opts.algorithms,
    clockToleranceSec: opts.clockToleranceSec,
    now: opts.now,
    cacheMax: opts.tokenCacheMax,
  });

  function toPolicy(policy: RoutePolicy | CompiledPolicy | undefined): CompiledPolicy {
    if (policy && compiled.has(policy)) return policy as CompiledPolicy;
    const result = compilePolicy(policy as RoutePolicy | undefined);
    compiled.add(result);
    return result;
  }

  function schemesOf(policy: CompiledPolicy): AuthScheme[] {
    return policy.allowBearer ? ['DPoP', 'Bearer'] : ['DPoP'];
  }

  function toError(refusal: Refusal, policy: CompiledPolicy): GuardError {
    const headers: Record<string, string> = {};
    const challenge = renderChallenges(refusal.reason, {
      schemes: schemesOf(policy),
      usedScheme: refusal.usedScheme,
      realm: opts.realm,
      dpopAlgorithms: opts.algorithms,
      scope: refusal.scope,
    });
    if (challenge) headers['www-authenticate'] = challenge;
    if (refusal.nonce) headers['dpop-nonce'] = refusal.nonce;
    Object.assign(headers, EXPOSE);
    if (refusal.retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(refusal.retryAfterMs / 1000)));
    headers['cache-control'] = 'no-store';
    return new GuardError(refusal.reason, refusal.detail, headers);
  }

  async function decide(request: GuardRequest, policy: CompiledPolicy): Promise<Authorized | Refusal> {
    const credentials = readCredentials(request);
    if (!credentials.ok) return credentials;
    const { scheme } = credentials;
    const verified = await jwt.verify(credentials.token);
    if (!verified.ok) return { ...verified, usedScheme: scheme };
    const token = verified.token;
    const claims = token.claims;

    const bound = await bind(request, scheme, credentials.token, token, policy);
    if (!bound.ok) return { ...bound, usedScheme: scheme, token };

    const scopes = grantedScopes(claims);
    const decision = checkPolicy(policy, claims, scopes);
    if (!decision.ok) return { ...decision, usedScheme: scheme, token };
    return {
      ok: true,
      token,
      claims,
      scopes,
      clientId: claims.client_id,
      subject: claims.sub,
      issuer: claims.iss,
      binding: bound.binding,
      headers: bound.nonce ? { 'dpop-nonce': bound.nonce, 'cache-control': 'no-store', ...EXPOSE } : {},
    };
  }

  /**
   * Step 3, the sender constraint: every binding the token carries is checked (DEC-12), and a
   * token that carries none passes only on routes that allow bearer tokens (FAPI 2.0 §5.3.4 #5).
   */
  async function bind(
    request: GuardRequest,
    scheme: AuthScheme,
    accessToken: string,
    token: VerifiedAccessToken,
    policy: CompiledPolicy,
  ): Promise<{ ok: true; binding: Binding; nonce?: string } | Refusal> {
    const jkt = token.claims.cnf?.jkt;
    const x5t = token.claims.cnf?.['x5t#S256'];
    let binding: Binding | undefined;
    let nonce: string | undefined;
    if (scheme === 'DPoP') {
      const proof = await dpop.verify({
        proofs: headerLines(request.headers, 'dpop'),
        method: request.method,
        url: request.url,
        accessToken,
        requireNonce: policy.dpopNonce ?? opts.dpop.nonce.required === true,
        boundJkt: typeof jkt === 'string' ? jkt : undefined,
      });
      if (!proof.ok) return proof;
      binding = { type: 'dpop', jkt: proof.jkt };
      nonce = proof.nextNonce;
    } else if (jkt !== undefined) {
      // RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is a downgrade.
      return { reason: 'binding_downgrade', detail: 'cnf.jkt token sent with the Bearer scheme' };
    }
    if (x5t !== undefined) {
      // RFC 8705 §3: the certificate of this connection must be the one the token is bound to.
      if (!request.clientCertificate) return { reason: 'certificate_missing', detail: 'cnf.x5t#S256 token without a client certificate' };
      const thumbprint = certificateThumbprint(request.clientCertificate);
      if (thumbprint !== x5t) return { reason: 'certificate_mismatch', detail: 'client certificate thumbprint differs from cnf.x5t#S256' };
      binding ??= { type: 'mtls', x5t: thumbprint };
    }
    if (binding) return { ok: true, binding, ...(nonce ? { nonce } : {}) };
    if (!policy.allowBearer) return { reason: 'binding_missing', detail: 'token has no cnf (sender constraint)' };
    return { ok: true, binding: { type: 'bearer' } };
  }

  function report(request: GuardRequest, started: number, result: Authorized | GuardError, token?: VerifiedAccessToken): void {
    if (!opts.onDecision) return;
    const t = result.ok ? result.token : token;
    const event: DecisionEvent = {
      outcome: result.ok ? 'allow' : 'deny',
      status: result.ok ? 200 : result.status,
      method: request.method,
      url: request.url.split('?', 1)[0] as string,
      durationMs: performance.now() - started,
    };
    if (!result.ok) {
      event.reason = result.reason;
      if (result.error) event.error = result.error;
      if (result.detail) event.detail = result.detail;
    } else {
      event.binding = result.binding.type;
    }
    if (t) {
      event.issuer = t.claims.iss;
      event.clientId = t.claims.client_id;
      event.subject = t.claims.sub;
      event.tokenHash = t.hash;
    }
    try {
      opts.onDecision(event);
    } catch {
      // A logger failure must not change the decision.
    }
  }

  return {
    issuers,
    options: opts,
    policy: toPolicy,
    requestUrl: (connection) => origin.resolve(connection),
    refuse: (reason, detail, policy) => toError({ reason, detail }, toPolicy(policy)),
    async check(request, routePolicy) {
      const started = performance.now();
      const policy = toPolicy(routePolicy);
      let outcome: Authorized | Refusal;
      try {
        outcome = await decide(request, policy);
      } catch (e) {
        // RFC 9449 §7.1 / DPOP-16: an unexpected failure inside a check never grants access.
        outcome = { reason: 'internal', detail: `unexpected: ${(e as Error)?.message ?? String(e)}` };
      }
      const result = 'ok' in outcome && outcome.ok ? outcome : toError(outcome as Refusal, policy);
      report(request, started, result, (outcome as Refusal).token);
      return result;
    },
  };
}

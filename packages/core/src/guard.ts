/**
 * `createGuard(options)`: the one entry point adapters call. It wires the steps of a request —
 * credentials, token, binding, policy — and turns every outcome into a value.
 */
import { readCredentials } from './credentials.js';
import { type AuthScheme, GuardError, type GuardErrorReason, renderChallenges } from './errors.js';
import { type DecisionEvent, type GuardOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { type CompiledPolicy, checkPolicy, compilePolicy, grantedScopes, type RoutePolicy } from './policy.js';
import { type ConnectionInfo, type GuardRequest, OriginResolver, type UrlResult } from './request.js';
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
  reason: GuardErrorReason;
  detail: string;
  usedScheme?: AuthScheme;
  scope?: string;
  retryAfterMs?: number;
  token?: VerifiedAccessToken;
}

export function createGuard(options: GuardOptions): Guard {
  const opts = resolveOptions(options);
  const origin = new OriginResolver(opts.origin);
  const issuers = new Map(opts.issuers.map((config) => [config.issuer, new IssuerKeys(config, opts.keys, opts.now)]));
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

    const cnf = claims.cnf;
    let binding: Binding;
    if (scheme === 'Bearer') {
      // RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is a downgrade.
      if (cnf?.jkt !== undefined)
        return { reason: 'binding_downgrade', detail: 'cnf.jkt token sent with Bearer', usedScheme: scheme, token };
      if (cnf?.['x5t#S256'] !== undefined) {
        return { reason: 'certificate_missing', detail: 'certificate-bound tokens are not supported yet', usedScheme: scheme, token };
      }
      // FAPI 2.0 §5.3.4 #5: sender-constrained tokens only, unless the route opts out.
      if (!policy.allowBearer) return { reason: 'binding_missing', detail: 'token has no cnf', usedScheme: scheme, token };
      binding = { type: 'bearer' };
    } else {
      return { reason: 'binding_mismatch', detail: 'DPoP proofs are not verified yet', usedScheme: scheme, token };
    }

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
      binding,
      headers: {},
    };
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

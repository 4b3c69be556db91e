/**
 * The parts one guard is built from, made once from its options: issuer key sets, the token,
 * DPoP and certificate verifiers, the nonce source, the notices to the operator, and what the
 * steps remember of the requests they let through (kept off the public values).
 */
import { DpopVerifier } from './binding/dpop.js';
import { CertificateSource } from './binding/mtls.js';
import { DpopNonces } from './binding/nonce.js';
import { fromEnvironment, withVariableNames } from './config/env-names.js';
import type { GuardOptions } from './config/options.js';
import { type ResolvedOptions, resolveOptions } from './config/resolve.js';
import { metadataPath, metadataUrl } from './metadata.js';
import { logValue } from './observe/log-value.js';
import { Notices } from './observe/logger.js';
import type { Authentication, Authorized } from './outcomes.js';
import { OriginResolver } from './request.js';
import type { ResponseSigningContext } from './signatures/fapi.js';
import { Introspector } from './tokens/introspection.js';
import { IssuerKeys } from './tokens/issuer.js';
import { JwtAccessTokenVerifier } from './tokens/jwt.js';

/** How often the same failure (per 503 reason) or configuration hint is logged. */
export const FAILURE_LOG_WINDOW_MS = 60_000;
export const HINT_LOG_WINDOW_MS = 600_000;

/** What the guard keeps of each `Authorized` value it issued, by the value itself. */
export interface Marks {
  /**
   * What response signing needs of the request (FAPI 2.0 Message Signing), kept off the public
   * value: it holds the Authorization header, which must not end up in logs of `req.auth`.
   */
  readonly signing: WeakMap<Authorized, ResponseSigningContext>;
  /**
   * The same for every value whose request signature was verified, whether or not its route signs
   * responses: a later layer that signs them binds its signature to that request signature.
   */
  readonly signedRequests: WeakMap<Authorized, ResponseSigningContext>;
  /** Responses that carry an UK Open Banking `x-jws-signature`. */
  readonly obSigning: WeakSet<Authorized>;
  /** Responses that go back as JWTs signed by the bank (Open Finance Brasil). */
  readonly brSigning: WeakSet<Authorized>;
  /** What the first layer established, for the further layers a request passes. */
  readonly layers: WeakMap<Authorized, Authentication>;
}

/** What the guard publishes (RFC 9728 metadata, the response-signing JWK set) and the routes it lists. */
export interface Published {
  /** The `resource` of the metadata document, when one is published. */
  readonly metadataResource: string | undefined;
  /** Its URL, named in the challenges to requests for the resource itself (RFC 9728 §3.3, §5.1). */
  readonly resourceMetadataUrl: string | undefined;
  readonly wellKnownPath: string | undefined;
  readonly responseJwksPath: string | undefined;
  /** What the routes ask for, collected as they are compiled: the metadata document lists it. */
  readonly knownScopes: Set<string>;
  readonly knownDetailTypes: Set<string>;
}

export interface GuardParts {
  readonly opts: ResolvedOptions;
  readonly origin: OriginResolver;
  readonly notices: Notices;
  /** Hints to the operator name what they configured: the variable, or the option. */
  readonly optionName: (path: string) => string;
  readonly issuers: Map<string, IssuerKeys>;
  readonly nonces: DpopNonces;
  readonly dpop: DpopVerifier;
  readonly certificates: CertificateSource;
  readonly jwt: JwtAccessTokenVerifier;
  readonly introspector: Introspector | undefined;
  readonly published: Published;
  readonly marks: Marks;
}

/** Resolves `options` (throws on a configuration that cannot work) and builds the parts. */
export function buildParts(options: GuardOptions): GuardParts {
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
  const metadataResource = opts.resourceMetadata ? (opts.resourceMetadata.resource ?? (opts.audiences[0] as string)) : undefined;
  return {
    opts,
    origin,
    notices,
    optionName: (path) => (fromEnvironment(options) ? withVariableNames(path) : path),
    issuers,
    nonces,
    dpop,
    certificates,
    jwt,
    introspector,
    published: {
      metadataResource,
      resourceMetadataUrl: metadataResource && metadataUrl(metadataResource),
      wellKnownPath: metadataResource && metadataPath(metadataResource),
      responseJwksPath: opts.messageSigning?.jwksUri ? new URL(opts.messageSigning.jwksUri).pathname : undefined,
      knownScopes: new Set(),
      knownDetailTypes: new Set(),
    },
    marks: {
      signing: new WeakMap(),
      signedRequests: new WeakMap(),
      obSigning: new WeakSet(),
      brSigning: new WeakSet(),
      layers: new WeakMap(),
    },
  };
}

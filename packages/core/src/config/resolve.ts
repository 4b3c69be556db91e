/**
 * Guard options resolved: checked once at start-up (check.ts), every default filled in. A
 * configuration that cannot be safe throws a `TypeError` whose message says what to change.
 */
import { availableParallelism } from 'node:os';
import type { MtlsOptions } from '../binding/mtls.js';
import type { DpopNonceOptions } from '../binding/nonce.js';
import { MemoryReplayStore, type ReplayStore } from '../common/stores.js';
import { assertSecureUrl } from '../common/url.js';
import { idempotencyRequestLimit } from '../idempotency/policy.js';
import type { IdempotencyStore } from '../idempotency/store.js';
import type { ResourceMetadataOptions } from '../metadata.js';
import { type GuardLogger, resolveLogger } from '../observe/logger.js';
import { FAPI1_ALGORITHMS, type Profile, type ProfileName, Profiles, profileSettings } from '../regimes/profiles.js';
import { type ObKey, type ObSigningKey, type ObSigningVersion, obSigningKey, obVerificationKey } from '../regimes/uk-ob-signature.js';
import type { OriginOptions } from '../request.js';
import { type ClientKeyOptions, type ClientKeySource, ClientKeys } from '../signatures/client-keys.js';
import type { SignedExchangeRecord } from '../signatures/fapi.js';
import { type ResponseSigningKey, signingKey } from '../signatures/keys.js';
import { type Outbound, resolveOutbound } from '../tokens/http.js';
import type { IntrospectionOptions } from '../tokens/introspection.js';
import type { IssuerConfig, JSONWebKeySet, KeySetOptions } from '../tokens/issuer.js';
import { checkGuardOptions } from './check.js';
import {
  type CompatOptions,
  type DecisionEvent,
  FAPI_ALGORITHMS,
  type GuardOptions,
  type MessageSigningOptions,
  type OpenFinanceBrasilOptions,
  SUPPORTED_ALGORITHMS,
  type UkOpenBankingOptions,
} from './options.js';

/** FAPI 2.0 §5.4.1 #1.2 also allows `Ed25519`, the fully-specified name of EdDSA with Ed25519 (RFC 9864). */
const FAPI_ALLOWED: ReadonlySet<string> = new Set([...FAPI_ALGORITHMS, 'Ed25519']);

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

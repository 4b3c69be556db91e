/** The example's configuration, read from the environment. */
import { readFileSync } from 'node:fs';
import { type ClientKeySource, type GuardOptions, guardOptionsFromEnv, type IssuerConfig, type SignatureJwk } from '@fapi-guard/core';

export type Framework = 'express' | 'koa' | 'fastify' | 'nestjs' | 'nestjs-fastify' | 'hono';
const FRAMEWORKS: readonly Framework[] = ['express', 'koa', 'fastify', 'nestjs', 'nestjs-fastify', 'hono'];

/**
 * `FAPI_*` variables of the example's own; every other one is the guard's, read by
 * `guardOptionsFromEnv` (an unknown one stops the start-up with the nearest known name).
 */
export const EXAMPLE_VARIABLES = [
  'FAPI_FRAMEWORK',
  'FAPI_ALLOW_BEARER',
  'FAPI_API_URL',
  'FAPI_MESSAGE_SIGNING',
  'FAPI_SIGNING_CLIENTS',
  'FAPI_SIGNING_KEY',
  'FAPI_IDEMPOTENCY',
  'FAPI_REGIME',
] as const;

/**
 * `FAPI_REGIME`: `fapi2` (FAPI 2.0 Security Profile), `uk-ob` (FAPI 1.0 Advanced with UK Open
 * Banking `x-jws-signature` on `POST /payments`) or `br-of` (FAPI 1.0 Advanced with Open Finance
 * Brasil signed JWT bodies on `POST /payments`).
 */
export type Regime = 'fapi2' | 'uk-ob' | 'br-of';
const REGIMES: readonly Regime[] = ['fapi2', 'uk-ob', 'br-of'];

export interface ExampleConfig {
  /** `FAPI_REGIME`: the regime the API serves. @default 'fapi2' */
  regime: Regime;
  /**
   * `FAPI_FRAMEWORK`: which version of the API to run (`nestjs`: NestJS on Express,
   * `nestjs-fastify`: NestJS on Fastify). @default 'express'
   */
  framework: Framework;
  port: number;
  host: string;
  /** Trusted issuer(s) (`FAPI_ISSUER`, `FAPI_JWKS_URI`); unset → the embedded MockIssuer is started. */
  issuer: string | IssuerConfig | readonly (string | IssuerConfig)[] | undefined;
  /** `FAPI_AUDIENCE`: resource identifier (token `aud`). @default FAPI_PUBLIC_URL, else http://HOST:PORT */
  audience: string | readonly string[];
  /** `FAPI_PUBLIC_URL`: public origin clients address (DPoP `htu`), behind a proxy or load balancer. */
  publicUrl: string | readonly string[] | undefined;
  /**
   * Every other guard option the `FAPI_*` variables set (`guardOptionsFromEnv`: algorithms,
   * clock tolerance, DPoP nonces, certificate header, introspection, token format, …), with the
   * example's one default: `FAPI_CLIENT_CERT_TRUSTED_PEERS` is loopback when a certificate
   * header is configured without peers or a shared secret.
   */
  guard: Omit<GuardOptions, 'issuer' | 'issuers' | 'audience' | 'publicUrl'>;
  /** `FAPI_ALLOW_BEARER=true`: accept unbound tokens (outside FAPI). */
  allowBearer: boolean;
  /** `TLS_CERT` / `TLS_KEY` (PEM files): serve HTTPS and ask clients for certificates (RFC 8705). */
  tls: { cert: string; key: string } | undefined;
  /**
   * `REDIS_URL`: share the DPoP replay store, the introspection cache and the nonce secret
   * between instances on this Redis.
   */
  redisUrl: string | undefined;
  /**
   * `FAPI_IDEMPOTENCY`: `required` or `optional` idempotency keys on `POST /payments` (with
   * `REDIS_URL`, kept on Redis for every instance). @default 'optional'
   */
  idempotency: 'required' | 'optional';
  /**
   * FAPI 2.0 Message Signing on `POST /payments` when `FAPI_MESSAGE_SIGNING` is `required` or
   * `optional`: request signatures checked, responses signed. `FAPI_SIGNING_CLIENTS` is a JSON
   * file `{ "<client_id>": { "jwksUri": "https://…" } | { "jwks": { "keys": […] } } }`;
   * `FAPI_SIGNING_KEY` a private JWK file (with `kid`) for responses — unset, an Ed25519 key is
   * made at start-up (its public half is served at /.well-known/jwks.json either way).
   */
  messageSigning:
    | { mode: 'required' | 'optional'; clients: Record<string, ClientKeySource>; responseKey: SignatureJwk | undefined }
    | undefined;
}

/** Stands in for the embedded MockIssuer's URL, known once it listens (replaced by `startExample`). */
const EMBEDDED_ISSUER = 'http://127.0.0.1';

function idempotencyMode(value: string | undefined): 'required' | 'optional' {
  if (value === undefined || value === '' || value === 'optional') return 'optional';
  if (value === 'required') return 'required';
  throw new Error(`FAPI_IDEMPOTENCY "${value}" must be required or optional`);
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): ExampleConfig {
  const port = Number(env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT "${env.PORT}" is not a port number`);
  const host = env.HOST ?? '127.0.0.1';
  const framework = (env.FAPI_FRAMEWORK || 'express') as Framework;
  if (!FRAMEWORKS.includes(framework)) throw new Error(`FAPI_FRAMEWORK "${framework}" is not one of ${FRAMEWORKS.join(', ')}`);
  const regime = (env.FAPI_REGIME || 'fapi2') as Regime;
  if (!REGIMES.includes(regime)) throw new Error(`FAPI_REGIME "${regime}" is not one of ${REGIMES.join(', ')}`);
  const embedded = !env.FAPI_ISSUER?.trim();
  const firstPublicUrl = env.FAPI_PUBLIC_URL?.split(',')[0]?.trim();
  const proxyWithoutPeers = env.FAPI_CLIENT_CERT_HEADER && !env.FAPI_CLIENT_CERT_TRUSTED_PEERS && !env.FAPI_CLIENT_CERT_SECRET;
  // The library's reader: one set of variable names for the library and the example.
  const { issuers, audience, publicUrl, ...guard } = guardOptionsFromEnv(
    {
      ...env,
      FAPI_ISSUER: embedded ? EMBEDDED_ISSUER : env.FAPI_ISSUER,
      FAPI_AUDIENCE: env.FAPI_AUDIENCE || firstPublicUrl || `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
      ...(proxyWithoutPeers ? { FAPI_CLIENT_CERT_TRUSTED_PEERS: '127.0.0.1,::1' } : {}),
    },
    { allow: EXAMPLE_VARIABLES },
  );
  if (embedded && env.FAPI_JWKS_URI) throw new Error('FAPI_JWKS_URI needs FAPI_ISSUER (the embedded MockIssuer publishes its own keys)');
  return {
    regime,
    framework,
    port,
    host,
    issuer: embedded ? undefined : issuers,
    audience,
    publicUrl,
    guard,
    allowBearer: env.FAPI_ALLOW_BEARER === 'true',
    tls: readTls(env),
    redisUrl: env.REDIS_URL || undefined,
    idempotency: idempotencyMode(env.FAPI_IDEMPOTENCY),
    messageSigning: readMessageSigning(env),
  };
}

function readJsonFile(name: string, path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${name} ${path}: ${(e as Error).message}`);
  }
}

function readMessageSigning(env: NodeJS.ProcessEnv): ExampleConfig['messageSigning'] {
  const mode = env.FAPI_MESSAGE_SIGNING;
  if (!mode) return undefined;
  if (mode !== 'required' && mode !== 'optional') throw new Error(`FAPI_MESSAGE_SIGNING "${mode}" is not required or optional`);
  return {
    mode,
    clients: env.FAPI_SIGNING_CLIENTS
      ? (readJsonFile('FAPI_SIGNING_CLIENTS', env.FAPI_SIGNING_CLIENTS) as Record<string, ClientKeySource>)
      : {},
    responseKey: env.FAPI_SIGNING_KEY ? (readJsonFile('FAPI_SIGNING_KEY', env.FAPI_SIGNING_KEY) as SignatureJwk) : undefined,
  };
}

function readTls(env: NodeJS.ProcessEnv): ExampleConfig['tls'] {
  if (!env.TLS_CERT && !env.TLS_KEY) return undefined;
  if (!env.TLS_CERT || !env.TLS_KEY) throw new Error('set both TLS_CERT and TLS_KEY (PEM files), or neither');
  return { cert: readFileSync(env.TLS_CERT, 'utf8'), key: readFileSync(env.TLS_KEY, 'utf8') };
}

/** The example's configuration, read from the environment. */
import { readFileSync } from 'node:fs';
import type { ClientCertificateFormat, ClientKeySource, GuardOptions, SignatureJwk } from '@fapi-guard/core';

export type Framework = 'express' | 'koa' | 'fastify' | 'nestjs' | 'nestjs-fastify' | 'hono';
const FRAMEWORKS: readonly Framework[] = ['express', 'koa', 'fastify', 'nestjs', 'nestjs-fastify', 'hono'];

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
  /** Trusted issuer (`FAPI_ISSUER`); unset → the embedded MockIssuer is started. */
  issuer: string | undefined;
  /** `FAPI_JWKS_URI`: skip discovery. */
  jwksUri: string | undefined;
  /** `FAPI_AUDIENCE`: resource identifier (token `aud`). @default FAPI_PUBLIC_URL, else http://HOST:PORT */
  audience: string;
  /** `FAPI_PUBLIC_URL`: public origin clients address (DPoP `htu`), behind a proxy or load balancer. */
  publicUrl: string | undefined;
  /** `FAPI_ALLOW_BEARER=true`: accept unbound tokens (outside FAPI). */
  allowBearer: boolean;
  /** `FAPI_DPOP_NONCE_SECRET`: shared nonce secret (≥ 32 bytes) for several instances. */
  nonceSecret: string | undefined;
  /** `TLS_CERT` / `TLS_KEY` (PEM files): serve HTTPS and ask clients for certificates (RFC 8705). */
  tls: { cert: string; key: string } | undefined;
  /**
   * `FAPI_CLIENT_CERT_HEADER` (e.g. `client-cert`): take client certificates from this header of
   * a trusted TLS-terminating proxy; `FAPI_CLIENT_CERT_FORMAT` (`rfc9440`, `nginx`, `envoy`) and
   * `FAPI_CLIENT_CERT_TRUSTED_PEERS` (comma-separated IPs/CIDRs, default loopback) go with it.
   */
  clientCert: { header: string; format: ClientCertificateFormat; trustedPeers: string[] } | undefined;
  /**
   * Introspection (RFC 7662) when `FAPI_INTROSPECTION_CLIENT_ID` is set: with
   * `FAPI_INTROSPECTION_CLIENT_SECRET`, `FAPI_INTROSPECTION_ENDPOINT` (default: discovered),
   * `FAPI_INTROSPECTION_AUTH_METHOD` (`client_secret_basic` or `client_secret_post`),
   * `FAPI_INTROSPECTION_SIGNED_RESPONSE_ALG` (set → signed answers required, RFC 9701).
   */
  introspection: GuardOptions['introspection'];
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
  /** `FAPI_TOKEN_FORMAT`: `jwt`, `opaque` or `auto`. @default auto with introspection, else jwt */
  tokenFormat: GuardOptions['tokenFormat'];
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

function idempotencyMode(value: string | undefined): 'required' | 'optional' {
  if (value === undefined || value === '' || value === 'optional') return 'optional';
  if (value === 'required') return 'required';
  throw new Error(`FAPI_IDEMPOTENCY "${value}" must be required or optional`);
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): ExampleConfig {
  const port = Number(env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT "${env.PORT}" is not a port number`);
  const host = env.HOST ?? '127.0.0.1';
  const publicUrl = env.FAPI_PUBLIC_URL || undefined;
  const framework = (env.FAPI_FRAMEWORK || 'express') as Framework;
  if (!FRAMEWORKS.includes(framework)) throw new Error(`FAPI_FRAMEWORK "${framework}" is not one of ${FRAMEWORKS.join(', ')}`);
  const regime = (env.FAPI_REGIME || 'fapi2') as Regime;
  if (!REGIMES.includes(regime)) throw new Error(`FAPI_REGIME "${regime}" is not one of ${REGIMES.join(', ')}`);
  return {
    regime,
    framework,
    port,
    host,
    issuer: env.FAPI_ISSUER || undefined,
    jwksUri: env.FAPI_JWKS_URI || undefined,
    audience: env.FAPI_AUDIENCE || publicUrl || `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    publicUrl,
    allowBearer: env.FAPI_ALLOW_BEARER === 'true',
    nonceSecret: env.FAPI_DPOP_NONCE_SECRET || undefined,
    tls: readTls(env),
    redisUrl: env.REDIS_URL || undefined,
    idempotency: idempotencyMode(env.FAPI_IDEMPOTENCY),
    introspection: readIntrospection(env),
    tokenFormat: (env.FAPI_TOKEN_FORMAT || undefined) as GuardOptions['tokenFormat'],
    messageSigning: readMessageSigning(env),
    clientCert: env.FAPI_CLIENT_CERT_HEADER
      ? {
          header: env.FAPI_CLIENT_CERT_HEADER,
          format: (env.FAPI_CLIENT_CERT_FORMAT || 'rfc9440') as ClientCertificateFormat,
          trustedPeers: (env.FAPI_CLIENT_CERT_TRUSTED_PEERS || '127.0.0.1,::1').split(',').map((p) => p.trim()),
        }
      : undefined,
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

function readIntrospection(env: NodeJS.ProcessEnv): ExampleConfig['introspection'] {
  const clientId = env.FAPI_INTROSPECTION_CLIENT_ID;
  if (!clientId) return undefined;
  const method = env.FAPI_INTROSPECTION_AUTH_METHOD || 'client_secret_basic';
  if (method !== 'client_secret_basic' && method !== 'client_secret_post') {
    throw new Error(`FAPI_INTROSPECTION_AUTH_METHOD "${method}": the example supports client_secret_basic and client_secret_post`);
  }
  const alg = env.FAPI_INTROSPECTION_SIGNED_RESPONSE_ALG;
  if (alg && !['ES256', 'PS256', 'EdDSA'].includes(alg)) {
    throw new Error(`FAPI_INTROSPECTION_SIGNED_RESPONSE_ALG "${alg}" is not a FAPI 2.0 algorithm (ES256, PS256, EdDSA)`);
  }
  const clientSecret = env.FAPI_INTROSPECTION_CLIENT_SECRET;
  if (!clientSecret) throw new Error('FAPI_INTROSPECTION_CLIENT_SECRET is required with FAPI_INTROSPECTION_CLIENT_ID');
  return {
    clientId,
    clientAuth: { method, clientSecret },
    ...(env.FAPI_INTROSPECTION_ENDPOINT ? { endpoint: env.FAPI_INTROSPECTION_ENDPOINT } : {}),
    signedResponse: Boolean(alg),
    ...(env.FAPI_INTROSPECTION_CACHE_TTL_SEC ? { cache: { maxTtlSec: Number(env.FAPI_INTROSPECTION_CACHE_TTL_SEC) } } : {}),
  };
}

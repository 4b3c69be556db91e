/** Starts the example API (and, without an issuer, the embedded MockIssuer) from a configuration. */

import { generateKeyPairSync } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  type DecisionEvent,
  fapiTlsOptions,
  type GuardOptions,
  type IssuerConfig,
  type KeySetOptions,
  type MessageSigningOptions,
  type SignatureJwk,
} from '@fapi-guard/core';
import { RedisIdempotencyStore, RedisIntrospectionCache, RedisReplayStore, redisReady, sharedSecret } from '@fapi-guard/redis';
import { MockIssuer } from '@fapi-guard/testing';
import { createAdaptorServer } from '@hono/node-server';
import { Redis } from 'ioredis';
import { createPaymentsApi } from './app.js';
import type { ExampleConfig } from './config.js';
import { createFastifyPaymentsApi } from './fastify-app.js';
import { createHonoPaymentsApi } from './hono-app.js';
import { createKoaPaymentsApi } from './koa-app.js';
import { createNestPaymentsApi } from './nest-app.js';
import { type RegimeClient, setUpRegime } from './regime.js';

export interface RunningExample {
  /** Where the API listens. */
  url: string;
  issuer: string;
  /** The embedded issuer, when no FAPI_ISSUER was given. */
  mock: MockIssuer | undefined;
  /** With `FAPI_REGIME=uk-ob | br-of`: the demo third-party provider the example registered. */
  regimeClient: RegimeClient | undefined;
  close(): Promise<void>;
}

/**
 * Replaces the issuer configuration built from `config` (e.g. a static key set); adds to the
 * message-signing options (e.g. the audit hook); sets the JWKS cache tuning.
 */
export interface StartOverrides {
  issuer?: IssuerConfig;
  messageSigning?: Partial<MessageSigningOptions>;
  keys?: KeySetOptions;
  logger?: GuardOptions['logger'];
}

export async function startExample(
  config: ExampleConfig,
  onDecision?: (e: DecisionEvent) => void,
  overrides: StartOverrides = {},
): Promise<RunningExample> {
  const audience = [config.audience].flat()[0] as string;
  const mock = config.issuer === undefined ? await MockIssuer.start({ audience }) : undefined;
  const issuers = overrides.issuer ? [overrides.issuer] : mock ? [mock.issuer] : [config.issuer ?? []].flat();
  let shared: Awaited<ReturnType<typeof sharedState>> | undefined;
  let regime: Awaited<ReturnType<typeof setUpRegime>> | undefined;
  try {
    shared = config.redisUrl ? await sharedState(config.redisUrl) : undefined;
    regime = config.regime === 'fapi2' ? undefined : await setUpRegime(config.regime);
    return await startApi(config, { mock, issuers, shared, regime, onDecision, overrides });
  } catch (error) {
    // A configuration refused at start-up leaves nothing running behind it.
    shared?.redis.disconnect();
    await regime?.close();
    await mock?.stop();
    throw error;
  }
}

async function startApi(
  config: ExampleConfig,
  {
    mock,
    issuers,
    shared,
    regime,
    onDecision,
    overrides,
  }: {
    mock: MockIssuer | undefined;
    issuers: (string | IssuerConfig)[];
    shared: Awaited<ReturnType<typeof sharedState>> | undefined;
    regime: Awaited<ReturnType<typeof setUpRegime>> | undefined;
    onDecision: ((e: DecisionEvent) => void) | undefined;
    overrides: StartOverrides;
  },
): Promise<RunningExample> {
  const audience = [config.audience].flat()[0] as string;
  const { introspection, dpop } = config.guard;
  const guard: GuardOptions = {
    // What the FAPI_* variables set (guardOptionsFromEnv), so start-up errors name the variable.
    ...config.guard,
    issuers,
    audience: config.audience,
    publicUrl: config.publicUrl,
    ...(regime ? { profile: 'fapi1-advanced' as const } : {}),
    // Certificate-bound tokens over our own TLS listener (TLS_CERT), or from a trusted proxy's header.
    // FAPI 1.0 Part 2 §6.2.1 #2: the regimes take certificate-bound tokens only; without TLS_CERT or
    // FAPI_CLIENT_CERT_HEADER the certificate comes in the RFC 9440 `client-cert` header from a
    // TLS-terminating proxy on this machine (loopback peers only).
    mtls: config.guard.mtls ?? (regime && !config.tls ? { proxy: LOOPBACK_PROXY } : config.tls !== undefined),
    dpop: {
      ...dpop,
      ...(shared ? { replayStore: shared.replayStore } : {}),
      ...(dpop?.nonce?.secret || shared
        ? { nonce: { ...dpop?.nonce, secret: dpop?.nonce?.secret ?? (shared?.nonceSecret as string) } }
        : {}),
    },
    introspection:
      introspection && shared ? { ...introspection, cache: { ...introspection.cache, store: shared.introspectionCache } } : introspection,
    // Idempotency keys of POST /payments: on Redis, a retry at any instance is answered once.
    ...(shared ? { idempotency: { store: shared.idempotencyStore } } : {}),
    // RFC 9728: clients can discover what this API needs; challenges point to the document.
    resourceMetadata: { resourceName: 'Example payments API' },
    onDecision,
    ...(overrides.keys ? { keys: overrides.keys } : {}),
    ...(overrides.logger !== undefined ? { logger: overrides.logger } : {}),
  };
  if (regime) guard.messageSigning = regime.messageSigning;
  if (config.messageSigning) {
    guard.messageSigning = {
      ...guard.messageSigning,
      clients: config.messageSigning.clients,
      responseKey: config.messageSigning.responseKey ?? ephemeralSigningKey(),
      // SIG-15: published at this path and named in the metadata document.
      jwksUri: `${new URL([config.publicUrl ?? audience].flat()[0] as string).origin}/.well-known/jwks.json`,
      ...overrides.messageSigning,
    };
  }
  const server = await listen(config, {
    guard,
    allowBearer: config.allowBearer,
    signedPayments: config.messageSigning?.mode,
    regime: config.regime,
    idempotency: config.idempotency,
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `${config.tls ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    issuer: mock ? mock.issuer : issuerOf(issuers[0]),
    mock,
    regimeClient: regime?.client,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await mock?.stop();
      await regime?.close();
      shared?.redis.disconnect();
    },
  };
}

const issuerOf = (entry: string | IssuerConfig | undefined) => (typeof entry === 'object' ? entry.issuer : (entry ?? ''));
const LOOPBACK_PROXY = { header: 'client-cert', format: 'rfc9440', trustedPeers: ['127.0.0.1', '::1'] } as const;

/** An Ed25519 response-signing key for this run (set FAPI_SIGNING_KEY to keep one across restarts). */
function ephemeralSigningKey(): SignatureJwk {
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `example-${new Date().toISOString().slice(0, 10)}` };
}

/** Builds the chosen framework's app and listens; every version serves the same routes. */
async function listen(
  config: ExampleConfig,
  options: {
    guard: GuardOptions;
    allowBearer: boolean;
    signedPayments: 'required' | 'optional' | undefined;
    regime: ExampleConfig['regime'];
    idempotency: 'required' | 'optional';
  },
): Promise<Server> {
  // FAPI 2.0 §5.2 TLS: 1.2 or later, BCP 195 suites; client certificates are requested and any is
  // accepted: proof of possession needs no CA check (RFC 8705 §6.2), the token's cnf decides.
  const tls = config.tls && fapiTlsOptions({ ...config.tls, clientCertificates: 'request' });
  if (config.framework === 'nestjs' || config.framework === 'nestjs-fastify') {
    const app = await createNestPaymentsApi(options, config.framework === 'nestjs' ? 'express' : 'fastify', tls);
    await app.listen(config.port, config.host);
    return app.getHttpServer() as Server;
  }
  if (config.framework === 'fastify') {
    const app = await createFastifyPaymentsApi(options, tls);
    await app.listen({ port: config.port, host: config.host });
    return app.server as Server;
  }
  let server: Server;
  if (config.framework === 'hono') {
    // @hono/node-server: the Node request stays reachable (c.env.incoming) for raw headers and the TLS client certificate.
    const https = tls ? { createServer: createHttpsServer, serverOptions: tls } : {};
    server = createAdaptorServer({ fetch: createHonoPaymentsApi(options).fetch, ...https }) as Server;
  } else {
    const handler = config.framework === 'koa' ? createKoaPaymentsApi(options).callback() : createPaymentsApi(options);
    server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve(server));
  });
}

/**
 * State shared by every instance on one Redis: used DPoP proofs, introspection answers, the
 * nonce secret and idempotency keys with their stored responses. The client fails commands at once while disconnected (no offline queue), so an
 * outage gives 503s instead of stalled requests, and it reconnects by itself.
 */
async function sharedState(url: string) {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 100, 1000) });
  // Errors are logged (rate-limited) and answered with 503s; ioredis keeps reconnecting.
  await redisReady(redis, { timeoutMs: 5000 }).catch((e: Error) => {
    redis.disconnect();
    throw new Error(`REDIS_URL ${url}: ${e.message}`);
  });
  return {
    redis,
    replayStore: new RedisReplayStore({ client: redis }),
    introspectionCache: new RedisIntrospectionCache({ client: redis }),
    idempotencyStore: new RedisIdempotencyStore({ client: redis }),
    nonceSecret: await sharedSecret({ client: redis, name: 'dpop-nonce' }),
  };
}

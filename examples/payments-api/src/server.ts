/** Starts the example API (and, without an issuer, the embedded MockIssuer) from a configuration. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DecisionEvent, GuardOptions } from '@fapi-guard/core';
import { MockIssuer } from '@fapi-guard/testing';
import { createPaymentsApi } from './app.js';
import type { ExampleConfig } from './config.js';
import { createFastifyPaymentsApi } from './fastify-app.js';
import { createKoaPaymentsApi } from './koa-app.js';

export interface RunningExample {
  /** Where the API listens. */
  url: string;
  issuer: string;
  /** The embedded issuer, when no FAPI_ISSUER was given. */
  mock: MockIssuer | undefined;
  close(): Promise<void>;
}

export async function startExample(config: ExampleConfig, onDecision?: (e: DecisionEvent) => void): Promise<RunningExample> {
  const mock = config.issuer ? undefined : await MockIssuer.start({ audience: config.audience });
  const issuer = config.issuer ?? (mock as MockIssuer).issuer;
  const guard: GuardOptions = {
    issuer: config.jwksUri ? { issuer, jwksUri: config.jwksUri } : issuer,
    audience: config.audience,
    publicUrl: config.publicUrl,
    dpop: config.nonceSecret ? { nonce: { secret: config.nonceSecret } } : {},
    onDecision,
  };
  const server = await listen(config, { guard, allowBearer: config.allowBearer });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    issuer,
    mock,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await mock?.stop();
    },
  };
}

/** Builds the chosen framework's app and listens; every version serves the same routes. */
async function listen(config: ExampleConfig, options: { guard: GuardOptions; allowBearer: boolean }): Promise<Server> {
  if (config.framework === 'fastify') {
    const app = await createFastifyPaymentsApi(options);
    await app.listen({ port: config.port, host: config.host });
    return app.server;
  }
  const app = config.framework === 'koa' ? createKoaPaymentsApi(options) : createPaymentsApi(options);
  return new Promise((resolve, reject) => {
    const server: Server = app.listen(config.port, config.host, () => resolve(server));
    server.once('error', reject);
  });
}

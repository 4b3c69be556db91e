/** Starts the example API (and, without an issuer, the embedded MockIssuer) from a configuration. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DecisionEvent } from '@fapi-guard/core';
import { MockIssuer } from '@fapi-guard/testing';
import { createPaymentsApi } from './app.js';
import type { ExampleConfig } from './config.js';

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
  const app = createPaymentsApi({
    guard: {
      issuer: config.jwksUri ? { issuer, jwksUri: config.jwksUri } : issuer,
      audience: config.audience,
      publicUrl: config.publicUrl,
      dpop: config.nonceSecret ? { nonce: { secret: config.nonceSecret } } : {},
      onDecision,
    },
    allowBearer: config.allowBearer,
  });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.port, config.host, () => resolve(s));
    s.once('error', reject);
  });
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

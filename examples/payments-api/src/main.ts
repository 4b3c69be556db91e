/**
 * Runs the example payments API. With FAPI_ISSUER unset it starts the embedded MockIssuer
 * and prints how to call the API.
 */
import type { AddressInfo } from 'node:net';
import { MockIssuer } from '@fapi-guard/testing';
import { createPaymentsApi } from './app.js';
import { readConfig } from './config.js';

async function main(): Promise<void> {
  const config = readConfig();
  const mock = config.issuer ? undefined : await MockIssuer.start({ audience: config.audience });
  const issuer = config.issuer ?? (mock as MockIssuer).issuer;
  const app = createPaymentsApi({
    guard: {
      issuer: config.jwksUri ? { issuer, jwksUri: config.jwksUri } : issuer,
      audience: config.audience,
      publicUrl: config.publicUrl,
      onDecision: (e) => {
        const who = e.clientId ? ` client=${e.clientId}` : '';
        console.log(`${e.outcome} ${e.status} ${e.method} ${e.url}${who}${e.reason ? ` reason=${e.reason} (${e.detail})` : ''}`);
      },
    },
    allowBearer: config.allowBearer,
  });
  const server = app.listen(config.port, config.host, () => {
    const { port } = server.address() as AddressInfo;
    const base = `http://${config.host}:${port}`;
    console.log(`fapi-guard example payments API on ${base}`);
    console.log(`  audience ${config.audience}`);
    console.log(`  issuer   ${issuer}${mock ? ' (embedded MockIssuer)' : ''}`);
    console.log(`  routes   GET /health · GET /accounts · GET /accounts/:id · POST /payments · GET /payments/:id`);
    console.log(`  try      curl -i ${base}/accounts   (401 with the challenge)`);
    if (mock) console.log(`           npm run demo               (a DPoP client against this API, step by step)`);
  });
  const stop = () => {
    server.close();
    void mock?.stop();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});

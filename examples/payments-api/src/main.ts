/**
 * Runs the example payments API. With FAPI_ISSUER unset it starts the embedded MockIssuer
 * and prints how to call the API.
 */
import { readConfig } from './config.js';
import { createLogger, logDecisions } from './log.js';
import { startExample } from './server.js';

async function main(): Promise<void> {
  const config = readConfig();
  // Decisions and the guard's own warnings as JSON lines on stdout (pino, buffered asynchronous writes).
  const logger = createLogger();
  const running = await startExample(config, logDecisions(logger), { logger });
  console.log(`fapi-guard example payments API (${config.framework}) on ${running.url}`);
  console.log(`  audience ${config.audience}`);
  console.log(`  issuer   ${running.issuer}${running.mock ? ' (embedded MockIssuer)' : ''}`);
  console.log('  routes   GET /health · GET /accounts · GET /accounts/:id · POST /payments · GET /payments/:id');
  if (running.regimeClient) {
    const client = running.regimeClient;
    console.log(
      `  regime   ${config.regime}: FAPI 1.0 Advanced, certificate-bound tokens only${config.guard.mtls || config.tls ? '' : ' (certificate in the RFC 9440 client-cert header from a proxy on loopback)'}`,
    );
    console.log(
      `  signing  POST /payments: ${config.regime === 'uk-ob' ? 'x-jws-signature required, responses signed' : 'signed JWT bodies (application/jwt) required, responses signed JWTs'}`,
    );
    console.log(`  client   ${client.clientId} (${client.iss}): its keys on the local key store; see npm run demo`);
    console.log(`  try      FAPI_REGIME=${config.regime} npm run demo  → a TPP pays with signed requests; tampered ones are refused`);
  } else {
    console.log(`  tokens   DPoP-bound only${config.allowBearer ? ' (FAPI_ALLOW_BEARER=true: unbound bearer tokens accepted too)' : ''}`);
  }
  if (config.messageSigning) {
    console.log(
      `  signing  POST /payments: request signatures ${config.messageSigning.mode}, responses signed (keys at /.well-known/jwks.json)`,
    );
  }
  if (!running.regimeClient) {
    console.log(`  try      curl -i ${running.url}/accounts      → 401 with the DPoP challenge`);
    console.log('           npm run call -- GET /accounts    → 200: a DPoP-bound token from the issuer, a fresh proof, the accounts');
    console.log('           npm run demo                     → a DPoP client walks through accepted and refused calls');
  }
  const stop = () => {
    void running.close().then(() => logger.flush(() => process.exit(0)));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exit(1);
});

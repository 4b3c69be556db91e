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
  console.log(`  tokens   DPoP-bound only${config.allowBearer ? ' (FAPI_ALLOW_BEARER=true: unbound bearer tokens accepted too)' : ''}`);
  if (config.messageSigning) {
    console.log(
      `  signing  POST /payments: request signatures ${config.messageSigning.mode}, responses signed (keys at /.well-known/jwks.json)`,
    );
  }
  console.log(`  try      curl -i ${running.url}/accounts      → 401 with the DPoP challenge`);
  console.log('           npm run call -- GET /accounts    → 200: a DPoP-bound token from the issuer, a fresh proof, the accounts');
  console.log('           npm run demo                     → a DPoP client walks through accepted and refused calls');
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

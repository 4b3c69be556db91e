/** An Express app protected by fapi-guard, listening on 127.0.0.1, for HTTP-level tests. */
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { DecisionEvent, GuardOptions } from '@fapi-guard/core';
import { type FapiGuardExpress, fapiGuard } from '@fapi-guard/express';
import express, { type Express } from 'express';

export interface RunningApp {
  url: string;
  fapi: FapiGuardExpress;
  decisions: DecisionEvent[];
  close(): Promise<void>;
}

/**
 * Starts an app with the guard options given and routes mounted by `mount`
 * (default: `GET /accounts` needing scope `accounts`, bearer allowed, echoing `req.auth`).
 */
export async function startExpressApp(
  options: GuardOptions,
  mount?: (app: Express, fapi: FapiGuardExpress) => void,
  /** Serve HTTPS with this certificate, asking clients for theirs (any, unverified: RFC 8705 §6.2). */
  tls?: { cert: string; key: string },
): Promise<RunningApp> {
  const decisions: DecisionEvent[] = [];
  const fapi = fapiGuard({ ...options, onDecision: (e) => decisions.push(e) });
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  if (mount) mount(app, fapi);
  else {
    app.all('/accounts', fapi.protect({ scopes: ['accounts'], allowBearer: true }), (req, res) => {
      res.json({
        clientId: req.auth?.clientId,
        scopes: req.auth?.scopes,
        binding: req.auth?.binding,
        certificate: req.auth?.certificate && { source: req.auth.certificate.source, chain: req.auth.certificate.chain?.length },
      });
    });
  }
  const server = tls
    ? createHttpsServer({ ...tls, requestCert: true, rejectUnauthorized: false }, app).listen(0, '127.0.0.1')
    : app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    fapi,
    decisions,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

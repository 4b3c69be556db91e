/**
 * Attack (seams review): response signing on two layers of one guard.
 *
 * An app-wide `protect({ signResponse: true })` and a payments route behind it with
 * `protect({ signedRequest: 'required', signResponse: true })`. The first layer marks its
 * Authorized value with a signing context that holds no request signature (none was checked
 * there); the route's layer (guard.ts authorizeLayer → completeRequest) verifies the request
 * signature and builds a new context that holds it, but:
 *  - Node adapters: signNodeResponse wraps the response once, for the first layer's value
 *    (node-response.ts: `signing.has(res)`), so the response is signed with the context without
 *    the request signature;
 *  - Hono: the route's layer signs, then the app-wide layer signs again over it with its own
 *    context, replacing the headers (and `onSignedExchange` receives two response records).
 * Either way the response signature does not cover the request's `signature`/`signature-input`
 * (FAPI 2.0 Message Signing §5.6.2.1, RFC 9421 §2.4 `;req`): a client that checks the binding
 * (verifySignedResponse in @fapi-guard/testing) refuses every response of the route.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RoutePolicy, SignedExchangeRecord } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { DpopClient, MessageSigningClient, MockIssuer, verifySignedResponse } from '@fapi-guard/testing';
import express from 'express';
import { Hono } from 'hono';
import { serveHono } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let client: DpopClient;
const signer = MessageSigningClient.generate('ed25519', 'client-key');
const rs = MessageSigningClient.generate('ed25519', 'rs-key');

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

const APP_WIDE: RoutePolicy = { signResponse: true };
const PAY: RoutePolicy = { scopes: ['payments:write'], signedRequest: 'required', signResponse: true };

async function listenExpress(app: express.Express) {
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each(['express', 'hono'] as const)('%s: app-wide signResponse + route signedRequest/signResponse', (framework) => {
  const records: SignedExchangeRecord[] = [];
  let app: { url: string; close(): Promise<void> };
  beforeAll(async () => {
    const options = {
      issuer: as.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      interactionId: false,
      messageSigning: {
        clients: { 'client-a': { jwks: signer.jwks } },
        responseKey: rs.privateJwk,
        onSignedExchange: (record: SignedExchangeRecord) => void records.push(record),
      },
    };
    if (framework === 'express') {
      const fapi = expressGuard(options);
      const server = express();
      server.use(fapi.protect(APP_WIDE));
      server.post('/pay', fapi.protect(PAY), (_req, res) => void res.status(201).json({ ok: true }));
      app = await listenExpress(server);
    } else {
      const fapi = honoGuard(options);
      const server = new Hono();
      server.use('*', fapi.protect(APP_WIDE));
      server.post('/pay', fapi.protect(PAY), (c) => c.json({ ok: true }, 201));
      app = await serveHono(server);
    }
  });
  afterAll(() => app.close());

  it('the response signature covers the verified request signature (SIG-14)', async () => {
    records.length = 0;
    const token = await as.mint({ scope: 'payments:write', jkt: client.jkt });
    const url = `${AUDIENCE}/pay`;
    const body = '{"amount":"10.00"}';
    const headers: Record<string, string> = {
      authorization: `DPoP ${token}`,
      dpop: await client.proof({ htm: 'POST', htu: url, accessToken: token }),
      'content-type': 'application/json',
    };
    Object.assign(headers, signer.sign({ method: 'POST', url, headers, body }));
    const res = await send(`${app.url}/pay`, { method: 'POST', headers, body });
    expect(res.status).toBe(201);
    const check = verifySignedResponse({
      request: { method: 'POST', url, headers, body },
      response: { status: res.status, headers: res.headers as Record<string, string>, body: res.text },
      jwks: rs.jwks,
    });
    // Observed: { ok: false, detail: 'sig1 does not cover "signature";req;key="sig1", "signature-input";req;key="sig1"' }
    expect(check.ok ? 'ok' : check.detail).toBe('ok');
    // One request record and one response record for the exchange.
    expect(records.map((r) => r.direction)).toEqual(['request', 'response']);
  });
});

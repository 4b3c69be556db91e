/**
 * Attack (seams review): an idempotent replay answered by an app-wide layer skips the stricter
 * layers behind it.
 *
 * App: `protect({ idempotency: 'optional' })` app-wide (every POST of the API may carry a key),
 * and the payments route behind it with `protect({ scopes: ['payments:write'] })`. The app-wide
 * layer authorizes the request with its own (lax) policy, then startNodeIdempotency /
 * startFetchIdempotency answers a retry from the store at once (idempotency/node.ts,
 * writeIdempotencyAnswer; hono: `idempotent.kind === 'answer'`): the route's layer never runs.
 * A token of the same client that lacks `payments:write` (another user's, a read-only one, an
 * expired step-up…) sends the first request's key and body and gets the 201 payment response —
 * the route's scope check is skipped because an earlier layer's cached result answered.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { serveHono } from './support/apps';
import { newLedger, type Party, sendPayment } from './support/idempotency-apps';

const PUBLIC = 'https://api.bank.example';
let as: MockIssuer;
let writer: Party;
let reader: Party;
let options: GuardOptions;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: PUBLIC });
  const [a, b] = await Promise.all([DpopClient.create('ES256'), DpopClient.create('ES256')]);
  const claims = { client_id: 'client-tpp' };
  writer = {
    client: a,
    token: await as.mint({ scope: 'payments:write', jkt: a.jkt, audience: PUBLIC, claims: { ...claims, sub: 'alice' } }),
  };
  // Same client, another user, no payments scope.
  reader = {
    client: b,
    token: await as.mint({ scope: 'accounts:read', jkt: b.jkt, audience: PUBLIC, claims: { ...claims, sub: 'mallory' } }),
  };
  options = { issuer: as.issuer, audience: PUBLIC, publicUrl: PUBLIC };
});
afterAll(() => as?.stop());

const APP_WIDE: RoutePolicy = { idempotency: 'optional' };
const ROUTE: RoutePolicy = { scopes: ['payments:write'] };

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function start(name: 'express' | 'koa' | 'hono', ledger: ReturnType<typeof newLedger>) {
  const http = await import('node:http');
  if (name === 'hono') {
    const { Hono } = await import('hono');
    const { fapiGuard } = await import('@fapi-guard/hono');
    const fapi = fapiGuard(options);
    const app = new Hono();
    app.use('*', fapi.protect(APP_WIDE));
    app.post('/payments', fapi.protect(ROUTE), (c) => {
      ledger.processed++;
      return c.json({ payment: `pay-${ledger.processed}`, owner: c.get('auth').subject }, 201);
    });
    return serveHono(app);
  }
  let server: Server;
  if (name === 'express') {
    const express = (await import('express')).default;
    const { fapiGuard } = await import('@fapi-guard/express');
    const fapi = fapiGuard(options);
    const app = express();
    app.use(fapi.protect(APP_WIDE));
    app.post('/payments', fapi.protect(ROUTE), (req, res) => {
      ledger.processed++;
      res.status(201).json({ payment: `pay-${ledger.processed}`, owner: req.auth?.subject });
    });
    server = http.createServer(app);
  } else {
    const Koa = (await import('koa')).default;
    const Router = (await import('@koa/router')).default;
    const { fapiGuard } = await import('@fapi-guard/koa');
    const fapi = fapiGuard(options);
    const app = new Koa();
    app.use(fapi.protect(APP_WIDE));
    const router = new Router();
    router.post('/payments', fapi.protect(ROUTE), (ctx) => {
      ledger.processed++;
      ctx.status = 201;
      ctx.body = { payment: `pay-${ledger.processed}`, owner: ctx.state.auth?.subject };
    });
    app.use(router.routes());
    server = http.createServer(app.callback());
  }
  const url = await listen(server);
  return { url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe.each(['express', 'koa', 'hono'] as const)('%s: app-wide idempotency layer + route scopes', (name) => {
  it('a token without the route’s scope is refused, also with the key of an earlier payment (expected 403)', async () => {
    const ledger = newLedger(0);
    const app = await start(name, ledger);
    try {
      const key = `"k-${name}-${process.pid}-${Date.now()}"`;
      const body = '{"amount":"10.00","to":"GB00-0000"}';
      // Sanity: without a key the route refuses the reader's token.
      const plain = await sendPayment(app.url, PUBLIC, { who: reader, body });
      expect(plain.status).toBe(403);
      // Alice pays, with a key.
      const first = await sendPayment(app.url, PUBLIC, { who: writer, key, body });
      expect(first.status).toBe(201);
      // Mallory (same TPP, no payments:write) sends the same key and body.
      const replay = await sendPayment(app.url, PUBLIC, { who: reader, key, body });
      // Observed: 201 with Alice's payment response ({"payment":"pay-1","owner":"alice"}).
      expect([replay.status, replay.text]).toEqual([403, expect.any(String)]);
      expect(replay.text).not.toContain('alice');
    } finally {
      await app.close();
    }
  });
});

/**
 * Attack (seams review): idempotency on two layers of one guard.
 *
 * startNodeIdempotency (packages/core/src/idempotency/node.ts) marks the request as "started" by
 * the first layer whose policy has `idempotency`, whatever that layer decided, and every later
 * layer then passes without running its own idempotency policy. An app-wide layer with an
 * optional key (or another header / syntax) thus switches off a route's `mode: 'required'`:
 * a payment without any idempotency key reaches the handler (2xx) on a route that requires one.
 *
 * On the Fetch path (Hono) there is no such mark: each layer claims the key again, and the second
 * claim finds the first one in flight: every request with a key is refused 409 and no payment
 * can ever be made through two idempotent layers.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { MockIssuer } from '@fapi-guard/testing';
import { serveHono } from './support/apps';
import { newLedger, type Party, party, sendPayment } from './support/idempotency-apps';

const PUBLIC = 'https://api.bank.example';
let as: MockIssuer;
let alice: Party;
let options: GuardOptions;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: PUBLIC });
  alice = await party(as, PUBLIC, 'client-alice');
  options = { issuer: as.issuer, audience: PUBLIC, publicUrl: PUBLIC };
});
afterAll(() => as?.stop());

/** App-wide: keys are optional (some routes take them). */
const APP_WIDE: RoutePolicy = { idempotency: { mode: 'optional' } };
/** The payments route: a key is required (UK OB / draft §2: a payment without one is refused). */
const ROUTE: RoutePolicy = { scopes: ['payments'], idempotency: { mode: 'required' } };

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function startNode(name: 'express' | 'koa', ledger: ReturnType<typeof newLedger>, appWide: RoutePolicy, route: RoutePolicy) {
  const http = await import('node:http');
  let server: Server;
  if (name === 'express') {
    const express = (await import('express')).default;
    const { fapiGuard } = await import('@fapi-guard/express');
    const fapi = fapiGuard(options);
    const app = express();
    app.use(fapi.protect(appWide));
    app.post('/payments', fapi.protect(route), (_req, res) => {
      ledger.processed++;
      res.status(201).json({ payment: `pay-${ledger.processed}` });
    });
    server = http.createServer(app);
  } else {
    const Koa = (await import('koa')).default;
    const Router = (await import('@koa/router')).default;
    const { fapiGuard } = await import('@fapi-guard/koa');
    const fapi = fapiGuard(options);
    const app = new Koa();
    app.use(fapi.protect(appWide));
    const router = new Router();
    router.post('/payments', fapi.protect(route), (ctx) => {
      ledger.processed++;
      ctx.status = 201;
      ctx.body = { payment: `pay-${ledger.processed}` };
    });
    app.use(router.routes());
    server = http.createServer(app.callback());
  }
  const url = await listen(server);
  return { url, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe.each(['express', 'koa'] as const)('%s: app-wide optional idempotency + route requiring a key', (name) => {
  it('a payment without an idempotency key is refused by the route that requires one (expected 400 idempotency_key_missing)', async () => {
    const ledger = newLedger(0);
    const app = await startNode(name, ledger, APP_WIDE, ROUTE);
    try {
      const res = await sendPayment(app.url, PUBLIC, { who: alice });
      // Observed: 201 and the payment processed — the route's `required` never ran.
      expect(res.status).toBe(400);
      expect(ledger.processed).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('a key in another header than the route reads is not taken for the route’s key (expected 400)', async () => {
    const ledger = newLedger(0);
    // App-wide: IETF `Idempotency-Key`; the route: UK OB `x-idempotency-key`, required.
    const app = await startNode(
      name,
      ledger,
      { idempotency: { mode: 'required' } },
      {
        scopes: ['payments'],
        idempotency: { mode: 'required', syntax: 'uk-ob' },
      },
    );
    try {
      const res = await sendPayment(app.url, PUBLIC, { who: alice, key: '"k-1"' });
      expect(res.status).toBe(400);
      expect(ledger.processed).toBe(0);
    } finally {
      await app.close();
    }
  });
});

describe('hono: two layers both carrying idempotency', () => {
  it('a first request with a fresh key is processed (expected 201, observed 409 from the second claim)', async () => {
    const { Hono } = await import('hono');
    const { fapiGuard } = await import('@fapi-guard/hono');
    const fapi = fapiGuard(options);
    const ledger = newLedger(0);
    const policy: RoutePolicy = { scopes: ['payments'], idempotency: { mode: 'required' } };
    const app = new Hono();
    app.use('*', fapi.protect(policy));
    app.post('/payments', fapi.protect(policy), (c) => {
      ledger.processed++;
      return c.json({ payment: `pay-${ledger.processed}` }, 201);
    });
    const served = await serveHono(app);
    try {
      const res = await sendPayment(served.url, PUBLIC, { who: alice, key: `"hono-${process.pid}-${Date.now()}"` });
      expect(res.status).toBe(201);
      expect(ledger.processed).toBe(1);
    } finally {
      await served.close();
    }
  });
});

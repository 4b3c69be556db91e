/**
 * Idempotency keys across layers (IDEM-16, IDEM-05): concurrent requests with one key through two layers (app-wide idempotency, route scope):
 * payers and scope-less readers of the same client at once. Expected: one payment, the key never
 * left blocked, and every reader refused 403 or 409 (never a 201).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import express from 'express';
import { Hono } from 'hono';
import { serveHono } from './support/apps';
import { type Party, sendPayment } from './support/idempotency-apps';

const PUBLIC = 'https://api.bank.example';
let as: MockIssuer;
let payer: Party;
let reader: Party;
let options: GuardOptions;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: PUBLIC });
  const [a, b] = await Promise.all([DpopClient.create('ES256'), DpopClient.create('ES256')]);
  payer = {
    client: a,
    token: await as.mint({ scope: 'payments:write', jkt: a.jkt, audience: PUBLIC, claims: { client_id: 'tpp', sub: 'alice' } }),
  };
  reader = {
    client: b,
    token: await as.mint({ scope: 'accounts:read', jkt: b.jkt, audience: PUBLIC, claims: { client_id: 'tpp', sub: 'mallory' } }),
  };
  options = { issuer: as.issuer, audience: PUBLIC, publicUrl: PUBLIC };
});
afterAll(() => as?.stop());

async function startApp(framework: 'express' | 'hono', counter: { n: number }) {
  const pay = async () => {
    await new Promise((r) => setTimeout(r, 100));
    counter.n++;
    return { payment: `pay-${counter.n}` };
  };
  if (framework === 'express') {
    const fapi = expressGuard(options);
    const app = express();
    app.use(fapi.protect({ idempotency: 'optional' }));
    app.post('/payments', fapi.protect({ scopes: ['payments:write'] }), (_req, res, next) => {
      pay().then((p) => void res.status(201).json(p), next);
    });
    const server = createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () =>
        new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
    };
  }
  const fapi = honoGuard(options);
  const app = new Hono();
  app.use('*', fapi.protect({ idempotency: 'optional' }));
  app.post('/payments', fapi.protect({ scopes: ['payments:write'] }), async (c) => c.json(await pay(), 201));
  return serveHono(app);
}

describe.each(['express', 'hono'] as const)('%s: two layers, one key, at once', (framework) => {
  it('IDEM-16 IDEM-05 payers and readers at once with one key: one payment, readers never 201, the key answered afterwards', async () => {
    const counter = { n: 0 };
    const app = await startApp(framework, counter);
    try {
      const k = `"c-${Math.random().toString(36).slice(2)}"`;
      const all = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          sendPayment(app.url, PUBLIC, { who: i % 2 ? reader : payer, key: k }).then((r) => ({
            who: i % 2 ? 'reader' : 'payer',
            status: r.status,
            text: r.text,
          })),
        ),
      );
      for (const r of all.filter((x) => x.who === 'reader')) expect([403, 409]).toContain(r.status);
      await new Promise((r) => setTimeout(r, 300));
      const after = await sendPayment(app.url, PUBLIC, { who: payer, key: k });
      expect(after.status).toBe(201);
      expect(counter.n).toBe(1);
      const readerAfter = await sendPayment(app.url, PUBLIC, { who: reader, key: k });
      expect(readerAfter.status).toBe(403);
    } finally {
      await app.close();
    }
  });
});

/**
 * attack2: idempotency keys across layers of one guard, where layers read different key headers,
 * and a Fastify route whose first protect() preHandler has no idempotency.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Authorized, GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiAuth, FapiPolicy } from '@fapi-guard/nestjs';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import Router from '@koa/router';
import { Controller, Post, Res } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { serveHono } from './support/apps';
import { newLedger, type Party, sendPayment } from './support/idempotency-apps';
import { startNestApp } from './support/nest-app';

const PUBLIC = 'https://api.bank.example';
let as: MockIssuer;
let payer: Party;
let options: GuardOptions;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: PUBLIC });
  const a = await DpopClient.create('ES256');
  payer = {
    client: a,
    token: await as.mint({ scope: 'payments:write', jkt: a.jkt, audience: PUBLIC, claims: { client_id: 'client-tpp', sub: 'alice' } }),
  };
  options = { issuer: as.issuer, audience: PUBLIC, publicUrl: PUBLIC };
});
afterAll(() => as?.stop());

type Ledger = ReturnType<typeof newLedger>;
interface App {
  url: string;
  close(): Promise<unknown>;
}
const FRAMEWORKS = ['express', 'koa', 'fastify', 'hono', 'nestjs', 'nestjs-fastify'] as const;
type Framework = (typeof FRAMEWORKS)[number];

const paid = (ledger: Ledger, auth: Authorized | null | undefined) => {
  ledger.processed++;
  return { payment: `pay-${ledger.processed}`, owner: auth?.subject ?? null };
};

async function listen(server: Server): Promise<App> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

async function start(framework: Framework, ledger: Ledger, appWide: RoutePolicy, route: RoutePolicy): Promise<App> {
  if (framework === 'express') {
    const fapi = expressGuard(options);
    const app = express();
    app.use(fapi.protect(appWide));
    app.post('/payments', fapi.protect(route), (req, res) => void res.status(201).json(paid(ledger, req.auth)));
    return listen(createServer(app));
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options);
    const app = new Koa();
    app.use(fapi.protect(appWide));
    const router = new Router();
    router.post('/payments', fapi.protect(route), (ctx) => {
      ctx.status = 201;
      ctx.body = paid(ledger, ctx.state.auth);
    });
    app.use(router.routes());
    return listen(createServer(app.callback()));
  }
  if (framework === 'fastify') {
    const app = Fastify();
    await app.register(fastifyPlugin, options);
    app.post('/payments', { preHandler: [app.fapi.protect(appWide), app.fapi.protect(route)] }, async (request, reply) =>
      reply.code(201).send(paid(ledger, request.auth)),
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
  }
  if (framework === 'hono') {
    const fapi = honoGuard(options);
    const app = new Hono();
    app.use('*', fapi.protect(appWide));
    app.post('/payments', fapi.protect(route), (c) => c.json(paid(ledger, c.get('auth')), 201));
    return serveHono(app);
  }
  @Controller()
  class Payments {
    @Post('payments')
    @FapiPolicy(route)
    pay(@FapiAuth() auth: Authorized, @Res({ passthrough: true }) res: unknown) {
      const r = res as { status?: (n: number) => unknown; code?: (n: number) => unknown };
      if (r.code) r.code(201);
      else r.status?.(201);
      return paid(ledger, auth);
    }
  }
  return startNestApp(framework, options, [Payments], undefined, { rawBody: true, settings: { global: appWide } });
}

const uniq = () => `${process.pid}-${Math.random().toString(36).slice(2, 12)}`;
const BODY = '{"amount":"10.00"}';

describe.each(FRAMEWORKS)('%s: app-wide optional Idempotency-Key, route requires x-idempotency-key (uk-ob)', (framework) => {
  const route: RoutePolicy = { scopes: ['payments:write'], idempotency: { mode: 'required', syntax: 'uk-ob' } };

  it('A1 the same x-idempotency-key is processed once, whatever Idempotency-Key the attempts carry', async () => {
    const ledger = newLedger(0);
    const app = await start(framework, ledger, { idempotency: 'optional' }, route);
    try {
      const x = `uk-${uniq()}`.slice(0, 40);
      // The first attempt carries both headers (a gateway adds an Idempotency-Key of its own per attempt).
      const first = await sendPayment(app.url, PUBLIC, {
        who: payer,
        key: `"gw-${uniq()}"`,
        body: BODY,
        headers: { 'x-idempotency-key': x },
      });
      // The retry: the same route key, another gateway key.
      const retry = await sendPayment(app.url, PUBLIC, {
        who: payer,
        key: `"gw-${uniq()}"`,
        body: BODY,
        headers: { 'x-idempotency-key': x },
      });
      expect(first.status).toBe(201);
      expect([retry.status, retry.text]).toEqual([201, first.text]);
      expect(ledger.processed).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('A2 a retry with the route key alone after a first attempt that carried both is answered from the store', async () => {
    const ledger = newLedger(0);
    const app = await start(framework, ledger, { idempotency: 'optional' }, route);
    try {
      const x = `uk-${uniq()}`.slice(0, 40);
      const first = await sendPayment(app.url, PUBLIC, {
        who: payer,
        key: `"gw-${uniq()}"`,
        body: BODY,
        headers: { 'x-idempotency-key': x },
      });
      const retry = await sendPayment(app.url, PUBLIC, { who: payer, body: BODY, headers: { 'x-idempotency-key': x } });
      expect(first.status).toBe(201);
      expect([retry.status, retry.text]).toEqual([201, first.text]);
      expect(ledger.processed).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe.each(FRAMEWORKS)('%s: what an app-wide layer answers before the route checked the retry', (framework) => {
  // A reader of the same client without payments:write.
  let reader: Party;
  beforeAll(async () => {
    const b = await DpopClient.create('ES256');
    reader = {
      client: b,
      token: await as.mint({ scope: 'accounts:read', jkt: b.jkt, audience: PUBLIC, claims: { client_id: 'client-tpp', sub: 'mallory' } }),
    };
  });

  it('A3 a retry without the route’s scope of a payment whose response was not kept gets 403, not 409 "processed"', async () => {
    const ledger = newLedger(0);
    const app = await start(framework, ledger, { idempotency: { mode: 'optional', maxResponseBytes: 0 } }, { scopes: ['payments:write'] });
    try {
      const k = `"k-${uniq()}"`;
      const first = await sendPayment(app.url, PUBLIC, { who: payer, key: k, body: BODY });
      expect([first.status, ledger.processed]).toEqual([201, 1]);
      const probe = await sendPayment(app.url, PUBLIC, { who: reader, key: k, body: BODY });
      expect([probe.status, probe.headers['www-authenticate']]).toEqual([403, expect.stringContaining('insufficient_scope')]);
    } finally {
      await app.close();
    }
  });

  it('A4 a request without the route’s scope reusing a payer’s key with another body gets 403, not 422 (the key is not disclosed as used)', async () => {
    const ledger = newLedger(0);
    const app = await start(framework, ledger, { idempotency: 'optional' }, { scopes: ['payments:write'] });
    try {
      const k = `"k-${uniq()}"`;
      expect((await sendPayment(app.url, PUBLIC, { who: payer, key: k, body: BODY })).status).toBe(201);
      const probe = await sendPayment(app.url, PUBLIC, { who: reader, key: k, body: '{"amount":"99.00"}' });
      expect([probe.status, probe.headers['www-authenticate']]).toEqual([403, expect.stringContaining('insufficient_scope')]);
    } finally {
      await app.close();
    }
  });
});

describe.each(FRAMEWORKS)('%s: the route’s own key lifetime behind an app-wide layer with a shorter one', (framework) => {
  it('A5 a retry within the route’s ttlSec is answered from the store, not processed again after the app-wide ttlSec', async () => {
    const ledger = newLedger(0);
    const app = await start(
      framework,
      ledger,
      { idempotency: { mode: 'optional', ttlSec: 1 } },
      { scopes: ['payments:write'], idempotency: { mode: 'required', ttlSec: 3600 } },
    );
    try {
      const k = `"k-${uniq()}"`;
      const first = await sendPayment(app.url, PUBLIC, { who: payer, key: k, body: BODY });
      await new Promise((r) => setTimeout(r, 1500));
      const retry = await sendPayment(app.url, PUBLIC, { who: payer, key: k, body: BODY });
      expect(first.status).toBe(201);
      expect([retry.status, retry.text, ledger.processed]).toEqual([201, first.text, 1]);
    } finally {
      await app.close();
    }
  });
});

describe.each(FRAMEWORKS)('%s: the route’s own maxResponseBytes behind an app-wide layer with a smaller one', (framework) => {
  it('A6 a response within the route’s maxResponseBytes is kept: its retry is answered from the store, not 409 "not kept"', async () => {
    const ledger = newLedger(0);
    const app = await start(
      framework,
      ledger,
      { idempotency: { mode: 'optional', maxResponseBytes: 16 } },
      { scopes: ['payments:write'], idempotency: { mode: 'required', maxResponseBytes: 65536 } },
    );
    try {
      const k = `"k-${uniq()}"`;
      const first = await sendPayment(app.url, PUBLIC, { who: payer, key: k, body: BODY });
      const retry = await sendPayment(app.url, PUBLIC, { who: payer, key: k, body: BODY });
      expect(first.status).toBe(201);
      expect([retry.status, retry.text, ledger.processed]).toEqual([201, first.text, 1]);
    } finally {
      await app.close();
    }
  });
});

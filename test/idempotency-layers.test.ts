/**
 * Idempotency keys across layers of one guard (IDEM-16): an app-wide `protect()` with
 * `idempotency` and a stricter route behind it, on every adapter. A retry is answered with the
 * stored response only once every layer that checked the first request has checked it; a later
 * layer's refusal frees the key; each layer's own key rules hold. (Found by an attacker's review:
 * the app-wide layer used to answer a retry at once, so a token without the route's scope got the
 * stored payment; and the first layer's mark switched off a later layer's `required`.)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Authorized, type GuardOptions, type IdempotencyStore, MemoryIdempotencyStore, type RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiAuth, FapiPolicy } from '@fapi-guard/nestjs';
import Router from '@koa/router';
import { Controller, Post, Res } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { serveHono } from './support/apps';
import { newLedger, sendPayment, useTppUsers } from './support/idempotency-apps';
import { startNestApp } from './support/nest-app';

const PUBLIC = 'https://api.bank.example';
const tpp = useTppUsers(PUBLIC);

type Ledger = ReturnType<typeof newLedger>;
interface App {
  url: string;
  close(): Promise<unknown>;
}

const FRAMEWORKS = ['express', 'koa', 'fastify', 'hono', 'nestjs', 'nestjs-fastify'] as const;
type Framework = (typeof FRAMEWORKS)[number];

/** The payment handler: counts the processing, after `ledger.delayMs` (a slow payment). */
const paid = async (ledger: Ledger, auth: Authorized | null | undefined) => {
  ledger.started++;
  if (ledger.delayMs > 0) await new Promise((r) => setTimeout(r, ledger.delayMs));
  ledger.processed++;
  return { payment: `pay-${ledger.processed}`, owner: auth?.subject ?? null };
};

async function listen(server: Server): Promise<App> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** POST /payments behind two layers: `appWide` for every request, `route` on the route; `guardOptions` added to the guard's. */
async function start(
  framework: Framework,
  ledger: Ledger,
  appWide: RoutePolicy,
  route: RoutePolicy,
  guardOptions: Partial<GuardOptions> = {},
): Promise<App> {
  const options = { ...tpp.options, ...guardOptions };
  if (framework === 'express') {
    const fapi = expressGuard(options);
    const app = express();
    app.use(fapi.protect(appWide));
    app.post('/payments', fapi.protect(route), async (req, res) => void res.status(201).json(await paid(ledger, req.auth)));
    return listen(createServer(app));
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options);
    const app = new Koa();
    app.use(fapi.protect(appWide));
    const router = new Router();
    router.post('/payments', fapi.protect(route), async (ctx) => {
      ctx.body = await paid(ledger, ctx.state.auth);
      ctx.status = 201;
    });
    app.use(router.routes());
    return listen(createServer(app.callback()));
  }
  if (framework === 'fastify') {
    const app = Fastify();
    await app.register(fastifyPlugin, options);
    // Two protect() preHandlers on the route: the first with the key, as an app-wide one would be.
    app.post('/payments', { preHandler: [app.fapi.protect(appWide), app.fapi.protect(route)] }, async (request, reply) =>
      reply.code(201).send(await paid(ledger, request.auth)),
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
  }
  if (framework === 'hono') {
    const fapi = honoGuard(options);
    const app = new Hono();
    app.use('*', fapi.protect(appWide));
    app.post('/payments', fapi.protect(route), async (c) => c.json(await paid(ledger, c.get('auth')), 201));
    return serveHono(app);
  }
  @Controller()
  class Payments {
    @Post('payments')
    @FapiPolicy(route)
    async pay(@FapiAuth() auth: Authorized, @Res({ passthrough: true }) res: unknown) {
      const r = res as { status?: (n: number) => unknown; code?: (n: number) => unknown };
      if (r.code) r.code(201);
      else r.status?.(201);
      return await paid(ledger, auth);
    }
  }
  // The module's global policy is the app-wide layer (FapiGlobalGuard); the route's is checked on top.
  return startNestApp(framework, options, [Payments], undefined, { rawBody: true, settings: { global: appWide } });
}

const key = (name: string) => `"${name}-${process.pid}-${Math.random().toString(36).slice(2)}"`;
const BODY = '{"amount":"10.00"}';

describe.each(FRAMEWORKS)('%s: an app-wide layer with idempotency, a stricter route behind it', (framework) => {
  it('IDEM-16 a retry with a token that lacks the route’s scope is refused, never answered with the stored payment; the payer’s retry is', async () => {
    const ledger = newLedger(0);
    const app = await start(framework, ledger, { idempotency: 'optional' }, { scopes: ['payments:write'] });
    try {
      const k = key('scope');
      const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, first.json]).toEqual([201, { payment: 'pay-1', owner: 'alice' }]);
      const stolen = await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: BODY });
      expect([stolen.status, stolen.headers['www-authenticate']]).toEqual([403, expect.stringContaining('insufficient_scope')]);
      expect(stolen.text).not.toContain('alice');
      const retry = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([retry.status, retry.text]).toEqual([201, first.text]);
      expect(ledger.processed).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('IDEM-16 a later layer’s refusal of a first request frees the key: the corrected request is processed', async () => {
    const ledger = newLedger(0);
    const app = await start(framework, ledger, { idempotency: 'optional' }, { scopes: ['payments:write'] });
    try {
      const k = key('refused');
      expect((await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: BODY })).status).toBe(403);
      const paidNow = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([paidNow.status, paidNow.json]).toEqual([201, { payment: 'pay-1', owner: 'alice' }]);
      expect(ledger.processed).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('IDEM-16 IDEM-03 the route’s required key holds behind an app-wide optional one', async () => {
    const ledger = newLedger(0);
    const app = await start(framework, ledger, { idempotency: 'optional' }, { scopes: ['payments:write'], idempotency: 'required' });
    try {
      const missing = await sendPayment(app.url, PUBLIC, { who: tpp.payer, body: BODY });
      expect([missing.status, missing.json.error]).toEqual([400, 'invalid_request']);
      const k = key('required');
      const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      const retry = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, retry.status, retry.text === first.text, ledger.processed]).toEqual([201, 201, true, 1]);
    } finally {
      await app.close();
    }
  });

  it('IDEM-16 a route that reads its key from another header requires it there; its refusal frees the app-wide claim', async () => {
    const ledger = newLedger(0);
    const route: RoutePolicy = { scopes: ['payments:write'], idempotency: { mode: 'required', syntax: 'uk-ob' } };
    const app = await start(framework, ledger, { idempotency: 'required' }, route);
    try {
      const k = key('header');
      const refused = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([refused.status, ledger.processed]).toEqual([400, 0]);
      // The same Idempotency-Key again, with the route's own header now: processed, not 409.
      const both = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers: { 'x-idempotency-key': 'uk-1' } });
      expect([both.status, ledger.processed]).toEqual([201, 1]);
    } finally {
      await app.close();
    }
  });

  it('IDEM-16 IDEM-04 both layers with the same key rules: processed once, the retry answered from the store', async () => {
    const ledger = newLedger(0);
    const policy: RoutePolicy = { scopes: ['payments:write'], idempotency: 'required' };
    const app = await start(framework, ledger, policy, policy);
    try {
      const k = key('both');
      const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      const retry = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, retry.status, retry.text === first.text, ledger.processed]).toEqual([201, 201, true, 1]);
    } finally {
      await app.close();
    }
  });
});

/** With keys, a test's requests run on one app: `run(app, ledger)`. */
async function withApp(
  framework: Framework,
  appWide: RoutePolicy,
  route: RoutePolicy,
  run: (app: App, ledger: Ledger) => Promise<void>,
  { delayMs = 0, guardOptions = {} }: { delayMs?: number; guardOptions?: Partial<GuardOptions> } = {},
) {
  const ledger = newLedger(delayMs);
  const app = await start(framework, ledger, appWide, route, guardOptions);
  try {
    await run(app, ledger);
  } finally {
    await app.close();
  }
}

describe.each(FRAMEWORKS)('%s: a route whose idempotency rules differ from the app-wide layer’s governs the key', (framework) => {
  const ukRoute: RoutePolicy = { scopes: ['payments:write'], idempotency: { mode: 'required', syntax: 'uk-ob' } };
  const ukKey = () => `uk-${process.pid}-${Math.random().toString(36).slice(2, 12)}`.slice(0, 40);

  it('IDEM-16 IDEM-04 the route’s x-idempotency-key is processed once, whatever Idempotency-Key (a gateway’s, per attempt) the attempts carry or leave out', async () => {
    await withApp(framework, { idempotency: 'optional' }, ukRoute, async (app, ledger) => {
      const x = ukKey();
      const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: key('gw'), body: BODY, headers: { 'x-idempotency-key': x } });
      const other = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: key('gw'), body: BODY, headers: { 'x-idempotency-key': x } });
      const alone = await sendPayment(app.url, PUBLIC, { who: tpp.payer, body: BODY, headers: { 'x-idempotency-key': x } });
      expect([first.status, other.status, other.text === first.text, alone.status, alone.text === first.text]).toEqual([
        201,
        201,
        true,
        201,
        true,
      ]);
      expect(ledger.processed).toBe(1);
    });
  });

  it('IDEM-16 IDEM-14 the route’s ttlSec holds behind an app-wide layer with a shorter one', async () => {
    const appWide: RoutePolicy = { idempotency: { mode: 'optional', ttlSec: 1 } };
    await withApp(
      framework,
      appWide,
      { scopes: ['payments:write'], idempotency: { mode: 'required', ttlSec: 3600 } },
      async (app, ledger) => {
        const k = key('ttl');
        const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        await new Promise((r) => setTimeout(r, 1500));
        const retry = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        expect([first.status, retry.status, retry.text === first.text, ledger.processed]).toEqual([201, 201, true, 1]);
      },
    );
  });

  it('IDEM-16 IDEM-11 the route’s maxResponseBytes holds behind an app-wide layer with a smaller one', async () => {
    const appWide: RoutePolicy = { idempotency: { mode: 'optional', maxResponseBytes: 16 } };
    const route: RoutePolicy = { scopes: ['payments:write'], idempotency: { mode: 'required', maxResponseBytes: 65536 } };
    await withApp(framework, appWide, route, async (app, ledger) => {
      const k = key('size');
      const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      const retry = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, retry.status, retry.text === first.text, ledger.processed]).toEqual([201, 201, true, 1]);
    });
  });
});

describe.each(FRAMEWORKS)('%s: a route with the same key header as the app-wide layer still holds its own rules', (framework) => {
  it('IDEM-16 IDEM-12 the route’s leaseSec holds behind an app-wide layer with a shorter one: a retry while the payment runs gets 409, never a second processing', async () => {
    // A store that cannot renew claims: what another instance sees of a process that stopped
    // renewing (killed mid-request). Only the lease then keeps the key blocked.
    const memory = new MemoryIdempotencyStore();
    const store: IdempotencyStore = {
      claim: (...args) => memory.claim(...args),
      complete: (...args) => memory.complete(...args),
      release: (...args) => memory.release(...args),
    };
    await withApp(
      framework,
      { idempotency: { mode: 'optional', leaseSec: 1 } },
      { scopes: ['payments:write'], idempotency: { mode: 'required', leaseSec: 60 } },
      async (app, ledger) => {
        const k = key('lease');
        const first = sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        await new Promise((r) => setTimeout(r, 1300));
        const retry = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        expect([retry.status, ledger.started]).toEqual([409, 1]);
        expect([(await first).status, ledger.processed]).toEqual([201, 1]);
      },
      { delayMs: 2000, guardOptions: { idempotency: { store } } },
    );
  });

  it('IDEM-16 IDEM-01 the route’s key syntax holds behind an app-wide layer reading the same header with another: a key too long for it is refused and not processed', async () => {
    const header = 'x-idempotency-key';
    await withApp(
      framework,
      { idempotency: { mode: 'optional', syntax: 'br-of' } },
      { scopes: ['payments:write'], idempotency: { mode: 'required', syntax: 'uk-ob' } },
      async (app, ledger) => {
        const long = await sendPayment(app.url, PUBLIC, { who: tpp.payer, body: BODY, headers: { [header]: 'k'.repeat(41) } });
        expect([long.status, JSON.parse(long.text), ledger.started]).toEqual([
          400,
          { error: 'invalid_request', error_description: 'The idempotency key header is malformed or sent more than once' },
          0,
        ]);
        const k = `k40-${process.pid}-${Math.random().toString(36).slice(2)}`.padEnd(40, 'k');
        const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, body: BODY, headers: { [header]: k } });
        const retry = await sendPayment(app.url, PUBLIC, { who: tpp.payer, body: BODY, headers: { [header]: k } });
        expect([first.status, retry.status, retry.text === first.text, ledger.processed]).toEqual([201, 201, true, 1]);
      },
    );
  });
});

describe.each(FRAMEWORKS)('%s: what the key holds is not told before the route checked the request', (framework) => {
  it('IDEM-16 IDEM-11 a token without the route’s scope gets 403, not 409 “processed, not kept”, for a payment whose response was not kept', async () => {
    await withApp(
      framework,
      { idempotency: { mode: 'optional', maxResponseBytes: 0 } },
      { scopes: ['payments:write'] },
      async (app, ledger) => {
        const k = key('unkept');
        expect([(await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY })).status, ledger.processed]).toEqual([201, 1]);
        const probe = await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: BODY });
        expect([probe.status, probe.headers['www-authenticate']]).toEqual([403, expect.stringContaining('insufficient_scope')]);
        expect((await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY })).status).toBe(409);
      },
    );
  });

  it('IDEM-16 IDEM-06 a token without the route’s scope reusing a key with another body gets 403, not 422', async () => {
    await withApp(framework, { idempotency: 'optional' }, { scopes: ['payments:write'] }, async (app) => {
      const k = key('reused');
      expect((await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY })).status).toBe(201);
      const probe = await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: '{"amount":"99.00"}' });
      expect([probe.status, probe.headers['www-authenticate']]).toEqual([403, expect.stringContaining('insufficient_scope')]);
      expect((await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: '{"amount":"99.00"}' })).status).toBe(422);
    });
  });
});

/**
 * Attack review 11: the idempotency path after commit 253a249 (a key this request already holds
 * leaves the exchange in force; hono reads a key route's body ahead; a refusal by any guard's
 * layer frees the key) and 2dfa56e (hono: an answer already being sent is kept as processed).
 * Each test under "findings" asserts what docs/packages/core.md (Idempotency keys) and
 * docs/packages/hono.md promise, and failed on the code it was written against (8d85304); all
 * pass since their fixes (1, 2: layers.ts re-open branch; 3: NodeClaim.answered from Fastify's and
 * Nest-on-Fastify's onSend; 4: hono's catch; 5: NodeClaim.settled from Koa; 6: an idempotency
 * refusal remembered for every guard; 7: the docs):
 *
 * 1. Processed twice (express, koa, fastify, hono) — layers.ts idempotencyAtLayer, re-open branch.
 *    Layers: Idempotency-Key app-wide (required), x-idempotency-key on the router (optional, other
 *    settings), the payment scope on the route. A retry repeats the route's x-idempotency-key of a
 *    finished payment with a new Idempotency-Key (an HTTP client that makes one per attempt). The
 *    app-wide layer claims the new key; the router layer re-opens with that claim kept
 *    (`kept = [ticket]`); openAtLayer finds the stored answer deeper than this layer (layers 3 >
 *    depth 2), opens a *deferred* exchange and answers `pass`. The fix of 253a249 reads every
 *    `pass` with `kept.length > 0` as "a key this request already holds" and puts the earlier
 *    exchange back (`open(guard, key, exchange)`) over the deferred one: the stored answer is
 *    dropped and the handler pays again (core.md: "a retry that carries either key or both is
 *    answered, never processed twice"). Fix: restore the earlier exchange only when openAtLayer
 *    opened none (`start.kind === 'pass' && kept.length > 0 && !exchangeOf(guard, key)`); when it
 *    opened a deferred exchange keep that one (the kept claims released, or carried in `held`).
 *
 * 2. Processed twice (express, koa, fastify, hono) — layers.ts idempotencyAtLayer, re-open branch.
 *    Layers: Idempotency-Key app-wide, x-idempotency-key on the router, x-idempotency-key on the
 *    route with a shorter ttlSec. The router layer claims the x- key with the app-wide claim
 *    kept in `held`; the route layer reads the same x- key under other settings, so
 *    `kept = []` and `releaseAll(exchange)` frees the router's claim *and every claim it holds*:
 *    the app-wide Idempotency-Key is freed while the handler runs and is never recorded, and a
 *    retry with that key alone pays again (core.md: the earlier claim under another key is "kept
 *    with it"). Fix: when the same key is claimed again, release only `exchange.ticket` and carry
 *    `exchange.held` over to the new exchange (`kept = exchange.held ?? []`).
 *
 * 3. Processed twice (fastify) — reply.js sendStream + node.ts recordNodeResponse. A handler that
 *    answers with a Node stream (the core banking system's answer passed on) after its client hung
 *    up: Fastify sees the response closed, destroys the stream and turns the premature close
 *    (ERR_STREAM_PREMATURE_CLOSE) into its error handler's 500, written with `end` on the closed
 *    response. The recorder takes that 500 for the handler's answer and frees the key of a payment
 *    made: the retry pays again. Fix: on claimed routes the Fastify adapter (an onError hook, or
 *    the reply's 'close') records a premature close of the reply's own payload on a response
 *    already destroyed as "processed, response not kept" before Fastify's 500 reaches `end`.
 *
 *    Found while fixing it: NestJS on Fastify the same (a StreamableFile answered after the client
 *    hung up); its module now tells the claim in an `onSend` hook too.
 *
 * 4. Processed twice (hono) — packages/hono/src/index.ts, the `catch` around `next()`. hono/timeout
 *    in front of the guard (the case 2dfa56e keeps as processed), and a handler that sets a header
 *    once it has paid (`c.header('location', …)`, `setCookie`): on the finalized Context, Hono's
 *    `c.header` reads `bodyUsed` of the 504 the server is sending, and @hono/node-server's Response
 *    throws ("Response body object should not be disturbed or locked"); Hono's default onError
 *    fails the same way, the error reaches the guard's layer, whose catch records a 500: the key
 *    is freed under a payment made (hono.md: "never freed for a second payment"). Fix: in that
 *    catch, when `sentElsewhere(c.res)`, record `(c.res, true)` (processed, not kept) instead of a 500.
 *
 * 5. Key held "in flight" for its lifetime (koa 3, koa 2) — node.ts recordNodeResponse + the Koa
 *    adapter. A client that times out and hangs up before the answer (the brief's own case): the
 *    recorder's 'close' listener returns because no head was sent ("its `end` settles it"), but
 *    Koa never calls `end` for a client gone: Koa 3's ctx.onerror returns without writing when the
 *    handler then throws (`!this.writable`), and Koa 2's respond() returns without `end` even for a
 *    payment made. The ticket is never settled and its renewal keeps the claim for `ttlSec` (24 h):
 *    every retry gets 409 "still being processed", the failed payment can never be made under its
 *    key, and each such key holds a slot of the client's share. Fix: in
 *    packages/koa/src/idempotency.ts, await `next()` for a claimed request and, when the response
 *    is destroyed and not ended once it settles, settle the ticket: a throw as a 5xx (frees the
 *    key), a normal end as "processed, response not kept".
 *
 * 6. A refusal stored as the payment's answer (express, hono) — two guards over one store. The
 *    inner (route) guard refuses the first request for its own key rule (x-idempotency-key
 *    required, missing: 400). rememberRefusal (runtime/layers.ts) is only told of authorization
 *    refusals (protectNodeRequest / protectFetchRequest), so the outer guard's recorder stores the
 *    400 under its key, and the corrected request gets that 400 for 24 h (core.md: "A later layer's
 *    refusal of a first request frees the key"; 253a249: "a refusal by any guard's layer frees the
 *    key"). Fix: mark the request refused wherever an idempotency refusal is answered (in
 *    idempotencyAtLayer / openAtLayer when they return `refused`, or in the adapters).
 *
 * 7. Processed twice (hono) — hono.md's remedy: "To have the handler's answer replayed, put
 *    timeouts behind `protect()`". With `protect({ idempotency }), timeout(200), handler` the 504
 *    comes from Hono's onError at the timeout's level; the guard's layer resumes while the handler
 *    runs on, finds an answer not yet sent and records the 504 as a server error: the key is freed
 *    under a payment still being made and the retry pays again (core.md's remedy, "behind the
 *    guard", fails the same way on Express with connect-timeout). No layer can tell a timeout's
 *    5xx from the handler's own (which must free the key), so the docs were wrong: they now say
 *    that no timeout middleware belongs on a key route, in front of the guard or behind it, and
 *    that the time limit goes inside the handler, which undoes its work before it answers 5xx.
 *    The test checks that remedy.
 *
 * "attacks that held" pass: what the same set-ups do right.
 */

import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { MemoryIdempotencyStore } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiPolicy } from '@fapi-guard/nestjs';
import { Controller, HttpCode, Post, Res, StreamableFile } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { timeout } from 'hono/timeout';
import Koa from 'koa';
import Koa2 from 'koa2';
import { serveHono } from './support/apps';
import { BODY, closed, IN_FLIGHT, key, pause, signal, UNKEPT, useHangUps } from './support/hang-up';
import { type Listening, listening } from './support/http';
import { sendPayment } from './support/idempotency-apps';
import { startNestApp } from './support/nest-app';
import { jsonAnswer, PAYMENT_FRAMEWORKS, startPaymentApp } from './support/payment-apps';

const PUBLIC = 'https://api.bank.example';
const hangUps = useHangUps(PUBLIC);
const { tpp, payAndHangUpWhen, hangUpThenRetry } = hangUps;
const ukKey = () => `uk-${Math.random().toString(36).slice(2)}`;
/** Retries wait out a key in flight up to 100 times here (the layered apps answer later). */
const settledRetry = (url: string, k: string | undefined, headers: Record<string, string> = {}, tries = 100) =>
  hangUps.settledRetry(url, k, headers, tries);

describe('findings', () => {
  describe.each(PAYMENT_FRAMEWORKS)(
    '%s: Idempotency-Key app-wide (required), x-idempotency-key on the router (optional), the payment scope on the route',
    (framework) => {
      it('IDEM-04 IDEM-16 a retry with the first x-idempotency-key and a new Idempotency-Key is answered (the stored payment), not processed twice', async () => {
        const ledger = { processed: 0 };
        const app = await startPaymentApp(
          framework,
          tpp.options,
          {
            '/payments': {
              layers: [{ idempotency: { mode: 'optional', syntax: 'uk-ob' } }, { scopes: ['payments:write'] }],
              handle: () => jsonAnswer(201, { payment: `pay-${++ledger.processed}` }),
            },
          },
          { idempotency: 'required' },
        );
        try {
          const uk = { 'x-idempotency-key': ukKey() };
          const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: key('first'), body: BODY, headers: uk });
          expect([first.status, first.text]).toEqual([201, '{"payment":"pay-1"}']);
          // The retry repeats the route's key; its HTTP client made a new Idempotency-Key for the attempt.
          const retry = await settledRetry(app.url, key('attempt-2'), uk);
          // Current code: 201 pay-2: the router layer's deferred answer (layers 3 > depth 2) is overwritten
          // by the app-wide layer's exchange (layers.ts, `start.kind === 'pass' && kept.length > 0`).
          expect([retry.status, retry.text, ledger.processed]).toEqual([201, first.text, 1]);
        } finally {
          await app.close();
        }
      }, 30_000);
    },
  );

  describe.each(PAYMENT_FRAMEWORKS)(
    '%s: Idempotency-Key app-wide, x-idempotency-key on the router, x-idempotency-key again on the route with a shorter ttlSec',
    (framework) => {
      it('IDEM-04 IDEM-16 a first request with both keys: a retry with the app-wide key alone is answered, not processed twice (the app-wide claim is kept while the route re-claims its key)', async () => {
        const ledger = { processed: 0 };
        const uk = { mode: 'optional', syntax: 'uk-ob' } as const;
        const app = await startPaymentApp(
          framework,
          tpp.options,
          {
            '/payments': {
              layers: [{ idempotency: uk }, { scopes: ['payments:write'], idempotency: { ...uk, ttlSec: 3600 } }],
              handle: () => jsonAnswer(201, { payment: `pay-${++ledger.processed}` }),
            },
          },
          { idempotency: 'required' },
        );
        try {
          const k = key('route-reclaims');
          const first = await sendPayment(app.url, PUBLIC, {
            who: tpp.payer,
            key: k,
            body: BODY,
            headers: { 'x-idempotency-key': ukKey() },
          });
          expect([first.status, first.text]).toEqual([201, '{"payment":"pay-1"}']);
          const retry = await settledRetry(app.url, k);
          // Current code: 201 pay-2. The route layer re-claims x-idempotency-key under its settings
          // (the same key as the router's: `kept = []`), and releaseAll frees the router's claim and
          // every claim it held, the app-wide Idempotency-Key too: that key is never recorded.
          expect([retry.status, retry.text, ledger.processed]).toEqual([201, first.text, 1]);
        } finally {
          await app.close();
        }
      }, 30_000);
    },
  );

  it('IDEM-12 koa: a client that hangs up before the answer, then the payment fails (the handler throws): the key is not held in flight for its lifetime', async () => {
    const fapi = koaGuard(tpp.options);
    const app = new Koa();
    app.silent = true;
    let runs = 0;
    let paid = 0;
    const started = signal();
    const done = signal();
    app.use(fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
    app.use(async (ctx) => {
      runs++;
      if (runs === 1) {
        started.fire();
        try {
          // The client times out and hangs up; then the ledger fails: nothing was paid.
          await closed(ctx.res);
          throw new Error('ledger unavailable');
        } finally {
          done.fire();
        }
      }
      ctx.status = 201;
      ctx.body = { payment: `pay-${++paid}` };
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('koa-gone-throw');
      await payAndHangUpWhen(served.url, k, started.promise);
      await done.promise;
      await pause(100);
      const retry = await settledRetry(served.url, k, {}, 40);
      // Current code: 409 "still being processed", renewed for the key's lifetime (Koa wrote nothing, never called end).
      expect(retry.text).not.toContain(IN_FLIGHT);
      expect([retry.status, retry.text, paid]).toEqual([201, '{"payment":"pay-1"}', 1]);
    } finally {
      await served.close();
    }
  }, 30_000);

  it('IDEM-11 IDEM-12 koa 2: a client that hangs up before the answer of a payment made: the retry is answered (409 not kept or the payment), not 409 in flight for the key’s lifetime', async () => {
    const fapi = koaGuard(tpp.options);
    const app = new Koa2();
    app.silent = true;
    let processed = 0;
    const started = signal();
    const done = signal();
    app.use(fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
    app.use(async (ctx) => {
      if (processed === 0) {
        started.fire();
        await closed(ctx.res);
      }
      processed++;
      ctx.status = 201;
      ctx.body = { payment: `pay-${processed}` };
      done.fire();
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      // Current code: 409 "still being processed" for the key's lifetime (Koa 2's respond() never calls end for a client gone).
      await hangUpThenRetry(served.url, 'koa2-gone', { started: started.promise, done: done.promise }, () => processed);
    } finally {
      await served.close();
    }
  }, 30_000);

  it('IDEM-04 IDEM-12 fastify: a client that hangs up before a streamed answer of a payment made: the retry is answered (the payment, or 409 not kept), not processed a second time', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, tpp.options);
    let processed = 0;
    const started = signal();
    const done = signal();
    app.post(
      '/payments',
      { config: { fapi: routePolicy({ scopes: ['payments:write'], idempotency: 'required' }) } },
      async (_request, reply) => {
        if (processed === 0) {
          started.fire();
          await closed(reply.raw);
        }
        processed++;
        done.fire();
        // The ledger's answer, passed on as it streams (a Node stream from the core banking system).
        return reply
          .code(201)
          .type('application/json')
          .send(Readable.from(['{"payment":', `"pay-${processed}"`, '}']));
      },
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as import('node:net').AddressInfo).port}`;
    try {
      // Current code: 201 pay-2. Fastify answered the premature close of the stream with its 500, which freed the key.
      await hangUpThenRetry(url, 'fastify-gone-stream', { started: started.promise, done: done.promise }, () => processed);
    } finally {
      await app.close();
    }
  }, 30_000);

  it('IDEM-04 IDEM-12 nestjs-fastify: a client that hangs up before a streamed answer of a payment made: the retry is answered (the payment, or 409 not kept), not processed a second time', async () => {
    let processed = 0;
    const started = signal();
    const done = signal();
    @Controller('payments')
    class Payments {
      @Post()
      @HttpCode(201)
      @FapiPolicy({ scopes: ['payments:write'], idempotency: 'required' })
      async pay(@Res({ passthrough: true }) reply: { raw: ServerResponse }) {
        if (processed === 0) {
          started.fire();
          await closed(reply.raw);
        }
        processed++;
        done.fire();
        return new StreamableFile(Readable.from([Buffer.from(`{"payment":"pay-${processed}"}`)]), { type: 'application/json' });
      }
    }
    const app = await startNestApp('nestjs-fastify', tpp.options, [Payments]);
    try {
      await hangUpThenRetry(app.url, 'nest-fastify-gone-stream', { started: started.promise, done: done.promise }, () => processed);
    } finally {
      await app.close();
    }
  }, 30_000);

  it.each(['express', 'hono'] as const)(
    'IDEM-04 IDEM-08 %s: two guards over one store: the inner guard refuses the first request for its own key rule (x-idempotency-key missing): the key is freed, the corrected request is processed',
    async (framework) => {
      const store = new MemoryIdempotencyStore();
      const options = { ...tpp.options, idempotency: { store } };
      let processed = 0;
      let served: Listening;
      const inner = { scopes: ['payments:write'], idempotency: { mode: 'required', syntax: 'uk-ob' } } as const;
      if (framework === 'express') {
        const outer = expressGuard(options);
        const route = expressGuard(options);
        const app = express();
        app.use(outer.protect({ idempotency: 'required' }));
        app.post('/payments', route.protect(inner), (_req, res) => {
          res.status(201).json({ payment: `pay-${++processed}` });
        });
        served = await listening(app.listen(0, '127.0.0.1'));
      } else {
        const outer = honoGuard(options);
        const route = honoGuard(options);
        const app = new Hono();
        app.use('*', outer.protect({ idempotency: 'required' }));
        app.post('/payments', route.protect(inner), (c) => c.json({ payment: `pay-${++processed}` }, 201));
        served = await serveHono(app);
      }
      try {
        const k = key('two-guards-key-rule');
        const refused = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        expect(refused.status).toBe(400);
        const retry = await settledRetry(served.url, k, { 'x-idempotency-key': ukKey() });
        // Current code: the stored 400 (the inner guard's key refusal, recorded by the outer guard as the answer).
        expect([retry.status, retry.text, processed]).toEqual([201, '{"payment":"pay-1"}', 1]);
      } finally {
        await served.close();
      }
    },
    30_000,
  );

  it('IDEM-04 IDEM-12 hono: hono/timeout in front of the guard, the handler sets a header once paid (201 with Location): the payment is kept as processed, never freed for a second payment', async () => {
    const fapi = honoGuard(tpp.options);
    const app = new Hono();
    let processed = 0;
    const gate = signal();
    const done = signal();
    app.use('/payments', timeout(200));
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (c) => {
      try {
        if (processed === 0) await gate.promise;
        processed++;
        c.header('location', `/payments/pay-${processed}`);
        return c.json({ payment: `pay-${processed}` }, 201);
      } finally {
        done.fire();
      }
    });
    const served = await serveHono(app);
    try {
      const k = key('hono-timeout-header');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(first.status).toBe(504);
      gate.fire();
      await done.promise;
      const retry = await settledRetry(served.url, k);
      // Current code: 201 pay-2. c.header() on the finalized Context reads the 504 the server is
      // sending (bodyUsed on @hono/node-server's Response, whose body is taken: TypeError); Hono's
      // onError fails the same way, the error reaches the guard's layer, which records a 500: the key is freed.
      expect(retry.status === 409 ? retry.text.includes(UNKEPT) : retry.text === '{"payment":"pay-1"}').toBe(true);
      expect(processed).toBe(1);
    } finally {
      gate.fire();
      await served.close();
    }
  }, 30_000);

  it('IDEM-04 IDEM-10 hono: the time limit docs/packages/hono.md gives (inside the handler, its work undone before the 504) frees the key: the retry is processed once', async () => {
    const fapi = honoGuard(tpp.options);
    const app = new Hono();
    const ledger = { attempts: 0, paid: [] as string[] };
    const gate = signal();
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (c) => {
      const attempt = ++ledger.attempts;
      // The core banking call: held on the first attempt past the handler's own limit.
      const booked = attempt === 1 ? gate.promise.then(() => 'late') : Promise.resolve('booked');
      const limit = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 200));
      if ((await Promise.race([booked, limit])) === 'timeout') {
        // Undone before the 5xx: the late booking is cancelled, nothing was paid.
        return c.json({ error: 'ledger timeout' }, 504);
      }
      ledger.paid.push(`pay-${attempt}`);
      return c.json({ payment: `pay-${attempt}` }, 201);
    });
    const served = await serveHono(app);
    try {
      const k = key('hono-handler-limit');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(first.status).toBe(504);
      gate.fire();
      const retry = await settledRetry(served.url, k);
      expect([retry.status, retry.text, ledger.paid]).toEqual([201, '{"payment":"pay-2"}', ['pay-2']]);
      const again = await settledRetry(served.url, k);
      expect([again.status, again.text, ledger.attempts]).toEqual([201, '{"payment":"pay-2"}', 2]);
    } finally {
      gate.fire();
      await served.close();
    }
  }, 30_000);
});

describe('attacks that held', () => {
  describe.each(PAYMENT_FRAMEWORKS)('%s: the three layers of finding 1', (framework) => {
    it('IDEM-04 IDEM-16 a retry with both first keys, or the route key alone with the first app-wide key, is answered; a token without the scope gets 403, never the payment', async () => {
      const ledger = { processed: 0 };
      const app = await startPaymentApp(
        framework,
        tpp.options,
        {
          '/payments': {
            layers: [{ idempotency: { mode: 'optional', syntax: 'uk-ob' } }, { scopes: ['payments:write'] }],
            handle: () => jsonAnswer(201, { payment: `pay-${++ledger.processed}` }),
          },
        },
        { idempotency: 'required' },
      );
      try {
        const k = key('held');
        const both = { 'x-idempotency-key': ukKey() };
        const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers: both });
        expect([first.status, first.text]).toEqual([201, '{"payment":"pay-1"}']);
        const again = await settledRetry(app.url, k, both);
        const appKeyAlone = await settledRetry(app.url, k);
        const reader = await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: BODY, headers: both });
        expect([again.status, again.text, appKeyAlone.status, appKeyAlone.text]).toEqual([201, first.text, 201, first.text]);
        expect([reader.status, reader.text.includes('pay-')]).toEqual([403, false]);
        expect(ledger.processed).toBe(1);
      } finally {
        await app.close();
      }
    }, 30_000);
  });

  it('IDEM-11 IDEM-12 koa 3: a client that hangs up before the answer of a payment made: 409 not kept (or the payment), processed once', async () => {
    const fapi = koaGuard(tpp.options);
    const app = new Koa();
    app.silent = true;
    let processed = 0;
    const started = signal();
    const done = signal();
    app.use(fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
    app.use(async (ctx) => {
      if (processed === 0) {
        started.fire();
        await closed(ctx.res);
      }
      processed++;
      ctx.status = 201;
      ctx.body = { payment: `pay-${processed}` };
      done.fire();
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('koa3-gone');
      await payAndHangUpWhen(served.url, k, started.promise);
      await done.promise;
      await pause(100);
      const retry = await settledRetry(served.url, k, {}, 40);
      expect(retry.status === 409 ? retry.text.includes(UNKEPT) : retry.text === '{"payment":"pay-1"}').toBe(true);
      expect(processed).toBe(1);
    } finally {
      await served.close();
    }
  }, 30_000);

  it.each(['fastify', 'hono'] as const)(
    'IDEM-11 IDEM-12 %s: a client that hangs up before a JSON answer of a payment made: the retry gets the payment (or 409 not kept), processed once',
    async (framework) => {
      let processed = 0;
      const started = signal();
      const done = signal();
      let url: string;
      let close: () => Promise<unknown>;
      if (framework === 'fastify') {
        const app = Fastify();
        await app.register(fastifyPlugin, tpp.options);
        app.post(
          '/payments',
          { config: { fapi: routePolicy({ scopes: ['payments:write'], idempotency: 'required' }) } },
          async (_request, reply) => {
            if (processed === 0) {
              started.fire();
              await closed(reply.raw);
            }
            processed++;
            done.fire();
            return reply.code(201).send({ payment: `pay-${processed}` });
          },
        );
        await app.listen({ port: 0, host: '127.0.0.1' });
        url = `http://127.0.0.1:${(app.server.address() as import('node:net').AddressInfo).port}`;
        close = () => app.close();
      } else {
        const fapi = honoGuard(tpp.options);
        const app = new Hono();
        app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (c) => {
          if (processed === 0) {
            started.fire();
            // @hono/node-server hands the Node response over as c.env.outgoing.
            const outgoing = (c.env as { outgoing?: ServerResponse }).outgoing;
            if (outgoing) await closed(outgoing);
          }
          processed++;
          done.fire();
          return c.json({ payment: `pay-${processed}` }, 201);
        });
        ({ url, close } = await serveHono(app));
      }
      try {
        const k = key(`${framework}-gone-json`);
        await payAndHangUpWhen(url, k, started.promise);
        await done.promise;
        await pause(100);
        const retry = await settledRetry(url, k, {}, 40);
        expect(retry.status === 409 ? retry.text.includes(UNKEPT) : retry.text === '{"payment":"pay-1"}').toBe(true);
        expect(processed).toBe(1);
      } finally {
        await close();
      }
    },
    30_000,
  );
});

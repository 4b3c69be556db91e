/**
 * Attack review 10: the idempotency fixes of attack review 9 (commit b5bed8f). Each test asserts
 * the right behaviour; those under "findings" failed on the code they were written against and
 * pass since their fixes (1: a key this request holds already leaves the exchange in force;
 * 2: the recorder reads ahead up to maxResponseBytes, whether or not the response is sent;
 * 3: a refusal by any guard's layer frees the key; a response already being sent when the guard's
 * layer resumes, hono/timeout's 504, is recorded as processed, its answer not kept):
 *
 * 1. layers.ts idempotencyAtLayer: three layers, Idempotency-Key (app-wide), x-idempotency-key
 *    (router), Idempotency-Key again (route). The third layer re-opens under its settings; its key
 *    is one this request already holds (heldClaims), so openExchange answers `pass`, and the
 *    `else` branch then releases every kept claim: the handler runs with no claim in force, and
 *    every retry is processed again (all four adapters).
 * 2. hono (fetch.ts recorder, hono/index.ts): the recorded response is not the one sent. After an
 *    outer `hono/timeout` answered 504, and when an outer middleware replaces a streamed answer,
 *    the recorder's body is read by nobody and never cancelled: the key stays "in flight"
 *    (renewed) for the key's lifetime; the payment was processed.
 * 3. two guards over one store: the inner guard's refusal (scope) is recorded by the outer guard
 *    as the payment's answer and replayed to the corrected request.
 */

import { createServer } from 'node:http';
import { createServer as createH2cServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { MemoryIdempotencyStore } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { Hono } from 'hono';
import { timeout } from 'hono/timeout';
import Koa from 'koa';
import { serveHono } from './support/apps';
import { type Listening, listening } from './support/http';
import { sendH2Payment, sendPayment, useTppUsers } from './support/idempotency-apps';
import { jsonAnswer, PAYMENT_FRAMEWORKS, startPaymentApp } from './support/payment-apps';

const PUBLIC = 'https://api.bank.example';
const tpp = useTppUsers(PUBLIC);
const key = (name: string) => `"${name}-${process.pid}-${Math.random().toString(36).slice(2)}"`;
const BODY = '{"amount":"10.00"}';
const IN_FLIGHT = 'still being processed';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A retry sent again while the first attempt is still being recorded (409 in flight), a bounded number of times. */
async function settledRetry(url: string, k: string, headers: Record<string, string> = {}) {
  let retry = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers });
  for (let i = 0; i < 100 && retry.status === 409 && retry.text.includes(IN_FLIGHT); i++) {
    await pause(50);
    retry = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers });
  }
  return retry;
}

describe('findings', () => {
  describe.each(PAYMENT_FRAMEWORKS)(
    '%s: three layers: Idempotency-Key app-wide, x-idempotency-key on the router, Idempotency-Key again on the route',
    (framework) => {
      it('IDEM-04 IDEM-16 a first request with both keys, its retry with both: processed once (a claim stays in force while the handler runs)', async () => {
        const ledger = { processed: 0 };
        const app = await startPaymentApp(
          framework,
          tpp.options,
          {
            '/payments': {
              layers: [{ idempotency: { mode: 'optional', syntax: 'uk-ob' } }, { scopes: ['payments:write'], idempotency: 'required' }],
              handle: () => jsonAnswer(201, { payment: `pay-${++ledger.processed}` }),
            },
          },
          { idempotency: 'required' },
        );
        try {
          const k = key('three-layers');
          const extra = { 'x-idempotency-key': `uk-${Math.random().toString(36).slice(2)}` };
          const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers: extra });
          expect(first.status).toBe(201);
          const retry = await settledRetry(app.url, k, extra);
          const alone = await settledRetry(app.url, k);
          // Current code: 201 pay-2, pay-3. The route layer (Idempotency-Key, the router's settings
          // differ) re-opens the exchange: openExchange finds the key in heldClaims → `pass`, and
          // idempotencyAtLayer releases both kept claims (`else await Promise.all(kept…release)`).
          expect([retry.status, retry.text, alone.status, alone.text, ledger.processed]).toEqual([201, first.text, 201, first.text, 1]);
        } finally {
          await app.close();
        }
      }, 30_000);
    },
  );

  it.each(['express', 'hono'] as const)(
    'IDEM-04 IDEM-08 %s: two guards over one store: the inner guard refuses the first request (scope): the key is freed, the corrected request is processed (not the refusal replayed)',
    async (framework) => {
      const store = new MemoryIdempotencyStore();
      const options = { ...tpp.options, idempotency: { store } };
      let processed = 0;
      let served: Listening;
      if (framework === 'express') {
        const outer = expressGuard(options);
        const inner = expressGuard(options);
        const app = express();
        app.use(outer.protect({ idempotency: 'required' }));
        app.post('/payments', inner.protect({ scopes: ['payments:write'], idempotency: 'required' }), (_req, res) => {
          res.status(201).json({ payment: `pay-${++processed}` });
        });
        served = await listening(createServer(app).listen(0, '127.0.0.1'));
      } else {
        const outer = honoGuard(options);
        const inner = honoGuard(options);
        const app = new Hono();
        app.use('*', outer.protect({ idempotency: 'required' }));
        app.post('/payments', inner.protect({ scopes: ['payments:write'], idempotency: 'required' }), (c) =>
          c.json({ payment: `pay-${++processed}` }, 201),
        );
        served = await serveHono(app);
      }
      try {
        const k = key('two-guards-refused');
        const refused = await sendPayment(served.url, PUBLIC, { who: tpp.reader, key: k, body: BODY });
        expect(refused.status).toBe(403);
        const retry = await settledRetry(served.url, k);
        // The inner guard's refusal is recorded by the outer guard as the payment's answer
        // (refusedByLayer knows the outer guard's layers only): the payer gets the stored 403.
        expect([retry.status, retry.text, processed]).toEqual([201, '{"payment":"pay-1"}', 1]);
      } finally {
        await served.close();
      }
    },
    30_000,
  );

  describe('hono: the response the guard recorded is never sent (an outer middleware answered instead)', () => {
    const UNKEPT = 'its response was not kept';
    it.each(['timeout', 'replaced-stream'] as const)(
      'IDEM-04 IDEM-12 %s: the payment processed after the client got another answer: a retry is answered (stored, or 409 not kept), not 409 in flight for the key’s lifetime',
      async (how) => {
        const fapi = honoGuard(tpp.options);
        const app = new Hono();
        let processed = 0;
        let open!: () => void;
        const gate = new Promise<void>((resolve) => {
          open = resolve;
        });
        let answered!: () => void;
        const handled = new Promise<void>((resolve) => {
          answered = resolve;
        });
        if (how === 'timeout') {
          // hono/timeout: the client gets 504 while the payment runs on (a slow ledger).
          app.use('/payments', timeout(200));
        } else {
          // An outer error mapper: a handler's 4xx leaves in the API's own envelope (the handler's body dropped).
          app.use('/payments', async (c, next) => {
            await next();
            if (c.res.status === 422) c.res = c.json({ errors: [{ code: 'REJECTED' }] }, 422);
          });
        }
        app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (c) => {
          if (how === 'timeout') await gate;
          processed++;
          answered();
          if (how === 'timeout') return c.json({ payment: `pay-${processed}` }, 201);
          // A refusal passed on from the ledger, as it streams (an upstream fetch's body): 40 chunks, all there at once.
          const chunks = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`${i === 0 ? '[' : ','}"line ${i}"`));
          const body = new ReadableStream<Uint8Array>({
            start(controller) {
              for (const chunk of chunks) controller.enqueue(chunk);
              controller.enqueue(new TextEncoder().encode(']'));
              controller.close();
            },
          });
          return c.body(body, 422, { 'content-type': 'application/json' });
        });
        const served = await serveHono(app);
        try {
          const k = key(`unsent-${how}`);
          const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
          expect(first.status).toBe(how === 'timeout' ? 504 : 422);
          open();
          await handled;
          const retry = await settledRetry(served.url, k);
          // Before the fix: 409 "still being processed" for every retry: the recorder's body
          // (fetch.ts recorder) was read by nobody and never cancelled, and with hono/timeout the
          // guard's layer threw on the 504 being sent: the ticket was never settled and its renewal
          // held the key for its lifetime. Now: the body is read ahead whether or not it is sent;
          // a response already being sent is recorded as processed, its answer not kept.
          expect(retry.text).not.toContain(IN_FLIGHT);
          expect(retry.status === 409 ? retry.text.includes(UNKEPT) : retry.status === (how === 'timeout' ? 201 : 422)).toBe(true);
          expect(processed).toBe(1);
        } finally {
          open();
          await served.close();
        }
      },
      30_000,
    );
  });
});

describe('attacks that held', () => {
  describe.each(PAYMENT_FRAMEWORKS)('%s: Idempotency-Key app-wide, x-idempotency-key then the payment scope on the route', (framework) => {
    it('IDEM-04 IDEM-08 IDEM-16 a refusal after both keys were claimed frees both; a token without the scope never gets the stored payment under either key', async () => {
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
        const k = key('refused-both');
        const route = `uk-${Math.random().toString(36).slice(2)}`;
        const both = { 'x-idempotency-key': route };
        const refused = await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: BODY, headers: both });
        expect(refused.status).toBe(403);
        const first = await settledRetry(app.url, k, both);
        expect([first.status, first.text]).toEqual([201, '{"payment":"pay-1"}']);
        const byRoute = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers: { 'x-idempotency-key': route } });
        const byApp = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        const readerRoute = await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: BODY, headers: both });
        const readerApp = await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: BODY });
        expect([byRoute.status, byRoute.text, byApp.status, byApp.text]).toEqual([201, first.text, 201, first.text]);
        expect([readerRoute.status, readerApp.status, readerRoute.text.includes('pay-'), readerApp.text.includes('pay-')]).toEqual([
          403,
          403,
          false,
          false,
        ]);
        expect(ledger.processed).toBe(1);
      } finally {
        await app.close();
      }
    }, 30_000);
  });

  it.each(['koa', 'fastify'] as const)(
    'IDEM-04 IDEM-12 %s over h2c: a streamed first answer (several writes, then end) is kept and replayed whole',
    async (framework) => {
      let processed = 0;
      let port: number;
      let close: () => Promise<void>;
      const lines = () => Readable.from(['{"payment":', `"pay-${++processed}"`, ',"lines":[', '1,2,3', ']}']);
      if (framework === 'koa') {
        const fapi = koaGuard(tpp.options);
        const app = new Koa();
        app.silent = true;
        app.use(fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
        app.use((ctx) => {
          ctx.status = 201;
          ctx.type = 'application/json';
          ctx.body = lines();
        });
        const server = createH2cServer(app.callback());
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        port = (server.address() as AddressInfo).port;
        close = () => new Promise<void>((resolve) => server.close(() => resolve()));
      } else {
        const app = Fastify({ http2: true }) as unknown as FastifyInstance;
        await app.register(fastifyPlugin, tpp.options);
        app.post(
          '/payments',
          { config: { fapi: routePolicy({ scopes: ['payments:write'], idempotency: 'required' }) } },
          async (_request, reply) => reply.code(201).type('application/json').send(lines()),
        );
        await app.listen({ port: 0, host: '127.0.0.1' });
        port = (app.server.address() as AddressInfo).port;
        close = () => app.close();
      }
      try {
        const k = key(`h2-stream-${framework}`);
        const first = await sendH2Payment(port, PUBLIC, tpp.payer, k, BODY);
        expect([first.status, first.text]).toEqual([201, '{"payment":"pay-1","lines":[1,2,3]}']);
        let retry = await sendH2Payment(port, PUBLIC, tpp.payer, k, BODY);
        for (let i = 0; i < 40 && retry.status === 409 && retry.text.includes(IN_FLIGHT); i++) {
          await pause(50);
          retry = await sendH2Payment(port, PUBLIC, tpp.payer, k, BODY);
        }
        expect([retry.status, retry.text, processed]).toEqual([201, first.text, 1]);
      } finally {
        await close();
      }
    },
    30_000,
  );
});

/**
 * Attack review 12: the idempotency path after commit b4106d1 (layers.ts re-open branch keeps the
 * other keys' claims; an idempotency refusal is remembered for every guard; NodeClaim.answered
 * from Fastify's and Nest-on-Fastify's onSend, NodeClaim.settled from Koa; hono's catch).
 * Each test under "findings" asserts what docs/packages/core.md (Idempotency keys) promises and
 * failed on the code it was written against (6925191); all pass since their fixes (1, 2: the
 * recorder settles a response to a client gone, connection or HTTP/2 stream, once its answer is
 * written, piped, on its way or the chain ended; 3: every claim of a request is told; 4: Fastify's
 * onSend hook instance-wide); "attacks that held" pass.
 *
 * 1. Key "in flight" for its lifetime (express, nestjs on Express, fastify, koa 2 and 3) —
 *    packages/core/src/idempotency/node.ts recordNodeResponse, the 'close' listener ("Before the
 *    head, the handler may still be running (its client went away): its `end` settles it").
 *    A client that times out and hangs up before the head of an answer of a payment made; the
 *    framework then never calls `end`:
 *    - Express: the handler passes the core banking system's answer on with `stream.pipe(res)`:
 *      the first write to the destroyed response returns false, pipe waits for a 'drain' that
 *      never comes;
 *    - NestJS on Express: a `StreamableFile` (Nest's adapter destroys the stream once the
 *      response has closed; the pipe it then sets up never writes nor ends);
 *    - Fastify: `reply.send(await fetch(…))` (a fetch `Response`) or any web ReadableStream:
 *      sendWebStream cancels the reader once the response closed and never ends it; over HTTP/2
 *      also a Node stream (sendStream sees `request.raw.aborted` and destroys the response
 *      instead of answering 500);
 *    - Koa: a middleware in front of the guard that still works after `await next()` (an audit
 *      write) when the client leaves: the guard's NodeClaim.settled ran while the client was
 *      there (no-op); then Koa 2's respond() finds the response not writable and returns without
 *      `end`, and so does Koa 3's ctx.onerror when that audit write fails.
 *    The claim is renewed every half lease up to ttlSec: every retry gets 409 "still being
 *    processed" for 24 h instead of 409 "not kept" (core.md: a response never ended is settled
 *    when the connection closes; Koa "settles the claim once the handler chain has").
 *    Fix: settle as "processed, response not kept" a response whose client is gone once the
 *    handler's answer is known to be on its way: a `pipe` event or a `write` on the destroyed
 *    response (Express, Nest), `NodeClaim.answered()` on a response already destroyed, or the
 *    'close' that follows it (Fastify); in Koa, when `settled()` finds the client still there,
 *    keep a 'close' listener that settles the claim the same way if the response closes unended.
 *
 * 2. Key "in flight" for its lifetime (koa over HTTP/2) — node.ts NodeClaim.settled and
 *    recordedEnd read `res.destroyed`, which Node's Http2ServerResponse does not have (always
 *    `undefined`): `settled()` returns at once, and recordedEnd's `gone` is never true (so
 *    `answered && gone` never applies over HTTP/2 either). Koa over h2c, a streamed answer (`ctx.body = stream`) after the client
 *    cancelled its stream (RST_STREAM): Koa pipes into the closed stream, the first write fails
 *    and pipe waits for 'drain' forever; nothing ends the response. Fix: read "gone" as
 *    `res.destroyed ?? res.stream?.destroyed` (Http2ServerResponse.stream), in `settled()` and in
 *    recordedEnd's `gone`.
 *
 * 3. Processed twice (fastify, nestjs-fastify) — packages/fastify/src/idempotency.ts and
 *    packages/nestjs/src/idempotency.ts: `claims` is a WeakMap of ONE NodeClaim per request.
 *    Two layers with two headers (Idempotency-Key app-wide or in the module's `global` policy,
 *    x-idempotency-key on the route) hold two claims, each with its own recorder; the route
 *    layer's claim overwrites the first one in `claims`, so only it hears `answered()`. A client
 *    gone before a streamed answer: Fastify's 500 for the stream cut off reaches both recorders;
 *    the second keeps its key as processed, the first takes the 500 for a server error and frees
 *    Idempotency-Key: a retry with that key alone (optional x-idempotency-key left out) pays
 *    again (core.md: "a retry that carries either key or both is answered, never processed
 *    twice"). Fix: keep every claim of the request (an array per request) and tell each.
 *
 * 4. Processed twice (fastify) — packages/fastify/src/index.ts onRoute: the `onSend` hook that
 *    calls `answered()` is added only to `config.fapi` routes and routes whose own `preHandler`
 *    option is `protect({ idempotency })`. With `messageSigning` configured, fastify.md allows
 *    `app.addHook('preHandler', app.fapi.protect({ idempotency }))` (the body bytes are kept by the
 *    signing preParsing hook; the onReady check applies only without it): those routes claim the
 *    key but never tell `answered()`, and Fastify's 500 for a stream cut off frees the key of a
 *    payment made (the case commit b4106d1 fixed on the other placements). Fix: install the onSend
 *    hook instance-wide (as Nest's `tellAnswers` does; it is a no-op for requests without a claim),
 *    or on every route once a `protect({ idempotency })` exists.
 *
 * Looked at and held (some below): the layers.ts re-open branch with three layers and two or
 * three headers (Idempotency-Key, x-idempotency-key, a custom header; the same key re-claimed
 * under another ttlSec) on express, koa, fastify and hono, sequential and concurrent retries that
 * carry each key the same, new or left out, and a token without the scope: never processed
 * twice, never the payment to the reader; Fastify's answered() never set by a 503 of the handler
 * or an app-wide onSend hook's 503 (key freed); Koa's settled() never firing for a client still
 * there; Koa over h2c (Koa ends the response of a cancelled stream: a throw frees the key, a
 * JSON answer is kept). Not a finding: Fastify's own `handlerTimeout` route option answers 503
 * while the handler runs on and so frees the key like any timeout (core.md: no timeout on a key
 * route; the handler sees `request.signal` aborted and can undo its work).
 */

import type { ServerResponse } from 'node:http';
import { createServer as createH2cServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiPolicy } from '@fapi-guard/nestjs';
import { MessageSigningClient } from '@fapi-guard/testing';
import { Controller, HttpCode, Post, Res, StreamableFile } from '@nestjs/common';
import express from 'express';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import Koa2 from 'koa2';
import { serveHono } from './support/apps';
import { BODY, closed, IN_FLIGHT, key, pause, signal, UNKEPT, useHangUps } from './support/hang-up';
import { listening } from './support/http';
import { sendPayment } from './support/idempotency-apps';
import { startNestApp } from './support/nest-app';

const PUBLIC = 'https://api.bank.example';
const { tpp, settledRetry, payAndHangUpWhen, expectAnsweredOnce, hangUpThenRetry, h2PayAndCancelWhen, h2SettledRetry } = useHangUps(PUBLIC);

describe('findings', () => {
  describe('1. a response to a client gone before its head that nobody ends: the key in flight for its lifetime', () => {
    it('IDEM-11 IDEM-12 express: a client that hangs up before a piped answer of a payment made: the retry is answered (409 not kept or the payment), not 409 in flight for the key’s lifetime', async () => {
      const fapi = expressGuard(tpp.options);
      const app = express();
      let processed = 0;
      const started = signal();
      const done = signal();
      app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (_req, res) => {
        if (processed === 0) {
          started.fire();
          await closed(res);
        }
        processed++;
        // The core banking system's answer, passed on as it streams.
        res.status(201).type('application/json');
        Readable.from(['{"payment":', `"pay-${processed}"`, '}']).pipe(res);
        done.fire();
      });
      const served = await listening(app.listen(0, '127.0.0.1'));
      try {
        await hangUpThenRetry(served.url, 'express-gone-pipe', { started: started.promise, done: done.promise }, () => processed);
      } finally {
        await served.close();
      }
    }, 30_000);

    it('IDEM-11 IDEM-12 nestjs (Express platform): a client that hangs up before a StreamableFile answer of a payment made: the retry is answered, not 409 in flight for the key’s lifetime', async () => {
      let processed = 0;
      const started = signal();
      const done = signal();
      @Controller('payments')
      class Payments {
        @Post()
        @HttpCode(201)
        @FapiPolicy({ scopes: ['payments:write'], idempotency: 'required' })
        async pay(@Res({ passthrough: true }) res: ServerResponse) {
          if (processed === 0) {
            started.fire();
            await closed(res);
          }
          processed++;
          done.fire();
          return new StreamableFile(Readable.from([Buffer.from(`{"payment":"pay-${processed}"}`)]), { type: 'application/json' });
        }
      }
      const app = await startNestApp('nestjs', tpp.options, [Payments], undefined, { rawBody: true });
      try {
        await hangUpThenRetry(app.url, 'nest-express-gone-stream', { started: started.promise, done: done.promise }, () => processed);
      } finally {
        await app.close();
      }
    }, 30_000);

    it('IDEM-11 IDEM-12 fastify: a client that hangs up before the handler passes on the core banking system’s fetch Response (a payment made): the retry is answered, not 409 in flight for the key’s lifetime', async () => {
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
          // What `await fetch(ledgerUrl, …)` resolves to, handed on as Fastify 5 accepts it.
          return reply.send(
            new Response(`{"payment":"pay-${processed}"}`, { status: 201, headers: { 'content-type': 'application/json' } }),
          );
        },
      );
      await app.listen({ port: 0, host: '127.0.0.1' });
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      try {
        // Current code: 409 "still being processed" for the key's lifetime. Fastify's sendWebStream
        // cancels the body's reader once the response closed and never calls `end`; the recorder's
        // 'close' listener had returned (no head sent), and answered() settles nothing.
        await hangUpThenRetry(url, 'fastify-gone-fetch-response', { started: started.promise, done: done.promise }, () => processed);
      } finally {
        await app.close();
      }
    }, 30_000);

    it('IDEM-11 IDEM-12 fastify over h2c: a client that cancels its stream before a streamed answer of a payment made: the retry is answered, not 409 in flight for the key’s lifetime', async () => {
      const app = Fastify({ http2: true }) as unknown as FastifyInstance;
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
          return reply
            .code(201)
            .type('application/json')
            .send(Readable.from(['{"payment":', `"pay-${processed}"`, '}']));
        },
      );
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      try {
        const k = key('fastify-h2-cancel-stream');
        await h2PayAndCancelWhen(port, tpp.payer, k, started.promise);
        await done.promise;
        await pause(100);
        const retry = await h2SettledRetry(port, k);
        // Current code: 409 "still being processed" for the key's lifetime. Over HTTP/2 Fastify sees
        // request.raw.aborted and destroys the response without its 500: nothing ever calls `end`.
        expectAnsweredOnce(retry, processed);
      } finally {
        await app.close();
      }
    }, 30_000);

    it('IDEM-11 IDEM-12 koa 2: an audit middleware in front of the guard still writing when the client hangs up, after a payment made: the retry is answered, not 409 in flight for the key’s lifetime', async () => {
      const fapi = koaGuard(tpp.options);
      const app = new Koa2();
      app.silent = true;
      let processed = 0;
      const audited = signal();
      // The audit trail is written once the handler answered (a slow database): the client times out meanwhile.
      app.use(async (ctx, next) => {
        await next();
        if (processed === 1 && ctx.status === 201) await closed(ctx.res);
        audited.fire();
      });
      app.use(fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
      const started = signal();
      app.use(async (ctx) => {
        processed++;
        ctx.status = 201;
        ctx.body = { payment: `pay-${processed}` };
        started.fire();
      });
      const served = await listening(app.listen(0, '127.0.0.1'));
      try {
        // Current code: 409 "still being processed" for the key's lifetime. The guard's layer settled
        // nothing (its chain ended with the client still there); Koa 2's respond() then finds the
        // response not writable and returns without `end`; no 'close' settles a response without a head.
        await hangUpThenRetry(served.url, 'koa2-audit-gone', { started: started.promise, done: audited.promise }, () => processed);
      } finally {
        await served.close();
      }
    }, 30_000);

    it('IDEM-11 IDEM-12 koa 3: an audit middleware in front of the guard that fails once the client has hung up, after a payment made: the retry is answered, not 409 in flight for the key’s lifetime', async () => {
      const fapi = koaGuard(tpp.options);
      const app = new Koa();
      app.silent = true;
      let processed = 0;
      const audited = signal();
      // The audit database times out while the client, too, has given up: the write fails.
      app.use(async (ctx, next) => {
        await next();
        try {
          if (processed === 1 && ctx.status === 201) {
            await closed(ctx.res);
            throw new Error('audit log unavailable');
          }
        } finally {
          audited.fire();
        }
      });
      app.use(fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
      const started = signal();
      app.use(async (ctx) => {
        processed++;
        ctx.status = 201;
        ctx.body = { payment: `pay-${processed}` };
        started.fire();
      });
      const served = await listening(app.listen(0, '127.0.0.1'));
      try {
        // Current code: 409 "still being processed" for the key's lifetime. The guard's chain had
        // completed with the client still there (settled: no-op); Koa 3's ctx.onerror finds the
        // response not writable and returns without `end`.
        await hangUpThenRetry(served.url, 'koa3-audit-fails-gone', { started: started.promise, done: audited.promise }, () => processed);
      } finally {
        await served.close();
      }
    }, 30_000);
  });

  describe('2. HTTP/2: NodeClaim.settled and the recorder read res.destroyed, which Http2ServerResponse does not have', () => {
    it('IDEM-11 IDEM-12 koa over h2c: a client that cancels its stream before a streamed answer of a payment made: the retry is answered, not 409 in flight for the key’s lifetime', async () => {
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
        ctx.type = 'application/json';
        ctx.body = Readable.from(['{"payment":', `"pay-${processed}"`, '}']);
        done.fire();
      });
      const server = createH2cServer(app.callback());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      try {
        const k = key('koa-h2-cancel-stream');
        await h2PayAndCancelWhen(port, tpp.payer, k, started.promise);
        await done.promise;
        await pause(100);
        const retry = await h2SettledRetry(port, k);
        expectAnsweredOnce(retry, processed);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    }, 30_000);
  });

  describe('3. Fastify, NestJS on Fastify: one NodeClaim per request, the last layer’s', () => {
    it('IDEM-04 IDEM-12 IDEM-16 fastify: Idempotency-Key and x-idempotency-key layers, a client that hangs up before a streamed answer of a payment made: a retry with the Idempotency-Key alone is not processed a second time', async () => {
      const app = Fastify();
      await app.register(fastifyPlugin, tpp.options);
      let processed = 0;
      const started = signal();
      const done = signal();
      const preHandler = [
        app.fapi.protect({ idempotency: 'required' }),
        app.fapi.protect({ scopes: ['payments:write'], idempotency: { mode: 'optional', syntax: 'uk-ob' } }),
      ];
      app.post('/payments', { preHandler }, async (_request, reply) => {
        if (processed === 0) {
          started.fire();
          await closed(reply.raw);
        }
        processed++;
        done.fire();
        return reply
          .code(201)
          .type('application/json')
          .send(Readable.from(['{"payment":', `"pay-${processed}"`, '}']));
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      try {
        const k = key('fastify-two-keys-gone');
        await payAndHangUpWhen(url, k, started.promise, { 'x-idempotency-key': `uk-${Math.random().toString(36).slice(2)}` });
        await done.promise;
        await pause(100);
        // The retry's HTTP client keeps the Idempotency-Key; the route's x-idempotency-key is optional.
        const retry = await settledRetry(url, k);
        // Current code: 201 pay-2. Fastify's `claims` WeakMap holds one NodeClaim per request: the
        // x-idempotency-key layer's overwrote the app-wide one's, whose recorder never hears
        // `answered()` and takes Fastify's 500 for the stream cut off as a server error: Idempotency-Key freed.
        expectAnsweredOnce(retry, processed);
      } finally {
        await app.close();
      }
    }, 30_000);

    it('IDEM-04 IDEM-12 IDEM-16 nestjs-fastify: the module’s global policy keeps Idempotency-Key, the route x-idempotency-key; a client that hangs up before a StreamableFile answer of a payment made: a retry with the Idempotency-Key alone is not processed a second time', async () => {
      let processed = 0;
      const started = signal();
      const done = signal();
      @Controller('payments')
      class Payments {
        @Post()
        @HttpCode(201)
        @FapiPolicy({ scopes: ['payments:write'], idempotency: { mode: 'optional', syntax: 'uk-ob' } })
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
      const app = await startNestApp('nestjs-fastify', tpp.options, [Payments], undefined, {
        settings: { global: { idempotency: 'required' } },
      });
      try {
        const k = key('nest-fastify-two-keys-gone');
        await payAndHangUpWhen(app.url, k, started.promise, { 'x-idempotency-key': `uk-${Math.random().toString(36).slice(2)}` });
        await done.promise;
        await pause(100);
        const retry = await settledRetry(app.url, k);
        // Current code: 201 pay-2 (nestjs/src/idempotency.ts `claims`: one NodeClaim per request, the route's).
        expectAnsweredOnce(retry, processed);
      } finally {
        await app.close();
      }
    }, 30_000);
  });

  describe('4. Fastify: a protect({ idempotency }) preHandler added with addHook (allowed with messageSigning) gets no onSend hook', () => {
    it('IDEM-04 IDEM-12 fastify with messageSigning, protect({ idempotency }) added with addHook: a client that hangs up before a streamed answer of a payment made: not processed a second time', async () => {
      const signer = MessageSigningClient.generate('ed25519', 'tpp-key');
      const app = Fastify();
      await app.register(fastifyPlugin, { ...tpp.options, messageSigning: { clients: { 'client-tpp': { jwks: signer.jwks } } } });
      app.addHook('preHandler', app.fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
      let processed = 0;
      const started = signal();
      const done = signal();
      app.post('/payments', async (_request, reply) => {
        if (processed === 0) {
          started.fire();
          await closed(reply.raw);
        }
        processed++;
        done.fire();
        return reply
          .code(201)
          .type('application/json')
          .send(Readable.from(['{"payment":', `"pay-${processed}"`, '}']));
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      try {
        // Current code: 201 pay-2. The route has no onSend hook telling the claim (only config.fapi
        // and route preHandler routes get one): Fastify's 500 for the stream cut off frees the key.
        await hangUpThenRetry(url, 'fastify-hook-gone-stream', { started: started.promise, done: done.promise }, () => processed);
      } finally {
        await app.close();
      }
    }, 30_000);
  });
});

describe('attacks that held', () => {
  it('IDEM-11 IDEM-12 koa 3: the audit middleware in front of the guard, the client gone meanwhile: 409 not kept (Koa 3 ends the response), processed once', async () => {
    const fapi = koaGuard(tpp.options);
    const app = new Koa();
    app.silent = true;
    let processed = 0;
    const audited = signal();
    app.use(async (ctx, next) => {
      await next();
      if (processed === 1 && ctx.status === 201) await closed(ctx.res);
      audited.fire();
    });
    app.use(fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
    const started = signal();
    app.use(async (ctx) => {
      processed++;
      ctx.status = 201;
      ctx.body = { payment: `pay-${processed}` };
      started.fire();
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      await hangUpThenRetry(served.url, 'koa3-audit-gone', { started: started.promise, done: audited.promise }, () => processed);
    } finally {
      await served.close();
    }
  }, 30_000);

  // Before the fix of the second: Fastify applies a Response's status after the onSend hooks, so
  // the recorder saw a 200 on its way to a client gone and kept the key as processed (409, look the
  // payment up: one that was never made); the adapter's own status check in onSend saw the same 200.
  it.each([
    [
      'answers 503 itself (its work undone) with a stream',
      (reply: FastifyReply) => reply.code(503).send(Readable.from(['{"error":', '"ledger unavailable"}'])),
    ],
    [
      'hands on the core system’s 503 (nothing booked) as a fetch Response',
      (reply: FastifyReply) =>
        reply.send(new Response('{"error":"ledger unavailable"}', { status: 503, headers: { 'content-type': 'application/json' } })),
    ],
  ])(
    'IDEM-10 fastify: a handler that %s to a client gone: the key is freed, the retry is processed (not 409 processed, its response not kept)',
    async (what, unavailable) => {
      const app = Fastify();
      await app.register(fastifyPlugin, tpp.options);
      const ledger = { attempts: 0, paid: [] as string[] };
      const started = signal();
      const done = signal();
      app.post(
        '/payments',
        { config: { fapi: routePolicy({ scopes: ['payments:write'], idempotency: 'required' }) } },
        async (_request, reply) => {
          const attempt = ++ledger.attempts;
          if (attempt === 1) {
            started.fire();
            await closed(reply.raw);
            done.fire();
            return unavailable(reply);
          }
          ledger.paid.push(`pay-${attempt}`);
          return reply.code(201).send({ payment: `pay-${attempt}` });
        },
      );
      await app.listen({ port: 0, host: '127.0.0.1' });
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      try {
        const k = key(`fastify-own-503-gone-${what.split(' ', 1)[0]}`);
        await payAndHangUpWhen(url, k, started.promise);
        await done.promise;
        await pause(100);
        const retry = await settledRetry(url, k);
        expect([retry.status, retry.text, ledger.paid]).toEqual([201, '{"payment":"pay-2"}', ['pay-2']]);
      } finally {
        await app.close();
      }
    },
    30_000,
  );

  it('IDEM-10 nestjs-fastify: a handler that returns the core system’s 503 as a fetch Response to a client gone: the key is freed, the retry is processed (not 409 processed, its response not kept)', async () => {
    const ledger = { attempts: 0, paid: [] as string[] };
    const started = signal();
    const done = signal();
    @Controller('payments')
    class Payments {
      @Post()
      @FapiPolicy({ scopes: ['payments:write'], idempotency: 'required' })
      async pay(@Res({ passthrough: true }) reply: { raw: ServerResponse }) {
        const attempt = ++ledger.attempts;
        if (attempt === 1) {
          started.fire();
          await closed(reply.raw);
          done.fire();
          return new Response('{"error":"ledger unavailable"}', { status: 503, headers: { 'content-type': 'application/json' } });
        }
        ledger.paid.push(`pay-${attempt}`);
        return { payment: `pay-${attempt}` };
      }
    }
    const app = await startNestApp('nestjs-fastify', tpp.options, [Payments]);
    try {
      const k = key('nest-fastify-own-503-response-gone');
      await payAndHangUpWhen(app.url, k, started.promise);
      await done.promise;
      await pause(100);
      // Before: the 503 was applied after the onSend hooks, so the recorder saw Nest's 201 on its way.
      const retry = await settledRetry(app.url, k);
      expect([retry.status, retry.text, ledger.paid]).toEqual([201, '{"payment":"pay-2"}', ['pay-2']]);
    } finally {
      await app.close();
    }
  }, 30_000);

  it('IDEM-10 fastify: an app-wide onSend hook that turns the answer into a 503 (client still there): the key is freed, never kept as processed', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, tpp.options);
    let attempts = 0;
    // Runs ahead of the route's onSend hooks (the guard's among them): the status it sets is the one told.
    app.addHook('onSend', async (_request, reply, payload) => {
      if (attempts === 1) reply.code(503);
      return payload;
    });
    app.post(
      '/payments',
      { config: { fapi: routePolicy({ scopes: ['payments:write'], idempotency: 'required' }) } },
      async (_request, reply) => reply.code(201).send({ payment: `pay-${++attempts}` }),
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const k = key('fastify-onsend-503');
      const first = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(first.status).toBe(503);
      const retry = await settledRetry(url, k);
      expect([retry.status, retry.text, attempts]).toEqual([201, '{"payment":"pay-2"}', 2]);
    } finally {
      await app.close();
    }
  }, 30_000);

  it('IDEM-10 IDEM-12 koa: a handler that answers 503 itself to a client still there frees the key; a streamed 201 is kept and replayed', async () => {
    const fapi = koaGuard(tpp.options);
    const app = new Koa();
    app.silent = true;
    let attempts = 0;
    app.use(fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
    app.use(async (ctx) => {
      attempts++;
      if (attempts === 1) {
        ctx.status = 503;
        ctx.body = { error: 'ledger unavailable' };
        return;
      }
      ctx.status = 201;
      ctx.type = 'application/json';
      ctx.body = Readable.from(['{"payment":', `"pay-${attempts}"`, '}']);
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('koa-own-503');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(first.status).toBe(503);
      const second = await settledRetry(served.url, k);
      const third = await settledRetry(served.url, k);
      expect([second.status, second.text, third.status, third.text, attempts]).toEqual([
        201,
        '{"payment":"pay-2"}',
        201,
        '{"payment":"pay-2"}',
        2,
      ]);
    } finally {
      await served.close();
    }
  }, 30_000);

  it.each(['throw', 'complete'] as const)(
    'IDEM-10 IDEM-12 koa over h2c: a client that cancels its stream, then the handler %ss: never 409 in flight, processed once',
    async (outcome) => {
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
            await closed(ctx.res);
            if (outcome === 'throw') throw new Error('ledger unavailable');
          } finally {
            done.fire();
          }
        }
        ctx.status = 201;
        ctx.body = { payment: `pay-${++paid}` };
      });
      const server = createH2cServer(app.callback());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      try {
        const k = key(`koa-h2-cancel-${outcome}`);
        await h2PayAndCancelWhen(port, tpp.payer, k, started.promise);
        await done.promise;
        await pause(100);
        const retry = await h2SettledRetry(port, k);
        expect(retry.text).not.toContain(IN_FLIGHT);
        // A throw frees the key (nothing paid); a payment made is replayed or 409 not kept.
        if (outcome === 'throw') expect([retry.status, retry.text, paid]).toEqual([201, '{"payment":"pay-1"}', 1]);
        else expect(retry.status === 409 ? retry.text.includes(UNKEPT) : retry.text === '{"payment":"pay-1"}').toBe(true);
        expect(paid).toBe(1);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
    30_000,
  );

  it.each(['larger than maxResponseBytes', 'streamed past maxResponseBytes'] as const)(
    'IDEM-11 IDEM-12 hono: a client that hangs up before an answer %s of a payment made: 409 not kept, processed once',
    async (mode) => {
      const fapi = honoGuard(tpp.options);
      const app = new Hono();
      let processed = 0;
      const started = signal();
      const done = signal();
      const policy = { scopes: ['payments:write'], idempotency: { mode: 'required', maxResponseBytes: 64 } } as const;
      app.post('/payments', fapi.protect(policy), async (c) => {
        if (processed === 0) {
          started.fire();
          // @hono/node-server hands the Node response over as c.env.outgoing.
          const outgoing = (c.env as { outgoing?: ServerResponse }).outgoing;
          if (outgoing) await closed(outgoing);
        }
        processed++;
        done.fire();
        if (mode === 'larger than maxResponseBytes') return c.json({ payment: `pay-${processed}`, pad: 'x'.repeat(5000) }, 201);
        const chunk = new TextEncoder().encode('x'.repeat(40));
        // A body that never ends, produced only as it is read.
        const body = new ReadableStream<Uint8Array>({
          async pull(controller) {
            await pause(20);
            controller.enqueue(chunk);
          },
        });
        return new Response(body, { status: 201 });
      });
      const served = await serveHono(app);
      try {
        const k = key('hono-gone-unkept');
        await payAndHangUpWhen(served.url, k, started.promise);
        await done.promise;
        await pause(100);
        const retry = await settledRetry(served.url, k);
        expect([retry.status, retry.text.includes(UNKEPT), processed]).toEqual([409, true, 1]);
      } finally {
        await served.close();
      }
    },
    30_000,
  );

  it('IDEM-04 IDEM-16 fastify: an app-wide onRequest protect(), config.fapi with the key, a route preHandler with the scope: the payer’s retry gets the payment, a token without the scope 403, never the payment', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, tpp.options);
    app.addHook('onRequest', app.fapi.protect());
    let processed = 0;
    app.post(
      '/payments',
      {
        config: { fapi: routePolicy({ idempotency: 'required' }) },
        preHandler: app.fapi.protect({ scopes: ['payments:write'] }),
      },
      async (_request, reply) => reply.code(201).send({ payment: `pay-${++processed}` }),
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const k = key('fastify-three-placements');
      const first = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      const reader = await sendPayment(url, PUBLIC, { who: tpp.reader, key: k, body: BODY });
      const retry = await settledRetry(url, k);
      expect([first.status, first.text, reader.status, reader.text.includes('pay-')]).toEqual([201, '{"payment":"pay-1"}', 403, false]);
      expect([retry.status, retry.text, processed]).toEqual([201, first.text, 1]);
    } finally {
      await app.close();
    }
  }, 30_000);
});

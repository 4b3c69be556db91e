/**
 * Attack review 13: the idempotency path after commit 6196daa (recordNodeResponse settles a
 * response to a client gone before its head once its answer is known: `write`, a `pipe` event,
 * NodeClaim.answered() from Fastify's instance-wide onSend, NodeClaim.settled(failed) from Koa;
 * after a setImmediate unless `end` came first).
 * Each test under "findings" asserts what docs/packages/core.md (Idempotency keys) promises and
 * failed on the code it was written against (6196daa); they pass since the fix (a server error to
 * a client gone after the answer was written or piped is kept as processed, and a throw after it
 * no longer turns Koa's settlement into a failure); "attacks that held" pass.
 *
 * 1. Processed twice (nestjs on Express and on Fastify, express with an error middleware, koa 3
 *    with its own response) — packages/core/src/idempotency/node.ts recordNodeResponse:
 *    `recordedEnd` keeps as processed a server error to a client gone only when
 *    `answer === 'answered'` (Fastify's onSend); after a `pipe` event or a `write`
 *    (`answer === 'written'`) a 5xx frees the key, and the early settle of a piped or written
 *    answer waits a setImmediate ("unless end came first").
 *    Set-up: the handler pays, then passes the core banking system's answer on with
 *    `await pipeline(stream, res)` (Node's advice over `stream.pipe`) to a client that timed out
 *    and hung up before the head. The pipe event arrives (answer known, client gone: settle
 *    queued), then pipeline rejects at once (ERR_STREAM_PREMATURE_CLOSE) and a 500 is written
 *    before the queued settle runs:
 *    - NestJS on Express: Nest's exception filter answers 500 in the same turn;
 *    - NestJS on Fastify (`@Res() reply`, the pipeline into `reply.raw`): Nest's exception filter
 *      sends a 500 through Fastify (status 500: no answered()) within the turn;
 *    - Express: the app's own error middleware (`app.use((err, req, res, next) => res.status(500)
 *      .json(…))`, in every Express API) answers 500 in the same turn (Express's default final
 *      handler answers a turn later, after the settle: that one held, below);
 *    - Koa 3 with `ctx.respond = false` and the same pipeline: NodeClaim.settled(true) turns the
 *      piped answer into 'failed' before the queued settle runs, and the key is freed.
 *    The recorder takes the 500 for the handler's own server error and frees the key: the retry
 *    after the timeout pays a second time (201 pay-2). core.md: "Such a response is settled once
 *    its answer is known — written or piped to it …: … 'processed, response not kept'"; "a server
 *    error written to a client gone after the handler's own answer (no 5xx) was on its way is kept
 *    as processed … never freed" (said of Fastify's 500; here it is Nest's, Express's error
 *    middleware's or Koa's, for the same cause). (Koa: the docs' "freed when the handler threw"
 *    could be read to cover it; the throw is pipeline's report that the client was gone after
 *    the answer was piped, not a failure of the payment.) With the client still there the
 *    same handler's answer is kept.
 *    Fix: once an answer was written or piped to the response while its client was gone (or the
 *    client went away after that, before the head), settle it as processed at that moment (or keep
 *    the fact: a later 5xx or `settled(true)` then finishes `{ handled: true }`, as `failedToSend`
 *    does for `answered`), instead of letting whatever ends the response within the turn decide.
 *    E.g. in recordedEnd: `failedToSend = (answer === 'answered' || answer === 'written') && gone
 *    && res.statusCode >= 500`, and in `settled(failed)`: do not turn 'written' into 'failed' when
 *    the client is gone.
 *
 * Looked at and held (below): the same Express app with the client still there (the answer kept and
 * replayed, paid once); Fastify with `reply.hijack()` and the same pipeline (Fastify sends nothing
 * after a hijack: the pipe settles the claim, 409 not kept); Express's default final handler after
 * the same pipeline (its 500 a turn after the settle: 409 not kept); a handler that writes the
 * first part of its answer to a client gone, pays, then ends (409 not kept, paid once); Koa 3 over
 * h2c with an 'error' listener and a streamed body to a cancelled stream (Koa's pipeline into the
 * closed HTTP/2 response never reports; the chain's end settles the claim: 409 not kept). Also read
 * (not tested), not kept as findings: a response that nothing ends and whose handler never answers
 * a client gone (an Express handler that drops its work on `res` 'close' and returns without
 * answering keeps its key in flight for the key's lifetime: the recorder cannot see an Express
 * handler return; Koa settles it through `settled`), HTTP/1.1 pipelined requests behind one whose
 * client left (their responses get no 'close' and no socket; a small answer is kept, ended
 * normally).
 */

import type { ServerResponse } from 'node:http';
import { createServer as createH2cServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiPolicy } from '@fapi-guard/nestjs';
import { Controller, HttpCode, Post, Res } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { BODY, closed, key, pause, signal, useHangUps } from './support/hang-up';
import { listening } from './support/http';
import { sendPayment } from './support/idempotency-apps';
import { startNestApp } from './support/nest-app';

const PUBLIC = 'https://api.bank.example';
const { tpp, settledRetry, expectAnsweredOnce, hangUpThenRetry, h2PayAndCancelWhen, h2SettledRetry } = useHangUps(PUBLIC);

describe('findings', () => {
  describe('1. a server error written after the answer was piped to a client gone: the key freed, paid twice', () => {
    it('IDEM-10 IDEM-11 express: an app with its own error middleware (JSON 500) and a handler that passes the core banking system’s answer on with `await pipeline(stream, res)` to a client that hung up: the retry is answered, not processed again', async () => {
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
        res.status(201).type('application/json');
        try {
          // Node's advice over stream.pipe: pipeline forwards errors (and rejects when the response closed early).
          await pipeline(Readable.from(['{"payment":', `"pay-${processed}"`, '}']), res);
        } finally {
          done.fire();
        }
      });
      // Every Express API's last middleware: errors as JSON.
      app.use((_error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        res.status(500).json({ error: 'server_error' });
      });
      const served = await listening(app.listen(0, '127.0.0.1'));
      try {
        await hangUpThenRetry(served.url, 'express-error-mw-pipeline', { started: started.promise, done: done.promise }, () => processed);
      } finally {
        await served.close();
      }
    }, 30_000);

    it('IDEM-10 IDEM-11 koa 3: a handler that passes the core banking system’s answer on itself (`ctx.respond = false; await pipeline(stream, ctx.res)`) to a client that hung up: the retry is answered, not processed again', async () => {
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
        ctx.respond = false;
        ctx.res.statusCode = 201;
        ctx.res.setHeader('content-type', 'application/json');
        try {
          await pipeline(Readable.from(['{"payment":', `"pay-${processed}"`, '}']), ctx.res);
        } finally {
          done.fire();
        }
      });
      const served = await listening(app.listen(0, '127.0.0.1'));
      try {
        await hangUpThenRetry(served.url, 'koa-gone-own-pipeline', { started: started.promise, done: done.promise }, () => processed);
      } finally {
        await served.close();
      }
    }, 30_000);

    it('IDEM-10 IDEM-11 nestjs (Express platform): a handler that passes the core banking system’s answer on with `await pipeline(stream, res)` to a client that hung up: the retry is answered, not processed again', async () => {
      let processed = 0;
      const started = signal();
      const done = signal();
      @Controller('payments')
      class Payments {
        @Post()
        @HttpCode(201)
        @FapiPolicy({ scopes: ['payments:write'], idempotency: 'required' })
        async pay(@Res() res: ServerResponse) {
          if (processed === 0) {
            started.fire();
            await closed(res);
          }
          processed++;
          res.statusCode = 201;
          res.setHeader('content-type', 'application/json');
          try {
            await pipeline(Readable.from(['{"payment":', `"pay-${processed}"`, '}']), res);
          } finally {
            done.fire();
          }
        }
      }
      const app = await startNestApp('nestjs', tpp.options, [Payments], undefined, { rawBody: true });
      try {
        await hangUpThenRetry(app.url, 'nest-express-gone-pipeline', { started: started.promise, done: done.promise }, () => processed);
      } finally {
        await app.close();
      }
    }, 30_000);
    it('IDEM-10 IDEM-11 nestjs (Fastify platform): a handler that passes the core banking system’s answer on with `await pipeline(stream, reply.raw)` to a client that hung up: the retry is answered, not processed again', async () => {
      let processed = 0;
      const started = signal();
      const done = signal();
      @Controller('payments')
      class Payments {
        @Post()
        @HttpCode(201)
        @FapiPolicy({ scopes: ['payments:write'], idempotency: 'required' })
        async pay(@Res() reply: { raw: ServerResponse }) {
          const res = reply.raw;
          if (processed === 0) {
            started.fire();
            await closed(res);
          }
          processed++;
          res.statusCode = 201;
          res.setHeader('content-type', 'application/json');
          try {
            await pipeline(Readable.from(['{"payment":', `"pay-${processed}"`, '}']), res);
          } finally {
            done.fire();
          }
        }
      }
      const app = await startNestApp('nestjs-fastify', tpp.options, [Payments], undefined, { rawBody: true });
      try {
        await hangUpThenRetry(app.url, 'nest-fastify-gone-pipeline', { started: started.promise, done: done.promise }, () => processed);
      } finally {
        await app.close();
      }
    }, 30_000);
  });
});

describe('attacks that held', () => {
  it('IDEM-04 IDEM-10 express: the same app (error middleware, `await pipeline(stream, res)`) with the client still there: the answer is kept and replayed, the payment made once', async () => {
    const fapi = expressGuard(tpp.options);
    const app = express();
    let processed = 0;
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (_req, res) => {
      processed++;
      res.status(201).type('application/json');
      await pipeline(Readable.from(['{"payment":', `"pay-${processed}"`, '}']), res);
    });
    app.use((_error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(500).json({ error: 'server_error' });
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('express-live-pipeline');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      const retry = await settledRetry(served.url, k);
      expect([first.status, first.text, retry.status, retry.text, processed]).toEqual([
        201,
        '{"payment":"pay-1"}',
        201,
        '{"payment":"pay-1"}',
        1,
      ]);
    } finally {
      await served.close();
    }
  }, 30_000);

  it('IDEM-10 IDEM-11 fastify: a handler that hijacks the reply and passes the core banking system’s answer on with `await pipeline(stream, reply.raw)` to a client that hung up: the retry is answered (Fastify answers nothing after a hijack; the pipe settles the claim), not processed again', async () => {
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
        reply.hijack();
        reply.raw.statusCode = 201;
        reply.raw.setHeader('content-type', 'application/json');
        try {
          await pipeline(Readable.from(['{"payment":', `"pay-${processed}"`, '}']), reply.raw);
        } catch {
          // The client is gone: nobody to tell.
        } finally {
          done.fire();
        }
      },
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      await hangUpThenRetry(url, 'fastify-hijack-gone-pipeline', { started: started.promise, done: done.promise }, () => processed);
    } finally {
      await app.close();
    }
  }, 30_000);

  it('IDEM-10 IDEM-11 koa 3 over h2c, an app that logs its errors: a client that cancels its stream before a streamed answer of a payment made: the retry is answered (Koa pipes into the closed stream; the chain’s end settles the claim first), not processed again', async () => {
    const fapi = koaGuard(tpp.options);
    const app = new Koa();
    // Koa's own advice: log errors with an 'error' listener (Koa then hands stream failures to ctx.onerror).
    const logged: string[] = [];
    app.on('error', (error: Error) => logged.push(error.message));
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
      const k = key('koa3-h2-cancel-logged');
      await h2PayAndCancelWhen(port, tpp.payer, k, started.promise);
      await done.promise;
      await pause(100);
      const retry = await h2SettledRetry(port, k);
      expectAnsweredOnce(retry, processed);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 30_000);
  it('IDEM-10 IDEM-11 express: a handler that passes the core banking system’s answer on with `await pipeline(stream, res)` to a client that hung up: the retry is answered (Express’s final handler answers 500 a turn later, after the settle), not processed again', async () => {
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
      res.status(201).type('application/json');
      try {
        // Node's advice over stream.pipe: pipeline forwards errors (and rejects when the response closed early).
        await pipeline(Readable.from(['{"payment":', `"pay-${processed}"`, '}']), res);
      } finally {
        done.fire();
      }
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      await hangUpThenRetry(served.url, 'express-gone-pipeline', { started: started.promise, done: done.promise }, () => processed);
    } finally {
      await served.close();
    }
  }, 30_000);

  it('IDEM-10 IDEM-11 express: a handler that writes its answer’s first part to a client gone, then pays, then ends: the retry gets 409 not kept, never a second processing', async () => {
    const fapi = expressGuard(tpp.options);
    const app = express();
    let processed = 0;
    const started = signal();
    const done = signal();
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (_req, res) => {
      const first = processed === 0;
      if (first) {
        started.fire();
        await closed(res);
      }
      res.status(201).type('application/json');
      res.write('{"payment":');
      // The ledger call after the first write: the settle of the write may come first.
      await pause(50);
      processed++;
      res.end(`"pay-${processed}"}`);
      if (first) done.fire();
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      await hangUpThenRetry(served.url, 'express-gone-write-end', { started: started.promise, done: done.promise }, () => processed);
    } finally {
      await served.close();
    }
  }, 30_000);
});

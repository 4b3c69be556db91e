/**
 * Attack review 14: recordNodeResponse (packages/core/src/idempotency/node.ts) after b883eb8.
 * Each test under "findings" asserts what docs/packages/core.md (Idempotency keys) promises and
 * failed on b883eb8; they pass since the fix (the status recorded is the one the head went out
 * with; a second head is refused before anything of it is applied); "attacks that held" pass.
 *
 * 1. Processed twice (express, a client still there) — node.ts recordNodeResponse: the status
 *    recorded is `res.statusCode` when the response is settled (`sentOf`, the 'close' listener's
 *    `{ status: res.statusCode, tooLarge: true }`), not the status its head went out with. Node
 *    lets `res.statusCode` be assigned after the head was sent (Express's `res.status()` is a bare
 *    assignment), and the wire keeps the head's status.
 *    Set-up: the handler pays, answers 201 and streams its receipt (`res.write`: head and first
 *    part sent); the receipt's source fails; the app's own error middleware
 *    (`res.status(500).json(…)`, as in every Express API) sets statusCode 500, then throws
 *    ERR_HTTP_HEADERS_SENT at `json`'s setHeader; Express's final handler destroys the socket.
 *    The 'close' listener records `{ status: 500, tooLarge }`: a server error, the key freed; the
 *    retry pays a second time. The client saw 201 and part of the receipt. core.md ("A response
 *    not sent as declared … is kept as 'processed, response not kept' (409 to retries) … So is a
 *    response cut off after its head: Express destroys the connection of a handler that fails
 *    midway through its body … settled when the connection closes"). The same
 *    with an error middleware that ends the response itself after setting 500
 *    (`res.status(500).end(…)`: `sentOf` records the 500 the client never got; freed, paid twice),
 *    and with one written for Node (`res.writeHead(500, …)`): Node's writeHead throws
 *    ERR_HTTP_HEADERS_SENT before it changes anything, but `recordedWriteHead` runs
 *    `applyWriteHead` (statusCode = 500) before the inner writeHead throws.
 *    Fix: remember the status the head went out with — in `recordedWriteHead`, after the inner
 *    writeHead returned (Node's implicit head for `write`/`end`/`flushHeaders` goes through
 *    `this.writeHead` too; for HTTP/2 fall back to `res.statusCode`): `headStatus = this.statusCode`
 *    — and, once `res.headersSent`, record `headStatus` instead of `res.statusCode` (in `sentOf`,
 *    the 'close' listener, `settleUnended` and `failedToSend`). In `recordedWriteHead`, when
 *    `res.headersSent` already, call the inner writeHead (it throws) without `applyWriteHead`.
 *
 * Looked at and held (below): the same app whose error middleware follows Express's advice
 * (`if (res.headersSent) return next(err)`: 409 not kept); a handler's own 503 written to a client
 * gone before its head (the key freed, the retry processed); a handler that writes to a live
 * client which leaves mid-body, then ends (409 not kept); `res.flushHeaders()` then a body
 * (kept and replayed as sent); a 204 answer (kept and replayed); NestJS on Express with the same
 * streamed receipt failing (Nest's filter checks the head and only ends: kept as sent); Fastify's
 * `send(stream)` failing mid-body (Fastify destroys the response without a status: 409 not kept);
 * Express's `res.sendFile` to a client gone before the head (send pipes the file: 409 not kept).
 * Read, not tested: compression middleware ahead of the guard (documented as not covered), a
 * handler that destroys the response itself and never answers (as review 13's note), a server
 * timeout middleware answering 503 while the handler still runs (the recorder cannot see an
 * Express handler's end; a 5xx is taken for "not processed" by design).
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { FapiPolicy } from '@fapi-guard/nestjs';
import { Controller, HttpCode, Post, Res } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import { BODY, closed, key, pause, signal, UNKEPT, useHangUps } from './support/hang-up';
import { listening } from './support/http';
import { sendPayment } from './support/idempotency-apps';
import { startNestApp } from './support/nest-app';

const PUBLIC = 'https://api.bank.example';
const { tpp, settledRetry, payAndHangUpWhen, expectAnsweredOnce } = useHangUps(PUBLIC);

/** A payment whose answer may be cut off (the connection reset): what arrived, never a rejection. */
async function payCutOff(url: string, k: string): Promise<{ status: number; text: string }> {
  const { client, token } = tpp.payer;
  const dpop = await client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: token });
  return new Promise((resolve) => {
    let status = 0;
    let text = '';
    const req = httpRequest(`${url}/payments`, { method: 'POST' }, (res) => {
      status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status, text }));
      res.on('error', () => resolve({ status, text }));
      res.on('aborted', () => resolve({ status, text }));
    });
    req.on('error', () => resolve({ status, text }));
    for (const [name, value] of Object.entries({
      authorization: `DPoP ${token}`,
      dpop,
      'content-type': 'application/json',
      'idempotency-key': k,
    }))
      req.setHeader(name, value);
    req.end(BODY);
  });
}

/**
 * An Express payments route whose handler pays, answers 201 and streams its receipt; the first
 * time, the receipt's source fails after the first part went out (the handler throws).
 */
function streamingReceiptApp(errorMiddleware: express.ErrorRequestHandler) {
  const fapi = expressGuard(tpp.options);
  const app = express();
  const state = { processed: 0, failed: signal() };
  app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (_req, res) => {
    state.processed++;
    const id = `pay-${state.processed}`;
    res.status(201).type('application/json');
    res.write('{"payment":');
    await pause(20);
    if (state.processed === 1) {
      state.failed.fire();
      throw new Error('receipt source failed');
    }
    res.end(`"${id}"}`);
  });
  app.use(errorMiddleware);
  return { app, state };
}

describe('findings', () => {
  describe('1. the status recorded is res.statusCode at the end, not the one sent: a 201 cut off is recorded as 500, the key freed, paid twice', () => {
    it('IDEM-10 IDEM-11 express: a handler that pays and streams its 201 receipt, whose source fails after the first part; the app’s error middleware (`res.status(500).json(…)`) then throws at the sent head and Express resets the connection: the retry is answered (409 not kept), not processed again', async () => {
      const { app, state } = streamingReceiptApp((_error, _req, res, _next) => {
        res.status(500).json({ error: 'server_error' });
      });
      const served = await listening(app.listen(0, '127.0.0.1'));
      try {
        const k = key('express-streamed-201-error-mw');
        const first = await payCutOff(served.url, k);
        await state.failed.promise;
        await pause(100);
        const retry = await settledRetry(served.url, k);
        // The client saw the 201 head and part of the receipt.
        expect([first.status, first.text]).toEqual([201, '{"payment":']);
        expectAnsweredOnce(retry, state.processed);
      } finally {
        await served.close();
      }
    }, 30_000);

    it('IDEM-10 IDEM-11 express: the same handler, an error middleware that ends the cut-off answer itself (`res.status(500).end(…)`): the client got 201, the retry is answered (not a stored 500, not processed again)', async () => {
      const { app, state } = streamingReceiptApp((_error, _req, res, _next) => {
        res.status(500).end('"error"}');
      });
      const served = await listening(app.listen(0, '127.0.0.1'));
      try {
        const k = key('express-streamed-201-error-end');
        const first = await payCutOff(served.url, k);
        await state.failed.promise;
        await pause(100);
        const retry = await settledRetry(served.url, k);
        expect([first.status, first.text]).toEqual([201, '{"payment":"error"}']);
        // Kept as sent (201 and these bytes), or 409 not kept: never freed.
        const answered = retry.status === 409 ? retry.text.includes(UNKEPT) : retry.status === 201 && retry.text === first.text;
        expect([answered, state.processed, retry.status, retry.text]).toEqual([true, 1, retry.status, retry.text]);
      } finally {
        await served.close();
      }
    }, 30_000);

    it('IDEM-10 IDEM-11 express: the same handler, an error middleware written for Node (`res.writeHead(500, …)`): Node refuses a second head without touching statusCode, the recorder’s writeHead wrapper sets 500 first; the retry is answered (409 not kept), not processed again', async () => {
      const { app, state } = streamingReceiptApp((_error, _req, res, _next) => {
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"server_error"}');
      });
      const served = await listening(app.listen(0, '127.0.0.1'));
      try {
        const k = key('express-streamed-201-writehead-500');
        const first = await payCutOff(served.url, k);
        await state.failed.promise;
        await pause(100);
        const retry = await settledRetry(served.url, k);
        expect([first.status, first.text]).toEqual([201, '{"payment":']);
        expectAnsweredOnce(retry, state.processed);
      } finally {
        await served.close();
      }
    }, 30_000);
  });
});

describe('attacks that held', () => {
  it('IDEM-10 IDEM-11 express: the same handler, an error middleware that follows Express’s advice (`if (res.headersSent) return next(err)`): the retry gets 409 not kept, paid once', async () => {
    const { app, state } = streamingReceiptApp((error, _req, res, next) => {
      if (res.headersSent) return next(error);
      res.status(500).json({ error: 'server_error' });
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('express-streamed-201-advised-mw');
      await payCutOff(served.url, k);
      await state.failed.promise;
      await pause(100);
      const retry = await settledRetry(served.url, k);
      expectAnsweredOnce(retry, state.processed);
    } finally {
      await served.close();
    }
  }, 30_000);

  it('IDEM-10 express: a handler’s own 503 written (`res.write`) to a client gone before its head: the key is freed, the retry processed', async () => {
    const fapi = expressGuard(tpp.options);
    const app = express();
    let processed = 0;
    const started = signal();
    const done = signal();
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (_req, res) => {
      processed++;
      if (processed === 1) {
        started.fire();
        await closed(res);
        res.status(503).type('application/json');
        res.write('{"error":"core_unavailable"');
        res.end('}');
        done.fire();
        return;
      }
      res.status(201).json({ payment: `pay-${processed}` });
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('express-gone-own-503');
      await payAndHangUpWhen(served.url, k, started.promise);
      await done.promise;
      await pause(100);
      const retry = await settledRetry(served.url, k);
      expect([retry.status, retry.text, processed]).toEqual([201, '{"payment":"pay-2"}', 2]);
    } finally {
      await served.close();
    }
  }, 30_000);

  it('IDEM-10 IDEM-11 express: a handler that writes its 201 to a live client that leaves mid-body, then ends: the retry gets 409 not kept (or the answer), paid once', async () => {
    const fapi = expressGuard(tpp.options);
    const app = express();
    let processed = 0;
    const wrote = signal();
    const done = signal();
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (_req, res) => {
      processed++;
      res.status(201).type('application/json');
      res.write('{"payment":');
      if (processed === 1) {
        wrote.fire();
        await closed(res);
      }
      res.end(`"pay-${processed}"}`);
      done.fire();
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('express-live-leaves-midbody');
      await payAndHangUpWhen(served.url, k, wrote.promise);
      await done.promise;
      await pause(100);
      const retry = await settledRetry(served.url, k);
      expectAnsweredOnce(retry, processed);
    } finally {
      await served.close();
    }
  }, 30_000);

  it('IDEM-04 express: `res.flushHeaders()` then the body: kept and replayed as sent', async () => {
    const fapi = expressGuard(tpp.options);
    const app = express();
    let processed = 0;
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (_req, res) => {
      processed++;
      res.status(201).type('application/json');
      res.flushHeaders();
      await pause(10);
      res.end(`{"payment":"pay-${processed}"}`);
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('express-flush-headers');
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

  it('IDEM-04 express: a 204 answer is kept and replayed (no body), paid once', async () => {
    const fapi = expressGuard(tpp.options);
    const app = express();
    let processed = 0;
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), (_req, res) => {
      processed++;
      res.status(204).send('ignored');
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('express-204');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      const retry = await settledRetry(served.url, k);
      expect([first.status, first.text, retry.status, retry.text, processed]).toEqual([204, '', 204, '', 1]);
    } finally {
      await served.close();
    }
  }, 30_000);

  it('IDEM-10 IDEM-11 nestjs (Express platform): a handler that streams its 201 receipt and throws after the first part: Nest’s exception filter sees the head sent and only ends the response; the answer is kept as sent and replayed, paid once', async () => {
    let processed = 0;
    @Controller('payments')
    class Payments {
      @Post()
      @HttpCode(201)
      @FapiPolicy({ scopes: ['payments:write'], idempotency: 'required' })
      async pay(@Res() res: ServerResponse) {
        processed++;
        res.statusCode = 201;
        res.setHeader('content-type', 'application/json');
        res.write('{"payment":');
        await pause(20);
        throw new Error('receipt source failed');
      }
    }
    const app = await startNestApp('nestjs', tpp.options, [Payments], undefined, { rawBody: true });
    try {
      const k = key('nest-express-streamed-throw');
      const first = await payCutOff(app.url, k);
      await pause(100);
      const retry = await settledRetry(app.url, k);
      const answered = retry.status === 409 ? retry.text.includes(UNKEPT) : retry.status === 201 && retry.text === first.text;
      expect([first.status, answered, processed, retry.status, retry.text]).toEqual([201, true, 1, retry.status, retry.text]);
    } finally {
      await app.close();
    }
  }, 30_000);

  it('IDEM-10 IDEM-11 fastify: `reply.code(201).send(stream)` whose source fails after the first part (Fastify destroys the response, no status of its own): the retry gets 409 not kept, paid once', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, tpp.options);
    let processed = 0;
    app.post(
      '/payments',
      { config: { fapi: routePolicy({ scopes: ['payments:write'], idempotency: 'required' }) } },
      async (_request, reply) => {
        processed++;
        const id = `pay-${processed}`;
        const failing = processed === 1;
        const receipt = new Readable({ read() {} });
        receipt.push('{"payment":');
        setTimeout(() => {
          if (failing) receipt.destroy(new Error('receipt source failed'));
          else {
            receipt.push(`"${id}"}`);
            receipt.push(null);
          }
        }, 20);
        return reply.code(201).type('application/json').send(receipt);
      },
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const k = key('fastify-stream-fails-midbody');
      const first = await payCutOff(url, k);
      await pause(100);
      const retry = await settledRetry(url, k);
      expect(first.status).toBe(201);
      expectAnsweredOnce(retry, processed);
    } finally {
      await app.close();
    }
  }, 30_000);

  it('IDEM-10 IDEM-11 express: a handler that pays, writes the receipt to a file and answers `res.status(201).sendFile(receipt)` to a client gone before the head: the retry is answered (send pipes the file: 409 not kept), not processed again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fapi-attack14-'));
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
      const receipt = join(dir, `pay-${processed}.json`);
      writeFileSync(receipt, `{"payment":"pay-${processed}"}`);
      res.status(201).sendFile(receipt, (error) => {
        done.fire();
        if (error && (error as NodeJS.ErrnoException).code !== 'ECONNABORTED') res.destroy();
      });
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('express-gone-sendfile');
      await payAndHangUpWhen(served.url, k, started.promise);
      await done.promise;
      await pause(100);
      const retry = await settledRetry(served.url, k);
      expectAnsweredOnce(retry, processed);
      const again = await settledRetry(served.url, key('express-live-sendfile'));
      expect([again.status, again.text]).toEqual([201, `{"payment":"pay-${processed}"}`]);
    } finally {
      await served.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

/**
 * Attack review 13: the idempotency path after commit 6196daa (recordNodeResponse settles a
 * response to a client gone before its head once its answer is known: `write`, a `pipe` event,
 * NodeClaim.answered() from Fastify's instance-wide onSend, NodeClaim.settled(failed) from Koa;
 * after a setImmediate unless `end` came first).
 * Each test under "findings" asserts what docs/packages/core.md (Idempotency keys) promises and
 * FAILS on the code it was written against (6196daa); "attacks that held" pass.
 *
 * FINDINGS_PLACEHOLDER
 */

import { request as httpRequest, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { FapiPolicy } from '@fapi-guard/nestjs';
import { Controller, HttpCode, Post, Res } from '@nestjs/common';
import express from 'express';
import { listening } from './support/http';
import { sendPayment, useTppUsers } from './support/idempotency-apps';
import { startNestApp } from './support/nest-app';

const PUBLIC = 'https://api.bank.example';
const tpp = useTppUsers(PUBLIC);
const key = (name: string) => `"${name}-${process.pid}-${Math.random().toString(36).slice(2)}"`;
const BODY = '{"amount":"10.00"}';
const IN_FLIGHT = 'still being processed';
const UNKEPT = 'its response was not kept';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

/** Resolves once `res` closes (its client went away), or after `ms` at the latest. */
function closed(res: { destroyed?: boolean; once(event: 'close', listener: () => void): unknown }, ms = 10_000): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve();
    const fallback = setTimeout(resolve, ms);
    res.once('close', () => {
      clearTimeout(fallback);
      resolve();
    });
  });
}

/** A retry sent again while the first attempt is still being recorded (409 in flight), a bounded number of times. */
async function settledRetry(url: string, k: string | undefined, headers: Record<string, string> = {}, tries = 40) {
  let retry = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers });
  for (let i = 0; i < tries && retry.status === 409 && retry.text.includes(IN_FLIGHT); i++) {
    await pause(50);
    retry = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers });
  }
  return retry;
}

/** A payment whose client hangs up once `started` resolves (the handler runs), without reading any answer. */
async function payAndHangUpWhen(url: string, k: string, started: Promise<void>, extra: Record<string, string> = {}): Promise<void> {
  const { client, token } = tpp.payer;
  const dpop = await client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: token });
  await new Promise<void>((resolve) => {
    const req = httpRequest(`${url}/payments`, { method: 'POST' }, (res) => {
      // An answer before the hang-up: nothing to hang up on.
      res.resume();
      resolve();
    });
    req.on('error', () => resolve());
    for (const [name, value] of Object.entries({
      authorization: `DPoP ${token}`,
      dpop,
      'content-type': 'application/json',
      'idempotency-key': k,
      ...extra,
    }))
      req.setHeader(name, value);
    req.end(BODY);
    const fallback = setTimeout(() => req.destroy(), 15_000);
    started.then(() => {
      clearTimeout(fallback);
      req.destroy();
    });
  });
}

/**
 * The retry of a payment made once: the payment, or 409 "not kept" — never 409 in flight, never a
 * second processing (the values are in the failure message).
 */
function expectAnsweredOnce(retry: { status: number; text: string }, processed: number) {
  const answered = retry.status === 409 ? retry.text.includes(UNKEPT) : retry.text === '{"payment":"pay-1"}';
  expect([answered, processed, retry.status, retry.text]).toEqual([true, 1, retry.status, retry.text]);
}

/**
 * A payment whose client hangs up once the handler started; once the handler is done, the retry
 * is answered (the payment, or 409 not kept), never left in flight, and the payment made once.
 */
async function hangUpThenRetry(
  url: string,
  name: string,
  handler: { started: Promise<void>; done: Promise<void> },
  processed: () => number,
) {
  const k = key(name);
  await payAndHangUpWhen(url, k, handler.started);
  await handler.done;
  await pause(100);
  const retry = await settledRetry(url, k);
  expectAnsweredOnce(retry, processed());
}

describe('findings', () => {
  describe('1. a server error written after the answer was piped to a client gone: the key freed, paid twice', () => {
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
  });
});

describe('attacks that held', () => {
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

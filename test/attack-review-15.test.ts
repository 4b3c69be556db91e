/**
 * Attack review 15: the idempotency-key recorder for Node responses after 365d3d0
 * (packages/core/src/idempotency/node.ts recordNodeResponse: the head's status is taken only
 * when Node's own writeHead sent it). Each test under "findings" asserts what
 * docs/packages/core.md (Idempotency keys) promises and fails on 365d3d0/2d5a074; "attacks that
 * held" pass.
 *
 * 1. A valid writeHead header array breaks the payment's answer: over HTTP/1.1 processed twice
 *    (koa, the guard's 500), over HTTP/2 the answer never reaches the client (stream reset
 *    NGHTTP2_INTERNAL_ERROR) and every retry gets 409 "not kept" (koa over h2c; any adapter whose
 *    handler writes to the Node response itself) — packages/core/src/idempotency/node.ts
 *    recordNodeResponse `recordedWriteHead` → packages/core/src/runtime/node-response.ts
 *    `applyWriteHead`. Node's HTTP/2 compatibility `writeHead(status, headers)` takes `headers`
 *    as an object, a flat array (`[name, value, name, value]`) or an array of `[name, value]`
 *    tuples (lib/internal/http2/compat.js: "We need to handle both the tuple and flat array
 *    formats"). `applyWriteHead` reads every array as flat: a tuple array becomes
 *    `setHeader('content-type,application/json', 'location,/payments/pay-1')` (the compat
 *    response accepts the name), and the recorder then calls Node's writeHead with the status
 *    alone: nghttp2 refuses the header list, the stream is reset (the client gets
 *    NGHTTP2_INTERNAL_ERROR, no answer) instead of the 201 the handler wrote; the recorder keeps
 *    the key "processed, response not kept", so the client can never get its answer by
 *    retrying. The same handler on a route without a key (no recorder) answers 201. core.md: "is new — the handler runs; its response is
 *    recorded as it is sent"; node.ts header: "the response is copied as it is written — it
 *    still goes out at once". Set-up: Koa 3 over `http2.createServer` (h2c), `ctx.respond =
 *    false`, the handler pays and answers `ctx.res.writeHead(201, [['content-type',
 *    'application/json'], ['location', …]]).end(body)`.
 *    Processed twice over HTTP/1.1 (koa, `interactionId: false`): Node's HTTP/1.1 writeHead takes
 *    tuples too while no header was set before it (its "only writeHead() called" path; the guard
 *    sets none without `x-fapi-interaction-id`). There `applyWriteHead`'s setHeader throws
 *    ERR_INVALID_HTTP_TOKEN for the name 'content-type,application/json' after the handler paid;
 *    Koa answers 500, the recorder frees the key, and the retry pays again (and gets 500 again).
 *    The same handler on a route without a key answers 201. core.md: a new key — "the handler
 *    runs; its response is recorded as it is sent"; the 500 is the recorder's, not the handler's.
 *    (Read, not tested: signNodeResponse's writeHead uses the same applyWriteHead, so a signed
 *    route breaks the same way, key or not.)
 *    Fix: in applyWriteHead, read an array whose first element is an array as tuples
 *    (`for (const [name, value] of headers)`), as Node does; better, let the recorder call the
 *    inner writeHead with the caller's own arguments (Node validates and applies them) and read
 *    the status and headers back from `res` afterwards, instead of re-implementing writeHead.
 *
 * Looked at and held (below, or read): a flat header array in writeHead over h2c and HTTP/1.1,
 * then `write` and `end(cb)` (kept and replayed as sent, paid once). Read, not tested: 365d3d0's
 * condition itself — every head Node sends goes through `this.writeHead` (HTTP/1.1
 * `_implicitHeader`, flushHeaders; HTTP/2 compat write/end/flushHeaders), and the signer's
 * `send` restores Node's methods only inside the recorder's own `end`, which records right
 * after; writeEarlyHints/writeContinue write raw bytes, never a head; writeHead(103) breaks the
 * response without the guard too; an error inside Node's writeHead (invalid status message)
 * throws before `_header` is set. Not kept as a finding: a third-party wrapper ahead of the guard
 * that ends the response asynchronously (express-session's save, an HSM signer) is recorded when
 * its `end` returns, before it sends (a later 500 of its own would not be the recorded answer).
 */
import { createServer as createH2cServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import express from 'express';
import Koa from 'koa';
import { BODY, key, useHangUps } from './support/hang-up';
import { listening } from './support/http';
import { sendH2Payment, sendPayment } from './support/idempotency-apps';

const PUBLIC = 'https://api.bank.example';
const { tpp } = useHangUps(PUBLIC);

type Headers = Parameters<import('node:http').ServerResponse['writeHead']>[1];

/**
 * Koa: POST /payments pays and answers with `ctx.res.writeHead(201, headers(id))`, then `end`;
 * `idempotency` on the route or not. Two requests with one key: what each got. Over HTTP/1.1 the
 * guard runs with `interactionId: false` (it then sets no response header before the handler:
 * Node's writeHead takes its headers argument as given, tuples too).
 */
async function koaPayments(transport: 'h2c' | 'http1', idempotency: boolean, headers: (id: string) => unknown) {
  const fapi = koaGuard(transport === 'h2c' ? tpp.options : { ...tpp.options, interactionId: false });
  const app = new Koa();
  app.on('error', () => undefined);
  let processed = 0;
  app.use(fapi.protect({ scopes: ['payments:write'], ...(idempotency ? { idempotency: 'required' as const } : {}) }));
  app.use(async (ctx) => {
    processed++;
    const id = `pay-${processed}`;
    ctx.respond = false;
    ctx.res.writeHead(201, headers(id) as Headers).end(`{"payment":"${id}"}`);
  });
  const k = key(`koa-${transport}-${idempotency}`);
  let attempt: () => Promise<{ status: number; text: string }>;
  let close: () => unknown;
  if (transport === 'h2c') {
    const server = createH2cServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    attempt = () => sendH2Payment(port, PUBLIC, tpp.payer, k, BODY).catch((e: Error) => ({ status: 0, text: e.message }));
    close = () => server.close();
  } else {
    const served = await listening(app.listen(0, '127.0.0.1'));
    attempt = () => sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k });
    close = () => served.close();
  }
  try {
    const first = await attempt();
    const retry = await attempt();
    return { first, retry, processed: () => processed };
  } finally {
    await close();
  }
}

const tuples = (id: string) => [
  ['content-type', 'application/json'],
  ['location', `/payments/${id}`],
];
const flat = (id: string) => ['content-type', 'application/json', 'location', `/payments/${id}`];

describe('findings', () => {
  describe('1. a writeHead header array of [name, value] tuples is read as a flat one: a stream reset (HTTP/2), a 500 and a second payment (HTTP/1.1)', () => {
    it('IDEM-01 IDEM-02 koa over h2c: a handler that pays and answers writeHead(201, [[name, value], …]).end(body): the client gets the 201 (as without a key) and the retry its replay, paid once', async () => {
      // Without a key on the route (no recorder), Node sends the handler's 201.
      const control = await koaPayments('h2c', false, tuples);
      expect([control.first.status, control.first.text]).toEqual([201, '{"payment":"pay-1"}']);
      const { first, retry, processed } = await koaPayments('h2c', true, tuples);
      expect([first.status, first.text, retry.status, retry.text, processed()]).toEqual([
        201,
        '{"payment":"pay-1"}',
        201,
        '{"payment":"pay-1"}',
        1,
      ]);
    }, 30_000);

    it('IDEM-01 IDEM-10 koa over HTTP/1.1 (interactionId: false): the same handler: the client gets the 201 (as without a key), the retry its replay, paid once', async () => {
      const control = await koaPayments('http1', false, tuples);
      expect([control.first.status, control.first.text]).toEqual([201, '{"payment":"pay-1"}']);
      const { first, retry, processed } = await koaPayments('http1', true, tuples);
      expect([first.status, first.text, retry.status, retry.text, processed()]).toEqual([
        201,
        '{"payment":"pay-1"}',
        201,
        '{"payment":"pay-1"}',
        1,
      ]);
    }, 30_000);
  });
});

describe('attacks that held', () => {
  it('IDEM-01 IDEM-02 koa over h2c: writeHead(201, [name, value, name, value]) (a flat array): the 201 is sent, kept and replayed, paid once', async () => {
    const { first, retry, processed } = await koaPayments('h2c', true, flat);
    expect([first.status, first.text, retry.status, retry.text, processed()]).toEqual([
      201,
      '{"payment":"pay-1"}',
      201,
      '{"payment":"pay-1"}',
      1,
    ]);
  }, 30_000);

  it('IDEM-01 IDEM-02 express (HTTP/1.1): writeHead(201, flat array), write, then end(cb): sent, kept and replayed as sent, the callback called, paid once', async () => {
    const fapi = expressGuard(tpp.options);
    const app = express();
    let processed = 0;
    let callbacks = 0;
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), (_req, res) => {
      processed++;
      const id = `pay-${processed}`;
      res.writeHead(201, ['Content-Type', 'application/json', 'Location', `/payments/${id}`]);
      res.write('{"payment":');
      res.end(`"${id}"}`, () => {
        callbacks++;
      });
    });
    const served = await listening(app.listen(0, '127.0.0.1'));
    try {
      const k = key('express-flat-end-cb');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k });
      const retry = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k });
      expect([first.status, first.text, first.headers.location]).toEqual([201, '{"payment":"pay-1"}', '/payments/pay-1']);
      expect([retry.status, retry.text, retry.headers.location, processed, callbacks]).toEqual([
        201,
        '{"payment":"pay-1"}',
        '/payments/pay-1',
        1,
        1,
      ]);
    } finally {
      await served.close();
    }
  }, 30_000);
});

/**
 * Attack review 9: the idempotency fixes of attack review 8 (commit 00585c0). Each test asserts
 * the right behaviour; those under "findings" failed on the code they were written against, and
 * pass since their fixes (idempotency/fetch.ts passes the body on as the client reads it;
 * layers.ts keeps an earlier layer's claim under another key; exchange.ts leaves a key this
 * request already holds, by another guard, to that claim; node.ts counts a chunk once, skips
 * HTTP/2's pseudo-headers and always settles the claim):
 *
 * 1. hono: a client that hangs up mid-stream on a key route: the response is recorded from a
 *    clone (a tee of the body), so the client's cancel never reaches the handler's stream (Hono's
 *    `stream()`/`streamSSE()` never see onAbort); the stream runs on and the key is held in flight
 *    (renewed) for as long as it runs (an SSE stream: for the key's lifetime).
 * 2. hono: a streamed 201 whose body fails after its head went out frees the key (recorded as a
 *    500): the retry makes the payment again. The Node adapters keep the same cut-off answer as
 *    "processed, response not kept" (409).
 * 3. layers: an app-wide layer that requires Idempotency-Key, a route layer with an optional key
 *    of its own header: a retry that repeats the app-wide key but not the route's (or adds it)
 *    is processed a second time.
 * 4. two guards over one idempotency store (nested app-wide and route guards, e.g. one Redis store
 *    for the cluster): the inner guard finds the outer guard's own claim in flight and refuses
 *    409; the outer guard stores that refusal as the payment's answer, replayed for 24 h.
 * 5. HTTP/2 (Koa, Fastify on Node's compatibility API): a first answer with a body is counted
 *    twice (Http2ServerResponse.end writes through the wrapped write) and kept as "not kept" (409
 *    to every retry); one without a body throws in the recorder (no getRawHeaderNames) and leaves
 *    the key in flight, renewed, for its lifetime.
 */
import { createServer, request as httpRequest } from 'node:http';
import { createServer as createH2cServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { MemoryIdempotencyStore } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
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
const UNKEPT = 'its response was not kept';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends a payment and reads its answer to the end or until the connection closes. */
async function payAndWait(url: string, k: string): Promise<string> {
  const { client, token } = tpp.payer;
  const dpop = await client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: token });
  return new Promise<string>((resolve) => {
    const req = httpRequest(`${url}/payments`, { method: 'POST' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('error', () => undefined);
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('close', () => resolve(`${res.statusCode} ${res.complete ? 'complete' : 'cut off'} ${Buffer.concat(chunks).toString()}`));
    });
    const fallback = setTimeout(() => req.destroy(), 15_000);
    req.on('close', () => clearTimeout(fallback));
    req.on('error', (e) => resolve(`error ${e.message}`));
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

/** Sends a payment, reads the head and the first body bytes, then hangs up. */
async function payAndHangUp(url: string, k: string): Promise<number> {
  const { client, token } = tpp.payer;
  const dpop = await client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: token });
  return new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${url}/payments`, { method: 'POST', timeout: 20_000 }, (res) => {
      res.on('error', () => undefined);
      res.once('data', () => {
        req.destroy();
        resolve(res.statusCode ?? 0);
      });
    });
    req.on('error', reject);
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

/** A retry sent again while the first attempt is still being recorded (409 in flight), a bounded number of times. */
async function settledRetry(url: string, k: string, body = BODY) {
  let retry = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body });
  for (let i = 0; i < 100 && retry.status === 409 && retry.text.includes(IN_FLIGHT); i++) {
    await pause(50);
    retry = await sendPayment(url, PUBLIC, { who: tpp.payer, key: k, body });
  }
  return retry;
}

describe('findings', () => {
  it('IDEM-12 hono: a client that hangs up mid-stream: the handler’s stream is told (onAbort), as without a key, not run on with the key held', async () => {
    const outcome: Record<string, [string, number, string, number]> = {};
    for (const withKey of [false, true]) {
      const fapi = honoGuard(tpp.options);
      const app = new Hono();
      let told!: (by: string) => void;
      const gone = new Promise<string>((resolve) => {
        told = resolve;
      });
      // Generous fallback, so the suite never hangs: the test asserts who ended the stream, not when.
      const fallback = setTimeout(() => told('never told'), 8_000);
      let processed = 0;
      const policy = { scopes: ['payments:write'], ...(withKey ? { idempotency: 'required' as const } : {}) };
      // A payment's progress, streamed (Hono's stream helper): the stream ends when its client leaves.
      app.post('/payments', fapi.protect(policy), (c) =>
        stream(c, async (s) => {
          processed++;
          s.onAbort(() => told('client gone'));
          await s.write('{"status":"accepted"}\n');
          await gone;
        }),
      );
      const served = await serveHono(app);
      try {
        const k = key('hang-up');
        const status = await payAndHangUp(served.url, k);
        const by = await gone;
        const retry = await settledRetry(served.url, k);
        outcome[withKey ? 'key' : 'no key'] = [by, status, `${retry.status}`, processed];
      } finally {
        clearTimeout(fallback);
        await served.close();
      }
    }
    // Without a key, @hono/node-server cancels the body when the client goes: the handler is told.
    expect(outcome['no key']?.[0]).toBe('client gone');
    // Current code: 'never told'. recorder() (core/src/idempotency/fetch.ts) reads a clone of the
    // response, a tee of its body: the client's branch is cancelled, the clone's is not, and a tee
    // cancels its source only once both branches are. The stream runs on, the key is held in flight
    // and renewed (an SSE stream that waits for onAbort: for the key's whole lifetime).
    expect(outcome.key?.[0]).toBe('client gone');
    // The payment was processed once: a retry is never processed again.
    expect([outcome.key?.[1], outcome.key?.[3]]).toEqual([200, 1]);
  }, 40_000);

  it('IDEM-10 IDEM-11 hono: a streamed 201 whose body fails after its head went out is not processed again on retry (409 not kept, as on Express)', async () => {
    const fapi = honoGuard(tpp.options);
    const app = new Hono();
    let processed = 0;
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), () => {
      // The payment is made, its answer streamed from a source that fails midway.
      processed++;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(`{"payment":"pay-${processed}",`));
          setTimeout(() => controller.error(new Error('ledger cursor closed')), 50);
        },
      });
      return new Response(body, { status: 201, headers: { 'content-type': 'application/json' } });
    });
    const served = await serveHono(app);
    try {
      const k = key('stream-fails');
      const first = await payAndWait(served.url, k);
      expect(first).toBe('201 cut off {"payment":"pay-1",');
      // (The client may retry before the first answer is recorded: 409 in flight, sent again.)
      let retry = await payAndWait(served.url, k);
      for (let i = 0; i < 20 && retry.includes(IN_FLIGHT); i++) {
        await pause(50);
        retry = await payAndWait(served.url, k);
      }
      // Current code: 201 pay-2, the payment made twice. recorder() records a body it could not
      // read as a 500, which frees the key (docs/packages/hono.md: "a stream that fails midway frees
      // it"), though the client got the 201 head: the request was processed. node.ts keeps the same
      // cut-off answer as "processed, response not kept" (attack review 8, finding 7).
      expect([retry, processed]).toEqual([expect.stringMatching(/^409 complete .*its response was not kept/), 1]);
    } finally {
      await served.close();
    }
  }, 60_000);

  describe('express: an app-wide layer requires Idempotency-Key, the payment route reads an optional x-idempotency-key of its own', () => {
    const startApp = (ledger: { processed: number }) =>
      startPaymentApp(
        'express',
        tpp.options,
        {
          '/payments': {
            layers: [{ scopes: ['payments:write'], idempotency: { mode: 'optional', syntax: 'uk-ob' } }],
            handle: () => jsonAnswer(201, { payment: `pay-${++ledger.processed}` }),
          },
        },
        { idempotency: 'required' },
      );

    it('IDEM-04 IDEM-16 a first request with both keys, its retry with the required key alone: not processed a second time', async () => {
      const ledger = { processed: 0 };
      const app = await startApp(ledger);
      try {
        const k = key('both-then-one');
        const route = `uk-${Math.random().toString(36).slice(2)}`;
        const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers: { 'x-idempotency-key': route } });
        expect(first.status).toBe(201);
        const retry = await settledRetry(app.url, k);
        // Current code: 201 pay-2. The route layer found its own key, freed the app-wide claim of the
        // Idempotency-Key and recorded the answer under x-idempotency-key alone (layers.ts
        // idempotencyAtLayer); the retry's Idempotency-Key is free again, the route finds no key of
        // its own and the app-wide claim lets the handler run again.
        expect([retry.status, retry.text, ledger.processed]).toEqual([201, first.text, 1]);
      } finally {
        await app.close();
      }
    });

    it('IDEM-04 IDEM-16 a first request with the required key alone, its retry with the route’s key added: not processed a second time', async () => {
      const ledger = { processed: 0 };
      const app = await startApp(ledger);
      try {
        const k = key('one-then-both');
        const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        expect(first.status).toBe(201);
        const route = `uk-${Math.random().toString(36).slice(2)}`;
        const retry = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY, headers: { 'x-idempotency-key': route } });
        // Current code: 201 pay-2. The app-wide layer found the stored answer (deferred to the route's
        // depth); the route layer, with a key of its own, drops that exchange and claims its own key.
        expect([retry.status, retry.text, ledger.processed]).toEqual([201, first.text, 1]);
      } finally {
        await app.close();
      }
    });
  });

  it.each(['express', 'hono'] as const)(
    'IDEM-04 IDEM-05 %s: two guards nested over one idempotency store: the payment is processed, not refused 409 and that refusal replayed',
    async (framework) => {
      // One store for the cluster (docs: "share it between instances"), given to both guards.
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
        const k = key('one-store');
        const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        const retry = await settledRetry(served.url, k);
        // Current code: 409 "still being processed" for the first request and every retry, nothing
        // processed. Both guards hash the same store key (issuer, client_id, key): the inner guard
        // finds the outer guard's claim in flight (exchange.ts), and the outer guard records that
        // refusal, another guard's, as the payment's answer (refusedByLayer knows its own layers only).
        expect([first.status, first.text, retry.status, retry.text, processed]).toEqual([201, '{"payment":"pay-1"}', 201, first.text, 1]);
      } finally {
        await served.close();
      }
    },
    30_000,
  );
});

describe('HTTP/2 (Node’s compatibility API): the first answer of a key route is recorded', () => {
  it.each([
    ['koa', 201],
    ['fastify', 201],
    ['koa', 204],
    ['fastify', 204],
  ] as const)(
    'IDEM-04 IDEM-12 IDEM-15 %s over h2c, a first answer %i: the retry gets the stored answer',
    async (framework, status) => {
      let processed = 0;
      let port: number;
      let close: () => Promise<void>;
      const answer = () => {
        processed++;
        return status === 201 ? { payment: `pay-${processed}` } : undefined;
      };
      if (framework === 'koa') {
        const fapi = koaGuard(tpp.options);
        const app = new Koa();
        app.silent = true;
        app.use(fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }));
        app.use((ctx) => {
          ctx.status = status;
          const body = answer();
          if (body) ctx.body = body;
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
          async (_request, reply) => reply.code(status).send(answer()),
        );
        await app.listen({ port: 0, host: '127.0.0.1' });
        port = (app.server.address() as AddressInfo).port;
        close = () => app.close();
      }
      try {
        const k = key(`h2-${framework}`);
        const first = await sendH2Payment(port, PUBLIC, tpp.payer, k, BODY);
        expect([first.status, first.text]).toEqual([status, status === 201 ? '{"payment":"pay-1"}' : '']);
        let retry = await sendH2Payment(port, PUBLIC, tpp.payer, k, BODY);
        for (let i = 0; i < 20 && retry.status === 409 && retry.text.includes(IN_FLIGHT); i++) {
          await pause(50);
          retry = await sendH2Payment(port, PUBLIC, tpp.payer, k, BODY);
        }
        // Current code, recordNodeResponse (core/src/idempotency/node.ts) on Node's Http2ServerResponse:
        // - 201: 409 "processed, response not kept" for 24 h. Http2ServerResponse.end(chunk) writes the
        //   chunk through this.write, the wrapped write: the body is counted twice, its size is not
        //   the Content-Length, and the answer is kept as "misframed".
        // - 204: 409 "still being processed" for 24 h. headerLines() calls res.getRawHeaderNames(),
        //   which Http2ServerResponse does not have: the TypeError is thrown from the wrapped end
        //   after `finished` was set and before ticket.finish, so the claim is never settled (its
        //   renewal runs on) and the 'close' settlement sees `finished` and does nothing.
        expect([retry.status, retry.text, processed]).toEqual([status, first.text, 1]);
      } finally {
        await close();
      }
    },
    30_000,
  );
});

describe('attacks that held', () => {
  it('IDEM-05 IDEM-06 another request under a key in flight on the same route: 409 while it runs, 422 once it ended, never processed', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let started!: () => void;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    let processed = 0;
    const app = await startPaymentApp('express', tpp.options, {
      '/payments': {
        layers: [{ scopes: ['payments:write'], idempotency: 'required' }],
        async handle() {
          started();
          await gate;
          return jsonAnswer(201, { payment: `pay-${++processed}` });
        },
      },
    });
    try {
      const k = key('in-flight-other');
      const other = '{"amount":"99.00"}';
      const first = sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      // The first request holds the key: its handler runs (and waits for the gate).
      await running;
      const during = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: other });
      open();
      expect((await first).status).toBe(201);
      const after = await settledRetry(app.url, k, other);
      expect([during.status, during.text, after.status, processed]).toEqual([409, expect.stringContaining(IN_FLIGHT), 422, 1]);
    } finally {
      await app.close();
    }
  });

  it.each(PAYMENT_FRAMEWORKS)(
    'IDEM-04 IDEM-12 %s: a client gone before the head, the handler answering later: the retry is never processed again, the key not left in flight',
    async (framework) => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      let processed = 0;
      const app = await startPaymentApp(framework, tpp.options, {
        '/payments': {
          layers: [{ scopes: ['payments:write'], idempotency: 'required' }],
          async handle() {
            started();
            await gate;
            return jsonAnswer(201, { payment: `pay-${++processed}` });
          },
        },
      });
      try {
        const k = key('gone-before-head');
        const { client, token } = tpp.payer;
        const dpop = await client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: token });
        const req = httpRequest(`${app.url}/payments`, { method: 'POST' });
        const closed = new Promise<void>((resolve) => req.on('close', () => resolve()));
        req.on('error', () => undefined);
        for (const [name, value] of Object.entries({
          authorization: `DPoP ${token}`,
          dpop,
          'content-type': 'application/json',
          'idempotency-key': k,
        }))
          req.setHeader(name, value);
        req.end(BODY);
        await running;
        req.destroy();
        await closed;
        open();
        const retry = await settledRetry(app.url, k);
        // The answer kept whole (201 replayed) or "processed, not kept" (Koa ends without the body): never a second payment.
        const answer = retry.status === 201 ? retry.text : `${retry.status} ${retry.text.includes(UNKEPT) ? 'not kept' : retry.text}`;
        expect([answer, processed]).toEqual([expect.stringMatching(/^(\{"payment":"pay-1"\}|409 not kept)$/), 1]);
      } finally {
        await app.close();
      }
    },
    30_000,
  );
});

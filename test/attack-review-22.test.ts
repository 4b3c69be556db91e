/**
 * Attack review 22: the two latest request-path changes — de4371d (Hono: each `protect()` layer of
 * one guard counts itself waiting on `next()`; the outermost, finding one still waiting, records
 * the answer as sent in the handler's place) and f1bc715 (Node: a key claimed after the answer
 * already went out is settled at once as processed, its answer not kept).
 *
 * Findings (each test asserts the secure behaviour and fails on 057931b; fixed after it: a Hono
 * layer that starts or finishes its checks once a layer resumed lets no handler run and frees a key
 * it claimed; a 5xx over an answer an inner layer saw below 500 is kept as processed; an answer
 * @hono/node-server sent shows in its head, body or not; Express writes nothing on a response sent
 * while it checked and lets no handler run):
 * 1. hono, paid twice: a timeout between the layer holding the key and a later layer of the guard
 *    that has not reached next() yet (a slow middleware, or the later layer's own async work):
 *    the outermost finds no layer waiting and records the 504 as the handler's 5xx (key freed).
 * 2. hono, paid twice: a timeout in front of the guard (the layout hono.md calls safe) whose answer
 *    has no body: `sentElsewhere` cannot see it was sent; recorded as the handler's 5xx.
 * 3. hono, paid twice: de4371d's own layout with an async app.onError: the handler answers while
 *    onError builds the 504; the outermost then finds no layer waiting and frees the key.
 * 4. hono, key in flight for its lifetime: the route's layer claims (slow store) after a bodyless
 *    504 went out; nobody records (f1bc715's case, not fixed on Hono for bodyless answers).
 * 5. express, crash: a timeout answers while protect() awaits a slow DPoP replay store; the layer
 *    then calls res.setHeader on a sent response inside `.then(onOk, next)`: unhandled rejection.
 * Attacks that held: the `held:` tests.
 */

import { createServer } from 'node:http';
import { MemoryReplayStore } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import express from 'express';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { serveHono } from './support/apps';
import { BODY, IN_FLIGHT, key, pause, signal, UNKEPT } from './support/hang-up';
import { honoTimeouts, slowClaimStore, timeoutOnce } from './support/hono-timeouts';
import { listening } from './support/http';
import { sendPayment, useTppUsers } from './support/idempotency-apps';

const PUBLIC = 'https://api.bank.example';
const tpp = useTppUsers(PUBLIC);
const SCOPES = ['payments:write'];

const { settledRetry, paidAfterTimeout } = honoTimeouts(tpp, PUBLIC);

/** What the retry of a payment made once must get: its stored answer, or 409 "not kept"; never a second payment. */
const answeredOnce = (retry: { status: number; text: string }) =>
  retry.status === 409 ? retry.text.includes(UNKEPT) : retry.text.includes('"pay-1"');

describe('findings', () => {
  it('finding 1: hono, a timeout between the layer holding the key and a later layer of the guard that has not reached next() yet: its 504 frees the key, the handler pays after it, the retry pays again', async () => {
    // Layout: app.use(fapi.protect({ idempotency })) (the key, app-wide), then a timeout, then an
    // async middleware (a rate limiter on Redis, a lookup), then the route's fapi.protect({ scopes }).
    // de4371d counts only layers that are already waiting on next(): the timeout fires while the
    // route's layer has not started (it is behind the slow middleware), so the outermost layer finds
    // none waiting and records the 504 as the handler's own server error: the key is freed
    // (index.ts: `recordAnswer(c, c.res, (waiting.get(c) ?? 0) > 0)`). Hono does not stop the chain:
    // the middleware goes on, the route's layer lets the request through (the exchange is open,
    // its ticket already settled), the handler pays. The retry under the same key is processed
    // again. hono.md promises the opposite for a timeout between two layers of the guard.
    const fapi = honoGuard(tpp.options);
    const app = new Hono();
    let processed = 0;
    const [slow, timedOut, ranOn] = [signal(), signal(), signal()];
    // What the chain running on throws (the timeout's own exception is answered as Hono does).
    const errors: unknown[] = [];
    app.onError((error, c) => {
      if (error instanceof HTTPException) return error.getResponse();
      errors.push(error);
      return c.text('Internal Server Error', 500);
    });
    app.use('/payments', fapi.protect({ scopes: SCOPES, idempotency: 'required' }));
    app.use('/payments', timeoutOnce(slow.promise));
    let first = true;
    app.use('/payments', async (_c, next) => {
      if (!first) return next();
      first = false;
      slow.fire();
      await timedOut.promise;
      await next();
      ranOn.fire();
    });
    app.post('/payments', fapi.protect({ scopes: SCOPES }), (c) => {
      processed++;
      return c.json({ payment: `pay-${processed}` }, 201);
    });
    const served = await serveHono(app);
    try {
      const k = key('between-before-inner');
      const answer = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(answer.status).toBe(504);
      timedOut.fire();
      await ranOn.promise;
      // Was (057931b): the handler paid after the 504 and the retry paid again (201 pay-2, processed
      // 2). The route's layer, started after the outer one resumed, lets no handler run: the 504 was
      // the answer, the key it freed is the retry's, which pays once.
      expect([processed, errors]).toEqual([0, []]);
      const retry = await settledRetry(served.url, k);
      expect([retry.status, answeredOnce(retry), processed]).toEqual([201, true, 1]);
    } finally {
      timedOut.fire();
      await served.close();
    }
  }, 30_000);

  it('finding 2: hono, a timeout in front of the guard whose 504 has no body: the answer sent in the handler’s place is taken for the handler’s own server error, the key freed, the payment made twice', async () => {
    // Layout: the one hono.md says is safe ("A middleware in front of the guard that answers while
    // the handler runs on ... never freed for a second payment"), with an answer without a body:
    // `new HTTPException(504, { res: new Response(null, { status: 504 }) })`, `c.body(null, 503)`
    // from an onError. index.ts `sentElsewhere` tells an answer already being sent only by its
    // body being taken (`bodyUsed`, `body.locked`, or @hono/node-server throwing on it); a null
    // body is never taken, so when the guard's layer resumes after the handler paid, it finds the
    // 504 in c.res (Hono dropped the handler's 201), not "sent elsewhere", and no layer waiting
    // inside it: `record(504)` frees the key. The retry pays again.
    // Fix: mark the answer sent independently of its body (e.g. a layer that saw `c.finalized`
    // change to a response that is not the one the handler returned, or compare `c.res` with the
    // handler's return; on @hono/node-server `c.env.outgoing.headersSent`).
    const fapi = honoGuard(tpp.options);
    const bodyless = () => new HTTPException(504, { res: new Response(null, { status: 504 }) });
    const outcome = await paidAfterTimeout((app, timeout, handler) => {
      app.use('/payments', timeout);
      app.post('/payments', fapi.protect({ scopes: SCOPES, idempotency: 'required' }), handler);
    }, bodyless);
    // Was (057931b): 201 pay-2, processed 2.
    expect(outcome).toEqual({ status: 409, unkept: true, processed: 1 });
  }, 30_000);

  it.each([
    ['a 504 (HTTPException)', () => new HTTPException(504, { message: 'Gateway Timeout' }), 504],
    ['a 500 (a plain Error)', () => new Error('timed out'), 500],
  ])(
    'finding 3: hono, a timeout between two layers of the guard and an async onError: the handler finishes while onError builds %s, the outer layer finds no layer waiting and frees the key of the payment made',
    async (_what, exception, status) => {
      // Layout: de4371d's own (app-wide protect(), a timeout, the route's protect() with the key), and
      // an `app.onError` that awaits something (a log shipper, an error reporter) before answering.
      // Hono's compose awaits onError for the timeout's exception; meanwhile the handler pays and
      // returns 201, the route's layer resumes (waiting back to 0) and, not the outermost, records
      // nothing. Then onError's 504 replaces c.res (isError), and the outer layer resumes: no layer
      // waiting, the 504 not being sent yet: recorded as the handler's server error, the key freed
      // while the payment it made stands (the client got 504). The retry pays again.
      // Fix: the layer that waited on the handler tells the outer one what the handler answered (or
      // that it did answer): the outer layer, finding a 5xx in c.res over a handler's non-5xx answer
      // that went through an inner layer, records it as processed (not kept), never frees the key.
      const guard = honoGuard(tpp.options).guard;
      const [appWide, route] = [honoGuard(guard), honoGuard(guard)];
      const app = new Hono();
      let processed = 0;
      const [started, paid, reported] = [signal(), signal(), signal()];
      app.onError(async (error, c) => {
        // The error reporter: done once the handler has answered.
        await reported.promise;
        return error instanceof HTTPException ? error.getResponse() : c.text('Internal Server Error', 500);
      });
      app.use('/payments', appWide.protect({ scopes: SCOPES }));
      app.use('/payments', timeoutOnce(started.promise, exception));
      app.post('/payments', route.protect({ scopes: SCOPES, idempotency: 'required' }), async (c) => {
        started.fire();
        processed++;
        // The handler's answer is made after the timeout fired (a macrotask later).
        await pause(20);
        paid.fire();
        return c.json({ payment: `pay-${processed}` }, 201);
      });
      paid.promise.then(() => setTimeout(reported.fire, 20));
      const served = await serveHono(app);
      try {
        const k = key('between-async-onerror');
        const answer = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        expect(answer.status).toBe(status);
        const retry = await settledRetry(served.url, k);
        // Current code: 201 pay-2, processed 2.
        expect([answeredOnce(retry), processed]).toEqual([true, 1]);
      } finally {
        reported.fire();
        await served.close();
      }
    },
    30_000,
  );
});

/**
 * The app-wide layer, a timeout that answers once the route's layer asks the (slow) store to claim
 * the key, the route's layer with the key; the store claims once the 504 went out, the handler pays.
 * The retry's answer and the payments made.
 */
async function claimedAfterTimeout(exception?: () => HTTPException) {
  const [claiming, timedOut] = [signal(), signal()];
  const store = slowClaimStore(0, claiming, timedOut);
  const fapi = honoGuard({ ...tpp.options, idempotency: { store } });
  const app = new Hono();
  let processed = 0;
  app.use('/payments', fapi.protect({ scopes: SCOPES }));
  app.use('/payments', timeoutOnce(claiming.promise, exception));
  app.post('/payments', fapi.protect({ scopes: SCOPES, idempotency: 'required' }), (c) => {
    processed++;
    return c.json({ payment: `pay-${processed}` }, 201);
  });
  const served = await serveHono(app);
  try {
    const k = key('between-slow-claim');
    const answer = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
    expect(answer.status).toBe(504);
    timedOut.fire();
    // A few retries over a second: a key settled answers at once.
    const retry = await settledRetry(served.url, k, 20);
    return { status: retry.status, inFlight: retry.text.includes(IN_FLIGHT), unkept: retry.text.includes(UNKEPT), processed };
  } finally {
    timedOut.fire();
    await served.close();
  }
}

describe('findings (f1bc715’s case on Hono)', () => {
  it('finding 4: hono, the timeout between the layers answers a 504 without a body while the route’s layer is claiming the key (slow store): the payment made after it leaves the key in flight for its lifetime', async () => {
    // Layout: app-wide protect(), a timeout, the route's protect({ idempotency }); an idempotency
    // store that is slow (Redis at its timeoutMs). The 504 (no body) goes out while the route's
    // layer waits on the claim: the outer layer resumes with nothing to record (no claim yet). The
    // claim then succeeds, the handler pays, and the route's layer — not the outermost — records
    // only an answer "sent elsewhere", which index.ts `sentElsewhere` cannot see in a response
    // without a body (the same blind spot as finding 2). Nobody records; the claim is renewed every
    // half lease up to the key's lifetime: every retry gets 409 "still being processed" (24 h),
    // the client cannot learn that it paid. With a 504 that has a body the same layout holds (below).
    // Fix: as finding 2; and the layer that claimed after its answer went out settles its claim
    // at once as processed (what f1bc715 does for the Node adapters).
    // Was (057931b): every retry 409 "still being processed". The route's layer, its claim made once
    // the outer layer resumed, frees it and lets no handler run: the retry pays, once.
    const bodyless = () => new HTTPException(504, { res: new Response(null, { status: 504 }) });
    expect(await claimedAfterTimeout(bodyless)).toEqual({ status: 201, inFlight: false, unkept: false, processed: 1 });
  }, 30_000);
});

describe('held', () => {
  it('held: hono, a timeout between the app-wide layer and the route’s layer with the key that fires while the route’s layer is still claiming (slow store): the handler does not run, the retry pays once', async () => {
    expect(await claimedAfterTimeout()).toEqual({ status: 201, inFlight: false, unkept: false, processed: 1 });
  }, 30_000);
});

describe('held: hono, de4371d’s count across app.route() and across guards', () => {
  it('held: the app-wide layer and the timeout in the parent app, the route’s layer with the key in an app.route() sub-app (one Context): 409 not kept, paid once', async () => {
    const fapi = honoGuard(tpp.options);
    const outcome = await paidAfterTimeout((app, timeout, handler) => {
      app.use('/payments', fapi.protect({ scopes: SCOPES }));
      app.use('/payments', timeout);
      const payments = new Hono();
      payments.post('/', fapi.protect({ scopes: SCOPES, idempotency: 'required' }), handler);
      app.route('/payments', payments);
    });
    expect(outcome).toEqual({ status: 409, unkept: true, processed: 1 });
  }, 30_000);

  it('held: two guards, the timeout between guard A’s app-wide layer and guard B’s route layer with the key: B is its own outermost, finds the 504 being sent, 409 not kept, paid once', async () => {
    const [a, b] = [honoGuard(tpp.options), honoGuard(tpp.options)];
    const outcome = await paidAfterTimeout((app, timeout, handler) => {
      app.use('/payments', a.protect({ scopes: SCOPES }));
      app.use('/payments', timeout);
      app.post('/payments', b.protect({ scopes: SCOPES, idempotency: 'required' }), handler);
    });
    expect(outcome).toEqual({ status: 409, unkept: true, processed: 1 });
  }, 30_000);

  it('held: one guard, the key on both layers (the same settings: one exchange), the timeout between them: 409 not kept, paid once', async () => {
    const fapi = honoGuard(tpp.options);
    const outcome = await paidAfterTimeout((app, timeout, handler) => {
      app.use('/payments', fapi.protect({ scopes: SCOPES, idempotency: 'optional' }));
      app.use('/payments', timeout);
      app.post('/payments', fapi.protect({ scopes: SCOPES, idempotency: 'required' }), handler);
    });
    expect(outcome).toEqual({ status: 409, unkept: true, processed: 1 });
  }, 30_000);
});

/**
 * An Express payment API behind `fapi.protect({ idempotency: 'required' })`, with connect-timeout's
 * way in front (next() at once, its own 504 later): request number `timedOutRequest` (1 = the
 * first) is answered 504 once `timeout` resolves. What reaches Express's error handlers, and the
 * payments made.
 */
async function expressWithTimeout(fapi: ReturnType<typeof expressGuard>, timedOutRequest: number, timeout: Promise<void>) {
  const app = express();
  const ledger = { processed: 0, errors: [] as unknown[] };
  let requests = 0;
  app.use((_req, res, next) => {
    if (++requests === timedOutRequest)
      timeout.then(() => {
        if (!res.headersSent) res.status(504).json({ error: 'gateway_timeout' });
      });
    next();
  });
  app.post('/payments', fapi.protect({ scopes: SCOPES, idempotency: 'required' }), (_req, res) => {
    ledger.processed++;
    if (!res.headersSent) res.status(201).json({ payment: `pay-${ledger.processed}` });
  });
  app.use((error: unknown, _req: express.Request, _res: express.Response, next: express.NextFunction) => {
    ledger.errors.push(error);
    next(error);
  });
  const served = await listening(createServer(app).listen(0, '127.0.0.1'));
  return { ...served, ledger };
}

describe('express: an answer sent while the guard awaits its stores', () => {
  it('finding 5: express, a timeout in front of the guard that answers while the DPoP replay store is slow: the guard’s layer then sets its headers on a response already sent and the rejection is unhandled (the process dies under Node’s default)', async () => {
    // Layout: connect-timeout's way (next() at once, its own 504 when the time is up) in front of
    // fapi.protect(); a `dpop.replayStore` on Redis that is slow (its timeoutMs). The 504 goes out
    // while protectNodeRequest awaits the store; when it resolves, express/src/middleware.ts
    // `protect` runs `res.setHeader(x-fapi-interaction-id, …)` on a response whose head is sent:
    // ERR_HTTP_HEADERS_SENT thrown inside the `.then(onOk, next)` callback — `next` is not its
    // rejection handler, so the promise rejects unhandled: Node (--unhandled-rejections=throw, the
    // default) ends the process, every request in flight with it. The same for a refusal written
    // then (sendGuardError's setHeader), and for f1bc715's path when a later layer refuses.
    // Fix: in the adapters, after each await, return (or next()) when `res.headersSent`; and
    // attach the error path to the whole chain (`.then(onOk).catch(next)`).
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    const [claiming, timedOut] = [signal(), signal()];
    const replays = new MemoryReplayStore();
    let claims = 0;
    const replayStore = {
      async claim(k: string, expiresAt: number) {
        if (claims++ === 0) {
          claiming.fire();
          await timedOut.promise;
        }
        return replays.claim(k, expiresAt);
      },
    };
    const fapi = expressGuard({ ...tpp.options, dpop: { replayStore } });
    const served = await expressWithTimeout(fapi, 1, claiming.promise);
    const { ledger } = served;
    try {
      const k = key('express-slow-replay-store');
      const answer = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(answer.status).toBe(504);
      timedOut.fire();
      await pause(200);
      // Was (057931b): one unhandled rejection, ERR_HTTP_HEADERS_SENT. The layer now writes nothing
      // on the response sent while it checked and lets no handler run; the retry pays, once.
      expect(rejections.map((r) => (r as { code?: string }).code)).toEqual([]);
      expect([ledger.errors, ledger.processed]).toEqual([[], 0]);
      const retry = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([retry.status, retry.text.includes('"pay-1"'), ledger.processed]).toEqual([201, true, 1]);
    } finally {
      timedOut.fire();
      process.off('unhandledRejection', onRejection);
      await served.close();
    }
  }, 30_000);
});

describe('express: a stored answer found while the answer already went out', () => {
  it('finding 6: express, a retry whose key lookup is slow while a timeout in front answers: the stored answer is not written on the sent response, no error reaches the app, no second payment', async () => {
    // Found while fixing finding 5 (the same layout, the idempotency store slow instead): the retry's lookup
    // finds the first payment's answer after the 504 went out. Writing the replay then would
    // throw ERR_HTTP_HEADERS_SENT into Express's error handlers.
    const [claiming, timedOut] = [signal(), signal()];
    const store = slowClaimStore(1, claiming, timedOut);
    const fapi = expressGuard({ ...tpp.options, idempotency: { store } });
    const served = await expressWithTimeout(fapi, 2, claiming.promise);
    const { ledger } = served;
    try {
      const k = key('express-slow-lookup');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(first.status).toBe(201);
      const retry = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(retry.status).toBe(504);
      timedOut.fire();
      await pause(100);
      expect([ledger.errors, ledger.processed]).toEqual([[], 1]);
    } finally {
      timedOut.fire();
      await served.close();
    }
  }, 30_000);
});

describe('held: hono, a server error of the handler itself through two layers', () => {
  it('held: the app-wide layer and the route’s layer with the key, the handler answers exactly 500: the key is freed, the retry is processed again (IDEM-10)', async () => {
    // The other side of finding 3's fix: a 5xx the inner layer saw itself is the handler's own.
    const fapi = honoGuard(tpp.options);
    const app = new Hono();
    let processed = 0;
    app.use('/payments', fapi.protect({ scopes: SCOPES }));
    app.post('/payments', fapi.protect({ scopes: SCOPES, idempotency: 'required' }), (c) => {
      processed++;
      return processed === 1 ? c.json({ error: 'ledger down, nothing booked' }, 500) : c.json({ payment: `pay-${processed}` }, 201);
    });
    const served = await serveHono(app);
    try {
      const k = key('handler-500-two-layers');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      const retry = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, retry.status, retry.text.includes('"pay-2"'), processed]).toEqual([500, 201, true, 2]);
    } finally {
      await served.close();
    }
  }, 30_000);
});

/**
 * Attack review 23: fresh eyes on attack review 22's fixes (811872b) — Express returning once the
 * response head is sent, Hono's layers letting no handler run once a layer resumed from `next()`.
 *
 * Findings (each test asserts the secure behaviour and fails on 811872b; fixed after it):
 * 1. express, request left hanging: a middleware in front of `protect()` that sends the head and
 *    keeps the response open (`res.flushHeaders()`, a first `write()`: server-sent events, a
 *    keep-alive) and calls next(). The guard saw `res.headersSent` and returned without answering
 *    or calling next(): the connection stays open until the client gives up. Now the misplaced
 *    middleware reaches the app's error handlers (the guard's headers, refusal or signature can no
 *    longer be sent), Express's final handler closes the connection, the handler does not run.
 * 2. express, the same for a retry's stored answer found after a timeout in front began streaming
 *    its answer (head sent, body not ended): the request hung.
 * 3. hono, a timeout in front of every layer that answers while a layer checks (a slow DPoP
 *    replay store) or before the route's layer starts (a slow middleware before it): no layer had
 *    resumed, so the handler ran after the 504 went out (a payment the client was told timed out;
 *    409 "not kept" to its retry). Express stops there too. Now once the Context has its answer
 *    (Hono keeps the first response set and drops a handler's later one), a layer that finishes its
 *    checks lets no handler run and frees the key in force (its own, or an earlier layer's).
 * 4. hono, a layer called by hand before another in one request (a middleware that runs
 *    `fapi.protect()(c, async () => {})`, then the route's own layer): the first layer had
 *    resumed, so the second let no handler run and Hono answered 500 ("Context is not finalized").
 *    (Without response signing or a key only: a layer given a `next` of one's own signs or records
 *    the empty response it finds; hono.md says layers are mounted, not called by hand.)
 * 5. hono, two guards (found in the first fix of 3): the key on guard A's app-wide layer, the
 *    timeout in front answering while guard B's route layer checks. B ran no handler but told only
 *    its own guard; A found the 504 being sent and kept its key as processed: 409 "not kept" to
 *    every retry, nothing paid. A layer that runs no handler now marks the request for every guard.
 * 6. hono, two guards, paid twice: the key on guard A's app-wide layer, the timeout between it and
 *    guard B's route layer, answering while the handler pays. Layers counted themselves waiting
 *    per guard: A found none of its own waiting, took the 504 for the handler's 5xx and freed the
 *    key. The count is now of every guard's layers.
 * Left as they are (helper review of this fix): a timeout that answers while a Node adapter claims
 * the key (a slow store) settles the key as processed and lets the handler run (f1bc715, 409 "not
 * kept" to retries: one payment, reported as processed); a layer in an app behind `app.mount()`
 * has a Context of its own and cannot see the outer app's timeout (hono.md).
 */

import { createServer, request as httpRequest } from 'node:http';
import { MemoryReplayStore } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { type FapiEnv, fapiGuard as honoGuard } from '@fapi-guard/hono';
import express from 'express';
import { type Handler, Hono, type MiddlewareHandler } from 'hono';
import { serveHono } from './support/apps';
import { BODY, key, pause, signal } from './support/hang-up';
import { honoTimeouts, slowClaimStore, timeoutOnce } from './support/hono-timeouts';
import { listening } from './support/http';
import { sendPayment, useTppUsers } from './support/idempotency-apps';

const PUBLIC = 'https://api.bank.example';
const tpp = useTppUsers(PUBLIC);
const SCOPES = ['payments:write'];
const MISPLACED = /the response head was sent before the guard answered/;
const { paidAfterTimeout } = honoTimeouts(tpp, PUBLIC);

/** The headers of a payment by the TPP's user, with its DPoP proof; `token: false` sends none. */
async function paymentHeaders(k?: string, token = true): Promise<Record<string, string>> {
  const { client, token: accessToken } = tpp.payer;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) {
    headers.authorization = `DPoP ${accessToken}`;
    headers.dpop = await client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken });
  }
  if (k !== undefined) headers['idempotency-key'] = k;
  return headers;
}

/**
 * Sends a payment and reports how its response ended: its status, whether its body came to its
 * end, or 'hung' when nothing closed it within `within` ms (the request is then abandoned).
 */
function paymentOutcome(url: string, headers: Record<string, string>, within = 3000) {
  return new Promise<{ status: number; complete: boolean } | 'hung'>((resolve, reject) => {
    const req = httpRequest(`${url}/payments`, { method: 'POST', headers }, (res) => {
      let complete = false;
      res.resume();
      res.on('end', () => {
        complete = true;
      });
      res.on('error', () => undefined);
      res.on('close', () => resolve({ status: res.statusCode ?? 0, complete }));
    });
    const timer = setTimeout(() => {
      resolve('hung');
      req.destroy();
    }, within);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
    req.end(BODY);
  });
}

/** An Express payments API with `inFront` before `protect()`: the payments made, what reached its error handlers. */
async function expressApp(inFront: express.RequestHandler, options = tpp.options, policy = {}) {
  const fapi = expressGuard(options);
  const app = express();
  const ledger = { processed: 0, errors: [] as string[] };
  app.use(inFront);
  app.post('/payments', fapi.protect({ scopes: SCOPES, ...policy }), (_req, res) => {
    ledger.processed++;
    res.status(201).json({ payment: `pay-${ledger.processed}` });
  });
  app.use((error: Error, _req: express.Request, _res: express.Response, next: express.NextFunction) => {
    ledger.errors.push(error.message);
    next(error);
  });
  const served = await listening(createServer(app).listen(0, '127.0.0.1'));
  return { ...served, ledger };
}

describe('express: a head sent in front of the guard with the response still open', () => {
  it.each([
    ['an authorized payment', true],
    ['a request without a token', false],
  ])(
    'finding 1: express, a middleware in front of protect() flushes the head and calls next(), %s: the request is not left hanging, the misplaced middleware reaches the app’s error handlers, the handler does not run',
    async (_name, token) => {
      // Was (811872b): `if (res.headersSent) return;` — no answer, no next(): 'hung'.
      const served = await expressApp((_req, res, next) => {
        res.flushHeaders();
        next();
      });
      try {
        const outcome = await paymentOutcome(served.url, await paymentHeaders(undefined, token));
        expect(outcome).toEqual({ status: 200, complete: false });
        expect(served.ledger).toEqual({ processed: 0, errors: [expect.stringMatching(MISPLACED)] });
      } finally {
        await served.close();
      }
    },
    30_000,
  );

  it('held: express, a timeout in front that answered in full while the guard checked: nothing reaches the app’s error handlers (finding 5 of review 22)', async () => {
    const [checking, answered] = [signal(), signal()];
    const replays = new MemoryReplayStore();
    const replayStore = {
      async claim(k: string, expiresAt: number) {
        checking.fire();
        await answered.promise;
        return replays.claim(k, expiresAt);
      },
    };
    const served = await expressApp(
      (_req, res, next) => {
        checking.promise.then(() => res.status(504).json({ error: 'gateway_timeout' }));
        next();
      },
      { ...tpp.options, dpop: { replayStore } },
    );
    try {
      const outcome = await paymentOutcome(served.url, await paymentHeaders());
      answered.fire();
      await pause(100);
      expect(outcome).toEqual({ status: 504, complete: true });
      expect(served.ledger).toEqual({ processed: 0, errors: [] });
    } finally {
      answered.fire();
      await served.close();
    }
  }, 30_000);
});

describe('express: a stored answer found once a timeout in front began its own', () => {
  it('finding 2: express, a retry whose key lookup is slow while a timeout in front has sent its head and streams its body: the request is not left hanging, nothing is replayed over it, no second payment', async () => {
    const [looking, streaming] = [signal(), signal()];
    // The retry's claim (the second) waits for the streaming answer (a Redis store at its timeoutMs).
    const store = slowClaimStore(1, looking, streaming);
    let requests = 0;
    const served = await expressApp(
      (_req, res, next) => {
        if (++requests === 2)
          looking.promise.then(() => {
            res.writeHead(504, { 'content-type': 'application/json' });
            res.write('{"error":');
            streaming.fire();
          });
        next();
      },
      { ...tpp.options, idempotency: { store } },
      { idempotency: 'required' },
    );
    try {
      const k = key('express-streaming-timeout');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(first.status).toBe(201);
      // Was (811872b): the stored answer found, `res.headersSent` → return: 'hung'.
      const retry = await paymentOutcome(served.url, await paymentHeaders(k));
      expect(retry).toEqual({ status: 504, complete: false });
      expect(served.ledger).toEqual({ processed: 1, errors: [expect.stringMatching(MISPLACED)] });
    } finally {
      streaming.fire();
      await served.close();
    }
  }, 30_000);
});

/** The slow parts a timeout fires during: a DPoP replay store, a middleware (a rate limiter on Redis). */
interface SlowParts {
  replayStore: { claim(key: string, expiresAt: number): Promise<boolean> };
  middleware: MiddlewareHandler;
}

/**
 * A Hono payments API laid out by `layout`: its timeout answers 504 once a slow part is reached,
 * which goes on once the 504 was received. The first status, the payments made by then, and the
 * retry's (same key) status and whether it made the first payment.
 */
async function timedOutBeforeHandler(layout: (app: Hono, timeout: MiddlewareHandler, handler: Handler, slow: SlowParts) => void) {
  const [reached, answered] = [signal(), signal()];
  const replays = new MemoryReplayStore();
  const slow: SlowParts = {
    replayStore: {
      async claim(k, expiresAt) {
        reached.fire();
        await answered.promise;
        return replays.claim(k, expiresAt);
      },
    },
    middleware: async (_c, next) => {
      reached.fire();
      await answered.promise;
      await next();
    },
  };
  const app = new Hono();
  let processed = 0;
  layout(
    app,
    timeoutOnce(reached.promise),
    (c) => {
      processed++;
      return c.json({ payment: `pay-${processed}` }, 201);
    },
    slow,
  );
  const served = await serveHono(app);
  try {
    const k = key('timed-out-before-handler');
    const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
    answered.fire();
    await pause(200);
    const paidBeforeRetry = processed;
    const retry = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
    return { first: first.status, paidBeforeRetry, retry: retry.status, paid: retry.text.includes('"pay-1"') };
  } finally {
    answered.fire();
    await served.close();
  }
}

/** What every layout below must give: 504, nothing paid after it, the retry processed (the key freed). */
const RETRY_PROCESSED = { first: 504, paidBeforeRetry: 0, retry: 201, paid: true };

describe('hono: a timeout in front of the guard that answers before the handler runs', () => {
  it('finding 3: hono, one layer with the key, the timeout answering while it checks (slow DPoP replay store): no handler runs after the 504, the key claimed then is freed, the retry is the one processed', async () => {
    // Was (811872b): paidBeforeRetry 1, the retry 409 "not kept".
    const outcome = await timedOutBeforeHandler((app, timeout, handler, slow) => {
      const fapi = honoGuard({ ...tpp.options, dpop: { replayStore: slow.replayStore } });
      app.post('/payments', timeout, fapi.protect({ scopes: SCOPES, idempotency: 'required' }), handler);
    });
    expect(outcome).toEqual(RETRY_PROCESSED);
  }, 30_000);

  it('held: hono, the same without a key: no handler runs after the 504', async () => {
    const outcome = await timedOutBeforeHandler((app, timeout, handler, slow) => {
      const fapi = honoGuard({ ...tpp.options, dpop: { replayStore: slow.replayStore } });
      app.post('/payments', timeout, fapi.protect({ scopes: SCOPES }), handler);
    });
    expect(outcome).toEqual(RETRY_PROCESSED);
  }, 30_000);

  it('finding 3: hono, the key on the app-wide layer, the timeout answering while a slow middleware before the route’s layer runs: the route’s layer runs no handler and frees the app-wide layer’s key', async () => {
    // Was (811872b): the handler paid after the 504, the retry 409 "not kept". Dropping the handler
    // without freeing the app-wide layer's claim would tell the retry "processed" with nothing paid.
    const outcome = await timedOutBeforeHandler((app, timeout, handler, slow) => {
      const fapi = honoGuard(tpp.options);
      app.use('/payments', timeout);
      app.use('/payments', fapi.protect({ scopes: SCOPES, idempotency: 'required' }));
      app.use('/payments', slow.middleware);
      app.post('/payments', fapi.protect({ scopes: SCOPES }), handler);
    });
    expect(outcome).toEqual(RETRY_PROCESSED);
  }, 30_000);

  it('finding 5: hono, two guards, the key on guard A’s app-wide layer, the timeout answering while guard B’s route layer checks (slow replay store): B runs no handler, A frees its key', async () => {
    // Was (the first fix of finding 3): B dropped the handler and told only its own guard; A found
    // the 504 being sent and kept the key as processed: every retry 409 "not kept", nothing paid.
    const outcome = await timedOutBeforeHandler((app, timeout, handler, slow) => {
      const a = honoGuard(tpp.options);
      const b = honoGuard({ ...tpp.options, dpop: { replayStore: slow.replayStore } });
      app.use('/payments', timeout);
      app.use('/payments', a.protect({ scopes: SCOPES, idempotency: 'required' }));
      app.post('/payments', b.protect({ scopes: SCOPES }), handler);
    });
    expect(outcome).toEqual(RETRY_PROCESSED);
  }, 30_000);
});

describe('hono: two guards, a timeout between them while the handler runs', () => {
  it('finding 6: hono, the key on guard A’s app-wide layer, the timeout between it and guard B’s route layer answering while the handler pays: kept as processed (409 not kept), paid once', async () => {
    // Was (811872b): layers counted themselves waiting per guard; A, finding none of its own
    // waiting, took the 504 for the handler's own 5xx and freed the key: the retry paid again.
    const [a, b] = [honoGuard(tpp.options), honoGuard(tpp.options)];
    const outcome = await paidAfterTimeout((app, timeout, handler) => {
      app.use('/payments', a.protect({ scopes: SCOPES, idempotency: 'required' }));
      app.use('/payments', timeout);
      app.post('/payments', b.protect({ scopes: SCOPES }), handler);
    });
    expect(outcome).toEqual({ status: 409, unkept: true, processed: 1 });
  }, 30_000);
});

describe('hono: layers called by hand', () => {
  it('finding 4: hono, a middleware that runs a layer with a no-op next() and then the route’s layer: the handler runs, once', async () => {
    const fapi = honoGuard(tpp.options);
    const app = new Hono<FapiEnv>();
    let processed = 0;
    const first = fapi.protect();
    const route = fapi.protect({ scopes: SCOPES });
    app.use('/payments', async (c, next) => {
      const refused = await first(c, async () => undefined);
      if (refused) return refused;
      return route(c, next);
    });
    app.post('/payments', (c) => {
      processed++;
      return c.json({ payment: `pay-${processed}` }, 201);
    });
    const served = await serveHono(app);
    try {
      // Was (811872b): 500 "Context is not finalized", processed 0.
      const paid = await sendPayment(served.url, PUBLIC, { who: tpp.payer, body: BODY });
      expect([paid.status, paid.text.includes('"pay-1"'), processed]).toEqual([201, true, 1]);
      const refused = await paymentOutcome(served.url, await paymentHeaders(undefined, false));
      expect([refused, processed]).toEqual([{ status: 401, complete: true }, 1]);
    } finally {
      await served.close();
    }
  }, 30_000);
});

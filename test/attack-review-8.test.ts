/**
 * Attack review 8: the idempotency exchange across layers after attack review 7 (layers counted
 * from the guard's first layer, Hono's per-guard replay marks and recorders, the unverified-claims
 * fingerprint of Open Finance Brasil bodies). Each test asserts the right behaviour; these failed
 * before their fixes (hono/src/index.ts keeps its layer state per core guard and records in the
 * background; runtime/fetch.ts NULL_BODY_STATUSES; exchange.ts: 409 for a key in flight on the same
 * route, an earlier release's response never replayed; layers.ts: a later layer without a key of
 * its own leaves the earlier claim in force; node.ts settles a response cut off after its head):
 *
 * 1. hono: two fapiGuard() adapters over one guard: the route layer's recorder is kept in its own
 *    adapter's map, the outermost layer (the other adapter) records nothing: the key stays in
 *    flight (409) for its lifetime;
 * 2. hono, Open Finance Brasil: the same split loses the replay mark: the bank's layer signs the
 *    stored bank JWT as handler JSON: 500 for every retry;
 * 3. hono on a standard Response (Bun, Deno, Workers): a stored 205 is rebuilt with a body: 500;
 * 4. hono: a streamed answer on a key route is held until the stream ends (a stall for SSE);
 * 5. a record of the release before attack review 6 written by a route's re-claim (layers counted
 *    from the route) is answered by the app-wide layer at once, before the route's scope check;
 * 6. a route layer with its own (optional) key header frees the app-wide layer's required claim
 *    before it finds no key of its own: the payment is processed twice;
 * 7. express: a response cut off after its head (no res.end) leaves the key "in flight", renewed
 *    for its lifetime;
 * 8. Open Finance Brasil: behind an app-wide key layer, a route with key rules of its own: a
 *    concurrent retry signed anew gets 422 (another request) instead of 409.
 */
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import { createGuard, type IdempotencyOutcome, type IdempotencyStore, MemoryIdempotencyStore, MemoryReplayStore } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { MessageSigningClient } from '@fapi-guard/testing';
import express from 'express';
import { Hono } from 'hono';
import { serveHono } from './support/apps';
import { BrazilParties, bankPayload, signedBody } from './support/brazil';
import { listening } from './support/http';
import { newLedger, sendPayment, useTppUsers } from './support/idempotency-apps';

const PUBLIC = 'https://api.bank.example';
/** The Fetch standard's Response, before @hono/node-server puts its light one in its place (serveHono). */
const NativeResponse = globalThis.Response;
const tpp = useTppUsers(PUBLIC);

const key = (name: string) => `"${name}-${process.pid}-${Math.random().toString(36).slice(2)}"`;
const BODY = '{"amount":"10.00"}';

// ---------------------------------------------------------------------------------------------
// Hono: two adapters over one core guard (`fapiGuard(guard)`: "or pass a guard you created")
// ---------------------------------------------------------------------------------------------

describe('hono: two fapiGuard() adapters over one guard', () => {
  it('IDEM-04 IDEM-16 an app-wide layer of one adapter, the key kept by a route layer of another: the retry gets the stored answer, the key is not held', async () => {
    const ledger = newLedger(0);
    // One guard, made once and shared by two modules of the app, each with its own adapter.
    const guard = createGuard(tpp.options);
    const appWide = honoGuard(guard);
    const payments = honoGuard(guard);
    const app = new Hono();
    app.use('*', appWide.protect());
    app.post('/payments', payments.protect({ scopes: ['payments:write'], idempotency: 'required' }), (c) =>
      c.json({ payment: `pay-${++ledger.processed}` }, 201),
    );
    const served = await serveHono(app);
    try {
      const k = key('two-adapters');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, first.json]).toEqual([201, { payment: 'pay-1' }]);
      const retry = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      // Current code: 409 idempotency_key_in_flight, for the key's whole lifetime (24 h; the claim is
      // renewed every half lease). The route layer's recorder went into its own adapter's
      // `recorders`; the outermost layer, of the other adapter, looks in its own map and records nothing.
      expect([retry.status, retry.text, ledger.processed]).toEqual([201, first.text, 1]);
    } finally {
      await served.close();
    }
  });
});

describe('hono: a stored answer whose status carries no content', () => {
  it('IDEM-04 IDEM-15 a first request answered 205 Reset Content: its retry gets the stored 205, not a 500 for the key’s lifetime (a runtime with the standard Response)', async () => {
    // Bun, Deno, Workers (and Node without @hono/node-server's light Response): the Fetch standard's
    // Response, which refuses a body, even an empty one, with a null-body status.
    const light = Object.getOwnPropertyDescriptor(globalThis, 'Response');
    Object.defineProperty(globalThis, 'Response', { value: NativeResponse, writable: true, configurable: true });
    try {
      const ledger = newLedger(0);
      const fapi = honoGuard(tpp.options);
      const app = new Hono();
      // PUT of a payment's form state: done, the client resets its view (RFC 9110 §15.3.6: no content).
      app.put('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), (c) => {
        ledger.processed++;
        return c.body(null, 205);
      });
      const k = key('reset');
      const put = async () => {
        const { client, token } = tpp.payer;
        const dpop = await client.proof({ htm: 'PUT', htu: `${PUBLIC}/payments`, accessToken: token });
        try {
          const res = await app.request(`${PUBLIC}/payments`, {
            method: 'PUT',
            headers: { authorization: `DPoP ${token}`, dpop, 'content-type': 'application/json', 'idempotency-key': k },
            body: BODY,
          });
          return [res.status, await res.text()];
        } catch (e) {
          // Hono answers 500 for an Error (here the TypeError comes from another realm than Jest's, so it passes through).
          return [500, String(e)];
        }
      };
      expect(await put()).toEqual([205, '']);
      // Current code: 500. storedFetchResponse (idempotency/fetch.ts) hands the stored empty body to
      // new Response() with status 205, a null-body status (Fetch: 101, 103, 204, 205, 304), which
      // throws a TypeError; its NO_CONTENT set lists 204 and 304 only. Every retry, for 24 h.
      expect([...(await put()), ledger.processed]).toEqual([205, '', 1]);
    } finally {
      if (light) Object.defineProperty(globalThis, 'Response', light);
    }
  });
});

describe('hono: a signed answer whose status carries no content (found while fixing 3)', () => {
  it('SIG-10 a 205 Reset Content on a signResponse route is signed and sent without a body, not 500 (a runtime with the standard Response)', async () => {
    const light = Object.getOwnPropertyDescriptor(globalThis, 'Response');
    Object.defineProperty(globalThis, 'Response', { value: NativeResponse, writable: true, configurable: true });
    try {
      const rsKey = MessageSigningClient.generate('ed25519', 'rs-key');
      const clientKeys = MessageSigningClient.generate('ed25519', 'client-key');
      const fapi = honoGuard({
        ...tpp.options,
        messageSigning: { clients: { 'client-tpp': { jwks: clientKeys.jwks } }, responseKey: rsKey.privateJwk },
      });
      const app = new Hono();
      app.put('/payments', fapi.protect({ scopes: ['payments:write'], signResponse: true }), (c) => c.body(null, 205));
      const { client, token } = tpp.payer;
      const dpop = await client.proof({ htm: 'PUT', htu: `${PUBLIC}/payments`, accessToken: token });
      let answer: [number, string, string | null];
      try {
        const res = await app.request(`${PUBLIC}/payments`, { method: 'PUT', headers: { authorization: `DPoP ${token}`, dpop } });
        answer = [res.status, await res.text(), res.headers.get('signature')];
      } catch (e) {
        answer = [500, String(e), null];
      }
      // Before the fix: 500 "The response could not be signed": signFetchResponse built the signed
      // Response with the (empty) bytes for a 205, which the standard Response refuses.
      expect(answer).toEqual([205, '', expect.stringMatching(/^sig\d*=:/)]);
    } finally {
      if (light) Object.defineProperty(globalThis, 'Response', light);
    }
  });
});

describe('hono: a streamed answer on a route with idempotency', () => {
  it('IDEM-04 the response head and the bytes produced so far go out while the handler still streams: no request held until the stream ends', async () => {
    const fapi = honoGuard(tpp.options);
    const app = new Hono();
    let open!: (by: string) => void;
    const gate = new Promise<string>((resolve) => {
      open = resolve;
    });
    // Generous fallback, so that the suite never hangs: the test asserts who opened the gate, not when.
    const fallback = setTimeout(() => open('fallback'), 12_000);
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), () => {
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode('{"status":"accepted"}\n'));
          // e.g. a payment's progress: the final event only once the client has the first one.
          await gate;
          controller.enqueue(encoder.encode('{"status":"settled"}\n'));
          controller.close();
        },
      });
      return new Response(body, { status: 201, headers: { 'content-type': 'application/x-ndjson' } });
    });
    const served = await serveHono(app);
    try {
      const { client, token } = tpp.payer;
      const dpop = await client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: token });
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${served.url}/payments`, { method: 'POST', timeout: 20_000 }, (res) => {
          // The head is here: the client now lets the payment settle.
          open('client');
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        for (const [name, value] of Object.entries({
          authorization: `DPoP ${token}`,
          dpop,
          'content-type': 'application/json',
          'idempotency-key': key('stream'),
        }))
          req.setHeader(name, value);
        req.end(BODY);
      });
      // Current code: the outermost layer reads a clone of the whole body (recorder in
      // idempotency/fetch.ts) before it returns the response, so nothing is sent until the stream
      // ends; a stream that ends only once the client has seen its start (or never: SSE) holds the
      // request (here until the fallback timer).
      expect([status, await gate]).toEqual([201, 'client']);
    } finally {
      clearTimeout(fallback);
      await served.close();
    }
  }, 30_000);
});

describe('express: a key recorded by the earlier release under a route’s own key rules', () => {
  it('IDEM-16 the retry of a token without the route’s scope is refused, not answered by the app-wide layer (a route re-claim counted its layers from itself)', async () => {
    const ledger = newLedger(0);
    // The store as the release before attack review 6 filled it for this app: the fingerprint is the
    // request part alone, and the route's layer, which re-claimed the key under its own settings
    // (another ttlSec), counted the layers from itself (layers.ts then: `depth: 1` at openAtLayer),
    // so the answer was kept as one layer deep where it is two from the guard's first layer.
    const memory = new MemoryIdempotencyStore();
    const store: IdempotencyStore = {
      claim: (k, fp, lease, client) => memory.claim(k, fp, lease, client),
      complete: (k, token, outcome: IdempotencyOutcome, ttl) =>
        memory.complete(
          k,
          token,
          outcome.state === 'done'
            ? {
                ...outcome,
                fingerprint: outcome.fingerprint.slice(outcome.fingerprint.indexOf('.') + 1),
                response: { ...outcome.response, layers: (outcome.response.layers ?? 1) - 1 },
              }
            : outcome,
          ttl,
        ),
      extend: (k, token, lease) => memory.extend(k, token, lease),
      release: (k, token) => memory.release(k, token),
    };
    const fapi = expressGuard({ ...tpp.options, idempotency: { store } });
    const app = express();
    app.use(fapi.protect({ idempotency: 'optional' }));
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: { mode: 'required', ttlSec: 172800 } }), (req, res) => {
      res.status(201).json({ payment: `pay-${++ledger.processed}`, owner: req.auth?.subject ?? null });
    });
    const server = await listening(createServer(app).listen(0, '127.0.0.1'));
    try {
      const k = key('legacy-reclaim');
      const first = await sendPayment(server.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, first.json]).toEqual([201, { payment: 'pay-1', owner: 'alice' }]);
      const stolen = await sendPayment(server.url, PUBLIC, { who: tpp.reader, key: k, body: BODY });
      // Before the fix: 201 with alice's payment. The app-wide layer opens the exchange (depth 1) and
      // reads the record as counted from itself (countedFromOpening: 1 + 1 - 1 = 1): answered at
      // once, the route's scope never checked. The earlier release counted it from the route's layer,
      // which no layer can tell: an earlier release's response is never replayed (409, look it up).
      expect([stolen.status, stolen.text]).toEqual([409, expect.stringContaining('its response was not kept')]);
      expect(stolen.text).not.toContain('alice');
      const retry = await sendPayment(server.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([retry.status, retry.text]).toEqual([409, stolen.text]);
      expect(ledger.processed).toBe(1);
    } finally {
      await server.close();
    }
  });
});

describe('express: a route layer with its own key header, the key optional there', () => {
  it('IDEM-04 IDEM-16 a client that sends the key the app-wide layer requires: its retry is not processed a second time', async () => {
    const ledger = newLedger(0);
    const fapi = expressGuard(tpp.options);
    const app = express();
    // Every POST must carry an Idempotency-Key; the UK payment route also reads x-idempotency-key.
    app.use(fapi.protect({ idempotency: 'required' }));
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: { mode: 'optional', syntax: 'uk-ob' } }), (_req, res) => {
      res.status(201).json({ payment: `pay-${++ledger.processed}` });
    });
    const server = await listening(createServer(app).listen(0, '127.0.0.1'));
    try {
      const k = key('app-wide-required');
      const first = await sendPayment(server.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      const retry = await sendPayment(server.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(first.status).toBe(201);
      // Current code: 201 pay-2, the payment made twice. The route's layer has other key settings
      // (another header), so it governs: it frees the app-wide layer's claim (layers.ts
      // idempotencyAtLayer) before it reads its own header, finds none, and lets the request through
      // with no claim at all. The key the client was required to send protects nothing.
      expect([retry.status, retry.text, ledger.processed]).toEqual([201, first.text, 1]);
    } finally {
      await server.close();
    }
  });
});

describe('express: a response that ends without end()', () => {
  it('IDEM-10 IDEM-12 a handler that fails after its head was sent (Express destroys the socket, res.end never runs): the key is not left in flight, renewed for its lifetime', async () => {
    const fapi = expressGuard(tpp.options);
    const app = express();
    let attempts = 0;
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), (_req, res) => {
      attempts++;
      // A streamed answer whose source fails midway (a ledger cursor, a template): Express's
      // final handler then destroys the socket, as the head is already sent.
      res.writeHead(201, { 'content-type': 'application/json' });
      res.write('{"payment":');
      throw new Error('ledger cursor closed');
    });
    const server = await listening(createServer(app).listen(0, '127.0.0.1'));
    try {
      const k = key('destroyed');
      // The client sees the head, then the connection closes before the body is complete.
      const first = await new Promise<string>((resolve, reject) => {
        void tpp.payer.client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: tpp.payer.token }).then((dpop) => {
          const req = httpRequest(`${server.url}/payments`, { method: 'POST' }, (res) => {
            res.on('error', () => undefined);
            res.resume();
            res.on('close', () => resolve(`${res.statusCode} ${res.complete ? 'complete' : 'cut off'}`));
          });
          req.on('error', reject);
          for (const [name, value] of Object.entries({
            authorization: `DPoP ${tpp.payer.token}`,
            dpop,
            'content-type': 'application/json',
            'idempotency-key': k,
          }))
            req.setHeader(name, value);
          req.end(BODY);
        }, reject);
      });
      expect(first).toBe('201 cut off');
      const retry = await sendPayment(server.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      // Before the fix: 409 "still being processed; retry later", for the key's whole lifetime (24 h):
      // recordNodeResponse (idempotency/node.ts) settled the ticket only in res.end, and its renewal
      // timer kept the claim for ttlSec. The request is over and part of its answer went out: kept
      // as "processed, response not kept" (an answer not sent as declared), never processed again.
      expect([retry.status, retry.text, attempts]).toEqual([409, expect.stringContaining('its response was not kept'), 1]);
    } finally {
      await server.close();
    }
  });
});

describe('attacks that held', () => {
  it('IDEM-04 IDEM-16 express: two fapiGuard() adapters over one guard share the exchange (the state is the core’s, kept by the request)', async () => {
    const ledger = newLedger(0);
    const guard = createGuard(tpp.options);
    const appWide = expressGuard(guard);
    const payments = expressGuard(guard);
    const app = express();
    app.use(appWide.protect());
    app.post('/payments', payments.protect({ scopes: ['payments:write'], idempotency: 'required' }), (req, res) => {
      res.status(201).json({ payment: `pay-${++ledger.processed}`, owner: req.auth?.subject ?? null });
    });
    const server = await listening(createServer(app).listen(0, '127.0.0.1'));
    try {
      const k = key('express-two-adapters');
      const first = await sendPayment(server.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, first.json]).toEqual([201, { payment: 'pay-1', owner: 'alice' }]);
      const stolen = await sendPayment(server.url, PUBLIC, { who: tpp.reader, key: k, body: BODY });
      expect([stolen.status, stolen.text.includes('alice')]).toEqual([403, false]);
      const retry = await sendPayment(server.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([retry.status, retry.text, ledger.processed]).toEqual([201, first.text, 1]);
    } finally {
      await server.close();
    }
  });

  it('IDEM-10 hono: two guards nested, each keeping a key; a handler that throws what is not an Error frees both (the retry is processed)', async () => {
    const ledger = newLedger(0);
    const outer = honoGuard(tpp.options);
    // Another guard (its own options, store and replay store) for the same issuer.
    const inner = honoGuard({ ...tpp.options, dpop: { replayStore: new MemoryReplayStore() } });
    const app = new Hono();
    let attempts = 0;
    app.use('*', outer.protect({ idempotency: 'required' }));
    app.post('/payments', inner.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (c) => {
      attempts++;
      if (attempts === 1) throw { code: 'ETIMEDOUT' };
      return c.json({ payment: `pay-${++ledger.processed}` }, 201);
    });
    const served = await serveHono(app);
    try {
      const k = key('nested-throw');
      expect((await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY })).status).toBe(500);
      const retry = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      const again = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([retry.status, again.status, again.text, attempts, ledger.processed]).toEqual([201, 201, retry.text, 2, 1]);
    } finally {
      await served.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Open Finance Brasil
// ---------------------------------------------------------------------------------------------

describe('Open Finance Brasil', () => {
  const br = BrazilParties.use();

  it('BR-07 IDEM-15 IDEM-17 hono: the bank’s layer of one adapter keeps the key, a scope layer of another adapter (same guard) answers the retry: the stored answer, signed anew', async () => {
    const ledger = { processed: 0 };
    const guard = createGuard(br.options());
    const bank = honoGuard(guard);
    const scopes = honoGuard(guard);
    const app = new Hono();
    app.post(
      '/payments',
      bank.protect({ jwtBody: { request: 'required', response: true }, idempotency: { mode: 'required', syntax: 'br-of' } }),
    );
    app.post('/payments', scopes.protect({ scopes: ['payments:write'] }));
    app.post('/payments', (c) => c.json({ data: { paymentId: `pay-${++ledger.processed}` } }, 201));
    const served = await serveHono(app);
    try {
      const k = randomUUID();
      const data = '{"payment":{"amount":"1.00"}}';
      const first = await br.pay(served.url, signedBody(data), k);
      expect([first.status, first.headers['content-type']]).toEqual([201, 'application/jwt']);
      const retry = await br.pay(served.url, signedBody(data), k);
      // Current code: 500 "The response could not be signed". The replay mark went into the scope
      // adapter's `replays`; the bank's layer (the other adapter) signs the stored bank JWT as if it
      // were the handler's JSON (JSON.parse of a JWT throws).
      expect([retry.status, retry.headers['content-type'], ledger.processed]).toEqual([201, 'application/jwt', 1]);
      expect((await bankPayload(retry.text)).data).toEqual({ data: { paymentId: 'pay-1' } });
    } finally {
      await served.close();
    }
  });

  it('IDEM-05 IDEM-17 an app-wide key layer and a payment route with key rules of its own: a retry (signed anew) while the first runs gets 409, not 422', async () => {
    const fapi = expressGuard(br.options());
    const app = express();
    let started!: () => void;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const ledger = { processed: 0 };
    app.use(fapi.protect({ idempotency: { mode: 'required', syntax: 'br-of' } }));
    // The payment route keeps its keys 48 h (other key settings: it governs the key, layers.ts).
    app.post(
      '/payments',
      fapi.protect({
        scopes: ['payments:write'],
        jwtBody: { request: 'required', response: true },
        idempotency: { mode: 'required', syntax: 'br-of', ttlSec: 172800 },
      }),
      async (_req, res) => {
        started();
        await gate;
        res.status(201).json({ data: { paymentId: `pay-${++ledger.processed}` } });
      },
    );
    const server = await listening(createServer(app).listen(0, '127.0.0.1'));
    try {
      const k = randomUUID();
      const data = '{"payment":{"amount":"1.00"}}';
      const first = br.pay(server.url, signedBody(data), k);
      await running;
      const retry = await br.pay(server.url, signedBody(data), k);
      finish();
      expect((await first).status).toBe(201);
      // Current code: 422 idempotency_key_reused, at once, from the app-wide layer. The route's claim
      // holds the fingerprint of the verified data claim; the app-wide layer fingerprints the
      // unverified claims (another kind: never equal), and an in-flight record has no depth to wait
      // for. Told "another request under this key", a client makes a new key and pays twice.
      expect(retry.status).toBe(409);
      const later = await br.pay(server.url, signedBody(data), k);
      expect([later.status, ledger.processed]).toEqual([201, 1]);
    } finally {
      await server.close();
    }
  });

  it('IDEM-16 IDEM-17 BR-06 held: behind an app-wide key layer, a malformed signed body frees the key; media-type variants and a duplicate data member read as the verifier reads them', async () => {
    const fapi = expressGuard(br.options());
    const app = express();
    const ledger = { processed: 0 };
    app.use(fapi.protect({ idempotency: { mode: 'required', syntax: 'br-of' } }));
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], jwtBody: { request: 'required', response: true } }), (_req, res) => {
      res.status(201).json({ data: { paymentId: `pay-${++ledger.processed}` } });
    });
    const server = await listening(createServer(app).listen(0, '127.0.0.1'));
    try {
      const k = randomUUID();
      const data = '{"payment":{"amount":"1.00"}}';
      // Four segments: no compact JWS to the app-wide layer (bytes fingerprint), refused by the route.
      const malformed = await br.pay(server.url, `${signedBody(data)}.AAAA`, k, { contentType: 'Application/JWT; charset=UTF-8' });
      expect([malformed.status, ledger.processed]).toEqual([400, 0]);
      const first = await br.pay(server.url, signedBody(data), k, { contentType: 'Application/JWT; charset=UTF-8' });
      expect([first.status, ledger.processed]).toEqual([201, 1]);
      const retry = await br.pay(server.url, signedBody(data), k, { contentType: 'APPLICATION/JWT;charset=utf-8' });
      expect([retry.status, retry.headers['content-type'], ledger.processed]).toEqual([201, 'application/jwt', 1]);
      expect((await bankPayload(retry.text)).data).toEqual({ data: { paymentId: 'pay-1' } });
      // Two data members: JSON.parse keeps the last, for the unverified fingerprint as for the verifier.
      const shadowed = await br.pay(server.url, signedBody(`{"payment":{"amount":"999.00"}},"data":${data}`), k);
      expect([shadowed.status, ledger.processed]).toEqual([201, 1]);
      expect((await bankPayload(shadowed.text)).data).toEqual({ data: { paymentId: 'pay-1' } });
      const other = await br.pay(server.url, signedBody(`${data},"data":{"payment":{"amount":"999.00"}}`), k);
      expect([other.status, ledger.processed]).toEqual([422, 1]);
    } finally {
      await server.close();
    }
  });
});

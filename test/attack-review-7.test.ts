/**
 * Attack review 7: the idempotency exchange across layers of one guard after the fixes of attack
 * review 6 (fingerprints `<target>.<request>`, deferred answers, Hono's outermost recorder).
 * Each test asserts the right behaviour; every one failed before its fix:
 *
 * 1. a route layer with key rules of its own claimed the key again counting from 1, so the answer
 *    was stored as one layer deep and the app-wide layer replayed it to a token without the
 *    route's scope (layers.ts: the layers are counted from the first one);
 * 2. a key recorded by the earlier release (no target part) was replayed at once, before the
 *    route's layer (exchange.ts: the same request is the same route);
 * 3. hono: a handler that throws what is not an Error left the key in flight for its lifetime
 *    (the outermost layer frees it, as for a 5xx);
 * 4. hono: another guard's layer between the bank's layers recorded the bank guard's claim before
 *    it was signed (the recorders are kept per guard);
 * 5. a route that never verifies signed bodies took two application/jwt bodies with one `data`
 *    claim for one request (unverified bodies are fingerprinted by all claims but `jti`, `iat`).
 */
import { createServer } from 'node:http';
import {
  type Authorized,
  type GuardOptions,
  type IdempotencyOutcome,
  type IdempotencyStore,
  MemoryIdempotencyStore,
  MemoryReplayStore,
  type RoutePolicy,
} from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import express from 'express';
import { Hono } from 'hono';
import { serveHono } from './support/apps';
import { AUDIENCE, BrazilParties, signedBody } from './support/brazil';
import { listening } from './support/http';
import { newLedger, sendPayment, useTppUsers } from './support/idempotency-apps';
import { jsonAnswer, PAYMENT_FRAMEWORKS, type PaymentFramework, startPaymentApp } from './support/payment-apps';

const PUBLIC = 'https://api.bank.example';
const tpp = useTppUsers(PUBLIC);

type Ledger = ReturnType<typeof newLedger>;

const paid = async (ledger: Ledger, auth: Authorized | null | undefined) => {
  ledger.started++;
  if (ledger.delayMs > 0) await new Promise((r) => setTimeout(r, ledger.delayMs));
  ledger.processed++;
  return { payment: `pay-${ledger.processed}`, owner: auth?.subject ?? null };
};

/** POST /payments behind `appWide` (every request) and the route's `layers`. */
function start(
  framework: PaymentFramework,
  ledger: Ledger,
  appWide: RoutePolicy,
  layers: RoutePolicy[],
  extra: Partial<GuardOptions> = {},
) {
  const handle = async (auth: Authorized | undefined) => jsonAnswer(201, await paid(ledger, auth));
  return startPaymentApp(framework, { ...tpp.options, ...extra }, { '/payments': { layers, handle } }, appWide);
}

const key = (name: string) => `"${name}-${process.pid}-${Math.random().toString(36).slice(2)}"`;
const BODY = '{"amount":"10.00"}';

describe.each(PAYMENT_FRAMEWORKS)('%s: attack review 7', (framework) => {
  it('IDEM-16 a route layer with its own key settings: the retry of a token without the route’s scope is refused, not answered by the app-wide layer', async () => {
    const ledger = newLedger(0);
    // The route keeps its payments longer than the app-wide default (another ttlSec): it governs.
    const route: RoutePolicy = { scopes: ['payments:write'], idempotency: { mode: 'required', ttlSec: 172800 } };
    const app = await start(framework, ledger, { idempotency: 'optional' }, [route]);
    try {
      const k = key('settings');
      const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, first.json]).toEqual([201, { payment: 'pay-1', owner: 'alice' }]);
      const stolen = await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: BODY });
      // Current code: 201 with alice's payment. The route's layer re-claimed the key under its own
      // settings (a new exchange, depth 1), so the answer was stored with layers: 1; the retry's
      // app-wide layer finds it and, 1 not being > 1, answers at once: the route's scope is never checked.
      expect([stolen.status, stolen.headers['www-authenticate']]).toEqual([403, expect.stringContaining('insufficient_scope')]);
      expect(stolen.text).not.toContain('alice');
      expect(ledger.processed).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('IDEM-16 a key recorded by the earlier release (fingerprint without its target part) is not answered before the route’s layer', async () => {
    const ledger = newLedger(0);
    // The store as the release before attack review 6 filled it: the fingerprint is the request
    // part alone (sameRequest still accepts it), the response carries its layer count.
    const memory = new MemoryIdempotencyStore();
    const store: IdempotencyStore = {
      claim: (k, fp, lease, client) => memory.claim(k, fp, lease, client),
      complete: (k, token, outcome: IdempotencyOutcome, ttl) =>
        memory.complete(k, token, { ...outcome, fingerprint: outcome.fingerprint.slice(outcome.fingerprint.indexOf('.') + 1) }, ttl),
      extend: (k, token, lease) => memory.extend(k, token, lease),
      release: (k, token) => memory.release(k, token),
    };
    const app = await start(framework, ledger, { idempotency: 'optional' }, [{ scopes: ['payments:write'] }], {
      idempotency: { store },
    });
    try {
      const k = key('legacy');
      const first = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect([first.status, first.json]).toEqual([201, { payment: 'pay-1', owner: 'alice' }]);
      const stolen = await sendPayment(app.url, PUBLIC, { who: tpp.reader, key: k, body: BODY });
      // Current code: 201 with alice's payment. sameTarget() is false for a fingerprint without a
      // target part, so `layers` is dropped and the app-wide layer replays the stored answer at once.
      expect([stolen.status, stolen.headers['www-authenticate']]).toEqual([403, expect.stringContaining('insufficient_scope')]);
      expect(stolen.text).not.toContain('alice');
      const retry = await sendPayment(app.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      // The payer's retry: processed once, never replayed from an earlier release's record (attack
      // review 8: its depth may be counted from a route that claimed the key again), 409, look it up.
      expect([retry.status, retry.text, ledger.processed]).toEqual([409, expect.stringContaining('its response was not kept'), 1]);
    } finally {
      await app.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Hono: the claim recorded by the outermost layer of the guard
// ---------------------------------------------------------------------------------------------

describe('hono: the recorder of a claimed key', () => {
  it('IDEM-10 a handler that throws what is not an Error answers 500 and frees the key: the retry is processed, not 409 for the key’s lifetime', async () => {
    const ledger = newLedger(0);
    const fapi = honoGuard(tpp.options);
    const app = new Hono();
    let attempts = 0;
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: 'required' }), async (c) => {
      attempts++;
      // A driver that rejects with a plain object (not an Error) on a time-out, the first time.
      if (attempts === 1) throw { code: 'ETIMEDOUT' };
      return c.json(await paid(ledger, c.get('auth')), 201);
    });
    const served = await serveHono(app);
    try {
      const k = key('thrown');
      const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      expect(first.status).toBe(500);
      const retry = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
      // Before the fix: 409 idempotency_key_in_flight. The throw passes through every middleware
      // (Hono's compose rethrows what is not an Error), so the code after `await next()` that
      // records or frees the claim never ran; the claim was renewed until ttlSec (24 h by default).
      expect([retry.status, attempts, ledger.processed]).toEqual([201, 2, 1]);
    } finally {
      await served.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Open Finance Brasil
// ---------------------------------------------------------------------------------------------

describe('Open Finance Brasil: the key layer and the signing layer', () => {
  const br = BrazilParties.use();

  it('BR-07 IDEM-15 hono: a second guard between the bank’s signing layer and the key layer does not record the answer before it is signed', async () => {
    // The handler echoes a client-chosen reference as text (as in attack reviews 5 and 6).
    const forged = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"data":{"status":"ACSC","amount":"1000000.00"}}').toString('base64url')}.c2ln`;
    const ledger = { processed: 0 };
    const bank = honoGuard(br.options());
    // Another guard of the same app (another instance: its own options, its own DPoP replay store).
    const other = honoGuard({
      issuer: br.as.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      dpop: { replayStore: new MemoryReplayStore() },
    });
    const app = new Hono();
    app.post('/payments', bank.protect({ scopes: ['payments:write'], jwtBody: { request: 'required', response: true } }));
    app.post('/payments', other.protect({ scopes: ['payments:write'] }));
    app.post('/payments', bank.protect({ idempotency: { mode: 'required', syntax: 'br-of' } }));
    app.post('/payments', (c) => {
      ledger.processed++;
      return c.body(forged, 201, { 'content-type': 'text/plain' });
    });
    const served = await serveHono(app);
    try {
      const k = `k-${Math.random().toString(36).slice(2)}`;
      const data = '{"payment":{"amount":"1.00"}}';
      const first = await br.pay(served.url, signedBody(data), k);
      const retry = await br.pay(served.url, signedBody(data), k);
      // Current code: the first is 500 (the bank cannot sign a text answer), the retry 201
      // application/jwt, signed by the bank over {"status":"ACSC","amount":"1000000.00"}. laterRecords
      // is kept per Context, not per guard: the other guard's layer, outermost of *its* guard, takes
      // the key layer's recorder and records c.res before the bank's outer layer turned it into 500.
      for (const res of [first, retry]) {
        expect(res.status).toBe(500);
        expect(res.headers['content-type']).not.toBe('application/jwt');
        expect(res.text).not.toContain('ACSC');
      }
      expect(ledger.processed).toBe(2);
    } finally {
      await served.close();
    }
  });

  it('IDEM-06 a route that does not verify signed bodies: two different application/jwt bodies with one data claim are not one request', async () => {
    const ledger = { processed: 0 };
    const fapi = expressGuard(br.options());
    const app = express();
    // A route without jwtBody: the handler works on the body bytes as they came (here: echoes their length).
    app.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: { mode: 'required', syntax: 'br-of' } }), (req, res) => {
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
      });
      req.on('end', () => void res.status(201).json({ payment: `pay-${++ledger.processed}`, bytes: size }));
    });
    const server = await listening(createServer(app).listen(0, '127.0.0.1'));
    try {
      const k = `k-${Math.random().toString(36).slice(2)}`;
      const data = '{"payment":{"amount":"1.00"}}';
      const payload = (extra: string) =>
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(`{"data":${data}${extra}}`).toString('base64url')}.c2ln`;
      const first = await br.pay(server.url, payload(''), k);
      expect(first.status).toBe(201);
      // Other bytes, another request: only the data claim (read unverified) is alike.
      const other = await br.pay(server.url, payload(',"creditor":"mallory","amount":"999999.00"'), k);
      // Current code: 201 with the first answer (pay-1): the guard has openFinanceBrasil, so every
      // application/jwt body is fingerprinted by its unverified data claim, even on a route that
      // never verifies it and whose handler reads the bytes.
      expect([other.status, ledger.processed]).toEqual([422, 1]);
    } finally {
      await server.close();
    }
  });
});

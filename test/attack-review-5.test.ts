/**
 * Attack review 5 (of commit b893ae0): the replay gate of Open Finance Brasil answers
 * (respond.ts `dataToSign(text, replayed)`, br-signed-jwt.ts `storedJwtData`), the replay marks of
 * the adapters (node-response.ts `markReplay`, fetch.ts `signFetchResponse(..., replayed)`,
 * hono/src/index.ts), the `br_client_unknown` refusal (complete.ts `openFinanceBrasilClient`) and
 * the idempotency store across clients, routes and concurrent requests. Every test asserts the
 * correct behaviour; those that fail at b893ae0 are the findings (see each test's comment):
 *
 * 1. hono: the payment layer (jwtBody + idempotency) first, a plain layer behind it — every retry
 *    gets 500 (hono/src/index.ts:185 returns the stored bank JWT unmarked, :208 signs it again with
 *    replayed=false, respond.ts:21 JSON.parses the JWT text). express, koa, fastify, nestjs: 201.
 * 2. hono: refusals of the idempotency layer on an Open Finance Brasil route (422 reused key, 400
 *    missing key) go out unsigned (hono/src/index.ts:181); the Node adapters send them signed.
 * 3. core: concurrent signed bodies of a client whose key set is being fetched (cold cache, or a
 *    new kid) are refused 400 BAD_SIGNATURE (signatures/client-keys.ts:104-113: the fetch in flight
 *    is not awaited, the cool-down stamp makes the others skip it).
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { FapiPolicy } from '@fapi-guard/nestjs';
import { Controller, Post, Res } from '@nestjs/common';
import express from 'express';
import { AUDIENCE, BrazilParties, bankPayload, CLIENT_ORG, clientKey, OTHER_ORG, signedBody } from './support/brazil';
import { type Listening, listening, send } from './support/http';
import { startNestApp } from './support/nest-app';
import { PAYMENT_FRAMEWORKS as FRAMEWORKS, type PaymentFramework as Framework, jsonAnswer, startPaymentApp } from './support/payment-apps';

const br = BrazilParties.use();

const IDEMPOTENT_PAYMENT: RoutePolicy = {
  scopes: ['payments:write'],
  jwtBody: { request: 'required', response: true },
  idempotency: { mode: 'required', syntax: 'br-of' },
};

interface Ledger {
  processed: number;
}

/**
 * POST /payments behind two layers of one guard: `outer` (the documented payment policy: signed
 * body, signed answer, the key) and `inner` (a plain scope check, as `requireScopes` on a route
 * behind an app-wide layer). `answer` makes the handler's JSON.
 */
async function twoLayers(
  framework: Framework | 'nestjs',
  options: GuardOptions,
  ledger: Ledger,
  outer: RoutePolicy = IDEMPOTENT_PAYMENT,
  inner: RoutePolicy = { scopes: ['payments:write'] },
  answer: (n: number) => object = (n) => ({ data: { paymentId: `pay-${n}`, status: 'RCVD' } }),
): Promise<Listening> {
  if (framework === 'nestjs') {
    @Controller()
    class Payments {
      @Post('payments')
      @FapiPolicy(inner)
      pay(@Res({ passthrough: true }) res: { status(n: number): unknown }) {
        ledger.processed++;
        res.status(201);
        return answer(ledger.processed);
      }
    }
    // The module's global policy is the outer layer (FapiGlobalGuard runs first), the route's the inner.
    return startNestApp('nestjs', options, [Payments], undefined, { settings: { global: outer } });
  }
  const handle = () => jsonAnswer(201, answer(++ledger.processed));
  return startPaymentApp(framework, options, { '/payments': { layers: [outer, inner], handle } });
}

// ---------------------------------------------------------------------------------------------
// A retry answered by a later layer whose authorization is the earlier layer's (result === earlier)
// ---------------------------------------------------------------------------------------------

describe.each([...FRAMEWORKS, 'nestjs'] as const)(
  '%s: the payment layer keeps the key and signs, a plain scope layer behind it',
  (framework) => {
    it('IDEM-16 IDEM-17 BR-07 the retry gets the first result signed anew by the bank, not a 500', async () => {
      const ledger = { processed: 0 };
      const app = await twoLayers(framework, br.options(), ledger);
      try {
        const key = randomUUID();
        const data = '{"payment":{"amount":"100.00","currency":"BRL"}}';
        const first = await br.pay(app.url, signedBody(data), key);
        expect(first.status).toBe(201);
        expect((await bankPayload(first.text)).data).toEqual({ data: { paymentId: 'pay-1', status: 'RCVD' } });
        const retry = await br.pay(app.url, signedBody(data), key);
        expect(ledger.processed).toBe(1);
        // Hono at b893ae0: 500 {"error_description":"The response could not be signed"} for every retry
        // until the key expires. The outer layer recorded the bank's JWT (it signs before it records);
        // the inner layer returns the stored JWT as it is (`result === earlier`) and the outer layer
        // signs it again with replayed=false: JSON.parse of the JWT text throws.
        expect([retry.status, retry.headers['content-type']]).toEqual([201, 'application/jwt']);
        expect((await bankPayload(retry.text)).data).toEqual({ data: { paymentId: 'pay-1', status: 'RCVD' } });
      } finally {
        await app.close();
      }
    });

    it('BR-07 IDEM-06 the same key with other data, refused by the later layer: 422 signed once by the bank, not a 500', async () => {
      const ledger = { processed: 0 };
      const app = await twoLayers(framework, br.options(), ledger);
      try {
        const key = randomUUID();
        expect((await br.pay(app.url, signedBody('{"payment":{"amount":"1.00"}}'), key)).status).toBe(201);
        const reused = await br.pay(app.url, signedBody('{"payment":{"amount":"999.00"}}'), key);
        expect([reused.status, reused.headers['content-type'], ledger.processed]).toEqual([422, 'application/jwt', 1]);
        expect((await bankPayload(reused.text)).data).toMatchObject({ errors: [{ code: expect.any(String) }] });
      } finally {
        await app.close();
      }
    });
  },
);

/** POST /payments on one layer with the documented payment policy. */
async function oneLayer(framework: Framework | 'nestjs', options: GuardOptions, ledger: Ledger, delayMs = 0): Promise<Listening> {
  const handle = async () => {
    ledger.processed++;
    const n = ledger.processed;
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    return { data: { paymentId: `pay-${n}`, status: 'RCVD' } };
  };
  if (framework === 'nestjs') {
    @Controller()
    class Payments {
      @Post('payments')
      @FapiPolicy(IDEMPOTENT_PAYMENT)
      async pay(@Res({ passthrough: true }) res: { status(n: number): unknown }) {
        res.status(201);
        return await handle();
      }
    }
    return startNestApp('nestjs', options, [Payments]);
  }
  return startPaymentApp(framework, options, {
    '/payments': { layers: [IDEMPOTENT_PAYMENT], handle: async () => jsonAnswer(201, await handle()) },
  });
}

// ---------------------------------------------------------------------------------------------
// Refusals of the idempotency layer on a route whose answers the bank signs
// ---------------------------------------------------------------------------------------------

describe.each([...FRAMEWORKS, 'nestjs'] as const)('%s: idempotency refusals on an Open Finance Brasil route', (framework) => {
  it('BR-07 IDEM-06 the same key with other data: 422, as the bank’s signed JWT addressed to the client (the client is known)', async () => {
    const ledger = { processed: 0 };
    const app = await oneLayer(framework, br.options(), ledger);
    try {
      const key = randomUUID();
      expect((await br.pay(app.url, signedBody('{"payment":{"amount":"1.00"}}'), key)).status).toBe(201);
      const reused = await br.pay(app.url, signedBody('{"payment":{"amount":"999.00"}}'), key);
      expect(ledger.processed).toBe(1);
      expect(reused.status).toBe(422);
      // b893ae0: application/json, the envelope unsigned — though the token was verified and the
      // client's organisation is known (docs/regimes/open-finance-brasil.md: "Responses and refusals
      // ... are JWTs signed by responseKey with aud the client's organisation"; unsigned only
      // "without a valid token" or for br_client_unknown).
      expect(reused.headers['content-type']).toBe('application/jwt');
      const { data } = await bankPayload(reused.text);
      expect(data).toMatchObject({ errors: [{ code: expect.any(String) }] });
    } finally {
      await app.close();
    }
  });

  it('BR-07 IDEM-03 no x-idempotency-key on a payment that requires one: 400, as the bank’s signed JWT', async () => {
    const ledger = { processed: 0 };
    const app = await oneLayer(framework, br.options(), ledger);
    try {
      const missing = await br.pay(app.url, signedBody('{"payment":{"amount":"1.00"}}'), undefined);
      expect([missing.status, ledger.processed]).toEqual([400, 0]);
      expect(missing.headers['content-type']).toBe('application/jwt');
      await bankPayload(missing.text);
    } finally {
      await app.close();
    }
  });
});

describe.each([...FRAMEWORKS, 'nestjs'] as const)(
  '%s: the signing layer first, the key kept by a plain layer behind it (the handler’s JSON is stored)',
  (framework) => {
    it('IDEM-16 IDEM-17 BR-07 the retry gets the first result signed anew, the handler runs once', async () => {
      const ledger = { processed: 0 };
      const outer: RoutePolicy = { scopes: ['payments:write'], jwtBody: { request: 'required', response: true } };
      const inner: RoutePolicy = { idempotency: { mode: 'required', syntax: 'br-of' } };
      const app = await twoLayers(framework, br.options(), ledger, outer, inner);
      try {
        const key = randomUUID();
        const data = '{"payment":{"amount":"3.00","currency":"BRL"}}';
        const first = await br.pay(app.url, signedBody(data), key);
        expect(first.status).toBe(201);
        const retry = await br.pay(app.url, signedBody(data), key);
        expect([retry.status, retry.headers['content-type'], ledger.processed]).toEqual([201, 'application/jwt', 1]);
        const [a, b] = [await bankPayload(first.text), await bankPayload(retry.text)];
        expect(b.data).toEqual(a.data);
        expect(b.jti).not.toBe(a.jti);
      } finally {
        await app.close();
      }
    });
  },
);

// ---------------------------------------------------------------------------------------------
// The store: other clients, other routes, the same jti, concurrent requests
// ---------------------------------------------------------------------------------------------

describe.each(FRAMEWORKS)('%s: the idempotency store on an Open Finance Brasil payment', (framework) => {
  it('IDEM-07 another client with the same key and the same data gets its own payment, addressed to its own organisation', async () => {
    const ledger = { processed: 0 };
    const app = await oneLayer(framework, br.options(), ledger);
    try {
      const key = randomUUID();
      const data = '{"payment":{"amount":"10.00","currency":"BRL"}}';
      const mine = await br.pay(app.url, signedBody(data), key);
      const theirs = await br.pay(app.url, signedBody(data, true), key, { clientId: 'client-2' });
      expect([mine.status, theirs.status, ledger.processed]).toEqual([201, 201, 2]);
      expect((await bankPayload(theirs.text, OTHER_ORG)).data).toEqual({ data: { paymentId: 'pay-2', status: 'RCVD' } });
      await expect(bankPayload(theirs.text, CLIENT_ORG)).rejects.toThrow();
    } finally {
      await app.close();
    }
  });

  it('BR-04 IDEM-17 a retry that resends the very same signed body is a spent jti (400), never the stored answer', async () => {
    const ledger = { processed: 0 };
    const app = await oneLayer(framework, br.options(), ledger);
    try {
      const key = randomUUID();
      const body = signedBody('{"payment":{"amount":"11.00"}}');
      expect((await br.pay(app.url, body, key)).status).toBe(201);
      const again = await br.pay(app.url, body, key);
      expect([again.status, ledger.processed]).toEqual([400, 1]);
      expect(JSON.stringify((await bankPayload(again.text)).data)).not.toContain('pay-1');
    } finally {
      await app.close();
    }
  });

  it('IDEM-05 concurrent requests with one key: processed once, the others 409 or the stored answer, none a 5xx', async () => {
    const ledger = { processed: 0 };
    const app = await oneLayer(framework, br.options(), ledger, 300);
    try {
      // The client's key set fetched first (a cold cache is the finding below, not this one).
      expect((await br.pay(app.url, signedBody('{"warm":true}'), randomUUID())).status).toBe(201);
      ledger.processed = 0;
      const key = randomUUID();
      const data = '{"payment":{"amount":"12.00"}}';
      const answers = await Promise.all([0, 1, 2, 3].map(() => br.pay(app.url, signedBody(data), key)));
      expect(ledger.processed).toBe(1);
      expect(answers.every((a) => a.status === 201 || a.status === 409)).toBe(true);
      // One 201 is the payment; any other (a request that a loaded machine delayed past the first
      // one's end) is its stored answer, the same payment signed anew.
      const paid = answers.filter((a) => a.status === 201);
      expect(paid.length).toBeGreaterThanOrEqual(1);
      const payments = await Promise.all(paid.map(async (a) => JSON.stringify((await bankPayload(a.text)).data)));
      expect(new Set(payments).size).toBe(1);
    } finally {
      await app.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The client's key set, fetched once: requests that arrive while it is being fetched
// ---------------------------------------------------------------------------------------------

describe.each(['express', 'hono'] as const)('%s: concurrent signed bodies of a client whose key set is not cached yet', (framework) => {
  it('BR-02 SIG-01 every request signed with the client’s registered key is verified, none refused as a bad signature', async () => {
    // The client's JWKS host answers after 200 ms (a directory key store across the Internet).
    const jwk = { ...(clientKey.publicKey.export({ format: 'jwk' }) as object), kid: 'client-key', use: 'sig' };
    const slowKeys = await listening(
      createServer((_req, res) => {
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ keys: [jwk] }));
        }, 200);
      }).listen(0, '127.0.0.1'),
    );
    const decisions: { reason?: string; detail?: string }[] = [];
    const options = br.options({ onDecision: (e) => decisions.push(e) });
    const brazil = options.messageSigning?.openFinanceBrasil as NonNullable<
      NonNullable<GuardOptions['messageSigning']>['openFinanceBrasil']
    >;
    brazil.clients = { 'client-1': { organisationId: CLIENT_ORG, jwksUri: `${slowKeys.url}/client.jwks` } };
    const ledger = { processed: 0 };
    const app = await oneLayer(framework, options, ledger);
    try {
      const answers = await Promise.all(
        [1, 2, 3].map((n) => br.pay(app.url, signedBody(`{"payment":{"amount":"${n}.00"}}`), randomUUID())),
      );
      // b893ae0: [201, 400, 400] — the first request starts the fetch and stamps lastAttempt; the
      // others find the entry (no keys yet, fetch pending), skip the load as "not due" (cool-down)
      // and are refused BAD_SIGNATURE: 'keyid "client-key" is not a key of client client-1'.
      expect(answers.map((a) => a.status)).toEqual([201, 201, 201]);
      expect(ledger.processed).toBe(3);
      expect(decisions.filter((d) => d.reason !== undefined)).toEqual([]);
    } finally {
      await app.close();
      await slowKeys.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// br_client_unknown: who the client is
// ---------------------------------------------------------------------------------------------

describe('Open Finance Brasil: a client not in openFinanceBrasil.clients (br_client_unknown)', () => {
  const SECRET = 'introspection-secret';
  let app: Listening;
  const ledger = { processed: 0 };
  const decisions: { reason?: string; detail?: string; clientId?: string }[] = [];
  beforeAll(async () => {
    br.as.introspectionClients.set('rs-client', SECRET);
    const fapi = expressGuard(
      br.options({
        onDecision: (e) => decisions.push(e),
        introspection: { clientId: 'rs-client', clientAuth: { method: 'client_secret_basic', clientSecret: SECRET } },
      }),
    );
    const server = express();
    server.post('/payments', fapi.protect(IDEMPOTENT_PAYMENT), (_req, res) => {
      ledger.processed++;
      res.status(201).json({ data: { paymentId: `pay-${ledger.processed}` } });
    });
    server.get('/consents/:id', fapi.protect({ jwtBody: { response: true } }), (req, res) => {
      ledger.processed++;
      res.json({ data: { consentId: req.params.id } });
    });
    app = await listening(server.listen(0, '127.0.0.1'));
  });
  afterAll(() => app.close());

  const consent = async (token: string) => {
    const proof = await br.dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/consents/c1`, accessToken: token });
    return send(`${app.url}/consents/c1`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
  };

  it.each([
    ['another case of a known id', { client_id: 'CLIENT-1' }],
    ['a known id in azp, another in client_id', { client_id: 'client-x', azp: 'client-1' }],
    ['a known organisation id as client_id', { client_id: CLIENT_ORG }],
    ['an inherited property name as client_id', { client_id: '__proto__' }],
    ['client_id with a control character', { client_id: 'client-1\n' }],
  ])('BR-07 %s: 403 before the handler, no bank signature, nothing addressed to client-1', async (_name, claims) => {
    const before = ledger.processed;
    const token = await br.as.mint({ scope: 'payments:write', jkt: br.dpop.jkt, claims });
    const res = await consent(token);
    expect([res.status, res.headers['content-type'], ledger.processed]).toEqual([403, 'application/json; charset=utf-8', before]);
    expect(decisions.at(-1)).toMatchObject({ reason: 'br_client_unknown' });
    // The detail quotes the client id escaped (no forged log line).
    expect(decisions.at(-1)?.detail).not.toMatch(/[\n\r]/);
  });

  it('BR-07 an opaque token (introspection) of an unknown client is refused the same, and a known one is served', async () => {
    const unknown = await br.as.mintOpaque({ scope: 'payments:write', jkt: br.dpop.jkt, claims: { client_id: 'client-9' } });
    const refused = await consent(unknown);
    expect([refused.status, decisions.at(-1)?.reason]).toEqual([403, 'br_client_unknown']);
    const known = await br.as.mintOpaque({ scope: 'payments:write', jkt: br.dpop.jkt, claims: { client_id: 'client-1' } });
    const served = await consent(known);
    expect([served.status, served.headers['content-type']]).toEqual([200, 'application/jwt']);
    expect((await bankPayload(served.text)).data).toEqual({ data: { consentId: 'c1' } });
  });

  it('BR-07 an unknown client’s signed body is refused before it is verified: its jti is not spent', async () => {
    const before = ledger.processed;
    const body = signedBody('{"payment":{"amount":"1.00"}}');
    const res = await br.pay(app.url, body, randomUUID(), { clientId: 'client-9' });
    expect([res.status, ledger.processed]).toEqual([403, before]);
    // The same body then sent by its real client is accepted: the unknown client burnt nothing.
    expect((await br.pay(app.url, body, randomUUID())).status).toBe(201);
  });
});

// ---------------------------------------------------------------------------------------------
// The replay gate: a handler body shaped like a signed JWT on an idempotent route
// ---------------------------------------------------------------------------------------------

describe.each(['express', 'hono'] as const)(
  '%s: a handler that answers with a text shaped like a bank JWT, on an idempotent route',
  (framework) => {
    it('BR-07 IDEM-15 neither the first request nor its retry gets the bank’s signature over the client-chosen data', async () => {
      // The handler echoes a client-chosen reference as text (a payment "end-to-end id", say).
      const forged = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"data":{"status":"ACSC","amount":"1000000.00"}}').toString('base64url')}.c2ln`;
      let runs = 0;
      const app = await startPaymentApp(framework, br.options(), {
        '/payments': {
          layers: [IDEMPOTENT_PAYMENT],
          handle: () => {
            runs++;
            return { status: 201, type: 'text/plain', body: forged };
          },
        },
      });
      try {
        const key = randomUUID();
        const data = '{"payment":{"amount":"1.00"}}';
        const first = await br.pay(app.url, signedBody(data), key);
        const retry = await br.pay(app.url, signedBody(data), key);
        for (const res of [first, retry]) {
          expect(res.status).toBe(500);
          expect(res.headers['content-type']).not.toBe('application/jwt');
          expect(res.text).not.toContain('ACSC');
        }
        // A 5xx is no answer to repeat: the key was freed, and the handler ran again.
        expect(runs).toBe(2);
      } finally {
        await app.close();
      }
    });
  },
);

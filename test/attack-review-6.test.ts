/**
 * Attack review 6: the Hono replay mark, the signed idempotency refusals on Open Finance Brasil
 * routes, and the client key sets waited for while a fetch is in flight. Each test asserts the
 * right behaviour; these failed before their fixes:
 *
 * 1. hono: the bank signs on an outer layer, the key is kept by an inner layer. The inner layer
 *    recorded `c.res` before the outer layer signed it, so a first request answered 500
 *    (unsignable) was stored as the handler's 201 and its retry signed from the `data` of a
 *    handler text shaped like a JWT. Now the outermost layer records, once the response is final.
 * 2. every adapter: an app-wide key layer in front of the Open Finance Brasil layer fingerprinted
 *    the raw body (no verified `jwtBody` yet), so every retry, signed anew, got 422. Now a layer
 *    ahead of the verifying one fingerprints the `data` claim, unverified (exchange.ts).
 * 3. every adapter: refusals of a key layer behind the bank's signing layer were signed with the
 *    OAuth body as `data`, not the Open Finance Brasil error envelope (settle.ts, layers.ts).
 * 4. every adapter: a key kept by a two-layer route, reused on a route behind the app-wide layer
 *    alone, ran that route's handler each time: the 422 waited for a second layer that never
 *    came. Now a request to another method or target URI is answered at once (fingerprint.ts).
 *
 * The client key tests passed from the start: a JWKS host that never finishes holds requests only
 * up to timeoutMs of the one fetch, other clients are not held, unknown kids do not bypass the
 * cool-down.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { AUDIENCE, BrazilParties, bankPayload, CLIENT_ORG, clientKey, OTHER_ORG, signedBody } from './support/brazil';
import { type Listening, listening, send } from './support/http';
import {
  type Answer,
  PAYMENT_FRAMEWORKS as FRAMEWORKS,
  type PaymentFramework as Framework,
  jsonAnswer,
  startPaymentApp,
} from './support/payment-apps';

const br = BrazilParties.use();

/** POST /payments behind the layers `policies` (outermost first) of one guard; `answer` makes the handler's response. */
function layered(
  framework: Framework,
  options: GuardOptions,
  policies: RoutePolicy[],
  answer: (n: number) => Answer,
  ledger: { processed: number },
) {
  return startPaymentApp(framework, options, { '/payments': { layers: policies, handle: () => answer(++ledger.processed) } });
}

const SIGNING: RoutePolicy = { scopes: ['payments:write'], jwtBody: { request: 'required', response: true } };
const KEYED: RoutePolicy = { idempotency: { mode: 'required', syntax: 'br-of' } };
const IDEMPOTENT_PAYMENT: RoutePolicy = { ...SIGNING, ...KEYED };

// ---------------------------------------------------------------------------------------------
// The signing layer first, the key kept by a plain layer behind it
// ---------------------------------------------------------------------------------------------

describe.each(FRAMEWORKS)('%s: the bank signs on the outer layer, the key is kept by the inner layer', (framework) => {
  it('BR-07 IDEM-15 a handler text shaped like a JWT: no answer, first or retry, carries the bank’s signature over its claimed data', async () => {
    // The handler echoes a client-chosen reference as text (as in attack review 5, one layer).
    const forged = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"data":{"status":"ACSC","amount":"1000000.00"}}').toString('base64url')}.c2ln`;
    const ledger = { processed: 0 };
    const app = await layered(framework, br.options(), [SIGNING, KEYED], () => ({ status: 201, type: 'text/plain', body: forged }), ledger);
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
      expect(ledger.processed).toBe(2);
    } finally {
      await app.close();
    }
  });
});

describe.each(FRAMEWORKS)('%s: refusals of a key layer behind the layer the bank signs for', (framework) => {
  it('BR-07 IDEM-06 IDEM-03 the 422 and the 400 are signed with the Open Finance Brasil error envelope as data, not the OAuth body', async () => {
    const ledger = { processed: 0 };
    const answer = (n: number) => ({ status: 201, type: 'application/json', body: JSON.stringify({ data: { paymentId: `pay-${n}` } }) });
    const app = await layered(framework, br.options(), [SIGNING, KEYED], answer, ledger);
    try {
      const key = randomUUID();
      expect((await br.pay(app.url, signedBody('{"payment":{"amount":"1.00"}}'), key)).status).toBe(201);
      const reused = await br.pay(app.url, signedBody('{"payment":{"amount":"999.00"}}'), key);
      const missing = await br.pay(app.url, signedBody('{"payment":{"amount":"1.00"}}'), undefined);
      expect([reused.status, missing.status, ledger.processed]).toEqual([422, 400, 1]);
      // Current code: data is {"error_description":"This idempotency key was already used…"} (and
      // {"error":"invalid_request",…}): the key layer's policy has no jwtBody, so its refusal is the
      // OAuth body, which the outer layer then signs as if it were the route's payload.
      for (const res of [reused, missing]) {
        expect(res.headers['content-type']).toBe('application/jwt');
        expect((await bankPayload(res.text)).data).toMatchObject({ errors: [{ code: expect.any(String) }], meta: expect.any(Object) });
      }
    } finally {
      await app.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// An app-wide idempotency layer in front of the Open Finance Brasil payment layer
// ---------------------------------------------------------------------------------------------

describe.each(FRAMEWORKS)('%s: the key kept by an app-wide layer, the signed body checked by the route’s layer', (framework) => {
  it('IDEM-16 BR-07 a retry (same data, signed anew with a new jti) gets the first answer, not 422', async () => {
    const ledger = { processed: 0 };
    const policies: RoutePolicy[] = [{ scopes: ['payments:write'], ...KEYED }, { jwtBody: { request: 'required', response: true } }];
    const answer = (n: number) => ({ status: 201, type: 'application/json', body: JSON.stringify({ data: { paymentId: `pay-${n}` } }) });
    const app = await layered(framework, br.options(), policies, answer, ledger);
    try {
      const key = randomUUID();
      const data = '{"payment":{"amount":"2.00"}}';
      expect((await br.pay(app.url, signedBody(data), key)).status).toBe(201);
      const retry = await br.pay(app.url, signedBody(data), key);
      // Current code: 422 idempotency_key_reused. The app-wide layer claims the key and
      // fingerprints the raw body bytes (its authorization has no verified jwtBody yet); every
      // attempt is signed anew (new jti, iat), so the bytes always differ. The route's layer has the
      // same key settings and does not fingerprint again (idempotency/layers.ts sameSettings).
      expect([retry.status, retry.headers['content-type'], ledger.processed]).toEqual([201, 'application/jwt', 1]);
      expect((await bankPayload(retry.text)).data).toEqual({ data: { paymentId: 'pay-1' } });
      // The app-wide layer reads the data unverified: the same data under a signature that does
      // not verify is refused by the route's layer, never answered with the stored payment.
      const forged = `${signedBody(data).split('.').slice(0, 2).join('.')}.${Buffer.alloc(256).toString('base64url')}`;
      const refused = await br.pay(app.url, forged, key);
      expect(refused.status).toBe(400);
      expect(refused.text).not.toContain('pay-1');
      // Other data under the key: 422, in the Open Finance Brasil envelope, signed by the bank.
      const reused = await br.pay(app.url, signedBody('{"payment":{"amount":"3.00"}}'), key);
      expect([reused.status, reused.headers['content-type'], ledger.processed]).toEqual([422, 'application/jwt', 1]);
      expect((await bankPayload(reused.text)).data).toMatchObject({ errors: [{ code: expect.any(String) }], meta: expect.any(Object) });
    } finally {
      await app.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A client's key set: a JWKS host that never finishes, other clients, unknown kids
// ---------------------------------------------------------------------------------------------

describe('the key set of a client, fetched while requests wait (signatures/client-keys.ts)', () => {
  it('BR-02 SIG-01 a JWKS host that never finishes its answer: every waiting request gets 503 within timeoutMs of the one fetch; another client is not held up', async () => {
    let hits = 0;
    const hanging = await listening(
      createServer((_req, res) => {
        hits++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"keys":[');
      }).listen(0, '127.0.0.1'),
    );
    const options = br.options();
    const signing = options.messageSigning as NonNullable<GuardOptions['messageSigning']>;
    // Long enough that the other client's request (a token, a proof, a PS256 signature, its own
    // key set) ends inside it on a loaded machine; the late request starts 2 s after the first.
    signing.timeoutMs = 6000;
    const brazil = signing.openFinanceBrasil as NonNullable<typeof signing.openFinanceBrasil>;
    brazil.clients = {
      'client-1': { organisationId: CLIENT_ORG, jwksUri: `${hanging.url}/client.jwks` },
      'client-2': { organisationId: OTHER_ORG, jwksUri: `${br.otherKeyStore.url}/client.jwks` },
    };
    const ledger = { processed: 0 };
    const app = await layered(
      'hono',
      options,
      [IDEMPOTENT_PAYMENT],
      () => ({ status: 201, type: 'application/json', body: '{"data":{}}' }),
      ledger,
    );
    try {
      const t0 = Date.now();
      const timed = async (p: Promise<{ status: number }>) => ({ status: (await p).status, at: Date.now() - t0 });
      let settled = false;
      const first = timed(br.pay(app.url, signedBody('{"n":1}'), randomUUID())).finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 2000));
      const late = timed(br.pay(app.url, signedBody('{"n":2}'), randomUUID()));
      const other = await timed(br.pay(app.url, signedBody('{"n":3}', true), randomUUID(), { clientId: 'client-2' }));
      // The other client is served while the hung fetch of client-1's set is still pending.
      expect([other.status, settled]).toEqual([201, false]);
      const [a, b] = await Promise.all([first, late]);
      expect([a.status, b.status]).toEqual([503, 503]);
      // One fetch; the late request waits for what is left of it, not a timeout of its own.
      expect(hits).toBe(1);
      // Compared with each other, not with a clock: a loaded machine delays both timers alike. The
      // late request ends with the first; a fetch of its own would end two seconds later (and be a hit).
      expect(Math.abs(a.at - b.at)).toBeLessThan(1000);
      // Within the cool-down: refused without a new fetch.
      expect((await br.pay(app.url, signedBody('{"n":4}'), randomUUID())).status).toBe(503);
      expect(hits).toBe(1);
    } finally {
      await app.close();
      await hanging.close();
    }
  });

  it('BR-02 SIG-01 concurrent bodies naming many unknown kids of a known client: one fetch of its set, not one per kid', async () => {
    let hits = 0;
    const jwk = { ...(clientKey.publicKey.export({ format: 'jwk' }) as object), kid: 'client-key', use: 'sig' };
    const counted = await listening(
      createServer((_req, res) => {
        hits++;
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })), 50);
      }).listen(0, '127.0.0.1'),
    );
    const options = br.options();
    const signing = options.messageSigning as NonNullable<GuardOptions['messageSigning']>;
    const brazil = signing.openFinanceBrasil as NonNullable<typeof signing.openFinanceBrasil>;
    brazil.clients = { 'client-1': { organisationId: CLIENT_ORG, jwksUri: `${counted.url}/client.jwks` } };
    const ledger = { processed: 0 };
    const app = await layered(
      'hono',
      options,
      [IDEMPOTENT_PAYMENT],
      () => ({ status: 201, type: 'application/json', body: '{"data":{}}' }),
      ledger,
    );
    try {
      expect((await br.pay(app.url, signedBody('{"warm":1}'), randomUUID())).status).toBe(201);
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) => br.pay(app.url, signedBody(`{"n":${i}}`, false, randomUUID(), `kid-${i}`), randomUUID())),
      );
      expect(answers.every((a) => a.status === 400)).toBe(true);
      // The set was fetched for the first request; the unknown kids come within the cool-down.
      expect(hits).toBe(1);
    } finally {
      await app.close();
      await counted.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A key stored by a deeper route, reused on a route with fewer layers
// ---------------------------------------------------------------------------------------------

/** POST /payments behind an app-wide keyed layer and a route layer; POST /other behind the app-wide layer alone. */
async function twoRoutes(framework: Framework, counts: { payments: number; other: number }): Promise<Listening> {
  const options: GuardOptions = { issuer: br.as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, dpop: { replayStore: br.replayStore } };
  const appWide: RoutePolicy = { scopes: ['payments:write'], idempotency: { mode: 'required' } };
  const route: RoutePolicy = { anyScopes: ['payments:write', 'payments:admin'] };
  return startPaymentApp(
    framework,
    options,
    {
      '/payments': { layers: [route], handle: () => jsonAnswer(201, { payment: `pay-${++counts.payments}` }) },
      '/other': { layers: [], handle: () => jsonAnswer(201, { other: ++counts.other }) },
    },
    appWide,
  );
}

async function post(url: string, path: string, body: string, key: string) {
  const token = await br.as.mint({ scope: 'payments:write', jkt: br.dpop.jkt, claims: { client_id: 'client-1' } });
  const proof = await br.dpop.proof({ htm: 'POST', htu: `${AUDIENCE}${path}`, accessToken: token });
  return send(`${url}${path}`, {
    method: 'POST',
    body,
    headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/json', 'idempotency-key': `"${key}"` },
  });
}

describe.each(FRAMEWORKS)('%s: a key kept by a two-layer route, reused on a route behind the app-wide layer alone', (framework) => {
  it('IDEM-06 IDEM-16 the other route gets 422 each time and its handler never runs under the key', async () => {
    const counts = { payments: 0, other: 0 };
    const app = await twoRoutes(framework, counts);
    try {
      const key = randomUUID();
      expect((await post(app.url, '/payments', '{"amount":"1.00"}', key)).status).toBe(201);
      const reused = [await post(app.url, '/other', '{"x":1}', key), await post(app.url, '/other', '{"x":1}', key)];
      expect([...reused.map((r) => r.status), counts.payments, counts.other]).toEqual([422, 422, 1, 0]);
    } finally {
      await app.close();
    }
  });
});

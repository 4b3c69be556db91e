/**
 * Attack review 4 (of commit a61d0b1): Open Finance Brasil responses signed by the bank
 * (respond.ts `dataToSign`, then br-signed-jwt.ts `ownJwtData`) and replays of stored answers,
 * idempotency fingerprints, DPoP `htu` against request paths the URL parser would change.
 * Each test asserts the correct behaviour. Findings (failing against a61d0b1): the `layered: true`
 * and `layered: hono` cases of the two IDEM-17 IDEM-15 describes (a 500 to a legitimate retry
 * whenever the stored answer is the bank's JWT: another bank key, or data null) and BR-07 (a
 * bank-signed answer without aud). The `layered: false` cases pass: one Express layer stores
 * the handler's JSON, which any instance signs — kept as the control. Fixed since: a replay is
 * marked as one, and a stored bank JWT is signed anew from its `data` (`storedJwtData`) with the
 * key the bank signs with now; a client without an organisation is refused (`br_client_unknown`).
 */
import { constants, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { type GuardOptions, MemoryIdempotencyStore, MemoryReplayStore, type RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import express from 'express';
import { jwtVerify } from 'jose';
import { serveHono } from './support/apps';
import { clientKeyStore, type Listening, listening, send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const URL_PAYMENTS = `${AUDIENCE}/payments`;
const CLIENT_ORG = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
const BANK_ORG = 'b961c4eb-509d-4edf-afeb-35642b38185d';

const clientKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const bankKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
/** The bank's next key (a rotation): another instance already signs with it. */
const bankKey2 = generateKeyPairSync('rsa', { modulusLength: 2048 });

let as: MockIssuer;
let dpop: DpopClient;
let keyStore: Listening;
let keyStoreUrl: string;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  dpop = await DpopClient.create('ES256');
  keyStore = await clientKeyStore(clientKey.publicKey);
  keyStoreUrl = keyStore.url;
});
afterAll(async () => {
  await as.stop();
  await keyStore.close();
});

type App = Listening;

const replayStore = new MemoryReplayStore();

function brOptions(extra: { bank?: typeof bankKey; kid?: string; store?: MemoryIdempotencyStore } = {}): GuardOptions {
  return {
    issuer: as.issuer,
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    dpop: { replayStore },
    ...(extra.store ? { idempotency: { store: extra.store } } : {}),
    messageSigning: {
      openFinanceBrasil: {
        clients: { 'client-1': { organisationId: CLIENT_ORG, jwksUri: `${keyStoreUrl}/client.jwks` } },
        organisationId: BANK_ORG,
        responseKey: { ...((extra.bank ?? bankKey).privateKey.export({ format: 'jwk' }) as object), kid: extra.kid ?? 'bank-key' },
      },
    },
  };
}

function rawSignedBody(dataText: string, jti = randomUUID()): string {
  const header = Buffer.from(JSON.stringify({ alg: 'PS256', typ: 'JWT', kid: 'client-key' })).toString('base64url');
  const claims = `{"aud":${JSON.stringify(URL_PAYMENTS)},"iss":${JSON.stringify(CLIENT_ORG)},"iat":${Math.floor(Date.now() / 1000)},"jti":${JSON.stringify(jti)},"data":${dataText}}`;
  const input = `${header}.${Buffer.from(claims).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), {
    key: clientKey.privateKey,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: 32,
  });
  return `${input}.${signature.toString('base64url')}`;
}

/** The bank's signed answer, verified with `key` (audience the client's organisation, issuer the bank). */
async function bankPayload(text: string, key = bankKey) {
  const { payload } = await jwtVerify(text, key.publicKey, { algorithms: ['PS256'], audience: CLIENT_ORG, issuer: BANK_ORG });
  return payload as { data: unknown; jti: string };
}

const IDEMPOTENT_PAYMENT: RoutePolicy = {
  scopes: ['payments:write'],
  jwtBody: { request: 'required', response: true },
  idempotency: { mode: 'required', syntax: 'br-of' },
};

/**
 * POST /payments (signed body, signed answer, x-idempotency-key); `answer` makes the handler's
 * JSON. `layered`: the documented set-up with an app-wide layer (docs/regimes/open-finance-brasil.md):
 * the app-wide layer checks the signed body and keeps the key, the route signs the answer — the
 * recorder then sits under the signer and stores the bank's JWT; on one layer it stores the
 * handler's JSON.
 */
async function paymentsApp(
  options: GuardOptions,
  answer: (n: number) => unknown,
  ledger = { processed: 0 },
  layered: boolean | 'hono' = false,
): Promise<App> {
  if (layered === 'hono') {
    // Hono, one layer: its recorder reads the Response after the signer made it the bank's JWT.
    const { Hono } = await import('hono');
    const { fapiGuard } = await import('@fapi-guard/hono');
    const fapi = fapiGuard(options);
    const app = new Hono();
    app.post('/payments', fapi.protect(IDEMPOTENT_PAYMENT), (c) => {
      ledger.processed++;
      return c.json(answer(ledger.processed) as object, 201);
    });
    return serveHono(app);
  }
  const fapi = expressGuard(options);
  const app = express();
  if (layered) app.use(fapi.protect({ jwtBody: { request: 'required' }, idempotency: { mode: 'required', syntax: 'br-of' } }));
  const route: RoutePolicy = layered
    ? { scopes: ['payments:write'], jwtBody: { request: 'required', response: true } }
    : IDEMPOTENT_PAYMENT;
  app.post('/payments', fapi.protect(route), (_req, res) => {
    ledger.processed++;
    res.status(201).json(answer(ledger.processed));
  });
  return listening(app.listen(0, '127.0.0.1'));
}

async function pay(url: string, body: string, key: string) {
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
  const proof = await dpop.proof({ htm: 'POST', htu: URL_PAYMENTS, accessToken: token });
  return send(`${url}/payments`, {
    method: 'POST',
    body,
    headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/jwt', 'x-idempotency-key': key },
  });
}

// ---------------------------------------------------------------------------------------------
// Stored answers replayed to a retry: re-signing needs the bank's key that signed them
// ---------------------------------------------------------------------------------------------

describe.each([true, 'hono', false] as const)(
  'Open Finance Brasil: a retry reaching an instance that signs with the bank’s next key (shared idempotency store; layered: %s)',
  (layered) => {
    it('IDEM-17 IDEM-15 the retry gets the first result signed anew with the instance’s key, not a 500', async () => {
      const store = new MemoryIdempotencyStore();
      const ledger = { processed: 0 };
      const answer = (n: number) => ({ data: { paymentId: `pay-${n}`, status: 'RCVD' } });
      // A rolling key rotation: instance A still signs with bank-key, B already with bank-key-2.
      const a = await paymentsApp(brOptions({ store }), answer, ledger, layered);
      const b = await paymentsApp(brOptions({ store, bank: bankKey2, kid: 'bank-key-2' }), answer, ledger, layered);
      try {
        const key = randomUUID();
        const data = '{"payment":{"amount":"100.00","currency":"BRL"}}';
        const first = await pay(a.url, rawSignedBody(data), key);
        expect(first.status).toBe(201);
        expect((await bankPayload(first.text)).data).toEqual({ data: { paymentId: 'pay-1', status: 'RCVD' } });
        const retry = await pay(b.url, rawSignedBody(data), key);
        expect(ledger.processed).toBe(1);
        // Was: 500 "The response could not be signed" (ownJwtData checks the stored JWT with B's key
        // only, then JSON.parse of the JWT text throws), for every retry until the key expires.
        expect(retry.status).toBe(201);
        expect((await bankPayload(retry.text, bankKey2)).data).toEqual({ data: { paymentId: 'pay-1', status: 'RCVD' } });
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('IDEM-17 IDEM-15 the same after a restart with the next key: the stored answer is not lost to a 500', async () => {
      const store = new MemoryIdempotencyStore();
      const ledger = { processed: 0 };
      const answer = (n: number) => ({ data: { paymentId: `pay-${n}` } });
      const before = await paymentsApp(brOptions({ store }), answer, ledger, layered);
      const key = randomUUID();
      const data = '{"payment":{"amount":"5.00","currency":"BRL"}}';
      try {
        expect((await pay(before.url, rawSignedBody(data), key)).status).toBe(201);
      } finally {
        await before.close();
      }
      const after = await paymentsApp(brOptions({ store, bank: bankKey2, kid: 'bank-key-2' }), answer, ledger, layered);
      try {
        const retry = await pay(after.url, rawSignedBody(data), key);
        expect(ledger.processed).toBe(1);
        expect([retry.status, retry.headers['content-type']]).toEqual([201, 'application/jwt']);
      } finally {
        await after.close();
      }
    });
  },
);

describe.each([true, 'hono', false] as const)('Open Finance Brasil: a stored answer whose data is JSON null (layered: %s)', (layered) => {
  it('IDEM-17 IDEM-15 the retry gets the first result (data null) signed anew, not a 500', async () => {
    const ledger = { processed: 0 };
    const app = await paymentsApp(brOptions(), () => null, ledger, layered);
    try {
      const key = randomUUID();
      const data = '{"payment":{"amount":"7.00","currency":"BRL"}}';
      const first = await pay(app.url, rawSignedBody(data), key);
      expect([first.status, (await bankPayload(first.text)).data]).toEqual([201, null]);
      const retry = await pay(app.url, rawSignedBody(data), key);
      expect(ledger.processed).toBe(1);
      // Was: 500: ownJwtData returns the stored data, null, and `?? JSON.parse(text)` then parses the JWT text.
      expect(retry.status).toBe(201);
      expect((await bankPayload(retry.text)).data).toBeNull();
    } finally {
      await app.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Responses signed for a client the bank has no organisation for
// ---------------------------------------------------------------------------------------------

describe('Open Finance Brasil: a response-signing route and a client without an organisation id', () => {
  it('BR-07 a handler body shaped like a signed JWT with a data claim is not taken for a stored answer: 500, the bank signs nothing', async () => {
    // Only a replay of a stored answer is read as the bank's JWT (storedJwtData); a fresh body must be JSON.
    const forged = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"data":{"transfer":"all"}}').toString('base64url')}.c2ln`;
    const fapi = expressGuard(brOptions());
    const app = express();
    app.get(
      '/consents/:id',
      fapi.protect({ scopes: ['consents'], jwtBody: { response: true } }),
      (_req, res) => void res.type('text/plain').send(forged),
    );
    const server = await listening(app.listen(0, '127.0.0.1'));
    try {
      const token = await as.mint({ scope: 'consents', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
      const proof = await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/consents/c1`, accessToken: token });
      const res = await send(`${server.url}/consents/c1`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      expect(res.status).toBe(500);
      expect(JSON.parse(res.text)).toEqual({ error_description: 'The response could not be signed' });
    } finally {
      await server.close();
    }
  });

  it('BR-07 a token of a client not in openFinanceBrasil.clients gets no bank-signed answer without aud', async () => {
    const fapi = expressGuard(brOptions());
    const app = express();
    app.get(
      '/consents/:id',
      fapi.protect({ scopes: ['consents'], jwtBody: { response: true } }),
      (req, res) => void res.json({ data: { consentId: req.params.id, status: 'AUTHORISED' } }),
    );
    const server = await listening(app.listen(0, '127.0.0.1'));
    try {
      const token = await as.mint({ scope: 'consents', jkt: dpop.jkt, claims: { client_id: 'client-unknown' } });
      const proof = await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/consents/c1`, accessToken: token });
      const res = await send(`${server.url}/consents/c1`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      // Was: 200, a JWT signed by the bank with no aud at all (audience = organisations.get(clientId), undefined).
      // Now 403 before the handler runs; the client is not known, so the envelope is not signed (BR-07).
      expect(res.status).toBe(403);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['www-authenticate']).toMatch(/^DPoP .*error="insufficient_scope"/);
      expect(JSON.parse(res.text).errors[0]).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
    } finally {
      await server.close();
    }
  });
});

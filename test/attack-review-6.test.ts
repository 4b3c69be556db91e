/**
 * Attack review 6: the Hono replay mark (hono/src/index.ts `replays`), the signed idempotency
 * refusals on Open Finance Brasil routes, and the client key sets waited for while a fetch is in
 * flight (signatures/client-keys.ts). Every test asserts the correct behaviour; those that fail
 * are the findings (see each test's comment):
 *
 * 1. hono: the bank signs on an outer layer, the key is kept by an inner layer: the inner layer
 *    records `c.res` before the outer layer signs it (hono/src/index.ts:227), so a first request
 *    the outer layer answers 500 (unsignable) is stored as the handler's 201, and its retry, marked
 *    as a replay (:194), is signed from the `data` of a handler text shaped like a JWT: 201, the
 *    bank's signature over data the bank never produced. express, koa, fastify: 500, key freed.
 * 2. all adapters: an app-wide key layer in front of the Open Finance Brasil layer fingerprints the
 *    raw body (no verified jwtBody yet): every retry (signed anew) is 422.
 * 3. all adapters: refusals of a key layer behind the bank's signing layer are signed with the
 *    OAuth body as data, not the Open Finance Brasil error envelope.
 *
 * The client key tests pass: a JWKS host that never finishes holds requests only up to timeoutMs
 * of the one fetch, other clients are not held, unknown kids do not bypass the cool-down.
 */
import { constants, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type GuardOptions, MemoryReplayStore, type RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import Router from '@koa/router';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { jwtVerify } from 'jose';
import Koa from 'koa';
import { serveHono } from './support/apps';
import { clientKeyStore, type Listening, listening, send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const URL_PAYMENTS = `${AUDIENCE}/payments`;
const CLIENT_ORG = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
const OTHER_ORG = '74e929d9-33b6-4d85-8ba7-c146c867a817';
const BANK_ORG = 'b961c4eb-509d-4edf-afeb-35642b38185d';

const clientKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const bankKey = generateKeyPairSync('rsa', { modulusLength: 2048 });

let as: MockIssuer;
let dpop: DpopClient;
let keyStore: Listening;
let otherKeyStore: Listening;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  dpop = await DpopClient.create('ES256');
  keyStore = await clientKeyStore(clientKey.publicKey);
  otherKeyStore = await clientKeyStore(otherKey.publicKey, 'other-key');
});
afterAll(async () => {
  await as.stop();
  await keyStore.close();
  await otherKeyStore.close();
});

const replayStore = new MemoryReplayStore();

function brOptions(extra: Partial<GuardOptions> = {}): GuardOptions {
  return {
    issuer: as.issuer,
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    dpop: { replayStore },
    messageSigning: {
      openFinanceBrasil: {
        clients: {
          'client-1': { organisationId: CLIENT_ORG, jwksUri: `${keyStore.url}/client.jwks` },
          'client-2': { organisationId: OTHER_ORG, jwksUri: `${otherKeyStore.url}/client.jwks` },
        },
        organisationId: BANK_ORG,
        responseKey: { ...(bankKey.privateKey.export({ format: 'jwk' }) as object), kid: 'bank-key' },
      },
    },
    ...extra,
  };
}

/** A body signed by `client-1` (or `client-2` with `other`), `dataText` written as is. */
function signedBody(dataText: string, other = false, jti = randomUUID(), kid = other ? 'other-key' : 'client-key'): string {
  const header = Buffer.from(JSON.stringify({ alg: 'PS256', typ: 'JWT', kid })).toString('base64url');
  const claims = `{"aud":${JSON.stringify(URL_PAYMENTS)},"iss":${JSON.stringify(other ? OTHER_ORG : CLIENT_ORG)},"iat":${Math.floor(Date.now() / 1000)},"jti":${JSON.stringify(jti)},"data":${dataText}}`;
  const input = `${header}.${Buffer.from(claims).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), {
    key: (other ? otherKey : clientKey).privateKey,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: 32,
  });
  return `${input}.${signature.toString('base64url')}`;
}

/** The bank's signed answer, verified: audience the client's organisation, issuer the bank. */
async function bankPayload(text: string, audience = CLIENT_ORG) {
  const { payload } = await jwtVerify(text, bankKey.publicKey, { algorithms: ['PS256'], audience, issuer: BANK_ORG });
  return payload as { data: unknown; jti: string };
}

async function pay(url: string, body: string, key: string | undefined, clientId = 'client-1', path = '/payments') {
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: clientId } });
  const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}${path}`, accessToken: token });
  return send(`${url}${path}`, {
    method: 'POST',
    body,
    headers: {
      authorization: `DPoP ${token}`,
      dpop: proof,
      'content-type': 'application/jwt',
      ...(key === undefined ? {} : { 'x-idempotency-key': key }),
    },
  });
}

type Framework = 'express' | 'koa' | 'fastify' | 'hono';
const FRAMEWORKS: readonly Framework[] = ['express', 'koa', 'fastify', 'hono'];

/** The handler's answer: a status, and a text body with its media type. */
interface Answer {
  status: number;
  type: string;
  body: string;
}

/** POST /payments behind the layers `policies` (outermost first) of one guard; `answer` makes the handler's response. */
async function layered(
  framework: Framework,
  options: GuardOptions,
  policies: RoutePolicy[],
  answer: (n: number) => Answer,
  ledger: { processed: number },
): Promise<Listening> {
  const next = () => answer(++ledger.processed);
  if (framework === 'hono') {
    const fapi = honoGuard(options);
    const app = new Hono();
    // The layers in order, each as the route's own middleware (one Context per request).
    for (const p of policies) app.post('/payments', fapi.protect(p));
    app.post('/payments', (c) => {
      const a = next();
      return c.body(a.body, a.status as 201, { 'content-type': a.type });
    });
    return serveHono(app);
  }
  if (framework === 'express') {
    const fapi = expressGuard(options);
    const app = express();
    app.post('/payments', ...policies.map((p) => fapi.protect(p)), (_req, res) => {
      const a = next();
      res.status(a.status).type(a.type).send(a.body);
    });
    return listening(app.listen(0, '127.0.0.1'));
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options);
    const app = new Koa();
    const router = new Router();
    router.post('/payments', ...policies.map((p) => fapi.protect(p)), (ctx) => {
      const a = next();
      ctx.status = a.status;
      ctx.type = a.type;
      ctx.body = a.body;
    });
    app.use(router.routes());
    return listening(createServer(app.callback()).listen(0, '127.0.0.1'));
  }
  const app = Fastify();
  await app.register(fastifyPlugin, options);
  app.addContentTypeParser('application/jwt', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.post('/payments', { preHandler: policies.map((p) => app.fapi.protect(p)) }, async (_request, reply) => {
    const a = next();
    return reply.code(a.status).type(a.type).send(a.body);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
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
    const app = await layered(framework, brOptions(), [SIGNING, KEYED], () => ({ status: 201, type: 'text/plain', body: forged }), ledger);
    try {
      const key = randomUUID();
      const data = '{"payment":{"amount":"1.00"}}';
      const first = await pay(app.url, signedBody(data), key);
      const retry = await pay(app.url, signedBody(data), key);
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
    const app = await layered(framework, brOptions(), [SIGNING, KEYED], answer, ledger);
    try {
      const key = randomUUID();
      expect((await pay(app.url, signedBody('{"payment":{"amount":"1.00"}}'), key)).status).toBe(201);
      const reused = await pay(app.url, signedBody('{"payment":{"amount":"999.00"}}'), key);
      const missing = await pay(app.url, signedBody('{"payment":{"amount":"1.00"}}'), undefined);
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
    const app = await layered(framework, brOptions(), policies, answer, ledger);
    try {
      const key = randomUUID();
      const data = '{"payment":{"amount":"2.00"}}';
      expect((await pay(app.url, signedBody(data), key)).status).toBe(201);
      const retry = await pay(app.url, signedBody(data), key);
      // Current code: 422 idempotency_key_reused. The app-wide layer claims the key and
      // fingerprints the raw body bytes (its authorization has no verified jwtBody yet); every
      // attempt is signed anew (new jti, iat), so the bytes always differ. The route's layer has the
      // same key settings and does not fingerprint again (idempotency/layers.ts sameSettings).
      expect([retry.status, retry.headers['content-type'], ledger.processed]).toEqual([201, 'application/jwt', 1]);
      expect((await bankPayload(retry.text)).data).toEqual({ data: { paymentId: 'pay-1' } });
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
    const options = brOptions();
    const signing = options.messageSigning as NonNullable<GuardOptions['messageSigning']>;
    signing.timeoutMs = 400;
    const brazil = signing.openFinanceBrasil as NonNullable<typeof signing.openFinanceBrasil>;
    brazil.clients = {
      'client-1': { organisationId: CLIENT_ORG, jwksUri: `${hanging.url}/client.jwks` },
      'client-2': { organisationId: OTHER_ORG, jwksUri: `${otherKeyStore.url}/client.jwks` },
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
      const first = timed(pay(app.url, signedBody('{"n":1}'), randomUUID()));
      await new Promise((r) => setTimeout(r, 150));
      const [a, b, other] = await Promise.all([
        first,
        timed(pay(app.url, signedBody('{"n":2}'), randomUUID())),
        timed(pay(app.url, signedBody('{"n":3}', true), randomUUID(), 'client-2')),
      ]);
      expect([a.status, b.status, other.status]).toEqual([503, 503, 201]);
      // One fetch; the late request waits for what is left of it, not a timeout of its own.
      expect(hits).toBe(1);
      expect(Math.max(a.at, b.at)).toBeLessThan(400 + 350);
      expect(other.at).toBeLessThan(400);
      // Within the cool-down: answered at once, no new fetch.
      const started = Date.now();
      expect((await pay(app.url, signedBody('{"n":4}'), randomUUID())).status).toBe(503);
      expect([hits, Date.now() - started < 300]).toEqual([1, true]);
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
    const options = brOptions();
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
      expect((await pay(app.url, signedBody('{"warm":1}'), randomUUID())).status).toBe(201);
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) => pay(app.url, signedBody(`{"n":${i}}`, false, randomUUID(), `kid-${i}`), randomUUID())),
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

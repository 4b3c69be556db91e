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
import Koa from 'koa';
import { serveHono } from './support/apps';
import { AUDIENCE, BANK_ORG, bankPayload, bankResponseKey, CLIENT_ORG, clientKey, OTHER_ORG, otherKey, signedBody } from './support/brazil';
import { clientKeyStore, type Listening, listening, send } from './support/http';

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
        responseKey: bankResponseKey(),
      },
    },
    ...extra,
  };
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
      // The app-wide layer reads the data unverified: the same data under a signature that does
      // not verify is refused by the route's layer, never answered with the stored payment.
      const forged = `${signedBody(data).split('.').slice(0, 2).join('.')}.${Buffer.alloc(256).toString('base64url')}`;
      const refused = await pay(app.url, forged, key);
      expect(refused.status).toBe(400);
      expect(refused.text).not.toContain('pay-1');
      // Other data under the key: 422, in the Open Finance Brasil envelope, signed by the bank.
      const reused = await pay(app.url, signedBody('{"payment":{"amount":"3.00"}}'), key);
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
    const options = brOptions();
    const signing = options.messageSigning as NonNullable<GuardOptions['messageSigning']>;
    signing.timeoutMs = 1500;
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
      await new Promise((r) => setTimeout(r, 1000));
      const [a, b, other] = await Promise.all([
        first,
        timed(pay(app.url, signedBody('{"n":2}'), randomUUID())),
        timed(pay(app.url, signedBody('{"n":3}', true), randomUUID(), 'client-2')),
      ]);
      expect([a.status, b.status, other.status]).toEqual([503, 503, 201]);
      // One fetch; the late request waits for what is left of it, not a timeout of its own.
      expect(hits).toBe(1);
      // Compared with each other, not with a clock: a loaded machine delays them alike. The late
      // request ends with the first (a fetch of its own would end a second later, and be a hit);
      // the other client's ends before the hung fetch gives up.
      expect(Math.abs(a.at - b.at)).toBeLessThan(700);
      expect(other.at).toBeLessThan(a.at);
      // Within the cool-down: refused without a new fetch.
      expect((await pay(app.url, signedBody('{"n":4}'), randomUUID())).status).toBe(503);
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

// ---------------------------------------------------------------------------------------------
// A key stored by a deeper route, reused on a route with fewer layers
// ---------------------------------------------------------------------------------------------

/** POST /payments behind an app-wide keyed layer and a route layer; POST /other behind the app-wide layer alone. */
async function twoRoutes(framework: Framework, counts: { payments: number; other: number }): Promise<Listening> {
  const options: GuardOptions = { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, dpop: { replayStore } };
  const appWide: RoutePolicy = { scopes: ['payments:write'], idempotency: { mode: 'required' } };
  const route: RoutePolicy = { anyScopes: ['payments:write', 'payments:admin'] };
  const paid = () => ({ payment: `pay-${++counts.payments}` });
  const other = () => ({ other: ++counts.other });
  if (framework === 'hono') {
    const fapi = honoGuard(options);
    const app = new Hono();
    app.use('*', fapi.protect(appWide));
    app.post('/payments', fapi.protect(route), (c) => c.json(paid(), 201));
    app.post('/other', (c) => c.json(other(), 201));
    return serveHono(app);
  }
  if (framework === 'express') {
    const fapi = expressGuard(options);
    const app = express();
    app.use(fapi.protect(appWide));
    app.post('/payments', fapi.protect(route), (_req, res) => void res.status(201).json(paid()));
    app.post('/other', (_req, res) => void res.status(201).json(other()));
    return listening(app.listen(0, '127.0.0.1'));
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options);
    const app = new Koa();
    app.use(fapi.protect(appWide));
    const router = new Router();
    router.post('/payments', fapi.protect(route), (ctx) => {
      ctx.status = 201;
      ctx.body = paid();
    });
    router.post('/other', (ctx) => {
      ctx.status = 201;
      ctx.body = other();
    });
    app.use(router.routes());
    return listening(createServer(app.callback()).listen(0, '127.0.0.1'));
  }
  const app = Fastify();
  await app.register(fastifyPlugin, options);
  app.post('/payments', { preHandler: [app.fapi.protect(appWide), app.fapi.protect(route)] }, async (_q, reply) =>
    reply.code(201).send(paid()),
  );
  app.post('/other', { preHandler: [app.fapi.protect(appWide)] }, async (_q, reply) => reply.code(201).send(other()));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

async function post(url: string, path: string, body: string, key: string) {
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
  const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}${path}`, accessToken: token });
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

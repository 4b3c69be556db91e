/**
 * Attack review 3 (of commit b77c434): Open Finance Brasil signed bodies with idempotency keys
 * (the `data` claim fingerprint, replays signed anew, what the Node recorder keeps) and DPoP
 * `htu` against paths the URL parser changes. Each test asserts the secure behaviour; the ones
 * named by requirement were findings (fixed since), the others hypotheses found safe.
 */
import { constants, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import Router from '@koa/router';
import express from 'express';
import Fastify from 'fastify';
import { jwtVerify } from 'jose';
import Koa from 'koa';
import { ROUTES, type StartedApp, startApp } from './support/apps';
import { clientKeyStore, type Listening, listening, send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const URL_PAYMENTS = `${AUDIENCE}/payments`;
const CLIENT_ORG = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
const BANK_ORG = 'b961c4eb-509d-4edf-afeb-35642b38185d';

const clientKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const bankKey = generateKeyPairSync('rsa', { modulusLength: 2048 });

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

// ---------------------------------------------------------------------------------------------
// DPoP htu: request targets the router reads differently from the guard
// ---------------------------------------------------------------------------------------------

type Framework = 'express' | 'koa' | 'fastify';
type App = Listening;

/**
 * GET / (an API index) and GET /accounts/:id (one account, echoing the id the router matched),
 * GET /accounts/:id/transactions; every route DPoP-protected with scope `accounts`.
 */
async function dpopApp(framework: Framework): Promise<App> {
  const options: GuardOptions = { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE };
  const policy: RoutePolicy = { scopes: ['accounts'] };
  if (framework === 'express') {
    const fapi = expressGuard(options);
    const app = express();
    app.get('/', fapi.protect(policy), (_req, res) => void res.json({ route: 'index' }));
    app.get('/accounts/:id', fapi.protect(policy), (req, res) => void res.json({ route: 'account', id: req.params.id }));
    app.get('/accounts/:id/transactions', fapi.protect(policy), (req, res) => void res.json({ route: 'transactions', id: req.params.id }));
    return listening(app.listen(0, '127.0.0.1'));
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options);
    const app = new Koa();
    const router = new Router();
    router.get('/', fapi.protect(policy), (ctx) => {
      ctx.body = { route: 'index' };
    });
    router.get('/accounts/:id', fapi.protect(policy), (ctx) => {
      ctx.body = { route: 'account', id: ctx.params.id };
    });
    router.get('/accounts/:id/transactions', fapi.protect(policy), (ctx) => {
      ctx.body = { route: 'transactions', id: ctx.params.id };
    });
    app.use(router.routes());
    return listening(app.listen(0, '127.0.0.1'));
  }
  const app = Fastify();
  await app.register(fastifyPlugin, options);
  const config = { config: { fapi: routePolicy(policy) } };
  app.get('/', config, async () => ({ route: 'index' }));
  app.get('/accounts/:id', config, async (request) => ({ route: 'account', id: (request.params as { id: string }).id }));
  app.get('/accounts/:id/transactions', config, async (request) => ({
    route: 'transactions',
    id: (request.params as { id: string }).id,
  }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

describe.each(['express', 'koa', 'fastify'] as const)('DPoP htu against the routed path on %s', (framework) => {
  let app: App;
  beforeAll(async () => {
    app = await dpopApp(framework);
  });
  afterAll(() => app.close());

  /** GET `target` (sent raw) with a fresh token and a proof whose htu is `htu`. */
  async function get(target: string, htu: string) {
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt });
    const proof = await dpop.proof({ htm: 'GET', htu, accessToken: token });
    return send(`${app.url}/`, { target, headers: { authorization: `DPoP ${token}`, dpop: proof } });
  }

  it('control: each route with a proof for its own path', async () => {
    expect((await get('/', `${AUDIENCE}/`)).json).toEqual({ route: 'index' });
    expect((await get('/accounts/a1', `${AUDIENCE}/accounts/a1`)).json).toEqual({ route: 'account', id: 'a1' });
    expect((await get('/accounts/a1/transactions', `${AUDIENCE}/accounts/a1/transactions`)).json).toEqual({
      route: 'transactions',
      id: 'a1',
    });
  });

  it('DPOP-11 a proof for GET / does not pass on /accounts/..#x (a fragment hides a dot segment from the router): refused, or no route', async () => {
    // new URL() drops the fragment and the '..' with it: http://…/accounts/..#x → '/'; the router
    // (parseurl/url.parse, find-my-way) cuts at '#' and matches '/accounts/..' (/accounts/:id).
    for (const target of ['/accounts/..#x', '/accounts/%2e%2e#', '/accounts/a1/transactions/.#']) {
      const res = await get(target, target.startsWith('/accounts/a1') ? `${AUDIENCE}/accounts/a1/transactions/` : `${AUDIENCE}/`);
      // It was a 200 from /accounts/:id (id '..' or '%2e%2e').
      expect([target, [401, 404].includes(res.status), res.json]).toEqual([
        target,
        true,
        expect.not.objectContaining({ route: expect.any(String) }),
      ]);
    }
  });

  it('DPOP-11 a proof for GET /accounts/a1/transactions does not pass on /accounts/a1\\transactions (routed to /accounts/:id)', async () => {
    // new URL() reads '\\' as '/', the routers as an ordinary character of one segment.
    const res = await get('/accounts/a1\\transactions', `${AUDIENCE}/accounts/a1/transactions`);
    // It was a 200 {"route":"account","id":"a1\\transactions"}.
    expect([res.status, res.json]).toEqual([401, expect.not.objectContaining({ route: expect.any(String) })]);
  });

  it('safe: percent-encoded unreserved characters, %2F, double slashes and ;params are refused or reach the same route', async () => {
    // %61 = 'a': both the guard and the router (which decodes params) see /accounts/a1.
    const decoded = await get('/accounts/%61%31', `${AUDIENCE}/accounts/a1`);
    expect(decoded.status === 401 || decoded.json.id === 'a1').toBe(true);
    // An encoded slash stays encoded in both.
    expect((await get('/accounts/a1%2Ftransactions', `${AUDIENCE}/accounts/a1/transactions`)).status).not.toBe(200);
    for (const [target, htu] of [
      ['//accounts/a1', '/accounts/a1'],
      ['/accounts/a1;x/transactions', '/accounts/a1/transactions'],
      ['/accounts/a1/transactions/..', '/accounts/a1'],
      ['/accounts/a1/transactions\\..', '/accounts/a1'],
      ['/accounts/a1/transactions/%2E', '/accounts/a1/transactions'],
      ['/accounts/a1/transactions/..?q=1', '/accounts/a1'],
      ['/ACCOUNTS/a1', '/accounts/a1'],
      ['/accounts/a1/', '/accounts/a1'],
    ] as const) {
      const res = await get(target, `${AUDIENCE}${htu}`);
      expect([target, res.status === 401 || res.status === 404]).toEqual([target, true]);
    }
    // A legitimate path with dots inside a segment is not refused by the new check.
    expect((await get('/accounts/a..1', `${AUDIENCE}/accounts/a..1`)).json).toEqual({ route: 'account', id: 'a..1' });
    expect((await get('/accounts/...', `${AUDIENCE}/accounts/...`)).json).toEqual({ route: 'account', id: '...' });
  });
});

// ---------------------------------------------------------------------------------------------
// Open Finance Brasil: the data-claim fingerprint
// ---------------------------------------------------------------------------------------------

const brOptions = (): GuardOptions => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  messageSigning: {
    clients: {},
    responseKey: {
      ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as object),
      kid: 'fapi2-key',
    },
    openFinanceBrasil: {
      clients: { 'client-1': { organisationId: CLIENT_ORG, jwksUri: `${keyStoreUrl}/client.jwks` } },
      organisationId: BANK_ORG,
      responseKey: { ...(bankKey.privateKey.export({ format: 'jwk' }) as object), kid: 'bank-key' },
    },
  },
});

const IDEMPOTENT_BR = {
  ...ROUTES,
  payments: {
    scopes: ['payments:write'],
    jwtBody: { request: 'required', response: true },
    idempotency: { mode: 'required', syntax: 'br-of' },
  },
} as const;

/**
 * A client-signed body whose claims are written as `dataText` says (raw JSON text, so numbers
 * such as 1e400 or -0 survive: jose would write them through JSON.stringify).
 */
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

async function bankPayload(text: string) {
  const { payload } = await jwtVerify(text, bankKey.publicKey, { algorithms: ['PS256'], audience: CLIENT_ORG, issuer: BANK_ORG });
  return payload as { data: Record<string, unknown>; jti: string };
}

describe('Open Finance Brasil: two different data claims under one key (express)', () => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp('express', brOptions(), IDEMPOTENT_BR);
  });
  afterAll(() => app.close());

  async function pay(body: string, key: string) {
    const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
    const proof = await dpop.proof({ htm: 'POST', htu: URL_PAYMENTS, accessToken: token });
    return send(`${app.url}/payments`, {
      method: 'POST',
      body,
      headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/jwt', 'x-idempotency-key': key },
    });
  }
  const processedJti = async (text: string) => ((await bankPayload(text)).data.jwtBody as { jti: string }).jti;

  it('control: the same data, reordered and respaced, is the same payment', async () => {
    const key = randomUUID();
    const first = await pay(rawSignedBody('{"payment":{"amount":"1.00","currency":"BRL"},"x":1}'), key);
    const retry = await pay(rawSignedBody('{ "x" : 1.0, "payment" : {"currency":"BRL","amount":"1.00"} }'), key);
    expect([first.status, retry.status]).toEqual([201, 201]);
    expect(await processedJti(retry.text)).toBe(await processedJti(first.text));
  });

  it('IDEM-17 IDEM-06 {"amount":1e400} (Infinity to the handler) and {"amount":null} are different requests: 422, not the first payment', async () => {
    const key = randomUUID();
    const first = await pay(rawSignedBody('{"payment":{"amount":1e400}}'), key);
    expect(first.status).toBe(201);
    const other = await pay(rawSignedBody('{"payment":{"amount":null}}'), key);
    // JSON.stringify writes Infinity as 'null': both data claims hashed alike.
    expect(other.status).toBe(422);
  });

  it('safe: __proto__, duplicate members and lone surrogates do not make two different data claims one', async () => {
    const key1 = randomUUID();
    expect((await pay(rawSignedBody('{"__proto__":{"amount":"1.00"}}'), key1)).status).toBe(201);
    expect((await pay(rawSignedBody('{"__proto__":{"amount":"9.00"}}'), key1)).status).toBe(422);
    expect((await pay(rawSignedBody('{}'), key1)).status).toBe(422);
    const key2 = randomUUID();
    expect((await pay(rawSignedBody('{"s":"\\ud800"}'), key2)).status).toBe(201);
    expect((await pay(rawSignedBody('{"s":"\\ufffd"}'), key2)).status).toBe(422);
    expect((await pay(rawSignedBody('{"s":"\\udc00"}'), key2)).status).toBe(422);
    // Members sorted by UTF-16 code units: "a,b" as one name is not two members.
    const key3 = randomUUID();
    expect((await pay(rawSignedBody('{"a":{"b":1}}'), key3)).status).toBe(201);
    expect((await pay(rawSignedBody('{"a":[{"b":1}]}'), key3)).status).toBe(422);
    expect((await pay(rawSignedBody('{"a":"{\\"b\\":1}"}'), key3)).status).toBe(422);
  });

  it('safe: a deeply nested data claim is no 5xx or stall of the guard', async () => {
    const depth = 60_000;
    const res = await pay(rawSignedBody(`{"n":${'['.repeat(depth)}${']'.repeat(depth)}}`), randomUUID());
    // The guard fingerprints it (iterative); the test app's own res.json of the echo may fail (its 500 is the app's).
    expect(res.status).not.toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Open Finance Brasil: what is recorded when the client hangs up (Koa ends without the body)
// ---------------------------------------------------------------------------------------------

/**
 * Koa, POST /payments: with `layered`, an app-wide layer that checks the signed body and keeps the
 * key, and the route that answers signed (the documented set-up, open-finance-brasil.md); else
 * one layer doing all. The handler takes `delayMs` (a slow payment) and counts what it processed.
 */
async function koaBrazil(layered: boolean, ledger: { processed: number }, delayMs = 300): Promise<App> {
  const fapi = koaGuard(brOptions());
  const app = new Koa();
  const idempotency = { mode: 'required', syntax: 'br-of' } as const;
  const route: RoutePolicy = { scopes: ['payments:write'], jwtBody: { request: 'required', response: true } };
  if (layered) app.use(fapi.protect({ jwtBody: { request: 'required' }, idempotency }));
  const router = new Router();
  router.post('/payments', fapi.protect(layered ? route : { ...route, idempotency }), async (ctx) => {
    await new Promise((r) => setTimeout(r, delayMs));
    ledger.processed++;
    ctx.status = 201;
    ctx.body = { data: { paymentId: `pay-${ledger.processed}`, status: 'RCVD' } };
  });
  app.use(router.routes());
  return listening(app.listen(0, '127.0.0.1'));
}

/** The signed payment with `key`, sent over a raw socket that is closed after `hangUpMs` (no answer read). */
async function payAndHangUp(url: string, key: string, hangUpMs: number): Promise<void> {
  const { connect } = await import('node:net');
  const { port } = new URL(url);
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
  const proof = await dpop.proof({ htm: 'POST', htu: URL_PAYMENTS, accessToken: token });
  const body = rawSignedBody('{"payment":{"amount":"100.00","currency":"BRL"}}');
  await new Promise<void>((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(
        `POST /payments HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nauthorization: DPoP ${token}\r\ndpop: ${proof}\r\n` +
          `content-type: application/jwt\r\nx-idempotency-key: ${key}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      setTimeout(() => {
        socket.destroy();
        resolve();
      }, hangUpMs);
    });
    socket.on('error', reject);
  });
}

async function payKoa(url: string, key: string) {
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
  const proof = await dpop.proof({ htm: 'POST', htu: URL_PAYMENTS, accessToken: token });
  return send(`${url}/payments`, {
    method: 'POST',
    body: rawSignedBody('{"payment":{"amount":"100.00","currency":"BRL"}}'),
    headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/jwt', 'x-idempotency-key': key },
  });
}

describe.each([false, true])('Open Finance Brasil on Koa, client hangs up mid-payment (layered: %s)', (layered) => {
  it('IDEM-17 IDEM-11 the retry gets 409 "not kept" (or the real result), never a bank-signed 201 with an empty data claim', async () => {
    const ledger = { processed: 0 };
    const app = await koaBrazil(layered, ledger);
    try {
      const key = randomUUID();
      await payAndHangUp(app.url, key, 100);
      // The payment runs on without its client (bounded wait: a loaded machine is slow).
      for (let i = 0; i < 100 && ledger.processed === 0; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 100));
      expect(ledger.processed).toBe(1);
      const retry = await payKoa(app.url, key);
      expect(ledger.processed).toBe(1);
      const data = retry.status === 201 ? (await bankPayload(retry.text)).data : undefined;
      // It was a 201 with data {}: the payment id lost, the bank's signature on an empty result.
      expect([retry.status, data]).toEqual(
        retry.status === 409 ? [409, undefined] : [201, { data: { paymentId: 'pay-1', status: 'RCVD' } }],
      );
    } finally {
      await app.close();
    }
  });
});

describe('Koa JSON object body, client hangs up mid-payment (no Open Finance Brasil)', () => {
  it('IDEM-11 the retry gets 409 "not kept" or the first payment, never a 201 with an empty body', async () => {
    const fapi = koaGuard({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE });
    const app = new Koa();
    const router = new Router();
    let processed = 0;
    router.post('/payments', fapi.protect({ scopes: ['payments:write'], idempotency: { mode: 'required' } }), async (ctx) => {
      await new Promise((r) => setTimeout(r, 300));
      processed++;
      ctx.status = 201;
      ctx.body = { payment: `pay-${processed}` }; // Koa sets Content-Length only once it stringifies, after its writable check
    });
    app.use(router.routes());
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const port = (server.address() as AddressInfo).port;
    try {
      const key = `"${randomUUID()}"`;
      const headers = async () => {
        const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt });
        const proof = await dpop.proof({ htm: 'POST', htu: `${AUDIENCE}/payments`, accessToken: token });
        return { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/json', 'idempotency-key': key };
      };
      const { connect } = await import('node:net');
      const first = await headers();
      await new Promise<void>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => {
          const lines = Object.entries({ host: `127.0.0.1:${port}`, ...first, 'content-length': '2' }).map(([n, v]) => `${n}: ${v}\r\n`);
          socket.write(`POST /payments HTTP/1.1\r\n${lines.join('')}\r\n{}`);
          setTimeout(() => {
            socket.destroy();
            resolve();
          }, 100);
        });
        socket.on('error', reject);
      });
      await new Promise((r) => setTimeout(r, 600));
      const retry = await send(`http://127.0.0.1:${port}/payments`, { method: 'POST', body: '{}', headers: await headers() });
      expect(processed).toBe(1);
      // It was a 201 with an empty body (the payment id lost).
      expect([retry.status, retry.status === 409 ? 'not kept' : retry.text]).toEqual(
        retry.status === 409 ? [409, 'not kept'] : [201, JSON.stringify({ payment: 'pay-1' })],
      );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('Open Finance Brasil: a handler body that looks like a JWT (express)', () => {
  it("BR-07 a text body in compact-JWS form that the bank never signed is not re-signed as the bank's answer", async () => {
    const fapi = expressGuard(brOptions());
    const app = express();
    // A handler that relays text it was given (a downstream system's answer, a reference it echoes).
    app.get(
      '/relay',
      fapi.protect({ scopes: ['payments:write'], jwtBody: { response: true } }),
      (req, res) => void res.type('text/plain').send(String(req.query.text)),
    );
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    try {
      const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const claims = { data: { status: 'ACSC', amount: '1000000.00' } };
      const forgeries = [
        // Unsigned; and with the bank's kid and organisation but a signature the bank never made.
        [b64({ alg: 'none' }), b64(claims), 'x'].join('.'),
        [
          b64({ alg: 'PS256', typ: 'JWT', kid: 'bank-key' }),
          b64({ ...claims, iss: BANK_ORG }),
          Buffer.alloc(256, 7).toString('base64url'),
        ].join('.'),
      ];
      const port = (server.address() as AddressInfo).port;
      for (const forged of forgeries) {
        const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
        const proof = await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/relay`, accessToken: token });
        const res = await send(`http://127.0.0.1:${port}/relay?text=${forged}`, {
          headers: { authorization: `DPoP ${token}`, dpop: proof },
        });
        // Not JSON and not the bank's own JWT: nothing is signed (it was a bank-signed JWT with the forged data).
        const data = res.status === 200 ? (await bankPayload(res.text)).data : undefined;
        expect([res.status, data]).toEqual([500, undefined]);
      }
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

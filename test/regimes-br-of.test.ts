/**
 * Open Finance Brasil signed JWT bodies on every adapter, over real HTTP: payment requests whose
 * body is a JWT signed by the client (jose as the client's signer), the `data` claim handed to the
 * handler, responses and refusals returned as JWTs signed by the bank (jose as the verifier), and
 * `jti` replays refused — also on another API instance sharing the replay store.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Authorized, createGuard, type GuardOptions, MemoryReplayStore, type RoutePolicy } from '@fapi-guard/core';
import { RedisReplayStore } from '@fapi-guard/redis';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { FRAMEWORKS, ROUTES, type StartedApp, serveHono, startApp } from './support/apps';
import {
  AUDIENCE,
  BANK_ORG,
  bankPayload,
  bankResponseKey,
  CLIENT_ORG,
  clientKey,
  OTHER_ORG,
  otherKey,
  URL_PAYMENTS,
} from './support/brazil';
import { send } from './support/http';
import { TestRedis } from './support/redis';

const publicJwk = (key: typeof clientKey, kid: string) => ({ ...(key.publicKey.export({ format: 'jwk' }) as object), kid, use: 'sig' });

let as: MockIssuer;
let dpop: DpopClient;
let keyStore: Server;
let keyStoreUrl: string;
const sharedStore = new MemoryReplayStore();

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  dpop = await DpopClient.create('ES256');
  keyStore = createServer((req, res) => {
    const sets: Record<string, object> = {
      '/client.jwks': { keys: [publicJwk(clientKey, 'client-key')] },
      '/other.jwks': { keys: [publicJwk(otherKey, 'other-key')] },
    };
    res.writeHead(sets[req.url ?? ''] ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(sets[req.url ?? ''] ?? {}));
  });
  await new Promise<void>((resolve) => keyStore.listen(0, '127.0.0.1', resolve));
  keyStoreUrl = `http://127.0.0.1:${(keyStore.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await as.stop();
  await new Promise((resolve) => keyStore.close(resolve));
});

const options = (): GuardOptions => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  dpop: { replayStore: sharedStore },
  messageSigning: {
    // The FAPI 2.0 signed routes the test apps also mount need their own settings.
    clients: {},
    responseKey: {
      ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as object),
      kid: 'fapi2-key',
    },
    openFinanceBrasil: {
      clients: {
        'client-1': { organisationId: CLIENT_ORG, jwksUri: `${keyStoreUrl}/client.jwks` },
        'client-2': { organisationId: OTHER_ORG, jwksUri: `${keyStoreUrl}/other.jwks` },
      },
      organisationId: BANK_ORG,
      responseKey: bankResponseKey(),
    },
  },
});

const BR_ROUTES = { ...ROUTES, payments: { scopes: ['payments:write'], jwtBody: { request: 'required', response: true } } } as const;

const data = { payment: { amount: '100.00', currency: 'BRL' }, creditorAccount: { number: '1234567890' } };

/** The client signs the body as Open Finance Brasil asks, with jose. */
function signedBody(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key = clientKey.privateKey) {
  return new SignJWT({ aud: URL_PAYMENTS, iss: CLIENT_ORG, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), data, ...claims })
    .setProtectedHeader({ alg: 'PS256', typ: 'JWT', kid: 'client-key', ...header } as never)
    .sign(key);
}

describe('openFinanceBrasil configuration', () => {
  it('BR-01 needs the bank organisation and each client’s organisation and keys', () => {
    const br = (extra: object) =>
      createGuard({
        ...options(),
        messageSigning: { openFinanceBrasil: { ...options().messageSigning?.openFinanceBrasil, ...extra } as never },
      });
    expect(() => br({ organisationId: '' })).toThrow(/organisationId is required/);
    expect(() => br({ clients: { a: { jwksUri: 'https://keys.example/a.jwks' } } })).toThrow(/clients\["a"\]\.organisationId is required/);
    expect(() => br({ clients: {} })).toThrow(/at least one client/);
    expect(() => createGuard({ issuer: as.issuer, audience: AUDIENCE }).policy({ jwtBody: { request: 'required' } })).toThrow(
      /configure messageSigning\.openFinanceBrasil/,
    );
  });
});

describe.each(FRAMEWORKS)('Open Finance Brasil signed JWT bodies on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, options(), BR_ROUTES);
  });
  afterAll(() => app.close());

  async function pay(body: string, clientId = 'client-1', contentType = 'application/jwt', url = app.url) {
    const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: clientId } });
    const proof = await dpop.proof({ htm: 'POST', htu: URL_PAYMENTS, accessToken: token });
    return send(`${url}/payments`, {
      method: 'POST',
      body,
      headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': contentType },
    });
  }

  /** A refusal: 400, a JWT signed by the bank for the client, the Brazil envelope inside. */
  async function refusal(res: Awaited<ReturnType<typeof pay>>, code: string) {
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/jwt');
    const { data: envelope } = await bankPayload(res.text);
    expect(envelope).toEqual({
      errors: [{ code, title: expect.any(String), detail: expect.any(String) }],
      meta: { requestDateTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) },
    });
  }

  it('BR-01 BR-02 hands the data claim of a client-signed body to the handler and answers with a bank-signed JWT', async () => {
    const res = await pay(await signedBody());
    expect(res.status).toBe(201);
    expect(res.headers['content-type']).toBe('application/jwt');
    const { data: answer } = await bankPayload(res.text);
    expect(answer).toMatchObject({ clientId: 'client-1', jwtBody: { data, iss: CLIENT_ORG, kid: 'client-key' } });
  });

  it('BR-02 refuses a body signed for another URL, by another organisation, or with another key', async () => {
    await refusal(await pay(await signedBody({ aud: `${AUDIENCE}/consents` })), 'BAD_SIGNATURE');
    await refusal(await pay(await signedBody({ iss: OTHER_ORG })), 'BAD_SIGNATURE');
    await refusal(await pay(await signedBody({}, {}, otherKey.privateKey)), 'BAD_SIGNATURE');
    // client-2's own valid body, presented with client-1's token.
    const theirs = await signedBody({ iss: OTHER_ORG }, { kid: 'other-key' }, otherKey.privateKey);
    await refusal(await pay(theirs, 'client-1'), 'BAD_SIGNATURE');
    const accepted = await pay(theirs, 'client-2');
    expect(accepted.status).toBe(201);
    await bankPayload(accepted.text, OTHER_ORG);
  });

  it('BR-07 a client without an organisation in clients is refused 403 before its body is read, the envelope unsigned (no aud to address it to)', async () => {
    const res = await pay(await signedBody(), 'client-unlisted');
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['www-authenticate']).toMatch(/^DPoP .*error="insufficient_scope"/);
    expect(JSON.parse(res.text)).toEqual({
      errors: [{ code: 'INSUFFICIENT_SCOPE', title: expect.any(String), detail: expect.any(String) }],
      meta: { requestDateTime: expect.any(String) },
    });
  });

  it('BR-03 refuses a stale or future iat', async () => {
    await refusal(await pay(await signedBody({ iat: Math.floor(Date.now() / 1000) - 120 })), 'BAD_SIGNATURE');
    await refusal(await pay(await signedBody({ iat: Math.floor(Date.now() / 1000) + 120 })), 'BAD_SIGNATURE');
  });

  it('BR-04 refuses a jti seen before, also by another API instance sharing the replay store', async () => {
    const body = await signedBody();
    expect((await pay(body)).status).toBe(201);
    await refusal(await pay(body), 'BAD_SIGNATURE');
    const instance = await startApp(framework, options(), BR_ROUTES);
    try {
      const fresh = await signedBody();
      expect((await pay(fresh, 'client-1', 'application/jwt', instance.url)).status).toBe(201);
      await refusal(await pay(fresh), 'BAD_SIGNATURE');
    } finally {
      await instance.close();
    }
  });

  it('BR-05 holds the header to PS256, typ JWT and a kid; alg confusion with the other schemes gets nothing', async () => {
    const hs = await new SignJWT({ aud: URL_PAYMENTS, iss: CLIENT_ORG, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), data })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: 'client-key' })
      .sign(new TextEncoder().encode('a shared secret of thirty-two bytes!'));
    await refusal(await pay(hs), 'BAD_SIGNATURE');
    const rs = await new SignJWT({ aud: URL_PAYMENTS, iss: CLIENT_ORG, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), data })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: 'client-key' })
      .sign(clientKey.privateKey);
    await refusal(await pay(rs), 'BAD_SIGNATURE');
    // A DPoP proof or an access token is not a signed body.
    await refusal(await pay(await signedBody({}, { typ: 'dpop+jwt' })), 'BAD_SIGNATURE');
    await refusal(await pay(await as.mint({ scope: 'payments:write' })), 'BAD_SIGNATURE');
    await refusal(await pay(await signedBody({}, { kid: undefined })), 'BAD_SIGNATURE');
  });

  it('BR-06 DEC-15 refuses a tampered body, a body that is not a JWT, and another media type in the Brazil envelope (BAD_SIGNATURE, CONTENT_TYPE_NAO_SUPORTADO, 400)', async () => {
    const body = await signedBody();
    const [h, p, s] = body.split('.');
    const tampered = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(p as string, 'base64url').toString()), data: { payment: { amount: '999.00' } } }),
    ).toString('base64url');
    await refusal(await pay(`${h}.${tampered}.${s}`), 'BAD_SIGNATURE');
    await refusal(await pay(JSON.stringify(data)), 'BAD_SIGNATURE');
    // The unsigned payload as plain JSON (a JWT sent as application/json would fail the app's own JSON parser first).
    await refusal(await pay(JSON.stringify({ data }), 'client-1', 'application/json'), 'CONTENT_TYPE_NAO_SUPORTADO');
  });

  it('BR-07 answers a request without a token in the Brazil envelope, unsigned (no client to sign for)', async () => {
    const res = await send(`${app.url}/payments`, {
      method: 'POST',
      body: await signedBody(),
      headers: { 'content-type': 'application/jwt' },
    });
    expect(res.status).toBe(401);
    expect(res.json).toEqual({
      errors: [{ code: 'UNAUTHORIZED', title: 'An access token is required', detail: 'An access token is required' }],
      meta: { requestDateTime: expect.any(String) },
    });
  });
});

describe('Open Finance Brasil jti on Redis', () => {
  let redis: TestRedis;
  const clients: Redis[] = [];
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await redis.stop();
  });

  /** An API instance with its own Redis connection: the store is shared, the process state is not. */
  async function instance(framework: 'express' | 'fastify') {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    clients.push(client);
    return startApp(framework, { ...options(), dpop: { replayStore: new RedisReplayStore({ client }) } }, BR_ROUTES);
  }

  it('BR-04 refuses on one instance a jti first used on another (Express and Fastify on one Redis)', async () => {
    const [a, b] = [await instance('express'), await instance('fastify')];
    try {
      const pay = async (url: string, body: string) => {
        const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt });
        const proof = await dpop.proof({ htm: 'POST', htu: URL_PAYMENTS, accessToken: token });
        return send(`${url}/payments`, {
          method: 'POST',
          body,
          headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/jwt' },
        });
      };
      const body = await signedBody();
      expect((await pay(a.url, body)).status).toBe(201);
      const replay = await pay(b.url, body);
      expect(replay.status).toBe(400);
      expect((await bankPayload(replay.text)).data).toMatchObject({
        errors: [{ code: 'BAD_SIGNATURE', title: 'The signed request body was already used' }],
      });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

/** POST /payments behind an app-wide layer (`appWide`) and the route's own (`BR_ROUTES.payments`); `answer` is the handler's JSON. */
async function layeredApp(
  framework: 'express' | 'hono',
  appWide: RoutePolicy,
  answer: (auth: Authorized | undefined) => unknown,
): Promise<{ url: string; close(): Promise<unknown> }> {
  if (framework === 'express') {
    const express = (await import('express')).default;
    const { fapiGuard } = await import('@fapi-guard/express');
    const fapi = fapiGuard(options());
    const app = express();
    app.use(fapi.protect(appWide));
    app.post('/payments', fapi.protect(BR_ROUTES.payments), (req, res) => void res.status(201).json(answer(req.auth)));
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise((resolve) => server.close(resolve)),
    };
  }
  const { Hono } = await import('hono');
  const { fapiGuard } = await import('@fapi-guard/hono');
  const fapi = fapiGuard(options());
  const app = new Hono();
  app.use('*', fapi.protect(appWide));
  app.post('/payments', fapi.protect(BR_ROUTES.payments), (c) => c.json(answer(c.get('auth')) as object, 201));
  return serveHono(app);
}

/** A signed body sent to `url` by client-1, with `headers` added. */
async function payAt(url: string, body: string, headers: Record<string, string> = {}) {
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
  const proof = await dpop.proof({ htm: 'POST', htu: URL_PAYMENTS, accessToken: token });
  return send(`${url}/payments`, {
    method: 'POST',
    body,
    headers: { authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/jwt', ...headers },
  });
}

describe.each(['express', 'hono'] as const)('Open Finance Brasil on two layers of one guard (%s)', (framework) => {
  it('BR-04 BR-01 an app-wide layer that checks the signed body and a route that answers signed: the body is checked once, not taken for its own replay', async () => {
    const app = await layeredApp(framework, { jwtBody: { request: 'required' } }, (auth) => ({ jwtBody: auth?.jwtBody }));
    try {
      const body = await signedBody();
      const res = await payAt(app.url, body);
      expect([res.status, res.headers['content-type']]).toEqual([201, 'application/jwt']);
      expect((await bankPayload(res.text)).data).toMatchObject({ jwtBody: { data, iss: CLIENT_ORG } });
      // The same body again is a replay (its jti was spent by the first request).
      const again = await payAt(app.url, body);
      expect(again.status).toBe(400);
    } finally {
      await app.close();
    }
  });

  it('IDEM-17 IDEM-16 the app-wide layer checks the signed body and keeps the key, the route signs: a retry signed anew gets the first result, signed anew', async () => {
    let processed = 0;
    const appWide: RoutePolicy = { jwtBody: { request: 'required' }, idempotency: { mode: 'required', syntax: 'br-of' } };
    const app = await layeredApp(framework, appWide, (auth) => ({ payment: ++processed, jti: auth?.jwtBody?.jti }));
    try {
      const key = { 'x-idempotency-key': randomUUID() };
      const firstJti = randomUUID();
      const first = await payAt(app.url, await signedBody({ jti: firstJti }), key);
      const retry = await payAt(app.url, await signedBody(), key);
      expect([first.status, retry.status, retry.headers['content-type']]).toEqual([201, 201, 'application/jwt']);
      const [a, b] = [await bankPayload(first.text), await bankPayload(retry.text)];
      expect([a.data, b.data]).toEqual([
        { payment: 1, jti: firstJti },
        { payment: 1, jti: firstJti },
      ]);
      expect((b as { jti?: string }).jti).not.toBe((a as { jti?: string }).jti);
      expect(processed).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe.each(FRAMEWORKS)('Open Finance Brasil payments retried with x-idempotency-key on %s', (framework) => {
  const IDEMPOTENT_ROUTES = {
    ...BR_ROUTES,
    payments: { ...BR_ROUTES.payments, idempotency: { mode: 'required', syntax: 'br-of' } },
  } as const;
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, options(), IDEMPOTENT_ROUTES);
  });
  afterAll(() => app.close());

  const pay = (body: string, key: string) => payAt(app.url, body, { 'x-idempotency-key': key });
  /** The jti of the request the handler processed, as the bank's signed answer tells it. */
  const processedJti = async (text: string) => ((await bankPayload(text)).data.jwtBody as { jti: string }).jti;

  it('IDEM-17 BR-04 IDEM-04 a retry signed anew (new jti and iat) with the same data is answered with the first payment, not processed again', async () => {
    const key = randomUUID();
    const firstJti = randomUUID();
    const first = await pay(await signedBody({ jti: firstJti }), key);
    expect([first.status, await processedJti(first.text)]).toEqual([201, firstJti]);
    // The same data with its members in another order: the same payment (its content is what counts).
    const reordered = { creditorAccount: data.creditorAccount, payment: { currency: 'BRL', amount: '100.00' } };
    const retry = await pay(await signedBody({ jti: randomUUID(), iat: Math.floor(Date.now() / 1000) - 1, data: reordered }), key);
    expect([retry.status, retry.headers['content-type'], await processedJti(retry.text)]).toEqual([201, 'application/jwt', firstJti]);
    // The same result, signed anew for the retry: its own jti, and the data of the first answer.
    const [a, b] = [await bankPayload(first.text), await bankPayload(retry.text)];
    expect([b.data, (b as { jti?: string }).jti === (a as { jti?: string }).jti]).toEqual([a.data, false]);
  });

  it('IDEM-17 BR-04 IDEM-06 a retry with the key and other data is refused with 422; one that repeats the first body is a spent jti', async () => {
    const key = randomUUID();
    const body = await signedBody();
    expect((await pay(body, key)).status).toBe(201);
    const other = await pay(await signedBody({ data: { ...data, payment: { amount: '999.00', currency: 'BRL' } } }), key);
    expect(other.status).toBe(422);
    const again = await pay(body, key);
    expect(again.status).toBe(400);
    expect((await bankPayload(again.text)).data).toMatchObject({ errors: [{ code: 'BAD_SIGNATURE' }] });
  });
});

/**
 * Open Finance Brasil signed JWT bodies on every adapter, over real HTTP: payment requests whose
 * body is a JWT signed by the client (jose as the client's signer), the `data` claim handed to the
 * handler, responses and refusals returned as JWTs signed by the bank (jose as the verifier), and
 * `jti` replays refused — also on another API instance sharing the replay store.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGuard, type GuardOptions, MemoryReplayStore } from '@fapi-guard/core';
import { RedisReplayStore } from '@fapi-guard/redis';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { Redis } from 'ioredis';
import { jwtVerify, SignJWT } from 'jose';
import { FRAMEWORKS, ROUTES, type StartedApp, startApp } from './support/apps';
import { send } from './support/http';
import { TestRedis } from './support/redis';

const AUDIENCE = 'https://rs.example.com';
const URL_PAYMENTS = `${AUDIENCE}/payments`;
const CLIENT_ORG = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
const OTHER_ORG = '74e929d9-33b6-4d85-8ba7-c146c867a817';
const BANK_ORG = 'b961c4eb-509d-4edf-afeb-35642b38185d';

const clientKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const bankKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
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
      responseKey: { ...(bankKey.privateKey.export({ format: 'jwk' }) as object), kid: 'bank-key' },
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

/** The bank's signed answer, verified with jose: audience the client's organisation, issuer the bank. */
async function bankPayload(text: string, audience = CLIENT_ORG) {
  const { payload, protectedHeader } = await jwtVerify(text, bankKey.publicKey, {
    algorithms: ['PS256'],
    audience,
    issuer: BANK_ORG,
    typ: 'JWT',
  });
  expect(protectedHeader.kid).toBe('bank-key');
  expect(typeof payload.jti).toBe('string');
  return payload as { data: Record<string, unknown> };
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

describe('Open Finance Brasil on two layers of one guard', () => {
  it('BR-04 BR-01 an app-wide layer that checks the signed body and a route that answers signed: the body is checked once, not taken for its own replay', async () => {
    const express = (await import('express')).default;
    const { fapiGuard } = await import('@fapi-guard/express');
    const fapi = fapiGuard(options());
    const app = express();
    app.use(fapi.protect({ jwtBody: { request: 'required' } }));
    app.post('/payments', fapi.protect(BR_ROUTES.payments), (req, res) => {
      res.status(201).json({ jwtBody: req.auth?.jwtBody });
    });
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims: { client_id: 'client-1' } });
      const send1 = async (body: string) =>
        send(`http://127.0.0.1:${(server.address() as AddressInfo).port}/payments`, {
          method: 'POST',
          body,
          headers: {
            authorization: `DPoP ${token}`,
            dpop: await dpop.proof({ htm: 'POST', htu: URL_PAYMENTS, accessToken: token }),
            'content-type': 'application/jwt',
          },
        });
      const body = await signedBody();
      const res = await send1(body);
      expect([res.status, res.headers['content-type']]).toEqual([201, 'application/jwt']);
      expect((await bankPayload(res.text)).data).toMatchObject({ jwtBody: { data, iss: CLIENT_ORG } });
      // The same body again is a replay (its jti was spent by the first request).
      const again = await send1(body);
      expect(again.status).toBe(400);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

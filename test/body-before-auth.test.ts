/**
 * Issue 15.8: no request body is read before the client has authenticated. On routes that check
 * request signatures (FAPI 2.0 Message Signing) a client without valid credentials, token and
 * sender constraint is refused on the headers alone, so it cannot hold a request by announcing a
 * large body and trickling it. An authenticated request's body is read and its digest checked.
 * Every case runs over a raw socket against Express, Koa and Fastify.
 */
import type { AddressInfo } from 'node:net';
import { createGuard, type GuardOptions, type GuardRequest, headersFromRaw } from '@fapi-guard/core';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { DpopClient, MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import formbody from '@fastify/formbody';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { FRAMEWORKS, type Framework, type StartedApp, startApp } from './support/apps';
import { startExpressApp } from './support/express-app';
import { send, trickle } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const PUBLIC = 'https://rs.example.com';
/** What the trickling client announces: far more than it ever sends. */
const ANNOUNCED = 1024 * 1024;
const FIRST_BYTES = 'x'.repeat(16);

let as: MockIssuer;
let dpop: DpopClient;
const client = MessageSigningClient.generate('ed25519', 'client-a-key');
const rsKey = MessageSigningClient.generate('ed25519', 'rs-key');
const apps = new Map<Framework, StartedApp>();
/** The same apps with a 64-byte body bound, for the bound of the bytes kept as the parser reads. */
const bounded = new Map<Framework, StartedApp>();

const options = (maxBodyBytes?: number): GuardOptions => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  publicUrl: PUBLIC,
  messageSigning: {
    clients: { 'client-a': { jwks: client.jwks } },
    responseKey: rsKey.privateJwk,
    ...(maxBodyBytes ? { maxBodyBytes } : {}),
  },
});

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  dpop = await DpopClient.create('ES256');
  for (const framework of FRAMEWORKS) {
    apps.set(framework, await startApp(framework, options()));
    bounded.set(framework, await startApp(framework, options(64)));
  }
});
afterAll(async () => {
  for (const app of [...apps.values(), ...bounded.values()]) await app.close();
  await as.stop();
});

/** Authorization and DPoP headers for a POST to `path`; `proofPath` lets the proof name another URL. */
async function credentials(path: string, proofPath = path): Promise<{ authorization: string; dpop: string }> {
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt });
  const proof = await dpop.proof({ htm: 'POST', htu: `${PUBLIC}${proofPath}`, accessToken: token });
  return { authorization: `DPoP ${token}`, dpop: proof };
}

/** A signed JSON request to `path`: headers and body. */
async function signed(path: string, body: string) {
  const headers = { ...(await credentials(path)), 'content-type': 'application/json' };
  return { headers: { ...headers, ...client.sign({ method: 'POST', url: `${PUBLIC}${path}`, headers, body }) }, body };
}

/**
 * Announces a 1 MiB body on `/signed`, sends 16 bytes of it and nothing more. A server that waited
 * for the body would never answer; one that does not answers in milliseconds. The wait is 15 s,
 * under the test's 20 s: a loaded CI machine once took over 5 s for a koa refusal.
 */
function trickled(app: StartedApp, headers: Record<string, string>) {
  return trickle(
    app.url,
    {
      path: '/signed',
      headers: { ...headers, 'content-type': 'text/plain', 'content-length': String(ANNOUNCED) },
      head: FIRST_BYTES,
    },
    15_000,
  );
}

describe.each(FRAMEWORKS)('%s', (framework) => {
  const app = () => apps.get(framework) as StartedApp;

  it('15.8 body read before authentication: no credentials on a signed route get 401 while the client has sent 16 of 1 MiB', async () => {
    const res = await trickled(app(), {});
    expect(res.status).toBe(401);
    expect(res.sentBytes).toBe(FIRST_BYTES.length);
    expect(res.head).toMatch(/\r\nwww-authenticate: DPoP algs="[^"]+"\r\n/i);
  });

  it('15.8 body read before authentication: an invalid token gets its 401 invalid_token without the body', async () => {
    const headers = await credentials('/signed');
    const tampered = { ...headers, authorization: `${headers.authorization.slice(0, -2)}AA` };
    const res = await trickled(app(), tampered);
    expect(res.status).toBe(401);
    expect(res.head).toContain('error="invalid_token"');
  });

  it('15.8 body read before authentication: a DPoP proof for another URL gets its 401 invalid_dpop_proof without the body', async () => {
    const res = await trickled(app(), await credentials('/signed', '/optional'));
    expect(res.status).toBe(401);
    expect(res.head).toContain('error="invalid_dpop_proof"');
  });

  it('15.8 body read before authentication: an authenticated request trickling its body is read in full and its digest checked', async () => {
    const body = JSON.stringify({ amount: '10.00', currency: 'EUR', memo: 'm'.repeat(200) });
    const request = await signed('/signed', body);
    const split = { head: body.slice(0, 16), rest: body.slice(16) };
    const res = await trickle(app().url, {
      path: '/signed',
      headers: { ...request.headers, 'content-length': String(body.length) },
      ...split,
    });
    expect(res.status).toBe(201);
    expect(JSON.parse(res.text)).toMatchObject({ signature: 'client-a-key', received: { amount: '10.00', memo: 'm'.repeat(200) } });
    // One byte changed after signing (still JSON): the digest over the bytes received no longer matches.
    const changed = split.rest.replace(/m"}$/, 'n"}');
    expect(changed).not.toBe(split.rest);
    const refused = await trickle(app().url, {
      path: '/signed',
      headers: { ...(await signed('/signed', body)).headers, 'content-length': String(body.length) },
      head: split.head,
      rest: changed,
    });
    expect(refused.status).toBe(401);
  });

  it('15.8 body read before authentication: the bytes kept as the parser reads them are bounded (64 bytes pass, 65 → 413)', async () => {
    const at = (size: number) => JSON.stringify({ memo: 'm'.repeat(size - 11) });
    expect(at(64)).toHaveLength(64);
    const url = `${bounded.get(framework)?.url}/signed`;
    const fits = await signed('/signed', at(64));
    expect((await send(url, { method: 'POST', ...fits })).status).toBe(201);
    const over = await signed('/signed', at(65));
    expect((await send(url, { method: 'POST', ...over })).status).toBe(413);
  });

  it('15.8 body read before authentication: a chunked body over maxBodyBytes sent slowly to its end is refused 413 at its end (no stall)', async () => {
    const body = JSON.stringify({ memo: 'm'.repeat(100) });
    const { headers } = await signed('/signed', body);
    const answer = await trickle(
      `${bounded.get(framework)?.url}`,
      {
        path: '/signed',
        headers: { ...headers, 'transfer-encoding': 'chunked' },
        head: `20\r\n${body.slice(0, 32)}\r\n`,
        rest: `${(body.length - 32).toString(16)}\r\n${body.slice(32)}\r\n0\r\n\r\n`,
        restAfterMs: 200,
      },
      3000,
    );
    expect(answer.status).toBe(413);
  });

  it('15.8 body read before authentication: FAPI-RS-03 a form-body token alone gets 401, next to the header 400 invalid_request', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const headers = await credentials('/payments');
    const token = headers.authorization.slice('DPoP '.length);
    const only = await send(`${app().url}/payments`, { method: 'POST', headers: form, body: `access_token=${token}` });
    expect(only.status).toBe(401);
    expect(only.headers['www-authenticate']).not.toContain('error=');
    const both = await send(`${app().url}/payments`, { method: 'POST', headers: { ...form, ...headers }, body: `access_token=${token}` });
    expect(both.status).toBe(400);
    expect(both.json.error).toBe('invalid_request');
    // The same request without the body token passes: the 400 is the body check's.
    const clean = await send(`${app().url}/payments`, {
      method: 'POST',
      headers: { ...form, ...(await credentials('/payments')) },
      body: 'a=1',
    });
    expect(clean.status).toBe(201);
  });
});

describe('core: guard.authenticate, then guard.complete', () => {
  it('15.8 body read before authentication: authenticate() never touches the raw body; complete() takes its result once', async () => {
    const guard = createGuard(options());
    const policy = guard.policy({ scopes: ['payments:write'], signedRequest: 'optional' });
    const body = '{"amount":"10.00"}';
    const { headers } = await signed('/pay', body);
    const touched: string[] = [];
    const request = {
      method: 'POST',
      url: `${PUBLIC}/pay`,
      headers: headersFromRaw(Object.entries(headers).flat()),
      get rawBody() {
        touched.push('rawBody');
        return Buffer.from(body);
      },
    } satisfies GuardRequest;
    const authenticated = await guard.authenticate(request, policy);
    expect(authenticated.ok).toBe(true);
    expect(touched).toEqual([]);
    if (!authenticated.ok) return;
    const authorized = await guard.complete(authenticated, request);
    expect(authorized).toMatchObject({ ok: true, signature: { keyid: 'client-a-key' } });
    expect(touched).toEqual(['rawBody']);
    await expect(guard.complete(authenticated, request)).rejects.toThrow(TypeError);
    await expect(guard.complete({ ok: true, authenticated: true }, request)).rejects.toThrow(TypeError);
  });
});

describe('Express: bytes already buffered when rawBody() runs', () => {
  it('15.8 body read before authentication: rawBody() after an async middleware still keeps the whole body', async () => {
    const running = await startExpressApp(options(), (app, fapi) => {
      // The body arrives while this middleware waits: it is buffered before the tap goes on.
      app.use((_req, _res, next) => void setTimeout(next, 50));
      app.use(fapi.rawBody());
      app.use(express.json());
      app.post('/signed', fapi.protect({ scopes: ['payments:write'], signedRequest: 'required' }), (req, res) => {
        res.status(201).json({ received: req.body });
      });
    });
    try {
      const request = await signed('/signed', '{"amount":"10.00"}');
      const res = await send(`${running.url}/signed`, { method: 'POST', ...request });
      expect(res.status).toBe(201);
      expect(res.json).toEqual({ received: { amount: '10.00' } });
    } finally {
      await running.close();
    }
  });
});

describe('Fastify: config.fapi routes authenticate before the body is parsed', () => {
  let app: FastifyInstance;
  let url: string;
  let parsed = 0;
  const events: string[] = [];
  const hook = (name: string) => async (request: { auth: unknown }) => {
    events.push(`${name}:${request.auth ? 'auth' : 'none'}`);
  };

  beforeAll(async () => {
    app = Fastify();
    await app.register(formbody);
    await app.register(fastifyPlugin, options());
    app.addContentTypeParser('application/x-counted', { parseAs: 'string' }, (_request, body, done) => {
      parsed++;
      done(null, body);
    });
    const policy = { scopes: ['payments:write'] };
    app.post('/counted', { config: { fapi: routePolicy(policy) } }, async (request) => ({ body: request.body }));
    app.post(
      '/hooked',
      {
        config: { fapi: routePolicy(policy) },
        onRequest: hook('onRequest'),
        preValidation: [hook('preValidation')],
        preHandler: hook('preHandler'),
      },
      async () => {
        events.push('handler');
        return { ok: true };
      },
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => app.close());

  it('15.8 body read before authentication: no token → 401 before the content-type parser runs; with one it runs once', async () => {
    parsed = 0;
    const refused = await send(`${url}/counted`, { method: 'POST', headers: { 'content-type': 'application/x-counted' }, body: 'hello' });
    expect(refused.status).toBe(401);
    const invalid = await send(`${url}/counted`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-counted', ...(await credentials('/counted', '/hooked')) },
      body: 'hello',
    });
    expect(invalid.status).toBe(401);
    expect(parsed).toBe(0);
    const accepted = await send(`${url}/counted`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-counted', ...(await credentials('/counted')) },
      body: 'hello',
    });
    expect(accepted.status).toBe(200);
    expect(accepted.json).toEqual({ body: 'hello' });
    expect(parsed).toBe(1);
  });

  it('15.8 body read before authentication: the guard runs before the route’s own onRequest, preValidation and preHandler', async () => {
    events.length = 0;
    const refused = await send(`${url}/hooked`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(refused.status).toBe(401);
    // Refused on the headers: none of the route's hooks ran.
    expect(events).toEqual([]);
    const accepted = await send(`${url}/hooked`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await credentials('/hooked')) },
      body: '{}',
    });
    expect(accepted.status).toBe(200);
    // request.auth is set once the body checks passed, before the route's preValidation.
    expect(events).toEqual(['onRequest:none', 'preValidation:auth', 'preHandler:auth', 'handler']);
  });
});

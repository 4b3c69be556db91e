/**
 * What each adapter does when an app is put together — its options and their defaults, the
 * helpers that build middleware (`requireScopes`), `authorization(req)`, and how an idempotency
 * refusal leaves — proven with apps built inside each test. (Mutation testing activates a mutant
 * only while a test runs: code that ran once in `beforeAll` would be tested by no test at all.)
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGuard, type GuardOptions } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { serveHono } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';

let as: MockIssuer;
let client: DpopClient;
let options: GuardOptions;
const servers: Server[] = [];
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  client = await DpopClient.create('ES256');
  options = { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE };
});
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((r) => server.close(r));
  for (const close of closers.splice(0)) await close();
});

async function listenFastify(app: FastifyInstance): Promise<string> {
  closers.push(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

async function listenHono(app: Hono): Promise<string> {
  const served = await serveHono(app);
  closers.push(() => served.close());
  return served.url;
}

const JSON_BODY = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"amount":"10.00"}' };
const KEYED_BODY = { ...JSON_BODY, headers: { ...JSON_BODY.headers, 'idempotency-key': '"k-1"' } };

/** A payment without its required key is refused in the app's format; with one it is made. */
async function expectIdempotencyRefusalAsProblem(url: string): Promise<void> {
  const refused = await call(url, '/payments', 'payments', JSON_BODY);
  expect(refused.status).toBe(400);
  expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(refused.json).toMatchObject({ status: 400 });
  const paid = await call(url, '/payments', 'payments', KEYED_BODY);
  expect([paid.status, paid.json]).toEqual([201, { paid: true }]);
}
afterAll(() => as.stop());

async function listen(app: express.Express | Koa): Promise<string> {
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((r) => server.once('listening', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A DPoP request for `path` with a token of `scope`, as the client would send it. */
async function call(
  url: string,
  path: string,
  scope: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
) {
  const method = init.method ?? 'GET';
  const token = await as.mint({ scope, jkt: client.jkt, audience: AUDIENCE });
  const dpop = await client.proof({ htm: method, htu: `${AUDIENCE}${path}`, accessToken: token });
  return send(`${url}${path}`, { method, headers: { authorization: `DPoP ${token}`, dpop, ...init.headers }, body: init.body });
}

describe('every adapter at start-up', () => {
  it('takes a guard already made as it is (one guard, one replay cache, for several adapters)', async () => {
    const guard = createGuard(options);
    expect(expressGuard(guard).guard).toBe(guard);
    expect(koaGuard(guard).guard).toBe(guard);
    expect(honoGuard(guard).guard).toBe(guard);
    const app = Fastify();
    await app.register(fastifyPlugin, { guard });
    expect(app.fapi.guard).toBe(guard);
    await app.close();
  });
});

describe('@fapi-guard/express at start-up', () => {
  it('puts the authorization on req.auth by default, and on the property named', async () => {
    const byDefault = expressGuard(options);
    const named = expressGuard(options, { property: 'fapi' });
    const app = express();
    app.get('/default', byDefault.protect({ scopes: ['accounts'] }), (req, res) => {
      res.json({ auth: req.auth?.clientId ?? null });
    });
    app.get('/named', named.protect({ scopes: ['accounts'] }), (req, res) => {
      const record = req as unknown as Record<string, { clientId?: string } | undefined>;
      res.json({ auth: record.auth?.clientId ?? null, fapi: record.fapi?.clientId ?? null });
    });
    const url = await listen(app);
    expect((await call(url, '/default', 'accounts')).json).toEqual({ auth: 'client-a' });
    expect((await call(url, '/named', 'accounts')).json).toEqual({ auth: null, fapi: 'client-a' });
  });

  it('refuses a property that is not a non-empty string, and names the package in an unknown option', () => {
    const message = 'fapi-guard: @fapi-guard/express option property must be a non-empty string';
    expect(() => expressGuard(options, { property: '' })).toThrow(message);
    expect(() => expressGuard(options, { property: 5 as never })).toThrow(message);
    expect(() => expressGuard(options, { errorBody: 'xml' as never })).toThrow(
      "fapi-guard: @fapi-guard/express option errorBody must be 'oauth', 'problem' or a function",
    );
  });

  it('requireScopes(...) is protect({ scopes }): 403 without the scope, 200 with it', async () => {
    const fapi = expressGuard(options);
    const app = express();
    app.get('/accounts', fapi.requireScopes('accounts', 'balances'), (_req, res) => {
      res.json({ ok: true });
    });
    const url = await listen(app);
    const refused = await call(url, '/accounts', 'accounts');
    expect(refused.status).toBe(403);
    expect(refused.headers['www-authenticate']).toContain('scope="accounts balances"');
    expect((await call(url, '/accounts', 'accounts balances')).status).toBe(200);
  });

  it('authorization(req) hands over what protect() put on the request, and throws where none ran', async () => {
    const fapi = expressGuard(options);
    const app = express();
    app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (req, res) => {
      res.json({ same: fapi.authorization(req) === req.auth, client: fapi.authorization(req).clientId });
    });
    app.get('/open', (req, res) => {
      try {
        fapi.authorization(req);
        res.json({ thrown: null });
      } catch (e) {
        res.json({ thrown: (e as Error).message });
      }
    });
    const url = await listen(app);
    expect((await call(url, '/accounts', 'accounts')).json).toEqual({ same: true, client: 'client-a' });
    expect((await send(`${url}/open`)).json).toEqual({ thrown: 'fapi-guard: authorization() on a request no protect() let through' });
  });

  it('an idempotency refusal leaves in the format the app chose (errorBody), like the guard’s own', async () => {
    const fapi = expressGuard(options, { errorBody: 'problem' });
    const app = express();
    app.use(fapi.rawBody());
    app.use(express.json());
    app.post('/payments', fapi.protect({ scopes: ['payments'], idempotency: 'required' }), (_req, res) => {
      res.status(201).json({ paid: true });
    });
    const url = await listen(app);
    const refused = await call(url, '/payments', 'payments', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"amount":"10.00"}',
    });
    expect(refused.status).toBe(400);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.json).toMatchObject({ status: 400 });
    const paid = await call(url, '/payments', 'payments', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': '"k-1"' },
      body: '{"amount":"10.00"}',
    });
    expect([paid.status, paid.json]).toEqual([201, { paid: true }]);
  });
});

describe('@fapi-guard/koa at start-up', () => {
  it('puts the authorization on ctx.state.auth; names the package in an unknown option', async () => {
    expect(() => koaGuard(options, { property: 'auth' } as never)).toThrow(
      'fapi-guard: unknown @fapi-guard/koa option "property" (known: errors, errorBody)',
    );
    expect(() => koaGuard(options, { errors: 'throw' as never })).toThrow(
      "fapi-guard: @fapi-guard/koa option errors must be 'respond' or 'framework'",
    );
    const fapi = koaGuard(options);
    const app = new Koa();
    app.silent = true;
    const router = new Router();
    router.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (ctx) => {
      ctx.body = { auth: (ctx.state.auth as { clientId?: string } | undefined)?.clientId ?? null };
    });
    app.use(router.routes());
    const url = await listen(app);
    expect((await call(url, '/accounts', 'accounts')).json).toEqual({ auth: 'client-a' });
  });

  it('requireScopes(...) is protect({ scopes }): 403 without the scope, 200 with it', async () => {
    const fapi = koaGuard(options);
    const app = new Koa();
    app.silent = true;
    const router = new Router();
    router.get('/accounts', fapi.requireScopes('accounts', 'balances'), (ctx) => {
      ctx.body = { ok: true };
    });
    app.use(router.routes());
    const url = await listen(app);
    const refused = await call(url, '/accounts', 'accounts');
    expect(refused.status).toBe(403);
    expect(refused.headers['www-authenticate']).toContain('scope="accounts balances"');
    expect((await call(url, '/accounts', 'accounts balances')).status).toBe(200);
  });

  it('an idempotency refusal leaves in the format the app chose (errorBody), like the guard’s own', async () => {
    const fapi = koaGuard(options, { errorBody: 'problem' });
    const app = new Koa();
    app.silent = true;
    app.use(fapi.rawBody());
    app.use(bodyParser());
    const router = new Router();
    router.post('/payments', fapi.protect({ scopes: ['payments'], idempotency: 'required' }), (ctx) => {
      ctx.status = 201;
      ctx.body = { paid: true };
    });
    app.use(router.routes());
    const url = await listen(app);
    const json = { 'content-type': 'application/json' };
    const refused = await call(url, '/payments', 'payments', { method: 'POST', headers: json, body: '{"amount":"10.00"}' });
    expect(refused.status).toBe(400);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.json).toMatchObject({ status: 400 });
    const paid = await call(url, '/payments', 'payments', {
      method: 'POST',
      headers: { ...json, 'idempotency-key': '"k-1"' },
      body: '{"amount":"10.00"}',
    });
    expect([paid.status, paid.json]).toEqual([201, { paid: true }]);
  });
});

describe('@fapi-guard/fastify at start-up', () => {
  it('names the package in a wrong option; puts the authorization on request.auth', async () => {
    const refusing = Fastify();
    await expect(refusing.register(fastifyPlugin, { ...options, errorBody: 'xml' as never })).rejects.toThrow(
      "fapi-guard: @fapi-guard/fastify option errorBody must be 'oauth', 'problem' or a function",
    );
    await refusing.close();
    const app = Fastify();
    await app.register(fastifyPlugin, options);
    app.get('/accounts', { config: { fapi: routePolicy({ scopes: ['accounts'] }) } }, async (request) => ({
      auth: request.auth?.clientId ?? null,
    }));
    const url = await listenFastify(app);
    expect((await call(url, '/accounts', 'accounts')).json).toEqual({ auth: 'client-a' });
  });

  it('requireScopes(...) is protect({ scopes }): 403 without the scope, 200 with it', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, options);
    app.get('/accounts', { preHandler: app.fapi.requireScopes('accounts', 'balances') }, async () => ({ ok: true }));
    const url = await listenFastify(app);
    const refused = await call(url, '/accounts', 'accounts');
    expect(refused.status).toBe(403);
    expect(refused.headers['www-authenticate']).toContain('scope="accounts balances"');
    expect((await call(url, '/accounts', 'accounts balances')).status).toBe(200);
  });

  it('an idempotency refusal leaves in the format the app chose (errorBody), like the guard’s own', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, { ...options, errorBody: 'problem' });
    app.post('/payments', { config: { fapi: routePolicy({ scopes: ['payments'], idempotency: 'required' }) } }, async (_request, reply) =>
      reply.code(201).send({ paid: true }),
    );
    await expectIdempotencyRefusalAsProblem(await listenFastify(app));
  });
});

describe('@fapi-guard/fastify routes registered at start-up', () => {
  const paid = (count: { n: number }) => async (_request: unknown, reply: import('fastify').FastifyReply) => {
    count.n++;
    return reply.code(201).send({ paid: count.n });
  };

  it('a protect({ idempotency }) preHandler, alone or among other hooks (another protect() too), keeps the body bytes: a retry with another body is 422', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, options);
    const count = { n: 0 };
    const policy = { scopes: ['payments'], idempotency: 'required' as const };
    app.post('/payments', { preHandler: app.fapi.protect(policy) }, paid(count));
    app.post('/transfers', { preHandler: [async () => undefined, app.fapi.protect(policy)] }, paid(count));
    // Behind a protect() without idempotency: the key's layer is the second one.
    app.post('/orders', { preHandler: [app.fapi.protect({ scopes: ['payments'] }), app.fapi.protect(policy)] }, paid(count));
    const url = await listenFastify(app);
    for (const path of ['/payments', '/transfers', '/orders']) {
      const key = { 'content-type': 'application/json', 'idempotency-key': `"${path}"` };
      const first = await call(url, path, 'payments', { method: 'POST', headers: key, body: '{"amount":"10.00"}' });
      const retry = await call(url, path, 'payments', { method: 'POST', headers: key, body: '{"amount":"10.00"}' });
      const other = await call(url, path, 'payments', { method: 'POST', headers: key, body: '{"amount":"99.00"}' });
      expect([path, first.status, retry.status, retry.text === first.text, other.status]).toEqual([path, 201, 201, true, 422]);
    }
    expect(count.n).toBe(3);
  });

  it('a protect({ idempotency }) added with addHook stops start-up; an app-wide protect() without it starts', async () => {
    const refused = Fastify();
    await refused.register(fastifyPlugin, options);
    refused.addHook('preHandler', refused.fapi.protect({ idempotency: 'required' }));
    refused.post('/payments', async () => ({}));
    await expect(refused.ready()).rejects.toThrow(
      "fapi-guard: fastify.fapi.protect() with an 'idempotency' policy must be given as a route's preHandler option " +
        '(or use config: { fapi: routePolicy(...) }): only then are the body bytes kept for the request fingerprint',
    );
    await refused.close();
    const app = Fastify();
    await app.register(fastifyPlugin, options);
    app.addHook('preHandler', app.fapi.protect({ scopes: ['accounts'] }));
    app.get('/accounts', async (request) => ({ auth: request.auth?.clientId ?? null }));
    const url = await listenFastify(app);
    expect((await call(url, '/accounts', 'accounts')).json).toEqual({ auth: 'client-a' });
  });

  it('an app-wide protect() ahead of config.fapi routes: the route adds its policy, the proof is checked once', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, options);
    app.addHook('onRequest', app.fapi.protect());
    app.get('/accounts', { config: { fapi: routePolicy({ scopes: ['accounts'] }) } }, async (request) => ({
      auth: request.auth?.clientId,
    }));
    app.get('/open', async (request) => ({ auth: request.auth }));
    const url = await listenFastify(app);
    expect((await call(url, '/accounts', 'accounts')).json).toEqual({ auth: 'client-a' });
    const refused = await call(url, '/accounts', 'payments');
    expect([refused.status, refused.headers['www-authenticate']]).toEqual([403, expect.stringContaining('scope="accounts"')]);
    // The app-wide guard runs on routes without a policy of their own too.
    expect((await call(url, '/open', 'payments')).json).toMatchObject({ auth: { clientId: 'client-a' } });
  });

  it('with messageSigning, a config.fapi route checks the content digest over the body bytes as received', async () => {
    const signer = MessageSigningClient.generate('ed25519', 'client-key');
    const app = Fastify();
    await app.register(fastifyPlugin, { ...options, messageSigning: { clients: { 'client-a': { jwks: signer.jwks } } } });
    app.post('/pay', { config: { fapi: routePolicy({ scopes: ['payments'], signedRequest: 'required' }) } }, async (request, reply) =>
      reply.code(201).send({ amount: (request.body as { amount: string }).amount }),
    );
    const url = await listenFastify(app);
    // Bytes a JSON parser reads the same but that serialise otherwise: the digest is over these.
    const body = '{ "amount" : "10.00" }';
    const token = await as.mint({ scope: 'payments', jkt: client.jkt, audience: AUDIENCE });
    const headers: Record<string, string> = {
      authorization: `DPoP ${token}`,
      dpop: await client.proof({ htm: 'POST', htu: `${AUDIENCE}/pay`, accessToken: token }),
      'content-type': 'application/json',
    };
    Object.assign(headers, signer.sign({ method: 'POST', url: `${AUDIENCE}/pay`, headers, body }));
    const paid = await send(`${url}/pay`, { method: 'POST', headers, body });
    expect([paid.status, paid.json]).toEqual([201, { amount: '10.00' }]);
  });

  it('request.auth is null on a route no guard protects, and the metadata document is served at its well-known path', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, { ...options, resourceMetadata: true });
    app.get('/open', async (request) => ({ auth: request.auth }));
    const url = await listenFastify(app);
    expect((await send(`${url}/open`)).json).toEqual({ auth: null });
    const metadata = await send(`${url}/.well-known/oauth-protected-resource`);
    expect([metadata.status, metadata.json.resource]).toEqual([200, AUDIENCE]);
  });
});

describe('@fapi-guard/hono at start-up', () => {
  it('names the package in an unknown or wrong option; puts the authorization on c.get("auth")', async () => {
    expect(() => honoGuard(options, { property: 'auth' } as never)).toThrow(
      'fapi-guard: unknown @fapi-guard/hono option "property" (known: connection, errors, errorBody)',
    );
    expect(() => honoGuard(options, { errors: 'throw' as never })).toThrow(
      "fapi-guard: @fapi-guard/hono option errors must be 'respond' or 'framework'",
    );
    expect(() => honoGuard(options, { connection: 'socket' as never })).toThrow(
      'fapi-guard: @fapi-guard/hono option connection must be a function',
    );
    const fapi = honoGuard(options);
    const app = new Hono();
    app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (c) => c.json({ auth: c.get('auth')?.clientId ?? null }));
    const url = await listenHono(app);
    expect((await call(url, '/accounts', 'accounts')).json).toEqual({ auth: 'client-a' });
  });

  it('requireScopes(...) is protect({ scopes }): 403 without the scope, 200 with it', async () => {
    const fapi = honoGuard(options);
    const app = new Hono();
    app.get('/accounts', fapi.requireScopes('accounts', 'balances'), (c) => c.json({ ok: true }));
    const url = await listenHono(app);
    const refused = await call(url, '/accounts', 'accounts');
    expect(refused.status).toBe(403);
    expect(refused.headers['www-authenticate']).toContain('scope="accounts balances"');
    expect((await call(url, '/accounts', 'accounts balances')).status).toBe(200);
  });

  it('an idempotency refusal leaves in the format the app chose (errorBody), like the guard’s own', async () => {
    const fapi = honoGuard(options, { errorBody: 'problem' });
    const app = new Hono();
    app.post('/payments', fapi.protect({ scopes: ['payments'], idempotency: 'required' }), (c) => c.json({ paid: true }, 201));
    await expectIdempotencyRefusalAsProblem(await listenHono(app));
  });
});

describe('@fapi-guard/hono outside @hono/node-server, and its error and signing paths', () => {
  it('on a runtime without a Node request (app.fetch), the metadata document and a refusal are served', async () => {
    const fapi = honoGuard({ ...options, resourceMetadata: true });
    const app = new Hono();
    app.use('*', fapi.metadata());
    app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (c) => c.json({ ok: true }));
    const metadata = await app.fetch(new Request(`${AUDIENCE}/.well-known/oauth-protected-resource`));
    expect([metadata.status, ((await metadata.json()) as { resource?: string }).resource]).toEqual([200, AUDIENCE]);
    const refused = await app.fetch(new Request(`${AUDIENCE}/accounts`));
    expect([refused.status, refused.headers.get('www-authenticate')]).toEqual([401, expect.stringContaining('DPoP algs=')]);
    // An env whose `incoming` has rawHeaders but no socket is not taken for a Node request: the
    // target and headers are the Request's own (a Node request's would be its url, here none).
    const env = { incoming: { rawHeaders: [] } };
    const served = await app.fetch(new Request(`${AUDIENCE}/.well-known/oauth-protected-resource`), env);
    expect(served.status).toBe(200);
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt, audience: AUDIENCE });
    const dpop = await client.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token });
    const allowed = await app.fetch(new Request(`${AUDIENCE}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop } }), env);
    expect([allowed.status, await allowed.json()]).toEqual([200, { ok: true }]);
  });

  it("errors: 'framework' without an onError: Hono's own error handling sends the refusal as the guard writes it", async () => {
    const fapi = honoGuard(options, { errors: 'framework' });
    const app = new Hono();
    app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (c) => c.json({ ok: true }));
    const refused = await app.fetch(new Request(`${AUDIENCE}/accounts`));
    expect([refused.status, refused.headers.get('www-authenticate')]).toEqual([401, expect.stringContaining('DPoP algs=')]);
  });

  it('fapi.onError(handler) hands other errors to the handler unchanged', async () => {
    const fapi = honoGuard(options, { errors: 'framework' });
    const app = new Hono();
    app.onError(fapi.onError((_error, c) => c.json({ handled: true }, 500)));
    app.get('/boom', () => {
      throw new Error('boom');
    });
    const answer = await app.fetch(new Request(`${AUDIENCE}/boom`));
    expect([answer.status, await answer.json()]).toEqual([500, { handled: true }]);
  });

  it('behind an app-wide layer, a signing route with idempotency: the guard’s headers once, the response signed once, a replay signed anew', async () => {
    const signer = MessageSigningClient.generate('ed25519', 'layer-key');
    const records: string[] = [];
    const fapi = honoGuard({
      ...options,
      interactionId: false,
      messageSigning: {
        clients: { 'client-a': { jwks: signer.jwks } },
        responseKey: MessageSigningClient.generate('ed25519', 'rs').privateJwk,
        onSignedExchange: (record: { direction: string }) => void records.push(record.direction),
      },
    });
    const app = new Hono();
    app.use('*', fapi.protect());
    const pay = { scopes: ['payments'], signedRequest: 'required' as const, signResponse: true, idempotency: 'required' as const };
    app.post('/pay', fapi.protect(pay), fapi.requireScopes('payments'), (c) => c.json({ paid: true }, 201));
    const url = await listenHono(app);
    const body = '{"amount":"10.00"}';
    const payment = async () => {
      const token = await as.mint({ scope: 'payments', jkt: client.jkt, audience: AUDIENCE });
      const headers: Record<string, string> = {
        authorization: `DPoP ${token}`,
        dpop: await client.proof({ htm: 'POST', htu: `${AUDIENCE}/pay`, accessToken: token }),
        'content-type': 'application/json',
        'idempotency-key': '"pay-1"',
      };
      Object.assign(headers, signer.sign({ method: 'POST', url: `${AUDIENCE}/pay`, headers, body }));
      return send(`${url}/pay`, { method: 'POST', headers, body });
    };
    const first = await payment();
    const replay = await payment();
    for (const res of [first, replay]) {
      expect(res.status).toBe(201);
      expect(String(res.headers['signature-input']).match(/tag="fapi-2-response"/g)).toHaveLength(1);
      // Only the headers the guard, Hono and Node write: nothing set twice or made up.
      const names = res.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
    }
    // The audit hook: each request once, each response once (the third layer signs nothing again).
    expect(records).toEqual(['request', 'response', 'request', 'response']);
    // The replay answers another request: its signature covers that request's own signature.
    expect(replay.headers.signature).not.toEqual(first.headers.signature);
    const guardHeaders = ['cache-control', 'content-digest', 'signature', 'signature-input'];
    for (const name of guardHeaders) expect([name, replay.headers[name] !== undefined]).toEqual([name, true]);
    const written = new Set(['content-type', 'content-length', 'date', 'connection', 'keep-alive', 'transfer-encoding', ...guardHeaders]);
    for (const res of [first, replay]) {
      expect(res.rawHeaders.filter((_, i) => i % 2 === 0).filter((n) => !written.has(n.toLowerCase()))).toEqual([]);
    }
  });
  it('an app-wide layer that signs responses, a route layer with idempotency: a replay is signed once, by the layer that signs', async () => {
    const records: string[] = [];
    const fapi = honoGuard({
      ...options,
      interactionId: false,
      messageSigning: {
        clients: {},
        responseKey: MessageSigningClient.generate('ed25519', 'rs').privateJwk,
        onSignedExchange: (record: { direction: string }) => void records.push(record.direction),
      },
    });
    const app = new Hono();
    app.use('*', fapi.protect({ signResponse: true }));
    app.post('/pay', fapi.protect({ scopes: ['payments'], idempotency: 'required' }), (c) => c.json({ paid: true }, 201));
    const url = await listenHono(app);
    const first = await call(url, '/pay', 'payments', KEYED_BODY);
    const replay = await call(url, '/pay', 'payments', KEYED_BODY);
    for (const res of [first, replay]) {
      expect([res.status, res.json]).toEqual([201, { paid: true }]);
      expect(String(res.headers['signature-input']).match(/tag="fapi-2-response"/g)).toHaveLength(1);
    }
    // One response signature per exchange: the route layer leaves the replay to the app-wide one.
    expect(records).toEqual(['response', 'response']);
  });
});

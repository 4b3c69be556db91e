/**
 * Hook order in each adapter (issue 20): the guard runs before every hook and handler of the
 * route that comes after it, a refused request reaches none of them, and an accepted one reaches
 * them with `auth` set. Real Express, Koa and Fastify servers on 127.0.0.1.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGuard, type GuardOptions, type RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import Router from '@koa/router';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const POLICY: RoutePolicy = { scopes: ['accounts'] };

let as: MockIssuer;
let dpop: DpopClient;
/** What ran, in order, for the current request. */
let trace: string[] = [];

beforeAll(async () => {
  as = await MockIssuer.create({ issuer: 'https://as.example.com', audience: AUDIENCE });
  dpop = await DpopClient.create('ES256');
});
beforeEach(() => {
  trace = [];
});

const options = (): GuardOptions => ({
  issuer: { issuer: as.issuer, jwks: as.jwks },
  audience: AUDIENCE,
  publicUrl: AUDIENCE,
  onDecision: (event) => void trace.push(`guard:${event.outcome}`),
});

async function listening(server: Server): Promise<{ url: string; close: () => Promise<void> }> {
  if (!server.listening) await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A valid DPoP request for `/x`, or the same with a token lacking the route's scope. */
async function call(url: string, scope: string) {
  const token = await as.mint({ scope, jkt: dpop.jkt });
  const proof = await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/x`, accessToken: token });
  return send(`${url}/x`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
}

async function expectOrder(url: string, allowed: string[], refused: string[]) {
  const ok = await call(url, 'accounts');
  expect(ok.status).toBe(200);
  expect(trace).toEqual(allowed);
  trace = [];
  const denied = await call(url, 'payments');
  expect(denied.status).toBe(403);
  expect(trace).toEqual(refused);
}

describe('hook order: the guard before the route, nothing of the route after a refusal', () => {
  it('FAPI-RS-07 Express: middleware after protect() and the handler run only after an accepted check, with req.auth', async () => {
    const fapi = expressGuard(options());
    const app = express();
    app.get(
      '/x',
      (_req, _res, next) => {
        trace.push('before');
        next();
      },
      fapi.protect(POLICY),
      (req, _res, next) => {
        trace.push(`after:${req.auth?.clientId}`);
        next();
      },
      (req, res) => {
        trace.push(`handler:${req.auth?.clientId}`);
        res.json({});
      },
    );
    const server = await listening(app.listen(0, '127.0.0.1'));
    try {
      await expectOrder(server.url, ['before', 'guard:allow', 'after:client-1', 'handler:client-1'], ['before', 'guard:deny']);
    } finally {
      await server.close();
    }
  });

  it('FAPI-RS-07 Koa: downstream middleware runs only after an accepted check, with ctx.state.auth; upstream sees the refusal', async () => {
    const fapi = koaGuard(options());
    const app = new Koa();
    const router = new Router();
    router.get(
      '/x',
      async (ctx, next) => {
        trace.push('before');
        await next();
        trace.push(`upstream:${ctx.status}`);
      },
      fapi.protect(POLICY),
      async (ctx, next) => {
        trace.push(`after:${ctx.state.auth?.clientId}`);
        await next();
      },
      (ctx) => {
        trace.push(`handler:${ctx.state.auth?.clientId}`);
        ctx.body = {};
      },
    );
    app.use(router.routes());
    const server = await listening(app.listen(0, '127.0.0.1'));
    try {
      await expectOrder(
        server.url,
        ['before', 'guard:allow', 'after:client-1', 'handler:client-1', 'upstream:200'],
        ['before', 'guard:deny', 'upstream:403'],
      );
    } finally {
      await server.close();
    }
  });

  it("FAPI-RS-07 Fastify: config.fapi authenticates before every hook of the route (15.8), and completes before the route's preValidation and preHandlers", async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, options());
    app.get(
      '/x',
      {
        config: { fapi: routePolicy(POLICY) },
        onRequest: async () => void trace.push('onRequest'),
        preValidation: async () => void trace.push('preValidation'),
        preHandler: [
          async (request) => void trace.push(`preHandler1:${request.auth?.clientId}`),
          async (request) => void trace.push(`preHandler2:${request.auth?.clientId}`),
        ],
      },
      async (request) => {
        trace.push(`handler:${request.auth?.clientId}`);
        return {};
      },
    );
    // A single own preHandler (not an array) goes after the guard too.
    app.get(
      '/y',
      { config: { fapi: routePolicy(POLICY) }, preHandler: async (request) => void trace.push(`own:${request.auth?.clientId}`) },
      async () => {
        trace.push('handler');
        return {};
      },
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      await expectOrder(
        url,
        ['onRequest', 'guard:allow', 'preValidation', 'preHandler1:client-1', 'preHandler2:client-1', 'handler:client-1'],
        ['guard:deny'],
      );
      trace = [];
      const token = await as.mint({ scope: 'payments', jkt: dpop.jkt });
      const proof = await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/y`, accessToken: token });
      expect((await send(`${url}/y`, { headers: { authorization: `DPoP ${token}`, dpop: proof } })).status).toBe(403);
      expect(trace).toEqual(['guard:deny']);
    } finally {
      await app.close();
    }
  });

  it('FAPI-RS-07 Fastify: fastify.fapi.protect() as a preHandler keeps the order the route gives', async () => {
    const app = Fastify();
    await app.register(fastifyPlugin, options());
    app.register(async (scope) => {
      scope.get(
        '/x',
        { preHandler: [scope.fapi.protect(POLICY), async (request) => void trace.push(`after:${request.auth?.clientId}`)] },
        async (request) => {
          trace.push(`handler:${request.auth?.clientId}`);
          return {};
        },
      );
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      await expectOrder(
        `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
        ['guard:allow', 'after:client-1', 'handler:client-1'],
        ['guard:deny'],
      );
    } finally {
      await app.close();
    }
  });
});

describe('cache lifetimes on a fixed clock, both sides of each edge', () => {
  const SECRET = 'rs-client-secret-0123456789';
  let now = 1_900_000_000_000;
  let issuer: MockIssuer;
  beforeAll(async () => {
    issuer = await MockIssuer.start({ audience: AUDIENCE, clock: () => now });
    issuer.introspectionClients.set('rs-client', SECRET);
  });
  afterAll(() => issuer.stop());

  const bearerCheck = (guard: ReturnType<typeof createGuard>, token: string) =>
    guard.check(
      { method: 'GET', url: `${AUDIENCE}/x`, headers: { authorization: [`Bearer ${token}`] } },
      { scopes: ['accounts'], allowBearer: true },
    );

  it('INTRO-04 FAPI-RS-06 introspection answers are kept maxTtlSec, inactive ones negativeTtlSec, none past exp', async () => {
    const guard = createGuard({
      issuer: issuer.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      clock: () => now,
      tokenFormat: 'opaque',
      introspection: {
        clientId: 'rs-client',
        clientAuth: { method: 'client_secret_basic', clientSecret: SECRET },
        cache: { maxTtlSec: 30, negativeTtlSec: 5 },
      },
    });
    const calls = () => issuer.requests.introspect;
    const start = calls();
    const token = await issuer.mintOpaque({ scope: 'accounts', lifetimeSec: 3600 });
    const t0 = now;
    expect((await bearerCheck(guard, token)).ok).toBe(true);
    now = t0 + 30_000 - 1;
    expect((await bearerCheck(guard, token)).ok).toBe(true);
    expect(calls()).toBe(start + 1);
    now = t0 + 30_000;
    expect((await bearerCheck(guard, token)).ok).toBe(true);
    expect(calls()).toBe(start + 2);

    const unknown = 'u'.repeat(64);
    const t1 = now;
    expect(await bearerCheck(guard, unknown)).toMatchObject({ ok: false, reason: 'token_inactive' });
    now = t1 + 5_000 - 1;
    expect(await bearerCheck(guard, unknown)).toMatchObject({ ok: false, reason: 'token_inactive' });
    expect(calls()).toBe(start + 3);
    now = t1 + 5_000;
    await bearerCheck(guard, unknown);
    expect(calls()).toBe(start + 4);

    // A token whose exp comes before maxTtlSec: its answer is kept until exp, not a millisecond longer.
    now = Math.floor(now / 1000) * 1000;
    const short = await issuer.mintOpaque({ scope: 'accounts', lifetimeSec: 20 });
    const exp = now + 20_000;
    expect((await bearerCheck(guard, short)).ok).toBe(true);
    now = exp - 1;
    expect((await bearerCheck(guard, short)).ok).toBe(true);
    expect(calls()).toBe(start + 5);
    now = exp;
    await bearerCheck(guard, short);
    expect(calls()).toBe(start + 6);
  });

  it('the JWKS is refreshed once it is older than maxAgeMs, not at maxAgeMs', async () => {
    now = 1_900_000_000_000;
    const guard = createGuard({
      issuer: issuer.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      clock: () => now,
      keys: { maxAgeMs: 60_000 },
    });
    const jwks = () => issuer.requests.jwks;
    const start = jwks();
    const t0 = now;
    expect((await bearerCheck(guard, await issuer.mint({ scope: 'accounts' }))).ok).toBe(true);
    expect(jwks()).toBe(start + 1);
    now = t0 + 60_000;
    expect((await bearerCheck(guard, await issuer.mint({ scope: 'accounts' }))).ok).toBe(true);
    expect(jwks()).toBe(start + 1);
    now = t0 + 60_001;
    // Stale-while-revalidate: this request goes on with the old keys, the refresh runs beside it.
    expect((await bearerCheck(guard, await issuer.mint({ scope: 'accounts' }))).ok).toBe(true);
    for (let i = 0; i < 100 && jwks() === start + 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(jwks()).toBe(start + 2);
  });
});

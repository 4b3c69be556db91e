/**
 * Security review, issue 15, through real HTTP servers on Express, Koa, Fastify and NestJS:
 * - 15.1 a typo in a route policy or a guard option fails at start-up instead of serving;
 * - 15.5 a hostile `Host` is a 400 `invalid_request` with the same bytes everywhere, never a 5xx;
 * - 15.6 without `publicUrl`, the client's `Host` cannot choose the origin `htu` is checked against.
 *
 * The property test has a fixed seed; a long run: FUZZ_RUNS=5000 npx jest test/configuration
 */
import type { AddressInfo } from 'node:net';
import type { GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { type FapiRoutePolicy, fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiPolicy } from '@fapi-guard/nestjs';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import Router from '@koa/router';
import { Controller, Get } from '@nestjs/common';
import express from 'express';
import fc from 'fast-check';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { FRAMEWORKS, type Framework, type StartedApp, serveHono, startApp } from './support/apps';
import { type Received, send } from './support/http';
import { startNestApp } from './support/nest-app';

const AUDIENCE = 'https://rs.example.com';
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const SEED = 20261124;

let as: MockIssuer;
beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
});
afterAll(() => as.stop());

/** How a route gets its policy: the adapters' middleware, or Fastify's route config. */
type Mount = 'protect' | 'config';

/** One app with `GET /accounts` under `policy`, listening on 127.0.0.1; rejects if start-up fails. */
async function startWith(framework: Framework, options: GuardOptions, policy: RoutePolicy, mount: Mount = 'protect'): Promise<StartedApp> {
  const echo = { ok: true };
  if (framework === 'nestjs' || framework === 'nestjs-fastify') {
    @Controller()
    class AccountsController {
      @Get('accounts')
      @FapiPolicy(policy)
      accounts() {
        return echo;
      }
    }
    const { url, close } = await startNestApp(framework, options, [AccountsController]);
    return { framework, url, close };
  }
  if (framework === 'express') {
    const app = express();
    app.get('/accounts', expressGuard(options).protect(policy), (_req, res) => void res.json(echo));
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    return {
      framework,
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }
  if (framework === 'koa') {
    const router = new Router();
    router.get('/accounts', koaGuard(options).protect(policy), (ctx) => {
      ctx.body = echo;
    });
    const server = new Koa().use(router.routes()).listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    return {
      framework,
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }
  if (framework === 'hono') {
    const app = new Hono().get('/accounts', honoGuard(options).protect(policy), (c) => c.json(echo));
    return { framework, ...(await serveHono(app)) };
  }
  const app = Fastify();
  try {
    await app.register(fastifyPlugin, options);
    // A plain object, as JavaScript code writes it: the plugin checks it when the route is added.
    if (mount === 'config') app.get('/accounts', { config: { fapi: policy as FapiRoutePolicy } }, async () => echo);
    else app.get('/accounts', { preHandler: app.fapi.protect(policy) }, async () => echo);
    await app.listen({ port: 0, host: '127.0.0.1' });
  } catch (e) {
    await app.close();
    throw e;
  }
  return { framework, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

const CASES = FRAMEWORKS.flatMap((framework) =>
  (framework === 'fastify' ? (['protect', 'config'] as const) : (['protect'] as const)).map((mount) => ({ framework, mount })),
);

describe('15.1 typo fails open: a bad policy or option stops start-up on every adapter', () => {
  const options = (): GuardOptions => ({ issuer: as.issuer, audience: AUDIENCE, interactionId: false });

  it.each(CASES)('$framework ($mount): the correct policy serves, refusing a token with another scope', async ({ framework, mount }) => {
    const app = await startWith(framework, options(), { scopes: ['accounts'], allowBearer: true }, mount);
    try {
      const other = await send(`${app.url}/accounts`, { headers: { authorization: `Bearer ${await as.mint({ scope: 'other' })}` } });
      expect(other.status).toBe(403);
      const right = await send(`${app.url}/accounts`, { headers: { authorization: `Bearer ${await as.mint({ scope: 'accounts' })}` } });
      expect(right.status).toBe(200);
    } finally {
      await app.close();
    }
  });

  it.each(CASES)('$framework ($mount): `scope` for `scopes` fails at route registration, naming the fix', async ({ framework, mount }) => {
    const typo = { scope: ['accounts'], allowBearer: true } as unknown as RoutePolicy;
    await expect(startWith(framework, options(), typo, mount)).rejects.toThrow(
      'fapi-guard: unknown route policy key "scope"; did you mean "scopes"?',
    );
  });

  it.each(CASES)('$framework ($mount): a scope string and an empty scope list fail at route registration', async ({ framework, mount }) => {
    const asString = { scopes: 'accounts', allowBearer: true } as unknown as RoutePolicy;
    await expect(startWith(framework, options(), asString, mount)).rejects.toThrow(/scopes must be a list of scope-tokens/);
    await expect(startWith(framework, options(), { scopes: [], allowBearer: true }, mount)).rejects.toThrow(/scopes is empty/);
  });

  it('fastify: routePolicy() refuses a misspelt key, a scope string and an empty list where it is written', () => {
    expect(() => routePolicy({ scope: ['accounts'] } as unknown as RoutePolicy)).toThrow(
      'fapi-guard: unknown route policy key "scope"; did you mean "scopes"?',
    );
    expect(() => routePolicy({ scopes: 'accounts' } as unknown as RoutePolicy)).toThrow(/scopes must be a list of scope-tokens/);
    expect(() => routePolicy({ scopes: [] })).toThrow(/scopes is empty/);
    const policy = { scopes: ['accounts'] };
    expect(routePolicy(policy)).toBe(policy);
  });

  it.each(FRAMEWORKS)('%s: an unknown guard option fails when the guard is created (plugin registration on Fastify)', async (framework) => {
    const typo = { ...options(), clockTolerance: 5 } as GuardOptions;
    await expect(startWith(framework, typo, { scopes: ['accounts'] })).rejects.toThrow(
      'fapi-guard: unknown option "clockTolerance"; did you mean "clockToleranceSec"?',
    );
  });
});

/** Host values that made `new URL` throw (500 before issue 15.5). */
const HOSTILE_HOSTS = ['api.bank.example:99999', 'xn--a', '[1::2::3]', 'api.bank.example:65536', '[::1', 'xn--'];

describe('15.5 hostile Host: the URL step never throws', () => {
  const apps = new Map<Framework, StartedApp>();
  beforeAll(async () => {
    for (const framework of FRAMEWORKS) {
      // Several origins: the request's Host chooses among them, so it is parsed.
      const options = { issuer: as.issuer, audience: AUDIENCE, publicUrl: [AUDIENCE, 'https://api.bank.example'], interactionId: false };
      apps.set(framework, await startApp(framework, options));
    }
  });
  afterAll(async () => {
    for (const app of apps.values()) await app.close();
  });

  /** What the guard decides, byte for byte. */
  const decided = (res: Received) => ({
    status: res.status,
    challenge: res.headers['www-authenticate'],
    type: res.headers['content-type'],
    body: res.text,
  });

  /**
   * @hono/node-server's own answer to a `Host` it cannot build a Fetch URL from: an empty 400
   * before the app (and so the guard) runs — a refusal, never a 5xx, never a pass.
   */
  const NODE_SERVER_REFUSAL = { status: 400, challenge: undefined, type: undefined, body: '' };

  /** The answers of every adapter (Hono's is checked here when @hono/node-server refused it, and left out). */
  async function sendAll(host: string) {
    const answers = [];
    for (const [framework, app] of apps) {
      const answer = decided(await send(`${app.url}/accounts`, { headers: { host } }));
      if (framework === 'hono' && answer.body === '') expect(answer).toEqual(NODE_SERVER_REFUSAL);
      else answers.push(answer);
    }
    return answers;
  }

  it.each(HOSTILE_HOSTS)('15.5 hostile Host %j: 400 invalid_request, identical on every adapter', async (host) => {
    const [first, ...rest] = await sendAll(host);
    expect(first).toEqual({
      status: 400,
      // No credentials were sent: the challenge carries no error (RFC 6750 §3.1), the body says why.
      challenge: 'DPoP algs="ES256 PS256 EdDSA"',
      type: 'application/json; charset=utf-8',
      body: JSON.stringify({ error: 'invalid_request', error_description: 'The request does not address a configured origin of this API' }),
    });
    for (const other of rest) expect(other).toEqual(first);
  });

  it('15.5 hostile Host: a configured origin, in any spelling, gets through to the credentials check', async () => {
    for (const host of ['api.bank.example', 'API.BANK.EXAMPLE:443', 'rs.example.com']) {
      for (const answer of await sendAll(host)) expect(answer.status).toBe(401);
    }
  });

  it('15.5 hostile Host: arbitrary Host values never give a 5xx, and every adapter answers the same', async () => {
    /** Header values Node's client can send (it refuses control characters itself). */
    const anyValue = fc.string({ maxLength: 200 }).map((s) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, ''));
    const hostLike = fc.oneof(
      anyValue,
      fc.constantFrom(...HOSTILE_HOSTS),
      fc.tuple(fc.domain(), fc.integer({ min: 0, max: 999_999 })).map(([d, p]) => `${d}:${p}`),
      fc.ipV6().map((ip) => `[${ip}]`),
      fc.tuple(fc.ipV4(), fc.string({ maxLength: 8 })).map(([ip, s]) => `${ip}${s.replace(/[^\x20-\x7e]/g, '')}`),
      fc.stringMatching(/^xn--[a-z0-9-]{0,12}(\.[a-z]{1,4})?$/),
    );
    await fc.assert(
      fc.asyncProperty(hostLike, async (host) => {
        const [first, ...rest] = await sendAll(host);
        expect(first?.status).toBeLessThan(500);
        expect([400, 401]).toContain(first?.status);
        for (const other of rest) expect(other).toEqual(first);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});

describe('15.6 Host-chosen origin: without publicUrl, htu is checked against the audience origin', () => {
  const OTHER = 'http://other-rs.example';
  let client: DpopClient;
  beforeAll(async () => {
    client = await DpopClient.create('ES256');
  });

  it.each(FRAMEWORKS)('%s: a proof made for another API, sent with that API as Host, is refused', async (framework) => {
    const app = await startApp(framework, { issuer: as.issuer, audience: AUDIENCE, interactionId: false });
    try {
      // A token whose audience names both APIs, and a proof made for the other one.
      const token = await as.mint({ scope: 'accounts', jkt: client.jkt, audience: [AUDIENCE, OTHER] });
      const call = async (htu: string, host: string) =>
        send(`${app.url}/accounts`, {
          headers: { host, authorization: `DPoP ${token}`, dpop: await client.proof({ htm: 'GET', htu, accessToken: token }) },
        });
      const attack = await call(`${OTHER}/accounts`, 'other-rs.example');
      expect(attack.status).toBe(401);
      expect(attack.headers['www-authenticate']).toContain('error="invalid_dpop_proof"');
      // The origin comes from configuration: the same request with a proof for this API passes, whatever Host says.
      expect((await call(`${AUDIENCE}/accounts`, 'other-rs.example')).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});

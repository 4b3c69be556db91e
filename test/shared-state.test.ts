/**
 * What one request can leave behind for the next, and what a request can put into the logs:
 * claims shared through the token caches (issue 15 item 10) and attacker-controlled values in
 * decision events (item 12). Through real HTTP on Express, Koa and Fastify.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Authorized, DecisionEvent, GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { FRAMEWORKS, type Framework, serveHono } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const SECRET = 'rs-client-secret';
let as: MockIssuer;
beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  as.introspectionClients.set('rs-client', SECRET);
});
afterAll(() => as.stop());

/** Every way a handler could try to widen what the token grants for later requests. */
function tamper(auth: Authorized | null | undefined): { scope: unknown; changed: number } {
  const a = auth as unknown as { claims: Record<string, unknown>; token: { claims: Record<string, unknown> }; scopes: string[] };
  const attempts = [
    () => {
      a.claims.scope = 'accounts admin';
    },
    () => {
      a.token.claims.scope = `${a.token.claims.scope} admin`;
    },
    () => {
      a.token.claims = { ...a.claims, scope: 'accounts admin' };
    },
    () => Object.defineProperty(a.claims, 'scope', { value: 'accounts admin' }),
    () => a.scopes.push('admin'),
    () => {
      a.claims.aud = [AUDIENCE, 'https://other.example.com'];
    },
  ];
  let changed = 0;
  for (const attempt of attempts) {
    try {
      attempt();
      changed++;
    } catch {
      // frozen: the attempt throws in strict mode
    }
  }
  return { scope: a.claims.scope, changed };
}

const TAMPER: RoutePolicy = { scopes: ['accounts'], allowBearer: true };
const ADMIN: RoutePolicy = { scopes: ['admin'], allowBearer: true };
const PAYMENTS: RoutePolicy = { scopes: ['accounts'] };

interface App {
  url: string;
  decisions: DecisionEvent[];
  close(): Promise<void>;
}

/** `/tamper` runs `tamper`, `/admin` needs scope admin, `/payments` needs a DPoP-bound token. */
async function start(framework: Framework, options: GuardOptions): Promise<App> {
  const decisions: DecisionEvent[] = [];
  const guarded = { ...options, onDecision: (e: DecisionEvent) => decisions.push(e) };
  const ok = { ok: true };
  if (framework === 'fastify') {
    const app = Fastify();
    await app.register(fastifyPlugin, guarded);
    app.get('/tamper', { config: { fapi: routePolicy(TAMPER) } }, async (request) => tamper(request.auth));
    app.get('/admin', { config: { fapi: routePolicy(ADMIN) } }, async () => ok);
    app.post('/payments', { config: { fapi: routePolicy(PAYMENTS) } }, async () => ok);
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, decisions, close: () => app.close() };
  }
  if (framework === 'hono') {
    const fapi = honoGuard(guarded);
    const app = new Hono();
    app.get('/tamper', fapi.protect(TAMPER), (c) => c.json(tamper(c.get('auth'))));
    app.get('/admin', fapi.protect(ADMIN), (c) => c.json(ok));
    app.post('/payments', fapi.protect(PAYMENTS), (c) => c.json(ok));
    return { decisions, ...(await serveHono(app)) };
  }
  let server: Server;
  if (framework === 'express') {
    const fapi = expressGuard(guarded);
    const app = express();
    app.get('/tamper', fapi.protect(TAMPER), (req, res) => void res.json(tamper(req.auth)));
    app.get('/admin', fapi.protect(ADMIN), (_req, res) => void res.json(ok));
    app.post('/payments', fapi.protect(PAYMENTS), (_req, res) => void res.json(ok));
    server = app.listen(0, '127.0.0.1');
  } else {
    const fapi = koaGuard(guarded);
    const app = new Koa();
    const routes: Record<string, [ReturnType<typeof fapi.protect>, (ctx: Koa.Context) => unknown]> = {
      '/tamper': [fapi.protect(TAMPER), (ctx) => tamper(ctx.state.auth)],
      '/admin': [fapi.protect(ADMIN), () => ok],
      '/payments': [fapi.protect(PAYMENTS), () => ok],
    };
    app.use(async (ctx, next) => {
      const route = routes[ctx.path];
      if (!route) return next();
      await route[0](ctx, async () => {
        ctx.body = route[1](ctx);
      });
    });
    server = app.listen(0, '127.0.0.1');
  }
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    decisions,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

// The NestJS adapter's claims are the core's frozen objects too; this suite's apps are the four
// adapters it builds by hand.
const ADAPTERS = FRAMEWORKS.filter((f): f is 'express' | 'koa' | 'fastify' | 'hono' => !f.startsWith('nestjs'));

describe.each(ADAPTERS)('%s', (framework) => {
  let app: App;
  beforeAll(async () => {
    app = await start(framework, {
      issuer: as.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      introspection: { clientId: 'rs-client', clientAuth: { method: 'client_secret_basic', clientSecret: SECRET } },
    });
  });
  afterAll(() => app.close());

  it.each([
    ['a JWT (verification cache)', () => as.mint({ scope: 'accounts' })],
    ['an opaque token (introspection cache)', () => as.mintOpaque({ scope: 'accounts' })],
  ])('15.10 shared mutable claims: a handler cannot change what %s grants to later requests', async (_kind, mint) => {
    const token = await mint();
    expect((await send(`${app.url}/admin`, bearer(token))).status).toBe(403);
    const first = await send(`${app.url}/tamper`, bearer(token));
    expect(first.status).toBe(200);
    expect(first.json).toEqual({ scope: 'accounts', changed: 0 });
    expect((await send(`${app.url}/admin`, bearer(token))).status).toBe(403);
    // The next request with the token sees the claims the authorization server issued.
    expect((await send(`${app.url}/tamper`, bearer(token))).json).toEqual({ scope: 'accounts', changed: 0 });
  });

  const UNSAFE = /[\p{Cc}\u2028\u2029]/u;
  const FORGED = '\r\nallow 200 POST /payments\u001b[2K';

  /** The last decision, checked to be printable as one line of bounded length. */
  function lastDecision(): DecisionEvent {
    const event = app.decisions.at(-1) as DecisionEvent;
    for (const value of Object.values(event)) {
      if (typeof value !== 'string') continue;
      expect(value).not.toMatch(UNSAFE);
      expect(value.length).toBeLessThan(600);
    }
    return event;
  }

  it('15.12 log injection: a kid with CR/LF and ANSI escapes reaches onDecision escaped', async () => {
    const token = await as.mint({ scope: 'accounts', header: { kid: `k1${FORGED}` } });
    const res = await send(`${app.url}/tamper`, bearer(token));
    expect(res.status).toBe(401);
    const event = lastDecision();
    expect(event.reason).toBe('token_key_unknown');
    expect(event.detail).toContain('k1\\r\\nallow 200 POST /payments\\u001b[2K');
  });

  it('15.12 log injection: a huge kid is cut to a bounded length', async () => {
    const token = await as.mint({ scope: 'accounts', header: { kid: `k${'\n'.repeat(2000)}` } });
    expect((await send(`${app.url}/tamper`, bearer(token))).status).toBe(401);
    expect(lastDecision().detail).toMatch(/…\[\d+ more characters\]$/);
  });

  it('15.12 log injection: DPoP htm and htu with CR/LF and ANSI escapes reach onDecision escaped', async () => {
    const dpop = await DpopClient.create('ES256');
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt });
    const call = async (htm: string, htu: string) => {
      const proof = await dpop.proof({ htm, htu, accessToken: token });
      return send(`${app.url}/payments`, { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop: proof } });
    };
    expect((await call(`POST${FORGED}`, `${AUDIENCE}/payments`)).status).toBe(401);
    expect(lastDecision().detail).toContain('htm POST\\r\\nallow 200 POST /payments\\u001b[2K on a POST request');
    expect((await call('POST', `${AUDIENCE}/payments${FORGED}`)).status).toBe(401);
    expect(lastDecision().detail).toContain('/payments\\r\\nallow 200 POST /payments\\u001b[2K is not');
  });

  it('15.12 log injection: a subject with CR/LF and ANSI escapes reaches onDecision escaped', async () => {
    const token = await as.mint({ scope: 'accounts', claims: { sub: `user-1${FORGED}` } });
    const res = await send(`${app.url}/admin`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(403);
    expect(lastDecision().subject).toBe('user-1\\r\\nallow 200 POST /payments\\u001b[2K');
  });
});

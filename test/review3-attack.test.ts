/**
 * Outside review of the III changes (NestJS policies along the class chain and per-class
 * handlers, token kinds, the FAPI_ prefix, the request target as received), through real HTTP on
 * 127.0.0.1. Each test names the attack it tries; the ones that got through are fixed.
 */

import { connect as h2connect, type OutgoingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { type Authorized, COMPAT_PRESETS, type GuardOptions } from '@fapi-guard/core';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { FapiAuth, FapiPolicy, RequireScopes } from '@fapi-guard/nestjs';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import {
  BadRequestException,
  Body,
  type CanActivate,
  Controller,
  type ExecutionContext,
  HttpCode,
  Injectable,
  type PipeTransform,
  Post,
  UseGuards,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import Fastify from 'fastify';
import { type RunningApp, startExpressApp } from './support/express-app';
import { send, trickle } from './support/http';
import { type StartedNestApp, startNestApp } from './support/nest-app';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let dpop: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  dpop = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

async function dpopHeaders(method: string, path: string, token: string) {
  return { authorization: `DPoP ${token}`, dpop: await dpop.proof({ htm: method, htu: `${AUDIENCE}${path}`, accessToken: token }) };
}

/** An Express app with `GET /bound` (sender-constrained) and `GET /open` (bearer allowed), scope accounts. */
async function withExpress(options: Partial<GuardOptions>, run: (app: RunningApp) => Promise<void>): Promise<void> {
  const app = await startExpressApp(
    { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, ...options } as GuardOptions,
    (express, fapi) => {
      const echo = (req: Request, res: Response) => void res.json({ binding: req.auth?.binding });
      express.get('/bound', fapi.protect({ scopes: ['accounts'] }), echo);
      express.get('/open', fapi.protect({ scopes: ['accounts'], allowBearer: true }), echo);
    },
  );
  try {
    await run(app);
  } finally {
    await app.close();
  }
}

describe('III.review JWT kinds under the Keycloak preset', () => {
  it('III.review JWTBCP-10 a DPoP-bound Keycloak access token (payload typ DPoP, Keycloak ≥ 23) passes with its proof', async () => {
    await withExpress({ compat: COMPAT_PRESETS.keycloak }, async (app) => {
      const token = await as.mint({
        scope: 'accounts',
        jkt: dpop.jkt,
        fault: 'wrong-typ',
        claims: { client_id: undefined, azp: 'client-a', typ: 'DPoP' },
      });
      const res = await send(`${app.url}/bound`, { headers: await dpopHeaders('GET', '/bound', token) });
      expect({ status: res.status, decision: app.decisions.at(-1)?.reason }).toEqual({ status: 200, decision: undefined });
    });
  });

  it('III.review JWTBCP-10 a payload typ that cannot be printed is refused as another kind (token_type), not as an internal fault', async () => {
    await withExpress({ compat: COMPAT_PRESETS.keycloak }, async (app) => {
      for (const claims of [{ typ: { toString: 1 } }, { token_use: { toString: 1, valueOf: 2 } }]) {
        const token = await as.mint({
          scope: 'accounts',
          fault: 'wrong-typ',
          claims: { client_id: undefined, azp: 'client-a', ...claims },
        });
        const res = await send(`${app.url}/open`, { headers: { authorization: `Bearer ${token}` } });
        expect({ status: res.status, reason: app.decisions.at(-1)?.reason }).toEqual({ status: 401, reason: 'token_type' });
      }
    });
  });
});

/** A base controller whose class policy every subclass inherits. */
@Controller('guarded')
@RequireScopes('payments:write')
class GuardedBase {
  @Post('pay')
  @HttpCode(201)
  pay(@FapiAuth() auth: Authorized, @Body() body: unknown) {
    return { scopes: auth.scopes, body };
  }
}

/** No policy decorator of its own: a route of its own, and an inherited one overridden and mapped again. */
@Controller('undecorated')
class UndecoratedSub extends GuardedBase {
  @Post('own')
  @HttpCode(201)
  own(@FapiAuth() auth: Authorized, @Body() body: unknown) {
    return { scopes: auth.scopes, body, own: true };
  }
  @Post('pay')
  @HttpCode(201)
  override pay(@FapiAuth() auth: Authorized, @Body() body: unknown) {
    return { ...super.pay(auth, body), overridden: true };
  }
}

/** An abstract mixin with a class policy, applied to a plain base; the controller adds nothing. */
// biome-ignore lint/suspicious/noExplicitAny: a mixin's base constructor takes any[] (TS2545)
function Audited<T extends new (...args: any[]) => GuardedBase>(Base: T) {
  @FapiPolicy({ acrValues: ['urn:bank:mfa'] })
  abstract class AuditedMixin extends Base {
    @Post('audit')
    @HttpCode(201)
    audit(@FapiAuth() auth: Authorized) {
      return { scopes: auth.scopes, acr: auth.claims.acr };
    }
  }
  return AuditedMixin;
}

@Controller('mixed')
class MixedController extends Audited(GuardedBase) {}

describe('III.review NestJS on Fastify: routes of subclasses without a policy decorator authenticate before the body is read', () => {
  let app: StartedNestApp;
  beforeAll(async () => {
    app = await startNestApp('nestjs-fastify', { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE }, [
      GuardedBase,
      UndecoratedSub,
      MixedController,
    ]);
  });
  afterAll(() => app.close());

  const PATHS = ['/undecorated/own', '/undecorated/pay', '/mixed/audit', '/mixed/pay'];

  it.each(PATHS)('III.review 15.8 no token on %s → 401 while the client has sent 16 of 1 MiB', async (path) => {
    const res = await trickle(
      app.url,
      { path, headers: { 'content-type': 'application/json', 'content-length': String(1024 * 1024) }, head: '{"amount":"1.00"' },
      3000,
    );
    expect(res.status).toBe(401);
    expect(res.sentBytes).toBe(16);
  });

  it('III.review FAPI-RS-01 the inherited class policies hold on those routes, and they are served once when met', async () => {
    const pay = async (path: string, scope: string, claims: Record<string, unknown> = {}) => {
      const token = await as.mint({ scope, jkt: dpop.jkt, claims });
      return send(`${app.url}${path}`, {
        method: 'POST',
        headers: { ...(await dpopHeaders('POST', path, token)), 'content-type': 'application/json' },
        body: '{"amount":"1.00"}',
      });
    };
    for (const path of PATHS) {
      expect({ path, status: (await pay(path, 'accounts', { acr: 'urn:bank:mfa' })).status }).toEqual({ path, status: 403 });
      const ok = await pay(path, 'payments:write', { acr: 'urn:bank:mfa' });
      expect({ path, status: ok.status }).toEqual({ path, status: 201 });
    }
    expect((await pay('/mixed/audit', 'payments:write')).status).toBe(401);
    expect((await pay('/undecorated/pay', 'payments:write')).json).toEqual({
      scopes: ['payments:write'],
      body: { amount: '1.00' },
      overridden: true,
    });
  });
});

/** Writes `raw` (one or more requests) on one connection; resolves with the statuses of `count` answers. */
function pipelined(url: string, raw: string, count: number, waitMs = 5000): Promise<number[]> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`fewer than ${count} answers within ${waitMs} ms: ${received.slice(0, 200)}`));
    }, waitMs);
    socket.on('connect', () => socket.write(raw));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const statuses: number[] = [];
      let rest = received;
      while (statuses.length < count) {
        const end = rest.indexOf('\r\n\r\n');
        const length = /\r\ncontent-length: *(\d+)/i.exec(rest.slice(0, end));
        if (end < 0 || !length || rest.length < end + 4 + Number(length[1])) return;
        statuses.push(Number(rest.slice(9, 12)));
        rest = rest.slice(end + 4 + Number(length[1]));
      }
      clearTimeout(timer);
      socket.destroy();
      resolve(statuses);
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

describe('III.review Fastify rewriteUrl: the target recorded on arrival is the one of the request being checked', () => {
  /** `/v1/…` is served by the `/v2/…` routes. */
  const rewriteUrl = (req: { url?: string }) => (req.url ?? '/').replace(/^\/v1\//, '/v2/');
  let app: ReturnType<typeof Fastify>;
  let url: string;
  beforeAll(async () => {
    app = Fastify({ rewriteUrl });
    await app.register(fastifyPlugin, { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE });
    const echo = async () => ({ ok: true });
    app.get('/v2/a', { config: { fapi: routePolicy({ scopes: ['accounts'] }) } }, echo);
    app.get('/v2/b', { preHandler: app.fapi.protect({ scopes: ['accounts'] }) }, echo);
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => app.close());

  const request = async (target: string, htuPath: string) => {
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt });
    const headers = await dpopHeaders('GET', htuPath, token);
    return `GET ${target} HTTP/1.1\r\nhost: rs.example.com\r\nauthorization: ${headers.authorization}\r\ndpop: ${headers.dpop}\r\n\r\n`;
  };

  it('III.review DPOP-11 pipelined requests on one keep-alive connection: each is checked against its own target', async () => {
    // Right, wrong (proof for the other request's URL), right again: answers in order, no mix-up.
    const raw = [await request('/v1/a', '/v1/a'), await request('/v1/b', '/v1/a'), await request('/v1/b', '/v1/b')].join('');
    expect(await pipelined(url, raw, 3)).toEqual([200, 401, 200]);
    const swapped = [await request('/v1/a', '/v1/b'), await request('/v1/b', '/v1/b')].join('');
    expect(await pipelined(url, swapped, 2)).toEqual([401, 200]);
  });

  it('III.review DPOP-11 an absolute-form request target that Fastify routes is refused (400), even for the configured origin, never checked against another URL', async () => {
    // find-my-way routes `http://host/v2/a` as `/v2/a`; the guard sees the target as sent.
    for (const target of [`${AUDIENCE}/v2/a`, 'http://other.example/v2/b']) {
      for (const htu of ['/v2/a', '/v2/b']) {
        const [status] = await pipelined(url, await request(target, htu), 1);
        expect({ target, htu, status }).toEqual({ target, htu, status: 400 });
      }
    }
  });
});

describe('III.review introspected token_type look-alikes', () => {
  const SECRET = 'rs-client-secret-0123456789';
  const introspection = { clientId: 'rs-client', clientAuth: { method: 'client_secret_basic' as const, clientSecret: SECRET } };
  beforeAll(() => as.introspectionClients.set('rs-client', SECRET));
  afterEach(() => {
    as.introspection = {};
  });

  it.each(['Bearer ', ' Bearer', 'Bearer\u0000', 'Bearer\t', 'bearer\u200b', '\uff22earer', 'Bearer,DPoP', 'access_token '])(
    'III.review INTRO-03 token_type %j is not an access token type → 401 invalid_token',
    async (type) => {
      await withExpress({ introspection }, async (app) => {
        as.introspection = { transform: (answer) => ({ ...answer, token_type: type }) };
        const res = await send(`${app.url}/open`, { headers: { authorization: `Bearer ${await as.mintOpaque({ scope: 'accounts' })}` } });
        expect({ status: res.status, reason: app.decisions.at(-1)?.reason }).toEqual({ status: 401, reason: 'token_type' });
      });
    },
  );
});

/** Refuses a request that says `x-deny: 1`: a check of the application's own on a base class's handler. */
@Injectable()
class DenyGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToHttp().getRequest<{ headers: Record<string, string | undefined> }>().headers['x-deny'] !== '1';
  }
}

/** Refuses a body without a string amount: a pipe on a base class's handler parameter. */
class AmountPipe implements PipeTransform {
  transform(value: unknown) {
    if (typeof (value as { amount?: unknown } | null)?.amount !== 'string') throw new BadRequestException('amount');
    return value;
  }
}

/** A base class (no policy) whose handler carries the application's guard, pipe and `this`. */
class ChecksBase {
  readonly currency = 'EUR';
  @Post('pay')
  @HttpCode(201)
  @UseGuards(DenyGuard)
  pay(@FapiAuth() auth: Authorized, @Body(new AmountPipe()) body: { amount: string }) {
    return { client: auth.clientId, amount: body.amount, currency: this.currency };
  }
}

@Controller('checks')
@RequireScopes('payments:write')
class ChecksController extends ChecksBase {}

describe.each(['nestjs', 'nestjs-fastify'] as const)('III.review %s: the handler a class policy gives an inherited route', (platform) => {
  let app: StartedNestApp;
  beforeAll(async () => {
    app = await startNestApp(platform, { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE }, [ChecksController]);
  });
  afterAll(() => app.close());

  const pay = async (body: string, extra: Record<string, string> = {}) => {
    const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt });
    return send(`${app.url}/checks/pay`, {
      method: 'POST',
      headers: { ...(await dpopHeaders('POST', '/checks/pay', token)), 'content-type': 'application/json', ...extra },
      body,
    });
  };

  it('III.review FAPI-RS-01 keeps the base handler’s own guard and pipe, and calls it on the controller instance', async () => {
    expect((await pay('{"amount":"1.00"}', { 'x-deny': '1' })).status).toBe(403);
    expect((await pay('{"amount":1}')).status).toBe(400);
    const ok = await pay('{"amount":"1.00"}');
    expect({ status: ok.status, json: ok.json }).toEqual({ status: 201, json: { client: 'client-a', amount: '1.00', currency: 'EUR' } });
  });
});

/** One HTTP/2 (h2c) GET: the answer's status. */
function h2get(origin: string, path: string, headers: OutgoingHttpHeaders): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = h2connect(origin);
    session.on('error', reject);
    const req = session.request({ ':method': 'GET', ':path': path, ...headers });
    let status = 0;
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.resume();
    req.on('end', () => {
      session.close();
      resolve(status);
    });
    req.on('error', reject);
  });
}

describe('III.review Fastify over HTTP/2 with rewriteUrl', () => {
  it('III.review DPOP-11 htu is the :path the client sent, not the rewritten one', async () => {
    const app = Fastify({ http2: true, rewriteUrl: (req) => (req.url ?? '/').replace(/^\/v1\//, '/v2/') });
    await app.register(fastifyPlugin, { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE });
    app.get('/v2/a', { config: { fapi: routePolicy({ scopes: ['accounts'] }) } }, async () => ({ ok: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const get = async (path: string, htuPath: string) => {
        const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt });
        return h2get(origin, path, await dpopHeaders('GET', htuPath, token));
      };
      expect(await get('/v1/a', '/v1/a')).toBe(200);
      expect(await get('/v1/a', '/v2/a')).toBe(401);
      expect(await get('/v2/a', '/v2/a')).toBe(200);
    } finally {
      await app.close();
    }
  });
});

/** Route functions shared by copying (the TypeScript handbook's `applyMixins`), not by extending. */
class SharedRoutes {
  @Post('quote')
  @HttpCode(200)
  quote(@Body() body: unknown) {
    return { quoted: body };
  }
}

@Controller('public')
class PublicQuotes extends SharedRoutes {}

@Controller('private')
@RequireScopes('payments:write')
class PrivateQuotes {}
Object.defineProperty(PrivateQuotes.prototype, 'quote', { value: SharedRoutes.prototype.quote, writable: true, configurable: true });

describe('III.review NestJS on Fastify: one handler function served by a public and a protected controller', () => {
  let app: StartedNestApp;
  beforeAll(async () => {
    app = await startNestApp('nestjs-fastify', { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE }, [
      PrivateQuotes,
      PublicQuotes,
    ]);
  });
  afterAll(() => app.close());

  it('III.review the public route stays public; the protected one is refused without a token', async () => {
    const post = (path: string) =>
      send(`${app.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    const open = await post('/public/quote');
    expect({ status: open.status, json: open.json }).toEqual({ status: 200, json: { quoted: { a: 1 } } });
    expect((await post('/private/quote')).status).toBe(401);
  });
});

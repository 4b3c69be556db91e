/**
 * Outside review of the III changes (NestJS policies along the class chain and per-class
 * handlers, token kinds, the FAPI_ prefix, the request target as received), through real HTTP on
 * 127.0.0.1. Each test names the attack it tries; the ones that got through are fixed.
 */
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { type Authorized, COMPAT_PRESETS, type GuardOptions } from '@fapi-guard/core';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { FapiAuth, FapiPolicy, RequireScopes } from '@fapi-guard/nestjs';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { Body, Controller, HttpCode, Post } from '@nestjs/common';
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
function Audited<T extends abstract new (...args: never[]) => object>(Base: T) {
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

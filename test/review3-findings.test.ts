/**
 * Third outside review (issue 24), its findings: each attack that got through, as a regression
 * test over real HTTP on every adapter where the adapter matters.
 */
import type { AddressInfo } from 'node:net';
import { type Authorized, COMPAT_PRESETS, type GuardOptions, guardOptionsFromEnv } from '@fapi-guard/core';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { FapiAuth, FapiGuardModule, FapiPolicy, RequireScopes } from '@fapi-guard/nestjs';
import { DpopClient, type MintOptions, MockIssuer } from '@fapi-guard/testing';
import middie from '@fastify/middie';
import { Body, Controller, Get, HttpCode, type MiddlewareConsumer, Module, type NestModule, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { Request, Response } from 'express';
import Fastify, { type FastifyRequest } from 'fastify';
import { type RunningApp, startExpressApp } from './support/express-app';
import { send, trickle } from './support/http';
import { type NestPlatform, type StartedNestApp, startNestApp } from './support/nest-app';

describe('III.4 guardOptionsFromEnv: a FAPI_ prefix in another case', () => {
  const minimal = { FAPI_ISSUER: 'https://as.bank.example', FAPI_AUDIENCE: 'https://api.bank.example' };

  it.each(['fapi_dpop_nonce_required', 'Fapi_Dpop_Nonce_Required', 'FAPI_dpop_nonce_required', 'fAPI_DPOP_NONCE_REQUIRED'])(
    'III.4 %s=true is a start-up error naming FAPI_DPOP_NONCE_REQUIRED',
    (name) => {
      expect(() => guardOptionsFromEnv({ ...minimal, [name]: 'true' })).toThrow(
        `environment variable ${name} is not a fapi-guard variable; did you mean FAPI_DPOP_NONCE_REQUIRED?`,
      );
    },
  );

  it('III.4 a typo after a lower-case prefix names the nearest variable; other prefixes stay the application’s', () => {
    expect(() => guardOptionsFromEnv({ ...minimal, fapi_audiences: 'x' })).toThrow(
      /fapi_audiences is not a fapi-guard variable; did you mean FAPI_AUDIENCE\?/,
    );
    expect(() => guardOptionsFromEnv({ ...minimal, fapi_framework: 'koa' })).toThrow(/allow: \['fapi_framework'\]/);
    expect(() => guardOptionsFromEnv({ ...minimal, fapi_framework: 'koa' }, { allow: ['fapi_framework'] })).not.toThrow();
    // Not the prefix: FAPIX_, XFAPI_ and FAPI without the underscore are not ours.
    expect(() => guardOptionsFromEnv({ ...minimal, FAPIX_A: '1', XFAPI_A: '1', FAPI: '1', fapi: '1' })).not.toThrow();
  });
});

const AUDIENCE = 'https://rs.example.com';
const SECRET = 'rs-client-secret-0123456789';
let as: MockIssuer;
let dpop: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  as.introspectionClients.set('rs-client', SECRET);
  dpop = await DpopClient.create('ES256');
});
afterAll(() => as.stop());
beforeEach(() => {
  as.introspection = {};
});

const introspection = { clientId: 'rs-client', clientAuth: { method: 'client_secret_basic' as const, clientSecret: SECRET } };

/** An Express app with `GET /accounts` (scope accounts, bearer allowed) and `GET /bound` (sender-constrained). */
async function withExpress(options: Partial<GuardOptions>, run: (app: RunningApp) => Promise<void>): Promise<void> {
  const app = await startExpressApp(
    { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, ...options } as GuardOptions,
    (express, fapi) => {
      const echo = (req: Request, res: Response) => void res.json({ clientId: req.auth?.clientId, binding: req.auth?.binding });
      express.get('/accounts', fapi.protect({ scopes: ['accounts'], allowBearer: true }), echo);
      express.get('/bound', fapi.protect({ scopes: ['accounts'] }), echo);
    },
  );
  try {
    await run(app);
  } finally {
    await app.close();
  }
}

const bearer = (app: RunningApp, token: string, path = '/accounts') =>
  send(`${app.url}${path}`, { headers: { authorization: `Bearer ${token}` } });

describe('III.2 a token of another kind introspected as active', () => {
  const answering = (token_type: unknown) => {
    as.introspection = { transform: (answer) => ({ ...answer, token_type }) };
  };

  it.each([
    'refresh_token',
    'Refresh',
    'urn:ietf:params:oauth:token-type:refresh_token',
    'urn:ietf:params:oauth:token-type:id_token',
    'urn:ietf:params:oauth:token-type:jwt',
    'N_A',
    'id_token',
    'logout',
    '',
    42,
    ['Bearer'],
  ])('III.2 INTRO-03 token_type %j → 401 invalid_token (RFC 7662 §2.2, RFC 8693 §2.2.1)', async (type) => {
    await withExpress({ introspection }, async (app) => {
      answering(type);
      const res = await bearer(app, await as.mintOpaque({ scope: 'accounts' }));
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(app.decisions.at(-1)).toMatchObject({
        outcome: 'deny',
        reason: typeof type === 'string' ? 'token_type' : 'token_claim_invalid',
      });
    });
  });

  it.each(['Bearer', 'bearer', 'BEARER', 'access_token', 'urn:ietf:params:oauth:token-type:access_token', undefined])(
    'III.2 INTRO-03 token_type %j of an unbound access token passes',
    async (type) => {
      await withExpress({ introspection }, async (app) => {
        as.introspection = { transform: ({ token_type: _, ...answer }) => (type === undefined ? answer : { ...answer, token_type: type }) };
        const res = await bearer(app, await as.mintOpaque({ scope: 'accounts' }));
        expect(res.status).toBe(200);
      });
    },
  );

  it.each(['DPoP', 'dpop', undefined])('III.2 DPOP-18 token_type %j of a DPoP-bound access token passes with its proof', async (type) => {
    await withExpress({ introspection }, async (app) => {
      as.introspection = { transform: ({ token_type: _, ...answer }) => (type === undefined ? answer : { ...answer, token_type: type }) };
      const token = await as.mintOpaque({ scope: 'accounts', jkt: dpop.jkt });
      const proof = await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/bound`, accessToken: token });
      const res = await send(`${app.url}/bound`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      expect(res.status).toBe(200);
      expect(res.json.binding).toEqual({ type: 'dpop', jkt: dpop.jkt });
    });
  });

  it('III.2 DPOP-18 a DPoP-bound token whose token_type is Bearer or only the access-token kind, or DPoP without cnf.jkt, is refused', async () => {
    await withExpress({ introspection }, async (app) => {
      for (const type of ['Bearer', 'access_token', 'urn:ietf:params:oauth:token-type:access_token']) {
        answering(type);
        const bound = await as.mintOpaque({ scope: 'accounts', jkt: dpop.jkt });
        const proof = await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/bound`, accessToken: bound });
        const res = await send(`${app.url}/bound`, { headers: { authorization: `DPoP ${bound}`, dpop: proof } });
        expect({ type, status: res.status }).toEqual({ type, status: 401 });
      }
      answering('DPoP');
      expect((await bearer(app, await as.mintOpaque({ scope: 'accounts' }))).status).toBe(401);
    });
  });
});

describe('III.2 JWTBCP-10 a JWT of another kind under the compat presets', () => {
  const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
  /** Claims of a JWT whose client is named in `azp`, as the presets read it. */
  const azp = { client_id: undefined, azp: 'client-a' };
  const cases: [string, MintOptions][] = [
    ['an ID token with nonce', { fault: 'wrong-typ', claims: { ...azp, nonce: 'n-0S6_WzA2Mj' } }],
    ['an ID token with at_hash', { fault: 'wrong-typ', claims: { ...azp, at_hash: 'HK6E_P6Dh8Y93mRNtsDB1Q' } }],
    ['an ID token with c_hash', { fault: 'wrong-typ', claims: { ...azp, c_hash: 'LDktKdoQak3Pk0cnXxCltA' } }],
    ['an ID token with s_hash', { fault: 'wrong-typ', claims: { ...azp, s_hash: 'x7OdE0M8GqeXFGK1JGfVwQ' } }],
    ['an ID token issued to this API (azp is the audience)', { fault: 'wrong-typ', claims: { client_id: undefined, azp: AUDIENCE } }],
    ['a logout token (typ JWT)', { fault: 'wrong-typ', claims: { ...azp, events: { [LOGOUT_EVENT]: {} }, sid: 's-1' } }],
    ['a logout token (no typ)', { fault: 'no-typ', claims: { ...azp, events: { [LOGOUT_EVENT]: {} }, sid: 's-1' } }],
    ['a Keycloak ID token (payload typ ID)', { fault: 'wrong-typ', claims: { ...azp, typ: 'ID' } }],
    ['a Keycloak refresh token (payload typ Refresh)', { fault: 'wrong-typ', claims: { ...azp, typ: 'Refresh' } }],
    ['a Keycloak logout token (payload typ Logout)', { fault: 'wrong-typ', claims: { ...azp, typ: 'Logout' } }],
    ['a Cognito ID token (token_use id)', { fault: 'wrong-typ', claims: { ...azp, token_use: 'id' } }],
    ['a Keycloak ID token with nonce (payload typ ID)', { fault: 'wrong-typ', claims: { ...azp, typ: 'ID', nonce: 'n-0S6' } }],
    ['a logout token typed Bearer', { fault: 'wrong-typ', claims: { ...azp, typ: 'Bearer', events: { [LOGOUT_EVENT]: {} } } }],
    ['a payload typ that is not a string', { fault: 'wrong-typ', claims: { ...azp, typ: ['Bearer'] } }],
  ];
  const compats: [string, GuardOptions['compat']][] = [
    ['keycloak', COMPAT_PRESETS.keycloak],
    ['entra', COMPAT_PRESETS.entra],
    ['auth0', COMPAT_PRESETS.auth0],
    ['acceptMissingTyp', { acceptJwtTyp: true, acceptMissingTyp: true, clientIdClaim: 'azp' }],
  ];

  it.each(compats)(
    'III.2 JWTBCP-10 under %s: ID, logout and refresh tokens with this API’s aud → 401 invalid_token',
    async (_name, compat) => {
      await withExpress({ compat }, async (app) => {
        for (const [what, mint] of cases) {
          const res = await bearer(app, await as.mint({ scope: 'accounts', ...mint }));
          expect({ what, status: res.status, error: res.headers['www-authenticate'] }).toEqual({
            what,
            status: 401,
            error: expect.stringContaining('error="invalid_token"'),
          });
        }
        // The access tokens these issuers mint still pass: typ JWT, client in azp, payload typ Bearer, token_use access.
        // Keycloak before 24 copies the ID token's nonce into access tokens typed Bearer.
        const accessTokens = [azp, { ...azp, typ: 'Bearer' }, { ...azp, typ: 'Bearer', nonce: 'n-0S6' }, { ...azp, token_use: 'access' }];
        for (const claims of [...accessTokens, { ...azp, auth_time: 1, acr: '1' }]) {
          expect((await bearer(app, await as.mint({ scope: 'accounts', fault: 'wrong-typ', claims }))).status).toBe(200);
        }
      });
    },
  );
});

describe('III.5 introspection answers with iat in the future', () => {
  it('III.5 INTRO-03 iat beyond the clock tolerance → 401 invalid_token; at the tolerance it passes', async () => {
    let now = Date.now();
    await withExpress({ introspection, clock: () => now, clockToleranceSec: 10 }, async (app) => {
      const at = (offset: number) => {
        as.introspection = { transform: (answer) => ({ ...answer, iat: Math.floor(now / 1000) + offset }) };
      };
      now = Math.floor(Date.now() / 1000) * 1000;
      at(11);
      const ahead = await bearer(app, await as.mintOpaque({ scope: 'accounts' }));
      expect(ahead.status).toBe(401);
      expect(ahead.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(app.decisions.at(-1)).toMatchObject({ reason: 'token_issued_in_future' });
      at(10);
      expect((await bearer(app, await as.mintOpaque({ scope: 'accounts' }))).status).toBe(200);
    });
  });

  it('III.5 INTRO-03 the same answer passes once the clock has reached its iat', async () => {
    let now = Math.floor(Date.now() / 1000) * 1000;
    const iat = now / 1000 + 5;
    await withExpress({ introspection, clock: () => now, clockToleranceSec: 0 }, async (app) => {
      as.introspection = { transform: (answer) => ({ ...answer, iat }) };
      const token = await as.mintOpaque({ scope: 'accounts' });
      expect((await bearer(app, token)).status).toBe(401);
      now += 5000;
      expect((await bearer(app, token)).status).toBe(200);
    });
  });
});

describe('III.5 Fastify rewriteUrl: htu is the URL the client addressed (RFC 9449 §4.3 #9)', () => {
  const PUBLIC = AUDIENCE;
  /** `/v1/…` is served by the `/v2/…` routes: the client addresses /v1, the router sees /v2. */
  const rewriteUrl = (req: { url?: string }) => (req.url ?? '/').replace(/^\/v1\//, '/v2/');

  async function dpopHeaders(method: string, htu: string) {
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt });
    return { authorization: `DPoP ${token}`, dpop: await dpop.proof({ htm: method, htu, accessToken: token }) };
  }

  /** The proof for the URL sent passes; one for the rewritten path is refused; on `path` by `method`. */
  async function expectOriginalUrl(url: string, method: string, path: string) {
    const sent = path.replace('/v2/', '/v1/');
    const original = await send(`${url}${sent}`, { method, headers: await dpopHeaders(method, `${PUBLIC}${sent}`) });
    expect({ status: original.status, challenge: original.headers['www-authenticate'] }).toEqual({ status: 200, challenge: undefined });
    const rewritten = await send(`${url}${sent}`, { method, headers: await dpopHeaders(method, `${PUBLIC}${path}`) });
    expect(rewritten.status).toBe(401);
    expect(rewritten.headers['www-authenticate']).toContain('error="invalid_dpop_proof"');
    // The same proof sent to /v2 itself (no rewrite) passes: the check is the URL as sent.
    expect((await send(`${url}${path}`, { method, headers: await dpopHeaders(method, `${PUBLIC}${path}`) })).status).toBe(200);
  }

  it.each([false, true])('III.5 DPOP-11 config.fapi and protect() routes, with @fastify/middie middleware: %s', async (withMiddie) => {
    const app = Fastify({ rewriteUrl });
    if (withMiddie) {
      await app.register(middie);
      // A middleware makes middie copy the (rewritten) url over raw.originalUrl.
      app.use((_req: unknown, _res: unknown, next: () => void) => next());
    }
    await app.register(fastifyPlugin, { issuer: as.issuer, audience: AUDIENCE, publicUrl: PUBLIC });
    const echo = async (request: FastifyRequest) => ({ url: request.url, client: request.auth?.clientId });
    app.post('/v2/early', { config: { fapi: routePolicy({ scopes: ['accounts'] }) } }, echo);
    app.get('/v2/late', { preHandler: app.fapi.protect({ scopes: ['accounts'] }) }, echo);
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      await expectOriginalUrl(url, 'POST', '/v2/early');
      await expectOriginalUrl(url, 'GET', '/v2/late');
    } finally {
      await app.close();
    }
  });

  it('III.5 DPOP-11 NestJS on Fastify with rewriteUrl and a Nest middleware', async () => {
    @Controller('v2')
    class RewrittenController {
      @Post('early')
      @HttpCode(200)
      @RequireScopes('accounts')
      early(@FapiAuth() auth: Authorized) {
        return { client: auth.clientId };
      }
    }
    @Module({
      imports: [FapiGuardModule.forRoot({ issuer: as.issuer, audience: AUDIENCE, publicUrl: PUBLIC })],
      controllers: [RewrittenController],
    })
    class RewrittenModule implements NestModule {
      configure(consumer: MiddlewareConsumer) {
        consumer.apply((_req: unknown, _res: unknown, next: () => void) => next()).forRoutes('*');
      }
    }
    const nest = await NestFactory.create(RewrittenModule, new FastifyAdapter({ rewriteUrl }), { logger: false, abortOnError: false });
    await nest.listen(0, '127.0.0.1');
    try {
      const url = (await nest.getUrl()).replace('[::1]', '127.0.0.1');
      await expectOriginalUrl(url, 'POST', '/v2/early');
    } finally {
      nest.getHttpServer().closeAllConnections();
      await nest.close();
    }
  });
});

const NEST_PLATFORMS: NestPlatform[] = ['nestjs', 'nestjs-fastify'];
const MFA = 'urn:bank:mfa';

/** DPoP credentials for `method path` with these scopes and claims. */
async function nestCredentials(path: string, scope: string, claims: Record<string, unknown> = {}, method = 'GET') {
  const token = await as.mint({ scope, jkt: dpop.jkt, claims });
  return { authorization: `DPoP ${token}`, dpop: await dpop.proof({ htm: method, htu: `${AUDIENCE}${path}`, accessToken: token }) };
}

const who = (auth: Authorized) => ({ scopes: auth.scopes });

@Controller('base')
@FapiPolicy({ scopes: ['admin'] })
class AdminBaseController {
  @Get('inherited')
  inherited(@FapiAuth() auth: Authorized) {
    return who(auth);
  }
}

/** Adds step-up to every route, its own and the inherited ones; `admin` still holds. */
@Controller('sub')
@FapiPolicy({ acrValues: [MFA] })
class StepUpController extends AdminBaseController {
  @Get('own')
  own(@FapiAuth() auth: Authorized) {
    return who(auth);
  }
  /** Its keys go over this class's policy (scopes added to acr); the base class's still hold. */
  @Get('scoped')
  @RequireScopes('reports')
  scoped(@FapiAuth() auth: Authorized) {
    return who(auth);
  }
}

/** No class policy of its own: the inherited one holds under a method policy too. */
@Controller('plain')
class PlainController extends AdminBaseController {
  @Get('method')
  @RequireScopes('reports')
  method(@FapiAuth() auth: Authorized) {
    return who(auth);
  }
}

describe.each(NEST_PLATFORMS)('III.1 %s: policies accumulate along the class chain', (platform) => {
  let app: StartedNestApp;
  beforeAll(async () => {
    app = await startNestApp(platform, { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE }, [
      AdminBaseController,
      StepUpController,
      PlainController,
    ]);
  });
  afterAll(() => app.close());

  const get = async (path: string, scope: string, claims: Record<string, unknown> = {}) =>
    send(`${app.url}${path}`, { headers: await nestCredentials(path, scope, claims) });

  it('III.1 FAPI-RS-01 the base controller’s scopes hold on the subclass that adds step-up (own and inherited routes)', async () => {
    expect((await get('/base/inherited', 'other')).status).toBe(403);
    for (const path of ['/sub/inherited', '/sub/own']) {
      const withoutAdmin = await get(path, 'other', { acr: MFA });
      expect({ path, status: withoutAdmin.status }).toEqual({ path, status: 403 });
      expect(withoutAdmin.headers['www-authenticate']).toContain('scope="admin"');
      const withoutMfa = await get(path, 'admin', { acr: 'urn:bank:pwd' });
      expect({ path, status: withoutMfa.status }).toEqual({ path, status: 401 });
      expect(withoutMfa.headers['www-authenticate']).toContain('error="insufficient_user_authentication"');
      expect((await get(path, 'admin', { acr: MFA })).status).toBe(200);
    }
  });

  it('III.1 FAPI-RS-01 a handler policy adds to the inherited class policies instead of replacing them', async () => {
    expect((await get('/sub/scoped', 'reports', { acr: MFA })).status).toBe(403);
    expect((await get('/sub/scoped', 'admin', { acr: MFA })).status).toBe(403);
    expect((await get('/sub/scoped', 'admin reports')).status).toBe(401);
    expect((await get('/sub/scoped', 'admin reports', { acr: MFA })).status).toBe(200);
    expect((await get('/plain/method', 'reports')).status).toBe(403);
    expect((await get('/plain/method', 'admin reports')).status).toBe(200);
    expect((await get('/plain/inherited', 'other')).status).toBe(403);
    expect((await get('/plain/inherited', 'admin')).status).toBe(200);
  });

  it('III.1 a subclass that would loosen an inherited requirement stops start-up', async () => {
    @Controller('loose')
    @FapiPolicy({ allowBearer: true })
    class LooseController extends AdminBaseController {}
    await expect(startNestApp(platform, { issuer: as.issuer, audience: AUDIENCE }, [LooseController])).rejects.toThrow(
      /allowBearer.*LooseController.*AdminBaseController/,
    );
  });
});

/** A base class's handler, inherited by two controllers with different policies. */
class PaymentsBase {
  @Post('pay')
  @HttpCode(201)
  pay(@FapiAuth() auth: Authorized, @Body() body: unknown) {
    return { ...who(auth), body };
  }
}

@Controller('a')
@RequireScopes('payments:write')
class PaymentsA extends PaymentsBase {}

@Controller('b')
@FapiPolicy({ scopes: ['payments:write'], acrValues: [MFA] })
class PaymentsB extends PaymentsBase {}

/** A base controller with a class policy, and two subclasses that add nothing: one policy for all three. */
@Controller('shared')
@RequireScopes('payments:write')
class SharedBase {
  @Post('pay')
  @HttpCode(201)
  pay(@FapiAuth() auth: Authorized, @Body() body: unknown) {
    return { ...who(auth), body };
  }
}

@Controller('c')
class SharedC extends SharedBase {}

@Controller('d')
class SharedD extends SharedBase {}

describe('III.3 NestJS on Fastify: inherited and shared handlers authenticate before the body is read', () => {
  let app: StartedNestApp;
  beforeAll(async () => {
    app = await startNestApp('nestjs-fastify', { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE }, [
      PaymentsA,
      PaymentsB,
      SharedBase,
      SharedC,
      SharedD,
    ]);
  });
  afterAll(() => app.close());

  const PATHS = ['/a/pay', '/b/pay', '/shared/pay', '/c/pay', '/d/pay'];

  it.each(PATHS)('III.3 15.8 body read before authentication: no token on %s → 401 while the client has sent 16 of 1 MiB', async (path) => {
    const res = await trickle(
      app.url,
      { path, headers: { 'content-type': 'application/json', 'content-length': String(1024 * 1024) }, head: '{"amount":"1.00"' },
      3000,
    );
    expect(res.status).toBe(401);
    expect(res.sentBytes).toBe(16);
    expect(res.head).toMatch(/\r\nwww-authenticate: DPoP algs="[^"]+"\r\n/i);
  });

  it.each(PATHS)('III.3 15.8 body read before authentication: an invalid token on %s is refused without the body', async (path) => {
    const headers = await nestCredentials(path, 'payments:write', {}, 'POST');
    const res = await trickle(
      app.url,
      {
        path,
        headers: {
          ...headers,
          authorization: `${headers.authorization.slice(0, -2)}AA`,
          'content-type': 'application/json',
          'content-length': '1048576',
        },
        head: '{"amount":"1.00"',
      },
      3000,
    );
    expect(res.status).toBe(401);
    expect(res.head).toContain('error="invalid_token"');
  });

  it('III.3 each controller’s own policy decides for the shared handler; authenticated requests are served once', async () => {
    const pay = async (path: string, claims: Record<string, unknown> = {}) =>
      send(`${app.url}${path}`, {
        method: 'POST',
        headers: { ...(await nestCredentials(path, 'payments:write', claims, 'POST')), 'content-type': 'application/json' },
        body: '{"amount":"1.00"}',
      });
    for (const path of ['/a/pay', '/shared/pay', '/c/pay', '/d/pay']) {
      const res = await pay(path);
      expect({ path, status: res.status, json: res.json }).toEqual({
        path,
        status: 201,
        json: { scopes: ['payments:write'], body: { amount: '1.00' } },
      });
    }
    const stepUp = await pay('/b/pay');
    expect(stepUp.status).toBe(401);
    expect(stepUp.headers['www-authenticate']).toContain('error="insufficient_user_authentication"');
    expect((await pay('/b/pay', { acr: MFA })).status).toBe(201);
  });
});

/**
 * @fapi-guard/nestjs on both Nest platforms (Express and Fastify) over real HTTP: policies on
 * controllers and handlers, start-up failure on a bad policy, the module's async configuration,
 * the RFC 9728 metadata document, and refusals that keep their exact bytes whatever the
 * application's own exception filters do. The shared behaviour (every refusal, signed payments,
 * body before authentication) runs in the parity, message-signing and body-before-auth suites.
 */
import type { Authorized, Guard, GuardOptions } from '@fapi-guard/core';
import { FAPI_GUARD, FapiAuth, FapiGuardModule, FapiPolicy, RequireScopes } from '@fapi-guard/nestjs';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { type ArgumentsHost, Catch, Controller, type ExceptionFilter, Get, Inject, Injectable, Module, Param, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, RouteConfig } from '@nestjs/platform-fastify';
import { FASTIFY_ROUTE_CONFIG_METADATA } from '@nestjs/platform-fastify/constants';
import { send } from './support/http';
import { type NestPlatform, type StartedNestApp, startNestApp } from './support/nest-app';

const AUDIENCE = 'https://rs.example.com';
const ALGS = 'DPoP algs="ES256 PS256 EdDSA"';
const PLATFORMS: NestPlatform[] = ['nestjs', 'nestjs-fastify'];

let as: MockIssuer;
let client: DpopClient;
const options = (): GuardOptions => ({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, interactionId: false });

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

async function dpop(path: string, scope: string, method = 'GET') {
  const token = await as.mint({ scope, jkt: client.jkt });
  const proof = await client.proof({ htm: method, htu: `${AUDIENCE}${path.split('?')[0]}`, accessToken: token });
  return { authorization: `DPoP ${token}`, dpop: proof };
}

const echo = (auth: Authorized) => ({ clientId: auth.clientId, scopes: auth.scopes });

@Controller('accounts')
@FapiPolicy({ scopes: ['accounts'] })
class AccountsController {
  @Get()
  list(@FapiAuth() auth: Authorized) {
    return echo(auth);
  }
  /** The handler's keys go over the controller's: bearer allowed here, scopes kept. */
  @Get('bearer')
  @FapiPolicy({ allowBearer: true })
  bearer(@FapiAuth() auth: Authorized) {
    return echo(auth);
  }
  /** The handler's scopes replace the controller's. */
  @Get(':id/statements')
  @RequireScopes('statements')
  statements(@FapiAuth() auth: Authorized, @Param('id') id: string) {
    return { id, ...echo(auth) };
  }
}

@Controller()
class OpenController {
  @Get('health')
  health() {
    return { ok: true };
  }
  /** @FapiAuth() without a policy: never an empty authorization. */
  @Get('misused')
  misused(@FapiAuth() auth: Authorized) {
    return auth;
  }
  /** A @RouteConfig() written after the policy replaces its Fastify route config; the guard still checks. */
  @Post('configured')
  @RouteConfig({ rateLimit: 1 })
  @RequireScopes('payments:write')
  configured(@FapiAuth() auth: Authorized) {
    return echo(auth);
  }
}

/** An application-wide catch-all filter, as many Nest apps have. */
@Catch()
class CatchEverything implements ExceptionFilter {
  catch(_error: unknown, host: ArgumentsHost) {
    const res = host.switchToHttp().getResponse();
    if (typeof res.code === 'function') res.code(418).send('{"teapot":true}');
    else res.status(418).json({ teapot: true });
  }
}

describe.each(PLATFORMS)('%s', (platform) => {
  let app: StartedNestApp;
  beforeAll(async () => {
    app = await startNestApp(platform, { ...options(), resourceMetadata: true }, [AccountsController, OpenController], (nest) => {
      nest.setGlobalPrefix('api');
      nest.useGlobalFilters(new CatchEverything());
    });
  });
  afterAll(() => app.close());

  it('FAPI-RS-01 a policy on the controller protects every handler; the refusal is the exact RFC 9449 answer', async () => {
    const res = await send(`${app.url}/api/accounts`);
    expect(res.status).toBe(401);
    // The metadata is published, but only a challenge to the resource identifier itself may name it (RFC 9728 §3.3).
    expect(res.headers['www-authenticate']).toBe(ALGS);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    // The core's body, not Nest's exception JSON and not the app's catch-all filter's.
    expect(res.text).toBe('{"error_description":"An access token is required"}');
    const ok = await send(`${app.url}/api/accounts`, { headers: await dpop('/api/accounts', 'accounts') });
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ clientId: expect.any(String), scopes: ['accounts'] });
  });

  it('a handler policy goes over the controller policy: its keys replace the controller’s, the rest stays', async () => {
    const bearer = async (scope: string) => ({ authorization: `Bearer ${await as.mint({ scope })}` });
    expect((await send(`${app.url}/api/accounts/bearer`, { headers: await bearer('accounts') })).status).toBe(200);
    // scopes still come from the controller
    expect((await send(`${app.url}/api/accounts/bearer`, { headers: await bearer('other') })).status).toBe(403);
    // the controller's route without allowBearer refuses the same token
    expect((await send(`${app.url}/api/accounts`, { headers: await bearer('accounts') })).status).toBe(401);
    const path = '/api/accounts/42/statements';
    const statements = await send(`${app.url}${path}`, { headers: await dpop(path, 'statements') });
    expect(statements.json).toEqual({ id: '42', clientId: expect.any(String), scopes: ['statements'] });
    const refused = await send(`${app.url}${path}`, { headers: await dpop(path, 'accounts') });
    expect(refused.status).toBe(403);
    expect(refused.headers['www-authenticate']).toContain('scope="statements"');
  });

  it('a policy on both the controller and the handler checks once: the DPoP proof is not replayed against itself', async () => {
    // bearer() has the guard from the controller and from its own decorator.
    const res = await send(`${app.url}/api/accounts/bearer`, { headers: await dpop('/api/accounts/bearer', 'accounts') });
    expect(res.status).toBe(200);
  });

  it('routes without a policy are not touched; @FapiAuth() there is a 500, never an empty authorization', async () => {
    expect((await send(`${app.url}/api/health`)).json).toEqual({ ok: true });
    const misused = await send(`${app.url}/api/misused`);
    // The app's catch-all filter answers for errors that are not refusals.
    expect(misused.status).toBe(418);
  });

  it('a @RouteConfig() written after the policy does not open the route', async () => {
    const res = await send(`${app.url}/api/configured`, { method: 'POST' });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^DPoP algs=/);
    const ok = await send(`${app.url}/api/configured`, {
      method: 'POST',
      headers: await dpop('/api/configured', 'payments:write', 'POST'),
    });
    expect(ok.status).toBe(201);
  });

  it('RFC 9728: the metadata document is served at the origin’s well-known path, outside the global prefix', async () => {
    const res = await send(`${app.url}/.well-known/oauth-protected-resource`);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ resource: AUDIENCE, authorization_servers: [as.issuer] });
    expect((await send(`${app.url}/api/.well-known/oauth-protected-resource`)).status).toBe(418);
  });
});

describe.each(PLATFORMS)('%s: start-up', (platform) => {
  it('15.1 typo fails open: a typo in a controller policy stops start-up, naming the fix and the handler', async () => {
    @Controller()
    @FapiPolicy({ scope: ['accounts'] } as never)
    class TypoController {
      @Get('accounts')
      accounts() {
        return 'never served';
      }
    }
    await expect(startNestApp(platform, options(), [TypoController])).rejects.toThrow(
      'fapi-guard: unknown route policy key "scope"; did you mean "scopes"? (route policy of TypoController.accounts)',
    );
  });

  it('15.1 typo fails open: an invalid value in a handler policy stops start-up', async () => {
    @Controller()
    class BadValueController {
      @Get('accounts')
      @FapiPolicy({ scopes: 'accounts' } as never)
      accounts() {
        return 'never served';
      }
    }
    await expect(startNestApp(platform, options(), [BadValueController])).rejects.toThrow(/scopes must be a list of scope-tokens/);
  });

  it('a policy decorator without FapiGuardModule stops start-up instead of serving the route unprotected', async () => {
    @Controller()
    class Orphan {
      @Get('accounts')
      @RequireScopes('accounts')
      accounts() {
        return 'never served';
      }
    }
    @Module({ controllers: [Orphan] })
    class NoGuardModule {}
    const adapter = platform === 'nestjs' ? new ExpressAdapter() : new FastifyAdapter();
    await expect(NestFactory.create(NoGuardModule, adapter, { logger: false, abortOnError: false })).rejects.toThrow(/FapiGuard/);
  });

  it('forRootAsync takes the options from a configuration provider', async () => {
    @Injectable()
    class ConfigService {
      readonly issuer = as.issuer;
    }
    @Module({ providers: [ConfigService], exports: [ConfigService] })
    class ConfigModule {}
    @Controller()
    class Accounts {
      constructor(@Inject(FAPI_GUARD) readonly guard: Guard) {}
      @Get('accounts')
      @RequireScopes('accounts')
      accounts(@FapiAuth() auth: Authorized) {
        return { ...echo(auth), publishedPaths: this.guard.publishedPaths };
      }
    }
    @Module({
      imports: [
        FapiGuardModule.forRootAsync({
          imports: [ConfigModule],
          inject: [ConfigService],
          useFactory: async (config: ConfigService) => ({ issuer: config.issuer, audience: AUDIENCE, publicUrl: AUDIENCE }),
        }),
      ],
      controllers: [Accounts],
    })
    class AsyncModule {}
    const adapter = platform === 'nestjs' ? new ExpressAdapter() : new FastifyAdapter();
    const nest = await NestFactory.create(AsyncModule, adapter, { logger: false, abortOnError: false });
    await nest.listen(0, '127.0.0.1');
    try {
      const url = await nest.getUrl();
      expect((await send(`${url}/accounts`)).status).toBe(401);
      const ok = await send(`${url}/accounts`, { headers: await dpop('/accounts', 'accounts') });
      expect(ok.json).toEqual({ clientId: expect.any(String), scopes: ['accounts'], publishedPaths: [] });
    } finally {
      nest.getHttpServer().closeAllConnections();
      await nest.close();
    }
  });
});

describe('decorators', () => {
  it('a key set twice on the same handler fails when the class is declared', () => {
    expect(() => {
      class Twice {
        @FapiPolicy({ scopes: ['a'] })
        @RequireScopes('b')
        route() {}
      }
      return Twice;
    }).toThrow('fapi-guard: the route policy key "scopes" is set twice on route');
  });

  it('the Fastify route config key is the one @nestjs/platform-fastify reads', () => {
    class Marked {
      @RequireScopes('a')
      route() {}
    }
    expect(Reflect.getMetadata(FASTIFY_ROUTE_CONFIG_METADATA, Marked.prototype.route)).toEqual({
      fapiGuardHandler: Marked.prototype.route,
    });
  });
});

describe('nestjs: Express platform without fapiRawBody()', () => {
  it('DEC-07 a signed route whose body Nest’s JSON parser consumed is a 500, never a pass', async () => {
    @Controller()
    class Signed {
      @Post('signed')
      @FapiPolicy({ scopes: ['payments:write'], signedRequest: 'required' })
      signed() {
        return 'never served';
      }
    }
    const app = await startNestApp('nestjs', { ...options(), messageSigning: { clients: {} } }, [Signed], undefined, { rawBody: false });
    try {
      const headers = { ...(await dpop('/signed', 'payments:write', 'POST')), 'content-type': 'application/json' };
      const res = await send(`${app.url}/signed`, { method: 'POST', headers, body: '{"amount":"1.00"}' });
      expect(res.status).toBe(500);
      expect(res.headers['www-authenticate']).toBeUndefined();
    } finally {
      await app.close();
    }
  });
});

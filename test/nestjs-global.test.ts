/**
 * NestJS app-wide default-deny (issue 25 §2) on both platforms over real HTTP: the @nestjs/passport
 * idiom `{ provide: APP_GUARD, useClass: ... }` with `@FapiPublic()`, whose refusals carry the very
 * bytes of a decorated route's, also next to an application's own catch-all exception filter;
 * and the module's `global` setting checked at start-up. The layered combinations (global,
 * controller, handler) run in layers.test.ts and parity.test.ts.
 */
import type { GuardOptions } from '@fapi-guard/core';
import { FapiGlobalGuard, FapiGuard, FapiGuardModule, FapiPolicy, FapiPublic } from '@fapi-guard/nestjs';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { type ArgumentsHost, Catch, Controller, type ExceptionFilter, Get, Module, type Type } from '@nestjs/common';
import { APP_GUARD, NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { type Received, send } from './support/http';
import { type NestPlatform, startNestApp } from './support/nest-app';

const AUDIENCE = 'https://rs.example.com';
const PLATFORMS: NestPlatform[] = ['nestjs', 'nestjs-fastify'];
/** The headers the guard decides, and the body: what must be byte-identical. */
const GUARD_HEADERS = ['www-authenticate', 'dpop-nonce', 'cache-control', 'content-type', 'access-control-expose-headers'];

let as: MockIssuer;
let client: DpopClient;
const options = (): GuardOptions => ({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, interactionId: false });

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

async function dpop(path: string, scope: string) {
  const token = await as.mint({ scope, jkt: client.jkt });
  return {
    headers: { authorization: `DPoP ${token}`, dpop: await client.proof({ htm: 'GET', htu: `${AUDIENCE}${path}`, accessToken: token }) },
  };
}

const answer = (res: Received) => ({
  status: res.status,
  headers: Object.fromEntries(GUARD_HEADERS.map((n) => [n, res.headers[n]])),
  body: res.text,
});

@Controller()
class Routes {
  @Get('undecorated')
  undecorated() {
    return { served: true };
  }
  @Get('decorated')
  @FapiPolicy({})
  decorated() {
    return { served: true };
  }
  @Get('health')
  @FapiPublic()
  health() {
    return { ok: true };
  }
}

@Controller('public')
@FapiPublic()
class PublicController {
  @Get()
  index() {
    return { ok: true };
  }
  /** Public from the app-wide guard, protected by its own policy. */
  @Get('accounts')
  @FapiPolicy({ scopes: ['accounts'] })
  accounts() {
    return { served: true };
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

async function startIdiom(platform: NestPlatform, guard: Type, controllers: Type[]) {
  @Module({ imports: [FapiGuardModule.forRoot(options())], controllers, providers: [{ provide: APP_GUARD, useClass: guard }] })
  class AppModule {}
  const nest = await NestFactory.create(AppModule, platform === 'nestjs' ? new ExpressAdapter() : new FastifyAdapter(), {
    logger: false,
    abortOnError: false,
  });
  nest.useGlobalFilters(new CatchEverything());
  await nest.listen(0, '127.0.0.1');
  return {
    url: await nest.getUrl(),
    close: async () => {
      nest.getHttpServer().closeAllConnections();
      await nest.close();
    },
  };
}

describe.each(PLATFORMS)('%s: APP_GUARD default-deny', (platform) => {
  it.each([
    ['FapiGlobalGuard', FapiGlobalGuard],
    ['FapiGuard', FapiGuard],
  ])(
    'BEARER-03 { provide: APP_GUARD, useClass: %s }: an undecorated route is refused with the bytes of a decorated one',
    async (_name, guard) => {
      const app = await startIdiom(platform, guard, [Routes, PublicController]);
      try {
        const undecorated = answer(await send(`${app.url}/undecorated`));
        const decorated = answer(await send(`${app.url}/decorated`));
        expect(undecorated.status).toBe(401);
        expect(undecorated.headers['www-authenticate']).toBe('DPoP algs="ES256 PS256 EdDSA"');
        expect(undecorated.body).toBe('{"error_description":"An access token is required"}');
        expect(undecorated).toEqual(decorated);
        // Insufficient scope and replay: the same bytes again, whatever layer refused.
        const scoped = await dpop('/public/accounts', 'other');
        expect((await send(`${app.url}/public/accounts`, scoped)).status).toBe(403);
        const valid = await dpop('/undecorated', 'accounts');
        expect((await send(`${app.url}/undecorated`, valid)).json).toEqual({ served: true });
        const replay = answer(await send(`${app.url}/undecorated`, valid));
        expect(replay.status).toBe(401);
        expect(replay.headers['www-authenticate']).toContain('The DPoP proof has already been used');
      } finally {
        await app.close();
      }
    },
  );

  it('@FapiPublic() leaves a handler or a controller out; a policy decorator there still protects', async () => {
    const app = await startIdiom(platform, FapiGlobalGuard, [Routes, PublicController]);
    try {
      expect((await send(`${app.url}/health`)).json).toEqual({ ok: true });
      expect((await send(`${app.url}/public`)).json).toEqual({ ok: true });
      expect((await send(`${app.url}/public/accounts`)).status).toBe(401);
      const ok = await send(`${app.url}/public/accounts`, await dpop('/public/accounts', 'accounts'));
      expect(ok.json).toEqual({ served: true });
    } finally {
      await app.close();
    }
  });
});

describe.each(PLATFORMS)('%s: the module’s global setting', (platform) => {
  it('15.1 typo fails open: a typo in the global policy stops start-up', async () => {
    await expect(
      startNestApp(platform, options(), [Routes], undefined, { settings: { global: { scope: ['x'] } as never } }),
    ).rejects.toThrow('fapi-guard: unknown route policy key "scope"; did you mean "scopes"?');
  });

  it('15.1 typo fails open: an unknown setting or value stops start-up', async () => {
    await expect(startNestApp(platform, options(), [Routes], undefined, { settings: { globl: true } as never })).rejects.toThrow(
      'fapi-guard: unknown FapiGuardModule setting "globl" (known: global, errors, errorBody)',
    );
    await expect(startNestApp(platform, options(), [Routes], undefined, { settings: { errors: 'next' } as never })).rejects.toThrow(
      "fapi-guard: FapiGuardModule option errors must be 'respond' or 'framework'",
    );
  });

  it('global: true protects every route with the default policy; the refusal is the decorated route’s', async () => {
    const app = await startNestApp(platform, options(), [Routes], undefined, { settings: { global: true } });
    try {
      const undecorated = answer(await send(`${app.url}/undecorated`));
      expect(undecorated.status).toBe(401);
      expect(undecorated).toEqual(answer(await send(`${app.url}/decorated`)));
      expect((await send(`${app.url}/health`)).json).toEqual({ ok: true });
    } finally {
      await app.close();
    }
  });
});

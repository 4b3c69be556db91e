/**
 * What FapiGuardModule installs at start-up, with each app built inside its test (so a mutation
 * run has its mutant active while the app starts: stryker/equivalent-mutants.md, "Start-up code of
 * the adapters"): on Nest's Fastify platform the first phase in `onRequest` (a client that has not
 * authenticated is refused on the headers, before its body is read; issue 15.8), which routes it
 * runs for and when it leaves the decision to the guard; the metadata routes on both platforms;
 * the body bytes kept for request signatures; and the module itself (a guard already made, global
 * for feature modules, forRootAsync's defaults). The same behaviour over apps started once:
 * test/body-before-auth.test.ts, test/nestjs.test.ts, test/nestjs-global.test.ts.
 */
import type { Authorized, GuardOptions } from '@fapi-guard/core';
import { createGuard } from '@fapi-guard/core';
import { FAPI_GUARD, FapiAuth, FapiGuardModule, type FapiGuardModuleSettings, FapiPolicy, FapiRefusal } from '@fapi-guard/nestjs';
import { DpopClient, MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import { type ArgumentsHost, Body, Catch, Controller, type ExceptionFilter, Module, Post, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { send, trickle } from './support/http';
import { type NestPlatform, type StartedNestApp, startNestApp } from './support/nest-app';

const ORIGIN = 'https://rs.example.com';
/** What a trickling client announces: far more than it ever sends. */
const ANNOUNCED = String(1024 * 1024);
const FIRST_BYTES = 'x'.repeat(16);
const BODY = '{"amount":"10.00"}';

let as: MockIssuer;
let dpop: DpopClient;
const signer = MessageSigningClient.generate('ed25519', 'client-a-key');
const rsKey = MessageSigningClient.generate('ed25519', 'rs-key');

/** Two origins, so a request for any other host is refused before anything else is read. */
const options = (extra: Partial<GuardOptions> = {}): GuardOptions => ({
  issuer: as.issuer,
  audience: ORIGIN,
  publicUrl: [ORIGIN, 'https://api.example.com'],
  interactionId: false,
  ...extra,
});

beforeAll(async () => {
  as = await MockIssuer.start({ audience: ORIGIN, clientId: 'client-a' });
  dpop = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

/** A DPoP-bound POST to `path` with `scope`, for the origin the guard knows. */
async function credentials(path: string, scope = 'payments') {
  const token = await as.mint({ scope, jkt: dpop.jkt });
  const proof = await dpop.proof({ htm: 'POST', htu: `${ORIGIN}${path}`, accessToken: token });
  return { host: 'rs.example.com', authorization: `DPoP ${token}`, dpop: proof, 'content-type': 'application/json' };
}

/** Announces a 1 MiB body on `path`, sends 16 bytes of it, and waits (at most 3 s) for the answer. */
function trickled(app: StartedNestApp, path: string, headers: Record<string, string>) {
  return trickle(
    app.url,
    { path, headers: { host: 'rs.example.com', 'content-type': 'text/plain', ...headers, 'content-length': ANNOUNCED }, head: FIRST_BYTES },
    3000,
  );
}

/** Starts `controllers` and closes the app after `run`, whatever it does. */
async function withApp(
  platform: NestPlatform,
  guardOptions: GuardOptions,
  controllers: Type[],
  run: (app: StartedNestApp) => Promise<void>,
  settings?: FapiGuardModuleSettings,
  prepare?: Parameters<typeof startNestApp>[3],
) {
  const app = await startNestApp(platform, guardOptions, controllers, prepare, { settings });
  try {
    await run(app);
  } finally {
    await app.close();
  }
}

@Controller('pay')
class Payments {
  @Post()
  @FapiPolicy({ scopes: ['payments'] })
  pay(@FapiAuth() auth: Authorized, @Body() body: unknown) {
    return { scope: auth.scopes, body };
  }
}

/** One handler that two controllers serve (inherited, not overridden): the same policy on both. */
class SharedRoutes {
  @Post('pay')
  @FapiPolicy({ scopes: ['payments'] })
  pay(@Body() body: unknown) {
    return { body };
  }
}
@Controller('a')
class SharedA extends SharedRoutes {}
@Controller('b')
class SharedB extends SharedRoutes {}

/** One handler that two controllers serve under different class policies. */
class UnpolicedRoutes {
  @Post('pay')
  pay(@Body() body: unknown) {
    return { body };
  }
}
@Controller('x')
@FapiPolicy({ scopes: ['x'] })
class ScopeX extends UnpolicedRoutes {}
@Controller('y')
@FapiPolicy({ scopes: ['y'] })
class ScopeY extends UnpolicedRoutes {}

describe('nestjs-fastify: the first phase in onRequest', () => {
  it('15.8 a policy route refuses a client without credentials, or with a host it does not serve, while 16 of 1 MiB are sent', async () => {
    await withApp('nestjs-fastify', options(), [Payments], async (app) => {
      const missing = await trickled(app, '/pay', {});
      expect(missing.status).toBe(401);
      expect(missing.sentBytes).toBe(FIRST_BYTES.length);
      expect(missing.head).toMatch(/\r\nwww-authenticate: DPoP algs="[^"]+"\r\n/i);
      const unknownHost = await trickled(app, '/pay', { host: 'evil.example' });
      expect(unknownHost.status).toBe(400);
      expect(JSON.parse(unknownHost.text)).toMatchObject({ error: 'invalid_request' });
      expect(unknownHost.sentBytes).toBe(FIRST_BYTES.length);
      // The route itself works: an authenticated request is read in full and served.
      const paid = await send(`${app.url}/pay`, { method: 'POST', headers: await credentials('/pay'), body: BODY });
      expect(paid.status).toBe(201);
      expect(paid.json).toEqual({ scope: ['payments'], body: { amount: '10.00' } });
    });
  });

  it('15.8 with the app-wide policy (global), a decorated route is refused on its headers too', async () => {
    await withApp(
      'nestjs-fastify',
      options(),
      [Payments],
      async (app) => {
        const missing = await trickled(app, '/pay', {});
        expect(missing.status).toBe(401);
        expect(missing.sentBytes).toBe(FIRST_BYTES.length);
        const paid = await send(`${app.url}/pay`, { method: 'POST', headers: await credentials('/pay'), body: BODY });
        expect(paid.status).toBe(201);
      },
      { global: true },
    );
  });

  it('15.8 a handler two controllers share is left to the guard, which decides for each controller (global)', async () => {
    await withApp(
      'nestjs-fastify',
      options(),
      [SharedA, SharedB],
      async (app) => {
        for (const path of ['/a/pay', '/b/pay']) {
          const paid = await send(`${app.url}${path}`, { method: 'POST', headers: await credentials(path), body: BODY });
          expect({ path, status: paid.status, json: paid.json }).toEqual({ path, status: 201, json: { body: { amount: '10.00' } } });
          const unscoped = await send(`${app.url}${path}`, { method: 'POST', headers: await credentials(path, 'other'), body: BODY });
          expect(unscoped.status).toBe(403);
        }
      },
      { global: true },
    );
  });

  it('BEARER-03 a handler two controllers serve under different policies is left to the guard: each controller’s scope holds', async () => {
    await withApp('nestjs-fastify', options(), [ScopeX, ScopeY], async (app) => {
      const asX = await send(`${app.url}/x/pay`, { method: 'POST', headers: await credentials('/x/pay', 'x'), body: BODY });
      expect(asX.status).toBe(201);
      const xOnY = await send(`${app.url}/y/pay`, { method: 'POST', headers: await credentials('/y/pay', 'x'), body: BODY });
      expect(xOnY.status).toBe(403);
      expect(xOnY.headers['www-authenticate']).toContain('error="insufficient_scope"');
      const asY = await send(`${app.url}/y/pay`, { method: 'POST', headers: await credentials('/y/pay', 'y'), body: BODY });
      expect(asY.status).toBe(201);
    });
  });

  it("BEARER-03 with errors: 'framework' no refusal is written in onRequest: the application's exception filter answers it", async () => {
    @Catch(FapiRefusal)
    class OwnFormat implements ExceptionFilter<FapiRefusal> {
      catch(refusal: FapiRefusal, host: ArgumentsHost) {
        const reply = host.switchToHttp().getResponse<{ send(body: string): void }>();
        reply.send(JSON.stringify({ mandated: refusal.error.reason }));
      }
    }
    await withApp(
      'nestjs-fastify',
      options(),
      [Payments],
      async (app) => {
        const missing = await send(`${app.url}/pay`, {
          method: 'POST',
          headers: { host: 'rs.example.com', 'content-type': 'application/json' },
          body: BODY,
        });
        expect(missing.status).toBe(401);
        expect(missing.headers['www-authenticate']).toMatch(/^DPoP algs="/);
        expect(missing.json).toEqual({ mandated: 'credentials_missing' });
      },
      { errors: 'framework' },
      (app) => app.useGlobalFilters(new OwnFormat()),
    );
  });
});

describe.each(['nestjs', 'nestjs-fastify'] as const)('%s: what the module serves and keeps', (platform) => {
  it('PRM-01 serves the metadata document and the response-signing JWK set (GET; HEAD without a body); other paths are the app’s', async () => {
    const signing = {
      resourceMetadata: true,
      messageSigning: { clients: {}, responseKey: rsKey.privateJwk, jwksUri: `${ORIGIN}/keys/responses` },
    };
    await withApp(platform, options(signing), [Payments], async (app) => {
      const metadata = await send(`${app.url}/.well-known/oauth-protected-resource`, { headers: { host: 'rs.example.com' } });
      expect(metadata.status).toBe(200);
      expect(metadata.headers['content-type']).toMatch(/^application\/json/);
      expect(metadata.json).toMatchObject({ resource: ORIGIN, authorization_servers: [as.issuer] });
      const head = await send(`${app.url}/.well-known/oauth-protected-resource`, { method: 'HEAD', headers: { host: 'rs.example.com' } });
      expect(head.status).toBe(200);
      expect(head.text).toBe('');
      expect(metadata.json.jwks_uri).toBe(`${ORIGIN}/keys/responses`);
      const keys = await send(`${app.url}/keys/responses`, { headers: { host: 'rs.example.com' } });
      expect(keys.status).toBe(200);
      expect(keys.json).toEqual({ keys: [expect.objectContaining({ kid: 'rs-key', kty: 'OKP' })] });
      expect((await send(`${app.url}/.well-known/other`)).status).toBe(404);
    });
  });

  it('SIG-03 keeps the body bytes as received for a signed request’s content digest (one byte changed: refused)', async () => {
    const signingOptions = options({ messageSigning: { clients: { 'client-a': { jwks: signer.jwks } } } });
    @Controller('signed')
    class Signed {
      @Post()
      @FapiPolicy({ scopes: ['payments'], signedRequest: 'required' })
      pay(@Body() body: unknown) {
        return { body };
      }
    }
    await withApp(platform, signingOptions, [Signed], async (app) => {
      const headers = await credentials('/signed');
      const signature = signer.sign({ method: 'POST', url: `${ORIGIN}/signed`, headers, body: BODY });
      const paid = await send(`${app.url}/signed`, { method: 'POST', headers: { ...headers, ...signature }, body: BODY });
      expect(paid.status).toBe(201);
      const again = await credentials('/signed');
      const changed = signer.sign({ method: 'POST', url: `${ORIGIN}/signed`, headers: again, body: BODY });
      const refused = await send(`${app.url}/signed`, {
        method: 'POST',
        headers: { ...again, ...changed },
        body: BODY.replace('10', '90'),
      });
      expect(refused.status).toBe(401);
    });
  });
});

describe('FapiGuardModule', () => {
  @Controller('feature')
  class FeatureRoutes {
    @Post()
    @FapiPolicy({ scopes: ['payments'] })
    pay() {
      return { paid: true };
    }
  }
  /** A feature module that does not import FapiGuardModule: the module is global. */
  @Module({ controllers: [FeatureRoutes] })
  class FeatureModule {}

  async function startWith(root: ReturnType<typeof FapiGuardModule.forRoot>, platform: NestPlatform) {
    @Module({ imports: [root, FeatureModule] })
    class AppModule {}
    const nest = await NestFactory.create(AppModule, platform === 'nestjs' ? new ExpressAdapter() : new FastifyAdapter(), {
      logger: false,
      abortOnError: false,
    });
    await nest.listen(0, '127.0.0.1');
    return nest;
  }

  it.each([
    ['forRoot', () => FapiGuardModule.forRoot(options())],
    ['forRootAsync without imports or inject', () => FapiGuardModule.forRootAsync({ useFactory: () => options() })],
  ])('BEARER-03 %s: global, so a feature module’s routes are protected without importing it', async (_name, root) => {
    for (const platform of ['nestjs', 'nestjs-fastify'] as const) {
      const nest = await startWith(root(), platform);
      try {
        const url = await nest.getUrl();
        expect((await send(`${url}/feature`, { method: 'POST', headers: { host: 'rs.example.com' } })).status).toBe(401);
        const paid = await send(`${url}/feature`, { method: 'POST', headers: await credentials('/feature'), body: BODY });
        expect(paid.json).toEqual({ paid: true });
      } finally {
        nest.getHttpServer().closeAllConnections();
        await nest.close();
      }
    }
  });

  it('takes a guard already made as it is: the one the routes use', async () => {
    const guard = createGuard(options());
    const nest = await startWith(FapiGuardModule.forRoot(guard), 'nestjs');
    try {
      expect(nest.get(FAPI_GUARD)).toBe(guard);
      const url = await nest.getUrl();
      const paid = await send(`${url}/feature`, { method: 'POST', headers: await credentials('/feature'), body: BODY });
      expect(paid.json).toEqual({ paid: true });
    } finally {
      nest.getHttpServer().closeAllConnections();
      await nest.close();
    }
  });
});

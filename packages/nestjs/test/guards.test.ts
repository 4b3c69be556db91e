/**
 * The NestJS guards and the module settings in process: what they decide before any request is
 * read (a context that is no HTTP, a public route, the global policy, settings that are no
 * policy). The guards over HTTP: test/nestjs.test.ts, test/nestjs-global.test.ts, the adapters'
 * shared suites.
 */
import 'reflect-metadata';
import { createGuard } from '@fapi-guard/core';
import type { ExecutionContext } from '@nestjs/common';
import { MetadataScanner } from '@nestjs/core';
import { RequireScopes } from '../src/decorators';
import { FapiGlobalGuard, FapiGuard } from '../src/guard';
import { FapiPolicies } from '../src/policies';
import { FapiPublic } from '../src/public';
import { checkSettings } from '../src/settings';

const guard = createGuard({ issuer: 'https://as.example.com', audience: 'https://rs.example.com' });
const policies = new FapiPolicies(guard, { getControllers: () => [] } as never, new MetadataScanner());

/** A context of `type` for `handler` on `controller`, whose request must not be read. */
function contextOf(type: string, controller: object, handler: object): ExecutionContext {
  return {
    getType: () => type,
    getClass: () => controller,
    getHandler: () => handler,
    switchToHttp: () => {
      throw new Error('the request was read');
    },
  } as unknown as ExecutionContext;
}

class Health {
  @FapiPublic()
  check() {}
  @FapiPublic()
  @RequireScopes('ops')
  guarded() {}
  plain() {}
}

describe('III.2 FapiGuard and FapiGlobalGuard before the request', () => {
  it('III.2 fail closed on a context that is no HTTP request (RPC, WebSockets)', async () => {
    for (const type of ['rpc', 'ws', 'graphql']) {
      for (const fapi of [new FapiGuard(guard, policies), new FapiGlobalGuard(guard, policies)]) {
        await expect(fapi.canActivate(contextOf(type, Health, Health.prototype.plain))).rejects.toThrow(
          'fapi-guard: FapiGuard protects HTTP routes only',
        );
      }
    }
  });

  it('III.2 FapiGuard app-wide lets a @FapiPublic() route without a policy through unread; one with a policy is checked', async () => {
    const fapi = new FapiGuard(guard, policies);
    await expect(fapi.canActivate(contextOf('http', Health, Health.prototype.check))).resolves.toBe(true);
    await expect(fapi.canActivate(contextOf('http', Health, Health.prototype.guarded))).rejects.toThrow('the request was read');
    await expect(fapi.canActivate(contextOf('http', Health, Health.prototype.plain))).rejects.toThrow('the request was read');
  });

  it('III.2 FapiGlobalGuard: `global: true` and no global policy are the default policy; a public route is let through unread', async () => {
    for (const settings of [{ global: true as const }, {}, { global: { scopes: ['api'] } }]) {
      const fapi = new FapiGlobalGuard(guard, policies, settings);
      await expect(fapi.canActivate(contextOf('http', Health, Health.prototype.check))).resolves.toBe(true);
      await expect(fapi.canActivate(contextOf('http', Health, Health.prototype.plain))).rejects.toThrow('the request was read');
    }
    expect(() => new FapiGlobalGuard(guard, policies, { global: { scope: ['api'] } as never })).toThrow(/"scope"/);
  });
});

describe('III.2 checkSettings: the module settings checked at start-up', () => {
  it('III.2 global is true or a route policy; anything else stops start-up', () => {
    for (const global of [true, { scopes: ['a'] }, {}, undefined]) expect(() => checkSettings({ global } as never)).not.toThrow();
    for (const global of [false, null, 'yes', 1, () => ({})]) {
      expect(() => checkSettings({ global } as never)).toThrow('fapi-guard: FapiGuardModule setting global must be true or a route policy');
    }
  });

  it('III.2 an unknown setting stops start-up, naming the known ones', () => {
    expect(() => checkSettings({ globl: true } as never)).toThrow(
      'fapi-guard: unknown FapiGuardModule setting "globl" (known: global, errors, errorBody)',
    );
  });
});

/**
 * The route policies compiled at start-up (FapiPolicies), in process: every controller walked,
 * each route's policy compiled once and shared by the controllers that add nothing to it, the
 * routes a controller serves without a policy left to the guard alone; and what the guards read
 * of the decorators (FapiPublic, declaresPolicy, FapiAuth). The same routes over HTTP:
 * test/nestjs.test.ts, test/nestjs-global.test.ts.
 */
import 'reflect-metadata';
import { createGuard } from '@fapi-guard/core';
import { Controller, Get } from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import type { ExecutionContext } from '@nestjs/common/interfaces';
import { MetadataScanner } from '@nestjs/core';
import { FapiAuth, FapiPolicy, RequireScopes } from '../src/decorators';
import { FapiPolicies } from '../src/policies';
import { declaresPolicy, FapiPublic, isPublic } from '../src/public';
import { FAPI_ROUTE, FASTIFY_ROUTE_CONFIG, type FunctionRef } from '../src/tokens';

const guard = createGuard({ issuer: 'https://as.example.com', audience: 'https://rs.example.com' });

/** FapiPolicies over the given controllers (as Nest's DiscoveryService hands them: wrappers with a metatype). */
function policiesOf(metatypes: unknown[], scanner: Pick<MetadataScanner, 'getAllMethodNames'> = new MetadataScanner()) {
  const discovery = { getControllers: () => metatypes.map((metatype) => ({ metatype })) };
  const policies = new FapiPolicies(guard, discovery as never, scanner as MetadataScanner);
  policies.onModuleInit();
  return policies;
}

const routeConfig = (handler: FunctionRef) => Reflect.getMetadata(FASTIFY_ROUTE_CONFIG, handler) as Record<string, unknown> | undefined;

describe('III.1 FapiPolicies: the route policies compiled at start-up', () => {
  @Controller('base')
  @RequireScopes('base')
  class Base {
    @Get('read')
    read() {}
  }
  @Controller('same')
  class Same extends Base {}
  @Controller('stricter')
  @RequireScopes('stricter')
  class Stricter extends Base {}
  @Controller('open')
  class Open {
    @Get('health')
    health() {}
    /** A method that is no route. */
    helper() {}
  }

  it('III.1 walks every controller; wrappers without a class (Nest’s providers of values) are passed over', () => {
    const policies = policiesOf([null, undefined, Base, Stricter, Open]);
    expect(policies.of(Base, Base.prototype.read).scopes).toEqual(['base']);
    expect(policies.of(Stricter, Stricter.prototype.read).scopes).toEqual(['stricter', 'base']);
  });

  it('III.1 a member the scanner names that is no function is passed over', () => {
    const scanner = { getAllMethodNames: (prototype: object) => [...new MetadataScanner().getAllMethodNames(prototype), 'missing'] };
    const policies = policiesOf([Base], scanner);
    expect(policies.ofHandler(Base.prototype.read)?.scopes).toEqual(['base']);
  });

  it('III.1 a route compiled once: the same object every time; controllers that add nothing share it, others do not', () => {
    const policies = policiesOf([Base, Same, Stricter]);
    const base = policies.of(Base, Base.prototype.read);
    expect(policies.of(Base, Base.prototype.read)).toBe(base);
    expect(policies.of(Same, Same.prototype.read)).toBe(base);
    expect(policies.of(Stricter, Stricter.prototype.read)).not.toBe(base);
  });

  it('III.1 two policies from different decorators are never taken for one (each source has its own id)', () => {
    @Controller('a')
    class A {
      @Get('x')
      @RequireScopes('a')
      x() {}
    }
    @Controller('b')
    class B {
      @Get('x')
      @RequireScopes('b')
      x() {}
    }
    const policies = policiesOf([A, B]);
    expect([policies.of(A, A.prototype.x).scopes, policies.of(B, B.prototype.x).scopes]).toEqual([['a'], ['b']]);
  });

  it('III.1 handlers with a policy that no class of the chain declares (mixins) keep their own policy apart', () => {
    class MixinA {
      @RequireScopes('mixin-a')
      m() {}
    }
    class MixinB {
      @RequireScopes('mixin-b')
      m() {}
    }
    @Controller('plain')
    class Plain {}
    const policies = policiesOf([]);
    expect(policies.of(Plain, MixinA.prototype.m).scopes).toEqual(['mixin-a']);
    expect(policies.of(Plain, MixinB.prototype.m).scopes).toEqual(['mixin-b']);
  });

  it('III.1 ofHandler: the policy when every controller serving the handler has the same one; none for an open handler or several', () => {
    const policies = policiesOf([Base, Same, Stricter, Open]);
    expect(policies.ofHandler(Same.prototype.read)).toBe(policies.of(Same, Same.prototype.read));
    expect(policies.ofHandler(Open.prototype.health)).toBeUndefined();
    // A base handler served by two controllers with different policies: the guard decides per controller.
    const shared = (() => {
      class Shared {
        @Get('s')
        s() {}
      }
      @RequireScopes('one')
      class One extends Shared {}
      return { Shared, One };
    })();
    const both = policiesOf([shared.Shared, shared.One]);
    both.of(shared.One, shared.Shared.prototype.s);
    expect(both.ofHandler(shared.Shared.prototype.s)).toBeUndefined();
    // Served by two controllers, each with a policy of its own (none open): neither is the handler's.
    const split = (() => {
      class Routes {
        @Get('p')
        p() {}
      }
      @RequireScopes('x')
      class X extends Routes {}
      @RequireScopes('y')
      class Y extends Routes {}
      return { Routes, X, Y };
    })();
    const base = split.Routes.prototype.p;
    const one = policiesOf([]);
    one.of(split.X, base);
    expect(one.ofHandler(base)?.scopes).toEqual(['x']);
    const two = policiesOf([]);
    expect(two.of(split.X, base)).not.toBe(two.of(split.Y, base));
    expect(two.ofHandler(base)).toBeUndefined();
    // Unknown to start-up: nothing.
    expect(policies.ofHandler(() => undefined)).toBeUndefined();
  });

  it('III.1 controllerOf: the one controller serving a handler, none for several or unknown', () => {
    class Shared {
      @Get('s')
      @RequireScopes('s')
      s() {}
    }
    class Other extends Shared {}
    const one = policiesOf([Shared]);
    expect(one.controllerOf(Shared.prototype.s)).toBe(Shared);
    const two = policiesOf([Shared]);
    two.of(Other, Shared.prototype.s);
    expect(two.controllerOf(Shared.prototype.s)).toBeUndefined();
    expect(one.controllerOf(() => undefined)).toBeUndefined();
  });

  it('III.1 a policy with a typo stops start-up with the core’s message and the route’s name', () => {
    class Typo {
      @Get('t')
      @FapiPolicy({ scope: ['a'] } as never)
      t() {}
    }
    expect(() => policiesOf([Typo])).toThrow(/^fapi-guard: .*"scope".* \(route policy of Typo\.t\)$/);
    // The core's own error stays reachable as the cause (its stack names where the check failed).
    const thrown = (() => {
      try {
        policiesOf([Typo]);
      } catch (error) {
        return error as Error;
      }
      throw new Error('start-up did not fail');
    })();
    expect(thrown.cause).toBeInstanceOf(Error);
    expect((thrown.cause as Error).message).toBe(thrown.message.replace(' (route policy of Typo.t)', ''));
  });

  it('III.1 names in its Fastify route config each route handler with a policy, never a method that is no route or a handler served open', () => {
    @Controller('marks')
    class Marks {
      @Get('r')
      @RequireScopes('r')
      routed() {}
      @RequireScopes('r')
      notRouted() {}
    }
    policiesOf([Marks]);
    expect(routeConfig(Marks.prototype.routed)?.[FAPI_ROUTE]).toBe(Marks.prototype.routed);
    // Decorated, so the decorator named it; the policy compiler names only routes (PATH metadata).
    Reflect.deleteMetadata(FASTIFY_ROUTE_CONFIG, Marks.prototype.notRouted);
    Reflect.deleteMetadata(FASTIFY_ROUTE_CONFIG, Marks.prototype.routed);
    policiesOf([Marks]);
    expect(routeConfig(Marks.prototype.notRouted)).toBeUndefined();
    expect(routeConfig(Marks.prototype.routed)?.[FAPI_ROUTE]).toBe(Marks.prototype.routed);
    expect(routeConfig(Open.prototype.health)).toBeUndefined();
  });
});

describe('III.1 what the guards read of the decorators', () => {
  it('III.1 declaresPolicy and isPublic: the handler’s own, or its controller’s, never a bare route', () => {
    class Bare {
      h() {}
    }
    @RequireScopes('c')
    @FapiPublic()
    class OnClass {
      h() {}
    }
    class OnHandler {
      @RequireScopes('h')
      @FapiPublic()
      h() {}
    }
    expect([declaresPolicy(Bare, Bare.prototype.h), isPublic(Bare, Bare.prototype.h)]).toEqual([false, false]);
    expect([declaresPolicy(OnClass, Bare.prototype.h), isPublic(OnClass, Bare.prototype.h)]).toEqual([true, true]);
    expect([declaresPolicy(Bare, OnHandler.prototype.h), isPublic(Bare, OnHandler.prototype.h)]).toEqual([true, true]);
  });

  it('III.1 FapiAuth on a route without a policy throws (a 500), never hands over an empty value', () => {
    class Route {
      h(@FapiAuth() _auth: unknown) {}
    }
    const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, Route, 'h') as Record<
      string,
      { factory: (data: unknown, context: ExecutionContext) => unknown }
    >;
    const factory = Object.values(args)[0]?.factory as (data: unknown, context: ExecutionContext) => unknown;
    const context = { switchToHttp: () => ({ getRequest: () => ({}) }) } as unknown as ExecutionContext;
    expect(() => factory(undefined, context)).toThrow('fapi-guard: @FapiAuth() on a route without @FapiPolicy() or @RequireScopes()');
  });
});

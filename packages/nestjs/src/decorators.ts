/**
 * Route policies on controllers and handlers, and the typed authorization as a parameter.
 * A policy decorator also puts the guard and the refusal filter on what it decorates, so a route
 * that carries a policy cannot be left unprotected; without `FapiGuardModule` the app fails to
 * start (Nest cannot build the guard).
 */
import type { Authorized, RoutePolicy } from '@fapi-guard/core';
import { createParamDecorator, type ExecutionContext, UseFilters, UseGuards } from '@nestjs/common';
import { FapiGuard } from './guard.js';
import { handlersOf } from './handlers.js';
import { FapiRefusalFilter } from './refusal.js';
import { authorizationOf } from './state.js';
import { FAPI_POLICY, FAPI_ROUTE, FASTIFY_ROUTE_CONFIG, type FunctionRef } from './tokens.js';

/** A decorator for a controller class or one of its handlers. */
export type FapiPolicyDecorator = ClassDecorator & MethodDecorator;

/**
 * Names the handler in its Fastify route config, so the module's `onRequest` hook finds the
 * route's policy and authenticates before Fastify reads the body. Keeps any `@RouteConfig()`
 * written before; one written after replaces it, and the guard then does both phases itself.
 */
function markForFastify(handler: FunctionRef): void {
  // Inherited too: a class's own handler for an inherited route keeps that route's config.
  const config = (Reflect.getMetadata(FASTIFY_ROUTE_CONFIG, handler) as Record<string, unknown> | undefined) ?? {};
  Reflect.defineMetadata(FASTIFY_ROUTE_CONFIG, { ...config, [FAPI_ROUTE]: handler }, handler);
}

const guarded = UseGuards(FapiGuard);
const filtered = UseFilters(new FapiRefusalFilter());

/**
 * Protects a controller (every handler, its inherited ones too) or one handler with a route
 * policy. On a handler it adds to its class's policy, its keys replacing the class's. Several
 * policy decorators on the same class or handler combine; a key set twice there fails when the
 * class is declared. Along the class chain policies accumulate: a controller's routes must meet
 * the policy of every class it extends as well as its own (a subclass cannot loosen one; see
 * the README). The policy is checked and compiled when the application starts: a typo stops
 * start-up.
 *
 * ```ts
 * @Controller('accounts')
 * @FapiPolicy({ scopes: ['accounts'] })
 * export class AccountsController { ... }
 * ```
 */
export function FapiPolicy(policy: RoutePolicy = {}): FapiPolicyDecorator {
  return ((target: object, key?: string | symbol, descriptor?: PropertyDescriptor) => {
    const holder = (descriptor ? descriptor.value : target) as FunctionRef;
    const own = (Reflect.getOwnMetadata(FAPI_POLICY, holder) as RoutePolicy | undefined) ?? {};
    for (const name of Object.keys(policy)) {
      if (name in own) throw new Error(`fapi-guard: the route policy key "${name}" is set twice on ${holder.name || String(key)}`);
    }
    Reflect.defineMetadata(FAPI_POLICY, { ...own, ...policy }, holder);
    if (descriptor) {
      markForFastify(holder);
      guarded(target, key as string | symbol, descriptor);
      filtered(target, key as string | symbol, descriptor);
    } else {
      const controller = target as new () => unknown;
      // Inherited routes get handlers of this class's own, so that each route is told apart.
      for (const handler of handlersOf(controller)) markForFastify(handler);
      guarded(controller);
      filtered(controller);
    }
  }) as FapiPolicyDecorator;
}

/** `@FapiPolicy({ scopes })`: every scope listed must be granted (RFC 9068 §2.2.3). */
export function RequireScopes(...scopes: [string, ...string[]]): FapiPolicyDecorator {
  return FapiPolicy({ scopes });
}

/**
 * The typed authorization of the request (token claims, scopes, client, binding) as a handler
 * parameter: `@FapiAuth() auth: Authorized`. On a route without a policy it throws (a 500), never
 * hands over an empty value.
 */
export const FapiAuth: () => ParameterDecorator = createParamDecorator((_data: unknown, context: ExecutionContext): Authorized => {
  const auth = authorizationOf(context.switchToHttp().getRequest<object>());
  if (!auth) throw new Error('fapi-guard: @FapiAuth() on a route without @FapiPolicy() or @RequireScopes()');
  return auth;
});

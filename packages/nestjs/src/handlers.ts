/**
 * Route handlers of a controller class that carries a policy, own and inherited. Nest serves a
 * route of a base class's handler from every controller that extends the class, through that
 * one function; the route policy differs per controller. So that each route can be told apart
 * by its handler (Nest's `ExecutionContext.getHandler()`, and the Fastify route config that the
 * early `onRequest` authentication reads), a policy decorator on a class gives the class its own
 * handler for each route it inherits: a function that calls the inherited one (as an inherited
 * method would be called) and reads every metadata of it (its prototype is the inherited
 * function, so `Reflect.getMetadata` finds the route's path, method, pipes, guards…).
 */
import { PATH_METADATA } from '@nestjs/common/constants';
import { FAPI_ROUTE, FASTIFY_ROUTE_CONFIG, type FunctionRef } from './tokens.js';

type Controller = abstract new (...args: never[]) => unknown;
type Method = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Names the handler in its Fastify route config, so the module's `onRequest` hook finds the
 * route's policy and authenticates before Fastify reads the body. Keeps any `@RouteConfig()`
 * written before; one written after replaces it until the module marks every route again.
 */
export function markForFastify(handler: FunctionRef): void {
  // Inherited too: a class's own handler for an inherited route keeps that route's config.
  const config = (Reflect.getMetadata(FASTIFY_ROUTE_CONFIG, handler) as Record<string, unknown> | undefined) ?? {};
  // Stryker disable next-line ConditionalExpression: equivalent, a memo (the same config would be written again)
  if (config[FAPI_ROUTE] === handler) return;
  Reflect.defineMetadata(FASTIFY_ROUTE_CONFIG, { ...config, [FAPI_ROUTE]: handler }, handler);
}

/** Handler given to a class → the inherited handler it stands for. */
const inheritedBy = new WeakMap<FunctionRef, FunctionRef>();

/** The handler as its class declared it (a class's own handler for an inherited route → the inherited one). */
export function declaredHandler(handler: FunctionRef): FunctionRef {
  let declared = handler;
  for (let next = inheritedBy.get(declared); next; next = inheritedBy.get(declared)) declared = next;
  return declared;
}

/** Route handlers (Nest's `path` metadata) the class inherits and does not override, by name. */
function inheritedRoutes(controller: Controller): Map<string, FunctionRef> {
  const own = new Set(Object.getOwnPropertyNames(controller.prototype));
  const routes = new Map<string, FunctionRef>();
  // Up to the end of the chain (Object.prototype's members are no routes either).
  for (let proto = Object.getPrototypeOf(controller.prototype); proto; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      // The nearest definition wins, as for any inherited member; only routes are given.
      if (own.has(name)) continue;
      own.add(name);
      const value = (Object.getOwnPropertyDescriptor(proto, name) as PropertyDescriptor).value;
      if (typeof value === 'function' && Reflect.hasMetadata(PATH_METADATA, value)) routes.set(name, value);
    }
  }
  return routes;
}

/**
 * Gives `controller` its own handler for each route it inherits (see the module comment) and
 * returns them, with the class's own methods: every handler whose routes this class serves.
 */
export function handlersOf(controller: Controller): FunctionRef[] {
  const prototype = controller.prototype as Record<string, unknown>;
  const handlers = Object.getOwnPropertyNames(prototype)
    .filter((name) => name !== 'constructor')
    .map((name) => (Object.getOwnPropertyDescriptor(prototype, name) as PropertyDescriptor).value)
    .filter((value): value is FunctionRef => typeof value === 'function');
  for (const [name, inherited] of inheritedRoutes(controller)) {
    const base = Object.getPrototypeOf(prototype) as Record<string, Method>;
    // Calls what `super[name]` would call now, so a base method changed later is still followed.
    const handler = {
      [name](this: unknown, ...args: unknown[]): unknown {
        return (base[name] as Method).apply(this, args);
      },
    }[name] as Method;
    Object.setPrototypeOf(handler, inherited);
    inheritedBy.set(handler, inherited);
    Object.defineProperty(prototype, name, { value: handler, writable: true, configurable: true, enumerable: false });
    handlers.push(handler);
  }
  return handlers;
}

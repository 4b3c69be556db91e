/** Injection tokens and metadata keys shared by the module, the guard and the decorators. */

/** Injects the framework-free guard (`Guard` from `@fapi-guard/core`) the module created. */
export const FAPI_GUARD = Symbol('fapi-guard:guard');
/** The options `forRoot` / `forRootAsync` were given (guard options, or a guard). */
export const FAPI_GUARD_OPTIONS = Symbol('fapi-guard:options');
/** The module settings (`FapiGuardModuleSettings`): global protection, how refusals are answered. */
export const FAPI_MODULE_SETTINGS = Symbol('fapi-guard:module-settings');
/** Reflect metadata key of `@FapiPublic()` on a controller class or handler. */
export const FAPI_PUBLIC = 'fapi-guard:public';
/** Reflect metadata key of the route policy on a controller class or handler. */
export const FAPI_POLICY = 'fapi-guard:policy';
/**
 * `@nestjs/platform-fastify` hands this metadata of a handler to Fastify as the route's `config`
 * (its `FASTIFY_ROUTE_CONFIG_METADATA`, the key `@RouteConfig()` writes).
 */
export const FASTIFY_ROUTE_CONFIG = '__fastify_route_config__';
/** Key in that route config: the handler function, so Fastify's `onRequest` finds the route's policy. */
export const FAPI_ROUTE = 'fapiGuardHandler';

/** A controller class or a handler method, as Nest's `ExecutionContext` hands them over. */
export type FunctionRef = object & { readonly name: string };

/**
 * Fastify 4/5 plugin: register it once with the guard options, then protect routes with
 * `config: { fapi: routePolicy({ scopes: [...] }) }` or with the `fastify.fapi.protect(policy)` preHandler.
 * It hands the Node request to the core and writes the core's response through the reply.
 */
import {
  type Authenticated,
  type Authorized,
  authorizationOf,
  type CompiledPolicy,
  captureRawBody,
  compilePolicy,
  completeNodeRequest,
  createGuard,
  type ErrorBody,
  errorResponse,
  type Guard,
  type GuardError,
  type GuardOptions,
  type GuardRequest,
  guardRequestFromNode,
  isGuardError,
  pinRefusal,
  protectNodeRequest,
  type RefusalOptions,
  type RoutePolicy,
  receivedTarget,
  rememberAuthorization,
  signNodeResponse,
  takeRefusalOptions,
  trackReceivedTargets,
} from '@fapi-guard/core';
import type {
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  onRequestAsyncHookHandler,
  preHandlerAsyncHookHandler,
  preValidationAsyncHookHandler,
} from 'fastify';
import fp from 'fastify-plugin';
import { continueIdempotent, idempotencyAnsweredHook, idempotencyBodyHook } from './idempotency.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when the request passed every check of its route policy; `null` on unprotected routes. */
    auth: Authorized | null;
  }
  interface FastifyContextConfig {
    /**
     * The route's fapi-guard policy, written with {@link routePolicy}: protects the route when
     * present. Checked again when the route is registered.
     */
    fapi?: FapiRoutePolicy;
  }
  interface FastifyInstance {
    /** The guard and its preHandler factory. */
    fapi: FapiGuardFastify;
  }
}

export interface FapiGuardFastify {
  /** The framework-free guard behind the plugin. */
  readonly guard: Guard;
  /**
   * A preHandler that lets through only requests that satisfy `policy`; sets `request.auth`.
   * Layers compose: on a route with `config.fapi`, or behind an app-wide
   * `fastify.addHook('preHandler', fastify.fapi.protect())`, it checks only its own policy against
   * the request the first layer authenticated (the token and the DPoP proof are checked once); a
   * request no earlier layer saw is authenticated here.
   * With `idempotency` in the policy, give it as the route's `preHandler` option (the plugin then
   * keeps the route's body bytes for the request fingerprint); added with `addHook` instead, it
   * makes `fastify.ready()` fail with a message that says so.
   */
  protect(policy?: RoutePolicy): preHandlerAsyncHookHandler;
  /** The route-level layer for scopes: `protect({ scopes })`. Every scope listed must be granted (RFC 9068 §2.2.3). */
  requireScopes(...scopes: [string, ...string[]]): preHandlerAsyncHookHandler;
}

declare const checkedAtCompileTime: unique symbol;

/**
 * A route policy that went through {@link routePolicy}. Fastify infers a route's `config` type
 * from the object written, so a plain object there would accept a misspelt key (`scopez`) without
 * a type error; a policy of this type cannot have one.
 */
export type FapiRoutePolicy = RoutePolicy & { readonly [checkedAtCompileTime]: true };

/**
 * The policy of a `config.fapi` route: `config: { fapi: routePolicy({ scopes: ['accounts'] }) }`.
 * An unknown key or a wrong type is a compile-time error here, and a start-up error (naming the
 * key) at once, before any route is registered.
 */
export function routePolicy(policy: RoutePolicy): FapiRoutePolicy {
  compilePolicy(policy);
  return policy as FapiRoutePolicy;
}

/**
 * Plugin options: the guard options, or a guard you created; with `errors` and `errorBody` (see
 * `RefusalOptions` in `@fapi-guard/core`). With `errors: 'framework'` a refusal is thrown (the
 * `GuardError`: `status`, `headers`, `reason`, OAuth `error`) to your `setErrorHandler`, the status
 * and challenge pinned.
 */
export type FapiGuardPluginOptions = (GuardOptions | { guard: Guard }) & RefusalOptions;

/** Writes a refusal: status, challenge headers and the body (`errorBody`, the short JSON body by default). */
export function sendGuardError(reply: FastifyReply, error: GuardError, format?: ErrorBody): FastifyReply {
  const { status, headers, body } = errorResponse(error, format);
  return reply.code(status).headers(headers).send(body);
}

/** The guard, and how this plugin answers a refusal. */
interface Adapter {
  guard: Guard;
  refuse(reply: FastifyReply, error: GuardError): FastifyReply;
}

/** The decision on the reply: a refusal written (or thrown), or `request.auth` set (and a retry answered, on idempotent routes). */
async function settle(
  adapter: Adapter,
  policy: CompiledPolicy,
  request: FastifyRequest,
  reply: FastifyReply,
  result: Authorized | GuardError,
): Promise<FastifyReply | undefined> {
  const { guard, refuse } = adapter;
  if (!result.ok) return refuse(reply, result);
  reply.headers(result.headers);
  signNodeResponse(guard, result, request.raw, reply.raw);
  rememberAuthorization(guard, request.raw, result);
  request.auth = result;
  return continueIdempotent(guard, policy, result, request, reply, refuse);
}

/**
 * The request target as the client sent it, before `rewriteUrl` changed `raw.url`: DPoP `htu`
 * and signature components are about the URL the client addressed (RFC 9449 §4.3 #9).
 */
const targetOf = (request: FastifyRequest) => receivedTarget(request.raw);

/** The policy of each `protect()` preHandler, so that `onRoute` can find the routes it guards. */
const protectedBy = new WeakMap<object, CompiledPolicy>();

function preHandlerFor(adapter: Adapter, policy: CompiledPolicy): preHandlerAsyncHookHandler {
  const handler = async function fapiGuardPreHandler(request: FastifyRequest, reply: FastifyReply) {
    const result = await protectNodeRequest(adapter.guard, request.raw, { path: targetOf(request), body: request.body }, policy);
    return settle(adapter, policy, request, reply, result);
  };
  protectedBy.set(handler, policy);
  return handler;
}

/** The policy of the first `protect()` preHandler with `idempotency` among a route's own preHandlers. */
function idempotentPolicyOf(preHandler: unknown): CompiledPolicy | undefined {
  for (const hook of Array.isArray(preHandler) ? preHandler : [preHandler]) {
    // Stryker disable next-line ConditionalExpression: equivalent, WeakMap.get of a value that is not an object answers undefined
    const policy = typeof hook === 'function' ? protectedBy.get(hook) : undefined;
    if (policy?.idempotency) return policy;
  }
  return undefined;
}

/**
 * A `config.fapi` route's guard in two hooks: authentication on the headers in `onRequest`,
 * before Fastify reads and parses the body, and the body checks (token in a form body, request
 * signature) in `preValidation`, the first hook that sees the parsed body. Both go ahead of the
 * route's own hooks of the same kind.
 */
function routeHooksFor(adapter: Adapter, policy: CompiledPolicy) {
  const { guard, refuse } = adapter;
  const preHandler = preHandlerFor(adapter, policy);
  const authenticated = new WeakMap<FastifyRequest, { request: GuardRequest; authenticated: Authenticated }>();
  const onRequest: onRequestAsyncHookHandler = async function fapiGuardOnRequest(request, reply) {
    // An earlier layer (an app-wide onRequest hook) authenticated it: preValidation checks the policy.
    if (authorizationOf(guard, request.raw)) return undefined;
    const guardRequest = guardRequestFromNode(guard, request.raw, { path: targetOf(request) }, policy);
    if (isGuardError(guardRequest)) return refuse(reply, guardRequest);
    const result = await guard.authenticate(guardRequest, policy);
    if (!result.ok) return refuse(reply, result);
    authenticated.set(request, { request: guardRequest, authenticated: result });
    return undefined;
  };
  const preValidation: preValidationAsyncHookHandler = async function fapiGuardPreValidation(request, reply) {
    const pass = authenticated.get(request);
    // onRequest left no pass: an earlier layer authorized the request, and only this route's
    // policy is checked, on the parsed body (had no layer run, this would authenticate it whole).
    if (!pass) return preHandler.call(this, request, reply);
    authenticated.delete(request);
    pass.request.body = request.body;
    return settle(adapter, policy, request, reply, await completeNodeRequest(guard, request.raw, pass.request, pass.authenticated, policy));
  };
  return { onRequest, preValidation };
}

/** `hook` ahead of the route's own hooks of that kind. */
function first<T>(hook: T, own: T | T[] | undefined): T[] {
  if (own === undefined) return [hook];
  return Array.isArray(own) ? [hook, ...own] : [hook, own];
}

const plugin: FastifyPluginAsync<FapiGuardPluginOptions> = async (fastify, options) => {
  const { refusals, rest } = takeRefusalOptions(options, '@fapi-guard/fastify');
  const guard = 'guard' in rest ? rest.guard : createGuard(rest);
  trackReceivedTargets(fastify.server);
  const adapter: Adapter = {
    guard,
    refuse(reply, error) {
      if (refusals.errors !== 'framework') return sendGuardError(reply, error, refusals.errorBody);
      // Fastify's error handler writes it; the status and challenge are pinned on the response.
      pinRefusal(reply.raw, error);
      throw error;
    },
  };
  // protect() preHandlers with `idempotency` that no route carries yet: the body of a request
  // they guard would be parsed before its bytes could be fingerprinted.
  const unplaced = new Set<unknown>();
  fastify.decorateRequest('auth', null);
  const protect = (policy?: RoutePolicy) => {
    const compiled = guard.policy(policy);
    const handler = preHandlerFor(adapter, compiled);
    if (idempotencyBodyHook(guard, compiled)) unplaced.add(handler);
    return handler;
  };
  fastify.decorate('fapi', {
    guard,
    protect,
    requireScopes: (...scopes: [string, ...string[]]) => protect({ scopes }),
  } satisfies FapiGuardFastify);
  // RFC 9728: the metadata document at its well-known path, and the response-signing JWK set.
  for (const path of guard.publishedPaths) {
    fastify.get(path, async (request, reply) => {
      // The target as the client sent it, as the other adapters read it: an absolute-form target
      // (which Fastify routes here) is no request for the document (request.ts: origin-form only).
      const answer = guard.metadataResponse('GET', targetOf(request));
      if (!answer) return reply.callNotFound();
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
  }
  // Request signatures: the body bytes as received are kept as the content-type parser reads them
  // (RFC 9530 digests are over those bytes).
  if (guard.options.messageSigning) {
    fastify.addHook('preParsing', async (request, _reply, payload) => {
      captureRawBody(guard, request.raw);
      return payload;
    });
  }
  // Idempotency keys: the handler's answer on its way tells the request's claims (none: nothing to do).
  fastify.addHook('onSend', idempotencyAnsweredHook);
  // Routes that carry `config.fapi`: no body is read before the client has authenticated.
  fastify.addHook('onRoute', (route) => {
    const policy = route.config?.fapi;
    if (!policy) {
      // A `preHandler: fastify.fapi.protect({ idempotency })` route: its body bytes are kept as
      // Fastify's parser reads them, as on `config.fapi` routes (the fingerprint is over them).
      const guarded = idempotentPolicyOf(route.preHandler);
      if (!guarded) return;
      for (const hook of Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]) unplaced.delete(hook);
      const keepBody = idempotencyBodyHook(guard, guarded);
      if (keepBody) route.preParsing = first(keepBody, route.preParsing);
      return;
    }
    const compiled = guard.policy(policy);
    const hooks = routeHooksFor(adapter, compiled);
    route.onRequest = first(hooks.onRequest, route.onRequest);
    const keepBody = idempotencyBodyHook(guard, compiled);
    if (keepBody) route.preParsing = first(keepBody, route.preParsing);
    route.preValidation = first(hooks.preValidation, route.preValidation);
  });
  // A protect() preHandler with `idempotency` added with addHook (or on no route) cannot have its
  // routes' bodies kept: refused at start-up rather than answered 500 per request.
  fastify.addHook('onReady', async () => {
    if (unplaced.size > 0)
      throw new Error(
        "fapi-guard: fastify.fapi.protect() with an 'idempotency' policy must be given as a route's preHandler option " +
          '(or use config: { fapi: routePolicy(...) }): only then are the body bytes kept for the request fingerprint',
      );
  });
};

/** The plugin; register it before the routes it protects. */
export const fapiGuard = fp(plugin, { name: '@fapi-guard/fastify', fastify: '4.x || 5.x' });

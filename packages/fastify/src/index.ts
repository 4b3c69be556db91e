/**
 * Fastify 4/5 plugin: register it once with the guard options, then protect routes with
 * `config: { fapi: routePolicy({ scopes: [...] }) }` or with the `fastify.fapi.protect(policy)` preHandler.
 * It hands the Node request to the core and writes the core's response through the reply.
 */
import {
  type Authenticated,
  type Authorized,
  authorizeNodeRequest,
  type CompiledPolicy,
  captureRawBody,
  compilePolicy,
  completeNodeRequest,
  createGuard,
  errorResponse,
  type Guard,
  type GuardError,
  type GuardOptions,
  type GuardRequest,
  guardRequestFromNode,
  isGuardError,
  type RoutePolicy,
  signNodeResponse,
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
import { continueIdempotent, idempotencyBodyHook } from './idempotency.js';

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
   * With `idempotency` in the policy, give it as the route's `preHandler` option (the plugin then
   * keeps the route's body bytes for the request fingerprint); added with `addHook` instead, it
   * makes `fastify.ready()` fail with a message that says so.
   */
  protect(policy?: RoutePolicy): preHandlerAsyncHookHandler;
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

/** Plugin options: the guard options, or a guard you created. */
export type FapiGuardPluginOptions = GuardOptions | { guard: Guard };

/** Writes a refusal: status, challenge headers and the short JSON body. */
export function sendGuardError(reply: FastifyReply, error: GuardError): FastifyReply {
  const { status, headers, body } = errorResponse(error);
  return reply.code(status).headers(headers).send(body);
}

/** The decision on the reply: a refusal written, or `request.auth` set (and a retry answered, on idempotent routes). */
async function settle(
  guard: Guard,
  policy: CompiledPolicy,
  request: FastifyRequest,
  reply: FastifyReply,
  result: Authorized | GuardError,
): Promise<FastifyReply | undefined> {
  if (!result.ok) return sendGuardError(reply, result);
  reply.headers(result.headers);
  signNodeResponse(guard, result, request.raw, reply.raw);
  request.auth = result;
  return continueIdempotent(guard, policy, result, request, reply);
}

/** raw.url is the request target as received, before any prefix rewriting. */
const targetOf = (request: FastifyRequest) => request.raw.url ?? request.url;

/** The policy of each `protect()` preHandler, so that `onRoute` can find the routes it guards. */
const protectedBy = new WeakMap<object, CompiledPolicy>();

function preHandlerFor(guard: Guard, policy: CompiledPolicy): preHandlerAsyncHookHandler {
  const handler = async function fapiGuardPreHandler(request: FastifyRequest, reply: FastifyReply) {
    const result = await authorizeNodeRequest(guard, request.raw, { path: targetOf(request), body: request.body }, policy);
    return settle(guard, policy, request, reply, result);
  };
  protectedBy.set(handler, policy);
  return handler;
}

/** The policy of the first `protect()` preHandler among a route's own preHandlers. */
function protectPolicyOf(preHandler: unknown): CompiledPolicy | undefined {
  for (const hook of Array.isArray(preHandler) ? preHandler : [preHandler]) {
    const policy = typeof hook === 'function' ? protectedBy.get(hook) : undefined;
    if (policy) return policy;
  }
  return undefined;
}

/**
 * A `config.fapi` route's guard in two hooks: authentication on the headers in `onRequest`,
 * before Fastify reads and parses the body, and the body checks (token in a form body, request
 * signature) in `preValidation`, the first hook that sees the parsed body. Both go ahead of the
 * route's own hooks of the same kind.
 */
function routeHooksFor(guard: Guard, policy: CompiledPolicy) {
  const authenticated = new WeakMap<FastifyRequest, { request: GuardRequest; authenticated: Authenticated }>();
  const onRequest: onRequestAsyncHookHandler = async function fapiGuardOnRequest(request, reply) {
    const guardRequest = guardRequestFromNode(guard, request.raw, { path: targetOf(request) }, policy);
    if (isGuardError(guardRequest)) return sendGuardError(reply, guardRequest);
    const result = await guard.authenticate(guardRequest, policy);
    if (!result.ok) return sendGuardError(reply, result);
    authenticated.set(request, { request: guardRequest, authenticated: result });
    return undefined;
  };
  const preValidation: preValidationAsyncHookHandler = async function fapiGuardPreValidation(request, reply) {
    const pass = authenticated.get(request);
    // Fails closed (500) if the authentication hook did not run for this request.
    if (!pass) throw new Error('fapi-guard: preValidation without onRequest authentication');
    authenticated.delete(request);
    pass.request.body = request.body;
    return settle(guard, policy, request, reply, await completeNodeRequest(guard, request.raw, pass.request, pass.authenticated, policy));
  };
  return { onRequest, preValidation };
}

/** `hook` ahead of the route's own hooks of that kind. */
function first<T>(hook: T, own: T | T[] | undefined): T[] {
  if (own === undefined) return [hook];
  return Array.isArray(own) ? [hook, ...own] : [hook, own];
}

const plugin: FastifyPluginAsync<FapiGuardPluginOptions> = async (fastify, options) => {
  const guard = 'guard' in options ? options.guard : createGuard(options);
  // protect() preHandlers with `idempotency` that no route carries yet: the body of a request
  // they guard would be parsed before its bytes could be fingerprinted.
  const unplaced = new Set<unknown>();
  fastify.decorateRequest('auth', null);
  fastify.decorate('fapi', {
    guard,
    protect: (policy?: RoutePolicy) => {
      const compiled = guard.policy(policy);
      const handler = preHandlerFor(guard, compiled);
      if (idempotencyBodyHook(guard, compiled)) unplaced.add(handler);
      return handler;
    },
  } satisfies FapiGuardFastify);
  // RFC 9728: the metadata document at its well-known path, and the response-signing JWK set.
  for (const path of guard.publishedPaths) {
    fastify.get(path, async (_request, reply) => {
      const answer = guard.metadataResponse('GET', path);
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
  // Routes that carry `config.fapi`: no body is read before the client has authenticated.
  fastify.addHook('onRoute', (route) => {
    const policy = route.config?.fapi;
    if (!policy) {
      // A `preHandler: fastify.fapi.protect({ idempotency })` route: its body bytes are kept as
      // Fastify's parser reads them, as on `config.fapi` routes (the fingerprint is over them).
      const guarded = protectPolicyOf(route.preHandler);
      const keepBody = guarded && idempotencyBodyHook(guard, guarded);
      if (!keepBody) return;
      for (const hook of Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]) unplaced.delete(hook);
      route.preParsing = first(keepBody, route.preParsing);
      return;
    }
    const compiled = guard.policy(policy);
    const hooks = routeHooksFor(guard, compiled);
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

/**
 * Fastify 4/5 plugin: register it once with the guard options, then protect routes with
 * `config: { fapi: { scopes: [...] } }` or with the `fastify.fapi.protect(policy)` preHandler.
 * It hands the Node request to the core and writes the core's response through the reply.
 */
import {
  type Authorized,
  type CompiledPolicy,
  captureRawBody,
  createGuard,
  errorResponse,
  type Guard,
  type GuardError,
  type GuardOptions,
  isGuardError,
  prepareNodeRequest,
  type RoutePolicy,
  signNodeResponse,
} from '@fapi-guard/core';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when the request passed every check of its route policy; `null` on unprotected routes. */
    auth: Authorized | null;
  }
  interface FastifyContextConfig {
    /** The route's fapi-guard policy: protects the route when present. */
    fapi?: RoutePolicy;
  }
  interface FastifyInstance {
    /** The guard and its preHandler factory. */
    fapi: FapiGuardFastify;
  }
}

export interface FapiGuardFastify {
  /** The framework-free guard behind the plugin. */
  readonly guard: Guard;
  /** A preHandler that lets through only requests that satisfy `policy`; sets `request.auth`. */
  protect(policy?: RoutePolicy): preHandlerAsyncHookHandler;
}

/** Plugin options: the guard options, or a guard you created. */
export type FapiGuardPluginOptions = GuardOptions | { guard: Guard };

/** Writes a refusal: status, challenge headers and the short JSON body. */
export function sendGuardError(reply: FastifyReply, error: GuardError): FastifyReply {
  const { status, headers, body } = errorResponse(error);
  return reply.code(status).headers(headers).send(body);
}

function preHandlerFor(guard: Guard, policy: CompiledPolicy): preHandlerAsyncHookHandler {
  return async function fapiGuardPreHandler(request: FastifyRequest, reply: FastifyReply) {
    // raw.url is the request target as received, before any prefix rewriting.
    const parts = { path: request.raw.url ?? request.url, body: request.body };
    const prepared = prepareNodeRequest(guard, request.raw, parts, policy);
    // Synchronous unless the body has to be read for a signature check.
    const guardRequest = prepared instanceof Promise ? await prepared : prepared;
    if (isGuardError(guardRequest)) return sendGuardError(reply, guardRequest);
    const result = await guard.check(guardRequest, policy);
    if (!result.ok) return sendGuardError(reply, result);
    reply.headers(result.headers);
    signNodeResponse(guard, result, request.raw, reply.raw);
    request.auth = result;
  };
}

const plugin: FastifyPluginAsync<FapiGuardPluginOptions> = async (fastify, options) => {
  const guard = 'guard' in options ? options.guard : createGuard(options);
  fastify.decorateRequest('auth', null);
  fastify.decorate('fapi', {
    guard,
    protect: (policy?: RoutePolicy) => preHandlerFor(guard, guard.policy(policy)),
  } satisfies FapiGuardFastify);
  // RFC 9728: the metadata document at its well-known path, and the response-signing JWK set.
  for (const path of guard.publishedPaths) {
    fastify.get(path, async (_request, reply) => {
      const answer = guard.metadataResponse('GET', path);
      if (!answer) return reply.callNotFound();
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
  }
  // Request signatures: the body bytes as received are kept before the content-type parser reads
  // them (RFC 9530 digests are over those bytes) and left on the stream for it.
  if (guard.options.messageSigning) {
    fastify.addHook('preParsing', async (request, _reply, payload) => {
      await captureRawBody(guard, request.raw);
      return payload;
    });
  }
  // Routes that carry `config.fapi` get the guard as their first preHandler.
  fastify.addHook('onRoute', (route) => {
    const policy = route.config?.fapi;
    if (!policy) return;
    const handler = preHandlerFor(guard, guard.policy(policy));
    const own = route.preHandler;
    route.preHandler = own === undefined ? [handler] : [handler, ...[own].flat()];
  });
};

/** The plugin; register it before the routes it protects. */
export const fapiGuard = fp(plugin, { name: '@fapi-guard/fastify', fastify: '4.x || 5.x' });

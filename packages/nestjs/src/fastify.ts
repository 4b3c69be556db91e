/**
 * On Nest's Fastify platform the guard runs inside the route handler, after Fastify has read and
 * parsed the body. For the routes the policy decorators marked, this `onRequest` hook runs the
 * first phase (credentials, token, binding, policy) on the headers alone, so a client that has
 * not authenticated is refused before its body is read (as `config.fapi` routes of
 * @fapi-guard/fastify are); the guard finishes with the body checks. The body bytes of requests
 * are kept as Fastify's parsers read them, for request-signature digests (RFC 9530).
 */
import type { IncomingMessage } from 'node:http';
import {
  type Authenticated,
  type CompiledPolicy,
  captureRawBody,
  type Guard,
  type GuardRequest,
  guardRequestFromNode,
  isGuardError,
  receivedTarget,
  trackReceivedTargets,
} from '@fapi-guard/core';
import { keepIdempotentBodies, tellAnswers } from './idempotency.js';
import { type FastifyReplyLike, type FastifyRequestLike, writeRefusal, writeResponse } from './platform.js';
import type { FapiPolicies } from './policies.js';
import { isPublic } from './public.js';
import type { FapiGuardModuleSettings } from './settings.js';
import { FAPI_ROUTE, type FunctionRef } from './tokens.js';

interface EarlyPass {
  request: GuardRequest;
  authenticated: Authenticated;
  policy: CompiledPolicy;
}

const passes = new WeakMap<IncomingMessage, EarlyPass>();

/**
 * The first phase's result for `req`, once, with the policy it ran for (the guard completes it
 * with that policy and checks its own as a further layer: the DPoP proof is spent already).
 */
export function takeAuthenticated(req: IncomingMessage): EarlyPass | undefined {
  const pass = passes.get(req);
  passes.delete(req);
  return pass;
}

/** The parts of a Fastify instance used here. */
export interface FastifyLike {
  addHook(name: 'onRequest', hook: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<unknown>): unknown;
  addHook(name: 'preParsing', hook: (request: FastifyRequestLike, reply: FastifyReplyLike, payload: unknown) => Promise<unknown>): unknown;
  addHook(name: 'onSend', hook: (request: FastifyRequestLike, reply: FastifyReplyLike, payload: unknown) => Promise<unknown>): unknown;
  get(path: string, handler: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<unknown>): unknown;
  /** The Node server underneath. */
  server: Parameters<typeof trackReceivedTargets>[0];
}

export function isFastifyInstance(instance: unknown): instance is FastifyLike {
  return typeof (instance as { addHook?: unknown }).addHook === 'function';
}

export function installFastify(fastify: FastifyLike, guard: Guard, policies: FapiPolicies, settings: FapiGuardModuleSettings): void {
  trackReceivedTargets(fastify.server);
  // RFC 9728: the metadata document at its well-known path, and the response-signing JWK set.
  for (const path of guard.publishedPaths) {
    fastify.get(path, async (request, reply) => {
      // The target as the client sent it, as on Express: an absolute-form target (which Fastify
      // routes here) is no request for the document (core's request.ts: origin-form only).
      const answer = guard.metadataResponse(request.method, receivedTarget(request.raw));
      if (!answer) return reply.callNotFound();
      writeResponse(reply, answer);
      return reply;
    });
  }
  if (guard.options.messageSigning) {
    fastify.addHook('preParsing', async (request, _reply, payload) => {
      captureRawBody(guard, request.raw);
      return payload;
    });
  }
  const global = settings.global === undefined ? undefined : guard.policy(settings.global === true ? {} : settings.global);
  keepIdempotentBodies(fastify, guard, policies, global);
  tellAnswers(fastify);
  // With errors: 'framework' the refusal must reach Nest's exception filters: the guard authenticates.
  if (settings.errors === 'framework') return;
  // Nest runs the app-wide guard first: the first phase runs for its policy, as on Express.
  fastify.addHook('onRequest', async (request, reply) => {
    // Only the handlers compileRoutes marked carry FAPI_ROUTE; any other value is no handler the policies know.
    const handler = request.routeOptions?.config?.[FAPI_ROUTE] as FunctionRef;
    const route = policies.ofHandler(handler);
    if (!route) return undefined;
    let policy = route;
    if (global) {
      // A handler several controllers share: whether it is public is the controller's to say.
      const controller = policies.controllerOf(handler);
      if (!controller) return undefined;
      if (!isPublic(controller, handler)) policy = global;
    }
    const guardRequest = guardRequestFromNode(guard, request.raw, { path: receivedTarget(request.raw) }, policy);
    if (isGuardError(guardRequest)) {
      writeRefusal(reply, guardRequest, settings.errorBody);
      return reply;
    }
    const authenticated = await guard.authenticate(guardRequest, policy);
    if (!authenticated.ok) {
      writeRefusal(reply, authenticated, settings.errorBody);
      return reply;
    }
    passes.set(request.raw, { request: guardRequest, authenticated, policy });
    return undefined;
  });
}

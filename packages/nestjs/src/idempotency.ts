/**
 * Idempotency keys on Nest routes (the route policy's `idempotency`): after the guard authorized
 * a request, a retry is stopped before the handler — the stored response travels as a
 * {@link FapiReplay} exception that the policy decorators' filter writes, exactly as stored — and
 * a first request goes on while its response is recorded as the platform writes it on Node's
 * response. The work is the core's (`startNodeIdempotency`).
 */
import type { IncomingMessage } from 'node:http';
import {
  type Authorized,
  type CompiledPolicy,
  captureRawBody,
  type Guard,
  type GuardError,
  idempotencyApplies,
  type NodeClaim,
  startNodeIdempotency,
} from '@fapi-guard/core';
import type { FastifyLike } from './fastify.js';
import { nodeResponse, requestParts } from './platform.js';
import type { FapiPolicies } from './policies.js';
import { FapiReplay } from './replay.js';
import { FAPI_ROUTE } from './tokens.js';

/** True to run the handler; throws the refusal or the replay otherwise. */
export async function continueIdempotent(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  req: IncomingMessage,
  request: object,
  response: object,
  refusal: (error: GuardError) => Error,
): Promise<true> {
  if (!idempotencyApplies(guard, policy, req)) return true;
  const start = await startNodeIdempotency(guard, policy, auth, req, nodeResponse(response), requestParts(request).path);
  if (start.kind === 'pass') {
    // Each layer with a key of its own (another header) holds a claim: each is told.
    if (start.claim) claims.set(req, [...(claims.get(req) ?? []), start.claim]);
    return true;
  }
  // A refusal (400, 409, 422) goes the way of the guard's own: errorBody, errors: 'framework'.
  if (start.kind === 'refused') throw refusal(start.error);
  throw new FapiReplay(start.response);
}

/** The claims of requests whose response is being recorded. */
const claims = new WeakMap<IncomingMessage, NodeClaim[]>();

/**
 * On the Fastify platform: the handler's answer is on its way (`onSend`). Fastify answers a stream
 * its client cut off with a 500 of its own; the claim keeps such a request as processed (its
 * response not kept), never freed for a second payment. The recorder reads the status itself: a
 * server error of the handler's own frees the key (core's `NodeClaim.answered`).
 */
export function tellAnswers(fastify: FastifyLike): void {
  fastify.addHook('onSend', async (request, reply, payload) => {
    const held = claims.get(request.raw);
    if (held) {
      // Fastify applies a fetch Response's status after the onSend hooks (reply.js onSendEnd): applied
      // here first, so that the recorder reads the status that goes out (a 503 of the core system frees the key).
      if (Object.prototype.toString.call(payload) === '[object Response]') reply.code((payload as Response).status);
      for (const claim of held) claim.answered();
    }
    return payload;
  });
}

/**
 * On the Fastify platform Fastify's parsers read the body before the guard runs: for routes whose
 * policy has `idempotency`, the bytes are kept as they read them (the fingerprint is over the
 * bytes as received); every route's when the module's `global` policy has it. With
 * `messageSigning` every body is kept already.
 */
export function keepIdempotentBodies(fastify: FastifyLike, guard: Guard, policies: FapiPolicies, global?: CompiledPolicy): void {
  // These conditions only spare the copy of bodies no fingerprint needs: keeping the bytes of a
  // request is passive (the body reads as before, a body past the bound is just not kept), and a
  // body the guard keeps already is not kept twice. Keeping more is unobservable but for memory.
  // Stryker disable next-line ConditionalExpression: equivalent, see above (with messageSigning every body is kept already)
  if (guard.options.messageSigning) return;
  // Stryker disable next-line ConditionalExpression: equivalent, see above
  const everyRoute = global?.idempotency !== undefined;
  fastify.addHook('preParsing', async (request, _reply, payload) => {
    // Stryker disable next-line OptionalChaining: equivalent, Fastify sets routeOptions and its config on every request it routes
    const handler = request.routeOptions?.config?.[FAPI_ROUTE];
    // Stryker disable next-line ConditionalExpression,LogicalOperator,OptionalChaining: equivalent, see above (ofHandler of anything but a known handler is undefined)
    if (everyRoute || (typeof handler === 'function' && policies.ofHandler(handler)?.idempotency)) captureRawBody(guard, request.raw);
    return payload;
  });
}

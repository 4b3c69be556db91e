/**
 * Idempotency keys on Fastify routes (the route policy's `idempotency`): after the guard
 * authorized a request, a retry is answered with the stored response — the reply hijacked and
 * written on Node's response as stored — and the handler does not run; a first request goes on
 * while its response is recorded as Fastify writes it. The work is the core's
 * (`startNodeIdempotency`). `config.fapi` routes keep the body bytes as Fastify's parser reads them
 * (the fingerprint is over the bytes as received).
 */
import {
  type Authorized,
  type CompiledPolicy,
  captureRawBody,
  type Guard,
  type GuardError,
  idempotencyApplies,
  type NodeClaim,
  receivedTarget,
  startNodeIdempotency,
  writeIdempotencyAnswer,
} from '@fapi-guard/core';
import type { FastifyReply, FastifyRequest, onSendHookHandler, preParsingAsyncHookHandler } from 'fastify';

export async function continueIdempotent(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  request: FastifyRequest,
  reply: FastifyReply,
  refuse: (reply: FastifyReply, error: GuardError) => FastifyReply,
): Promise<FastifyReply | undefined> {
  // Stryker disable next-line ConditionalExpression: equivalent, a fast path: startNodeIdempotency answers 'pass' where no idempotency applies too, a promise later
  if (!idempotencyApplies(guard, policy, request.raw)) return undefined;
  // The target as the client sent it (before rewriteUrl), as for the guard's own checks.
  const start = await startNodeIdempotency(guard, policy, auth, request.raw, reply.raw, receivedTarget(request.raw));
  if (start.kind === 'pass') {
    // Each layer with a key of its own (another header) holds a claim: each is told.
    if (start.claim) claims.set(request.raw, [...(claims.get(request.raw) ?? []), start.claim]);
    return undefined;
  }
  // A refusal (400, 409, 422) goes the way of the guard's own: errorBody, errors: 'framework'.
  if (start.kind === 'refused') return refuse(reply, start.error);
  reply.hijack();
  writeIdempotencyAnswer(reply.raw, start);
  return reply;
}

/** The claims of requests whose response is being recorded. */
const claims = new WeakMap<object, NodeClaim[]>();

/**
 * An `onSend` hook for every route (a `protect({ idempotency })` may be added with `addHook`):
 * the handler's answer is on its way. Fastify answers a stream its client cut off with a 500 of
 * its own, or never ends a web stream's response to a client gone; the claims keep such a request
 * as processed (its response not kept), never freed for a second payment. The recorder reads the
 * status itself: a server error of the handler's own frees the key (core's `NodeClaim.answered`).
 */
export const idempotencyAnsweredHook: onSendHookHandler = (request, reply, payload, done) => {
  const held = claims.get(request.raw);
  if (held) {
    // Fastify applies a fetch Response's status after the onSend hooks (reply.js onSendEnd): applied
    // here first, so that the recorder reads the status that goes out (a 503 of the core system frees the key).
    if (Object.prototype.toString.call(payload) === '[object Response]') reply.code((payload as Response).status);
    for (const claim of held) claim.answered();
  }
  done(null, payload);
};

/** A `preParsing` hook keeping the body bytes, for routes whose policy has `idempotency`. */
export function idempotencyBodyHook(guard: Guard, policy: CompiledPolicy): preParsingAsyncHookHandler | undefined {
  if (!policy.idempotency || guard.options.messageSigning) return undefined;
  return async function fapiGuardKeepBody(request, _reply, payload) {
    captureRawBody(guard, request.raw);
    return payload;
  };
}

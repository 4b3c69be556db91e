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
  startNodeIdempotency,
  writeIdempotencyAnswer,
} from '@fapi-guard/core';
import type { FastifyReply, FastifyRequest, preParsingAsyncHookHandler } from 'fastify';

export async function continueIdempotent(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply | undefined> {
  if (!policy.idempotency) return undefined;
  const start = await startNodeIdempotency(guard, policy, auth, request.raw, reply.raw, request.raw.url ?? request.url);
  if (start.kind === 'pass') return undefined;
  reply.hijack();
  writeIdempotencyAnswer(reply.raw, start);
  return reply;
}

/** A `preParsing` hook keeping the body bytes, for routes whose policy has `idempotency`. */
export function idempotencyBodyHook(guard: Guard, policy: CompiledPolicy): preParsingAsyncHookHandler | undefined {
  if (!policy.idempotency || guard.options.messageSigning) return undefined;
  return async function fapiGuardKeepBody(request, _reply, payload) {
    captureRawBody(guard, request.raw);
    return payload;
  };
}

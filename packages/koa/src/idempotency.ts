/**
 * Idempotency keys on Koa routes (the route policy's `idempotency`): after `protect()` authorized
 * a request, a retry is answered with the stored response — written on Node's response, with
 * Koa told not to respond — and the rest of the chain does not run; a first request goes on while
 * its response is recorded as Koa writes it. The work is the core's (`startNodeIdempotency`).
 */
import {
  type Authorized,
  type CompiledPolicy,
  type Guard,
  type GuardError,
  idempotencyApplies,
  startNodeIdempotency,
  writeIdempotencyAnswer,
} from '@fapi-guard/core';
import type { Context, Next } from 'koa';

export async function continueIdempotent(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  ctx: Context,
  next: Next,
  refuse: (error: GuardError) => void,
): Promise<unknown> {
  // Stryker disable next-line ConditionalExpression: equivalent, a fast path: startNodeIdempotency answers 'pass' where no idempotency applies too, a promise later
  if (!idempotencyApplies(guard, policy, ctx.req)) return next();
  const start = await startNodeIdempotency(guard, policy, auth, ctx.req, ctx.res, ctx.originalUrl);
  if (start.kind === 'pass') {
    const { claim } = start;
    if (!claim) return next();
    // Koa does not end the response of a client gone (Koa 2 at all, Koa 3 after a throw): the
    // claim is settled once the chain has, or the key would stay in flight for its lifetime.
    try {
      const result = await next();
      claim.settled(false);
      return result;
    } catch (error) {
      claim.settled(true);
      throw error;
    }
  }
  // A refusal (400, 409, 422) goes the way of the guard's own: errorBody, errors: 'framework'.
  if (start.kind === 'refused') return refuse(start.error);
  // Stryker disable next-line BooleanLiteral: equivalent, Koa writes nothing on an ended response either (ctx.writable is false once writeIdempotencyAnswer has ended it); kept to say so
  ctx.respond = false;
  writeIdempotencyAnswer(ctx.res, start);
  return undefined;
}

/**
 * Idempotency keys on Express routes (the route policy's `idempotency`): after `protect()`
 * authorized a request, a retry is answered with the stored response and the handler does not
 * run; a first request runs the handler while its response is recorded. The work is the core's
 * (`startNodeIdempotency`); this file only maps it onto `next()`.
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
import type { NextFunction, Request, Response } from 'express';
import { headSent } from './sent.js';

export function continueIdempotent(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  req: Request,
  res: Response,
  next: NextFunction,
  refuse: (error: GuardError) => void,
): void {
  // Stryker disable next-line ConditionalExpression,BlockStatement: equivalent, a fast path: startNodeIdempotency answers 'pass' where no idempotency applies too, a promise later
  if (!idempotencyApplies(guard, policy, req)) {
    next();
    return;
  }
  // originalUrl: the target as the client sent it, mount path included (as for the guard's htu).
  startNodeIdempotency(guard, policy, auth, req, res, req.originalUrl)
    .then((start) => {
      if (start.kind === 'pass') next();
      // The head went out while the key was looked up (a slow store): nothing more is written.
      else if (headSent(res, next)) return;
      // A refusal (400, 409, 422) goes the way of the guard's own: errorBody, errors: 'framework'.
      else if (start.kind === 'refused') refuse(start.error);
      else writeIdempotencyAnswer(res, start);
    })
    .catch(next);
}

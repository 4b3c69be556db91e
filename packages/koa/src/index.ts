/**
 * Koa 2/3 adapter: hands the Node request to the core and writes the core's response.
 * No protocol logic lives here.
 */
import {
  type Authorized,
  authorizeNodeRequest,
  captureRawBody,
  createGuard,
  errorResponse,
  type Guard,
  type GuardError,
  type GuardOptions,
  type RoutePolicy,
  signNodeResponse,
} from '@fapi-guard/core';
import type { Context, Middleware, Next } from 'koa';
import { continueIdempotent } from './idempotency.js';

declare module 'koa' {
  interface DefaultState {
    /** Set by `protect()` when the request passed every check. */
    auth?: Authorized;
  }
}

export interface FapiGuardKoa {
  /** The framework-free guard behind the middleware. */
  readonly guard: Guard;
  /** Middleware that lets through only requests that satisfy `policy`; sets `ctx.state.auth`. */
  protect(policy?: RoutePolicy): Middleware;
  /**
   * Serves the RFC 9728 metadata document at its well-known path (when `resourceMetadata` is
   * on); passes every other request on. Mount it with `app.use(fapi.metadata())`.
   */
  metadata(): Middleware;
  /**
   * Keeps the raw body bytes for request-signature checks and idempotency fingerprints, and leaves
   * them on the stream for your body parser. Mount it before the parser —
   * `app.use(fapi.rawBody()); app.use(bodyParser())` — on APIs with `signedRequest` or `idempotency` routes.
   */
  rawBody(): Middleware;
}

/** Writes a refusal: status, challenge headers and the short JSON body. */
export function sendGuardError(ctx: Context, error: GuardError): void {
  const { status, headers, body } = errorResponse(error);
  ctx.status = status;
  ctx.body = body;
  // Set after the body: Koa infers text/plain for a string body.
  ctx.set(headers);
}

/**
 * Creates the guard once (options are validated here, at start-up) and returns the
 * middleware factory. Works with `@koa/router`.
 *
 * ```ts
 * const fapi = fapiGuard({ issuer: 'https://as.bank.example', audience: 'https://api.bank.example' });
 * router.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (ctx) => { ctx.body = ctx.state.auth?.subject; });
 * ```
 */
export function fapiGuard(options: GuardOptions | Guard): FapiGuardKoa {
  const guard = 'check' in options ? options : createGuard(options);
  return {
    guard,
    metadata(): Middleware {
      return async (ctx, next) => {
        const answer = guard.metadataResponse(ctx.method, ctx.originalUrl);
        if (!answer) return next();
        ctx.status = answer.status;
        ctx.body = answer.body;
        ctx.set(answer.headers);
      };
    },
    rawBody(): Middleware {
      return (ctx, next) => {
        captureRawBody(guard, ctx.req);
        return next();
      };
    },
    protect(policy?: RoutePolicy): Middleware {
      const compiled = guard.policy(policy);
      return async (ctx: Context, next: Next) => {
        const body = (ctx.request as { body?: unknown }).body;
        const result = await authorizeNodeRequest(guard, ctx.req, { path: ctx.originalUrl, body }, compiled);
        if (!result.ok) {
          sendGuardError(ctx, result);
          return;
        }
        ctx.set(result.headers);
        signNodeResponse(guard, result, ctx.req, ctx.res);
        ctx.state.auth = result;
        return continueIdempotent(guard, compiled, result, ctx, next);
      };
    },
  };
}

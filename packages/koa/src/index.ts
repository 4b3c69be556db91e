/**
 * Koa 2/3 adapter: hands the Node request to the core and writes the core's response.
 * No protocol logic lives here.
 */
import {
  type Authorized,
  captureRawBody,
  createGuard,
  type ErrorBody,
  errorResponse,
  type Guard,
  type GuardError,
  type GuardOptions,
  pinRefusal,
  protectNodeRequest,
  type RefusalOptions,
  type RoutePolicy,
  signNodeResponse,
  takeRefusalOptions,
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
  /**
   * Middleware that lets through only requests that satisfy `policy`; sets `ctx.state.auth`.
   * Layers compose: behind an app-wide `app.use(fapi.protect())` (or a router's), a route's
   * `fapi.protect({ scopes })` checks only its own policy against the request the first layer
   * authenticated (the token and the DPoP proof are checked once); a request no earlier layer saw
   * is authenticated here.
   */
  protect(policy?: RoutePolicy): Middleware;
  /** The route-level layer for scopes: `fapi.protect({ scopes })`. Every scope listed must be granted (RFC 9068 §2.2.3). */
  requireScopes(...scopes: [string, ...string[]]): Middleware;
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

/**
 * Settings of the adapter itself (the guard's options are the first argument of {@link fapiGuard}).
 * With `errors: 'framework'` a refusal is thrown (the `GuardError`: `status`, `headers`, `reason`,
 * OAuth `error`) to your error middleware and `app.on('error')`, the status and challenge pinned.
 */
export type FapiKoaOptions = RefusalOptions;

/** Writes a refusal: status, challenge headers and the body (`errorBody`, the short JSON body by default). */
export function sendGuardError(ctx: Context, error: GuardError, format?: ErrorBody): void {
  const { status, headers, body } = errorResponse(error, format);
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
export function fapiGuard(options: GuardOptions | Guard, adapter: FapiKoaOptions = {}): FapiGuardKoa {
  const guard = 'check' in options ? options : createGuard(options);
  const { refusals, rest } = takeRefusalOptions(adapter, '@fapi-guard/koa');
  const [extra] = Object.keys(rest);
  if (extra !== undefined) throw new TypeError(`fapi-guard: unknown @fapi-guard/koa option "${extra}" (known: errors, errorBody)`);
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
    protect,
    requireScopes: (...scopes) => protect({ scopes }),
  };

  /** A refusal: written here, or thrown to Koa's error handling with the status and challenge pinned. */
  function refuse(ctx: Context, error: GuardError): void {
    if (refusals.errors !== 'framework') {
      sendGuardError(ctx, error, refusals.errorBody);
      return;
    }
    // Koa's error handling writes it (err.status, err.headers); the status and challenge are pinned.
    pinRefusal(ctx.res, error);
    throw error;
  }

  function protect(policy?: RoutePolicy): Middleware {
    const compiled = guard.policy(policy);
    return async (ctx: Context, next: Next) => {
      const body = (ctx.request as { body?: unknown }).body;
      const result = await protectNodeRequest(guard, ctx.req, { path: ctx.originalUrl, body }, compiled);
      if (!result.ok) return refuse(ctx, result);
      ctx.set(result.headers);
      signNodeResponse(guard, result, ctx.req, ctx.res);
      ctx.state.auth = result;
      return continueIdempotent(guard, compiled, result, ctx, next, (error) => refuse(ctx, error));
    };
  }
}

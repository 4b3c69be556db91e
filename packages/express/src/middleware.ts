/**
 * Express 4/5 adapter: hands the Node request to the core and writes the core's response.
 * No protocol logic lives here. The `req.auth` type declaration is in index.ts, so that
 * `@fapi-guard/express/side-by-side` can leave it out.
 */
import {
  type Authorized,
  authorizationOf,
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
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { continueIdempotent } from './idempotency.js';
import { headSent } from './sent.js';

/** Settings of the adapter itself (the guard's options are the first argument of {@link fapiGuard}). */
export interface FapiExpressOptions extends RefusalOptions {
  /**
   * The request property `protect()` sets. Change it to run beside another library that sets
   * `req.auth` (express-oauth2-jwt-bearer, while migrating route by route); read the
   * authorization with the typed `fapi.authorization(req)` then.
   * @default 'auth'
   */
  property?: string;
}

export interface FapiGuardExpress {
  /** The framework-free guard behind the middleware. */
  readonly guard: Guard;
  /**
   * Middleware that lets through only requests that satisfy `policy`; sets `req.auth`. Layers
   * compose: behind an app-wide `app.use(fapi.protect())`, a route's `fapi.protect({ scopes })`
   * checks only its own policy against the request the first layer authenticated (the token and
   * the DPoP proof are checked once); a request no earlier layer saw is authenticated here.
   */
  protect(policy?: RoutePolicy): RequestHandler;
  /**
   * The route-level layer for scopes (express-oauth2-jwt-bearer's `requiredScopes()`):
   * `fapi.protect({ scopes })`. Every scope listed must be granted (RFC 9068 §2.2.3).
   */
  requireScopes(...scopes: [string, ...string[]]): RequestHandler;
  /**
   * Serves the RFC 9728 metadata document at its well-known path (when `resourceMetadata` is
   * on); passes every other request on. Mount it with `app.use(fapi.metadata())`.
   */
  metadata(): RequestHandler;
  /**
   * Keeps the raw body bytes for request-signature checks and idempotency fingerprints (both are
   * over the bytes as received) and leaves them on the stream for your body parsers. Mount it before
   * them — `app.use(fapi.rawBody()); app.use(express.json())` — on APIs with `signedRequest` or
   * `idempotency` routes.
   * Without parsers ahead of `protect()` it is not needed: `protect()` reads the body itself.
   */
  rawBody(): RequestHandler;
  /**
   * The authorization `protect()` gave this request, typed, whatever `property` is; throws (a
   * 500) on a request no `protect()` of this guard let through, never hands over an empty value.
   * It is read from the guard's own record, not from the request property.
   */
  authorization(req: Request): Authorized;
}

/** Writes a refusal: status, challenge headers and the body (`errorBody`, the short JSON body by default). */
export function sendGuardError(res: Response, error: GuardError, format?: ErrorBody): void {
  const { status, headers, body } = errorResponse(error, format);
  res.status(status);
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(body);
}

/**
 * Creates the guard once (options are validated here, at start-up) and returns the
 * middleware factory.
 *
 * ```ts
 * const fapi = fapiGuard({ issuer: 'https://as.bank.example', audience: 'https://api.bank.example' });
 * app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), handler);
 * ```
 */
export function fapiGuard(options: GuardOptions | Guard, adapter: FapiExpressOptions = {}): FapiGuardExpress {
  const guard = 'check' in options ? options : createGuard(options);
  const { refusals, rest } = takeRefusalOptions(adapter, '@fapi-guard/express');
  const { property = 'auth', ...unknown } = rest;
  const [extra] = Object.keys(unknown);
  if (extra !== undefined)
    throw new TypeError(`fapi-guard: unknown @fapi-guard/express option "${extra}" (known: property, errors, errorBody)`);
  if (typeof property !== 'string' || property === '')
    throw new TypeError('fapi-guard: @fapi-guard/express option property must be a non-empty string');
  /** A refusal: written here, or handed to Express's error handlers with the status and challenge pinned. */
  const refuse = (res: Response, next: NextFunction, error: GuardError) => {
    if (refusals.errors !== 'framework') return sendGuardError(res, error, refusals.errorBody);
    pinRefusal(res, error);
    next(error);
  };
  return {
    guard,
    metadata(): RequestHandler {
      return (req, res, next) => {
        const answer = guard.metadataResponse(req.method, req.originalUrl);
        if (!answer) {
          next();
          return;
        }
        res.status(answer.status);
        for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
        res.end(answer.body);
      };
    },
    rawBody(): RequestHandler {
      return (req, _res, next) => {
        captureRawBody(guard, req);
        next();
      };
    },
    protect,
    requireScopes: (...scopes) => protect({ scopes }),
    authorization(req) {
      const auth = authorizationOf(guard, req);
      if (!auth) throw new Error('fapi-guard: authorization() on a request no protect() let through');
      return auth;
    },
  };

  function protect(policy?: RoutePolicy): RequestHandler {
    const compiled = guard.policy(policy);
    return (req: Request, res: Response, next: NextFunction) => {
      // originalUrl keeps the mount path of routers (req.url loses it).
      protectNodeRequest(guard, req, { path: req.originalUrl, body: req.body }, compiled)
        .then((result) => {
          // The head went out while the guard checked (a timeout middleware in front of it, a
          // slow replay store; a head flushed in front): nothing is written, the handler does not run.
          if (headSent(res, next)) return;
          if (!result.ok) return refuse(res, next, result);
          for (const [name, value] of Object.entries(result.headers)) res.setHeader(name, value);
          signNodeResponse(guard, result, req, res);
          (req as unknown as Record<string, unknown>)[property] = result;
          continueIdempotent(guard, compiled, result, req, res, next, (error) => refuse(res, next, error));
        })
        // What throws above goes to Express's error handlers, never to an unhandled rejection.
        .catch(next);
    };
  }
}

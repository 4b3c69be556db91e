/**
 * Express 4/5 adapter: hands the Node request to the core and writes the core's response.
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
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { continueIdempotent } from './idempotency.js';

declare global {
  namespace Express {
    interface Request {
      /** Set by `protect()` when the request passed every check. */
      auth?: Authorized;
    }
  }
}

export interface FapiGuardExpress {
  /** The framework-free guard behind the middleware. */
  readonly guard: Guard;
  /** Middleware that lets through only requests that satisfy `policy`; sets `req.auth`. */
  protect(policy?: RoutePolicy): RequestHandler;
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
}

/** Writes a refusal: status, challenge headers and the short JSON body. */
export function sendGuardError(res: Response, error: GuardError): void {
  const { status, headers, body } = errorResponse(error);
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
export function fapiGuard(options: GuardOptions | Guard): FapiGuardExpress {
  const guard = 'check' in options ? options : createGuard(options);
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
    protect(policy?: RoutePolicy): RequestHandler {
      const compiled = guard.policy(policy);
      return (req: Request, res: Response, next: NextFunction) => {
        // originalUrl keeps the mount path of routers (req.url loses it).
        authorizeNodeRequest(guard, req, { path: req.originalUrl, body: req.body }, compiled).then((result) => {
          if (!result.ok) return sendGuardError(res, result);
          for (const [name, value] of Object.entries(result.headers)) res.setHeader(name, value);
          signNodeResponse(guard, result, req, res);
          req.auth = result;
          continueIdempotent(guard, compiled, result, req, res, next);
        }, next);
      };
    },
  };
}

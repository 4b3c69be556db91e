/**
 * Express 4/5 adapter: builds the core request from an Express request, calls the guard, and
 * writes the core's response. No protocol logic lives here.
 */
import type { TLSSocket } from 'node:tls';
import {
  type Authorized,
  type CompiledPolicy,
  createGuard,
  type Guard,
  type GuardError,
  type GuardOptions,
  type GuardRequest,
  headersFromRaw,
  type RoutePolicy,
} from '@fapi-guard/core';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

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
}

/** Writes a refusal: status, challenge headers and the short JSON body. */
export function sendGuardError(res: Response, error: GuardError): void {
  res.status(error.status);
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  res.json(error.body);
}

/** The core's view of an Express request, or `undefined` when its URL cannot be trusted. */
export function toGuardRequest(guard: Guard, req: Request): GuardRequest | { error: string } {
  const headers = headersFromRaw(req.rawHeaders);
  const socket = req.socket as Partial<TLSSocket>;
  const url = guard.requestUrl({
    encrypted: socket.encrypted === true,
    remoteAddress: req.socket.remoteAddress,
    // originalUrl keeps the mount path of routers (req.url loses it).
    path: req.originalUrl,
    headers,
  });
  if (!url.ok) return { error: url.detail };
  const request: GuardRequest = { method: req.method, url: url.url, headers, body: req.body };
  const cert = socket.encrypted && typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  if (cert?.raw) request.clientCertificate = new Uint8Array(cert.raw);
  return request;
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
    protect(policy?: RoutePolicy): RequestHandler {
      const compiled: CompiledPolicy = guard.policy(policy);
      return (req: Request, res: Response, next: NextFunction) => {
        const request = toGuardRequest(guard, req);
        if ('error' in request) {
          sendGuardError(res, guard.refuse('request_host_unknown', request.error, compiled));
          return;
        }
        guard.check(request, compiled).then((result) => {
          if (!result.ok) {
            sendGuardError(res, result);
            return;
          }
          for (const [name, value] of Object.entries(result.headers)) res.setHeader(name, value);
          req.auth = result;
          next();
        }, next);
      };
    },
  };
}

/**
 * Hono adapter: hands the Web-standard `Request` — and on `@hono/node-server` the Node request
 * under it — to the core, and returns the core's responses. No protocol logic lives here.
 */
import type { IncomingMessage } from 'node:http';
import {
  type Authorized,
  authorizeFetchRequest,
  createGuard,
  fetchErrorResponse,
  fetchResponse,
  type Guard,
  type GuardOptions,
  nodeConnection,
  type RequestConnection,
  type RoutePolicy,
  requestTarget,
  signFetchResponse,
  startFetchIdempotency,
} from '@fapi-guard/core';
import type { Context, MiddlewareHandler } from 'hono';

/** The variables `protect()` sets on the context. */
export interface FapiVariables {
  /** The authorization of the request: the verified token, its claims, scopes and binding. */
  auth: Authorized;
}

/** The Hono environment of the handlers after `protect()`: `c.get('auth')` is `Authorized`. */
export interface FapiEnv {
  Variables: FapiVariables;
}

declare module 'hono' {
  interface ContextVariableMap {
    /** Set by `protect()` when the request passed every check; `undefined` on other routes. */
    auth?: Authorized;
  }
}

/** Settings of the adapter itself (the guard's options are the first argument). */
export interface FapiHonoOptions {
  /**
   * What the runtime knows of the connection of a request: the header lines as received, the
   * peer's address, TLS and its client certificate (see `RequestConnection` in `@fapi-guard/core`).
   * Set it on runtimes other than Node to hand over the peer address (for `trustedProxies` and
   * `mtls.proxy.trustedPeers`), e.g. from Hono's `getConnInfo(c).remote.address`.
   * @default on `@hono/node-server` everything from the Node request (`c.env.incoming`): raw
   * header lines, request target, remote address, the TLS client certificate; elsewhere nothing
   * but the `Request` itself (its `Headers` fold repeated lines, no peer is trusted)
   */
  connection?: (c: Context) => RequestConnection;
}

export interface FapiGuardHono {
  /** The framework-free guard behind the middleware. */
  readonly guard: Guard;
  /**
   * Middleware that lets through only requests that satisfy `policy`; sets `c.get('auth')`.
   * On routes that read the body (form bodies, `signedRequest`), mount it before anything that
   * reads the body (validators): it reads the body, bounded, and hands the same bytes on.
   */
  protect(policy?: RoutePolicy): MiddlewareHandler<FapiEnv>;
  /**
   * Serves the RFC 9728 metadata document at its well-known path (when `resourceMetadata` is
   * on) and the response-signing JWK set; passes every other request on. `app.use(fapi.metadata())`.
   */
  metadata(): MiddlewareHandler;
}

const ADAPTER_KEYS: readonly string[] = ['connection'];

/** A Node `IncomingMessage`, as `@hono/node-server` passes it in `c.env.incoming`. */
function isNodeRequest(value: unknown): value is IncomingMessage {
  return typeof value === 'object' && value !== null && Array.isArray((value as IncomingMessage).rawHeaders) && 'socket' in value;
}

/** The connection `@hono/node-server` exposes, or nothing beyond the `Request` on other runtimes. */
function runtimeConnection(c: Context): RequestConnection {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  return isNodeRequest(incoming) ? nodeConnection(incoming) : {};
}

function checkAdapterOptions(adapter: FapiHonoOptions): void {
  for (const key of Object.keys(adapter)) {
    if (!ADAPTER_KEYS.includes(key))
      throw new TypeError(`fapi-guard: unknown @fapi-guard/hono option "${key}" (known: ${ADAPTER_KEYS.join(', ')})`);
  }
  if (adapter.connection !== undefined && typeof adapter.connection !== 'function') {
    throw new TypeError('fapi-guard: @fapi-guard/hono option connection must be a function');
  }
}

/**
 * Creates the guard once (options are validated here, at start-up) and returns the
 * middleware factory.
 *
 * ```ts
 * const fapi = fapiGuard({ issuer: 'https://as.bank.example', audience: 'https://api.bank.example' });
 * app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (c) => c.json({ client: c.get('auth').clientId }));
 * ```
 */
export function fapiGuard(options: GuardOptions | Guard, adapter: FapiHonoOptions = {}): FapiGuardHono {
  const guard = 'check' in options ? options : createGuard(options);
  checkAdapterOptions(adapter);
  const connectionOf = adapter.connection ?? runtimeConnection;
  return {
    guard,
    metadata(): MiddlewareHandler {
      return async (c, next) => {
        const answer = guard.metadataResponse(c.req.method, connectionOf(c).target ?? requestTarget(c.req.url));
        if (answer) return fetchResponse(answer);
        await next();
      };
    },
    protect(policy?: RoutePolicy): MiddlewareHandler<FapiEnv> {
      const compiled = guard.policy(policy);
      return async (c, next) => {
        const { result, body } = await authorizeFetchRequest(guard, c.req.raw, connectionOf(c), compiled);
        if (!result.ok) return fetchErrorResponse(result);
        // Idempotency keys: a refusal or a retry's stored response is the answer; the handler does not run.
        const idempotent = await startFetchIdempotency(guard, compiled, result, c.req.raw, connectionOf(c), body);
        if (idempotent.kind === 'answer') {
          // A refusal is not signed; a replay is signed anew for this request (RFC 9421 §2.4, `;req`).
          if (idempotent.error || !guard.signsResponse(result)) return idempotent.response;
          return signFetchResponse(guard, result, c.req.method, idempotent.response);
        }
        // The guard consumed the stream: the application reads the same bytes (as Hono's bodyLimit does).
        if (idempotent.body) c.req.raw = new Request(c.req.raw, { body: idempotent.body });
        c.set('auth', result);
        await next();
        for (const [name, value] of Object.entries(result.headers)) c.header(name, value);
        if (guard.signsResponse(result)) {
          const signed = await signFetchResponse(guard, result, c.req.method, c.res);
          // Cleared first: assigning over a response merges its headers into the new one.
          c.res = undefined;
          c.res = signed;
        }
        // Recorded as sent: after the guard's headers and the response signature.
        if (idempotent.kind === 'claimed') await idempotent.record(c.res);
      };
    },
  };
}

/**
 * Hono adapter: hands the Web-standard `Request` — and on `@hono/node-server` the Node request
 * under it — to the core, and returns the core's responses. No protocol logic lives here.
 */
import type { IncomingMessage } from 'node:http';
import {
  type Authorized,
  authorizationOf,
  checkRefusalOptions,
  createGuard,
  fetchErrorResponse,
  fetchResponse,
  type Guard,
  type GuardError,
  type GuardOptions,
  nodeConnection,
  protectFetchRequest,
  type RefusalOptions,
  type RequestConnection,
  type RoutePolicy,
  requestTarget,
  signFetchResponse,
  startFetchIdempotency,
} from '@fapi-guard/core';
import type { Context, ErrorHandler, MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';

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

/**
 * A refusal handed to Hono's error handling (`errors: 'framework'`): an `HTTPException` whose
 * response is the refusal as the adapter writes it (Hono's default `onError` sends that), with
 * the refusal itself in `refusal` (`status`, `headers`, `reason`, OAuth `error`). Wrap your
 * `onError` in `fapi.onError(...)` so the status and challenge headers survive it.
 */
export class FapiRefusalException extends HTTPException {
  constructor(
    readonly refusal: GuardError,
    response: Response,
  ) {
    super(refusal.status, { res: response, message: refusal.description, cause: refusal });
  }
}

/** Settings of the adapter itself (the guard's options are the first argument). */
export interface FapiHonoOptions extends RefusalOptions {
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
   * Layers compose: behind an app-wide `app.use('/api/*', fapi.protect())` (also across
   * `app.route()` sub-apps), a route's `fapi.protect({ scopes })` checks only its own policy
   * against the request the first layer authenticated (the token and the DPoP proof are checked
   * once); a request no earlier layer saw is authenticated here.
   */
  protect(policy?: RoutePolicy): MiddlewareHandler<FapiEnv>;
  /** The route-level layer for scopes: `protect({ scopes })`. Every scope listed must be granted (RFC 9068 §2.2.3). */
  requireScopes(...scopes: [string, ...string[]]): MiddlewareHandler<FapiEnv>;
  /**
   * Serves the RFC 9728 metadata document at its well-known path (when `resourceMetadata` is
   * on) and the response-signing JWK set; passes every other request on. `app.use(fapi.metadata())`.
   */
  metadata(): MiddlewareHandler;
  /**
   * Your `onError`, with refusals kept RFC-exact: for a {@link FapiRefusalException} the response
   * it returns goes out with the refusal's status and every header of the refusal
   * (`WWW-Authenticate`, `DPoP-Nonce`, `Retry-After`) over its own — only its body is kept.
   * Other errors get its answer unchanged. `app.onError(fapi.onError((err, c) => ...))`.
   */
  onError(handler: ErrorHandler): ErrorHandler;
}

const ADAPTER_KEYS: readonly string[] = ['connection', 'errors', 'errorBody'];

/** A Node `IncomingMessage`, as `@hono/node-server` passes it in `c.env.incoming`. */
function isNodeRequest(value: unknown): value is IncomingMessage {
  return typeof value === 'object' && value !== null && Array.isArray((value as IncomingMessage).rawHeaders) && 'socket' in value;
}

/** The connection `@hono/node-server` exposes, or nothing beyond the `Request` on other runtimes. */
function runtimeConnection(c: Context): RequestConnection {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  return isNodeRequest(incoming) ? nodeConnection(incoming) : {};
}

/**
 * What the layers of one guard keep for a request, by its Context (one per request): shared by
 * every adapter made over that guard (`fapiGuard(guard)` twice), as the guard's authorization
 * marks are; another guard's layers between them neither see nor settle it.
 */
interface LayerState {
  /** Requests answered with a stored response by a later layer: the layer that signs for the authorization signs it as a replay. */
  replays: WeakSet<Context>;
  /**
   * The recorder of the claim in force for the request (the deepest layer's: a later layer with
   * rules of its own claims the key again). The outermost layer records with it, once every
   * layer has set its headers and the response is signed, so that what is stored is what was
   * sent (an unsignable answer leaves as a 500, which frees the key).
   */
  recorders: WeakMap<Context, (response: Response, answeredElsewhere: boolean) => Response>;
}

const layerStates = new WeakMap<Guard, LayerState>();

/**
 * How many layers, of any guard, are waiting on their `next()` for a request (by Context). One still
 * waiting when the outermost layer of a guard resumes means a middleware between them answered
 * while the handler runs on (a timeout's 504): that answer is no outcome of the handler.
 */
const waiting = new WeakMap<Context, number>();

/**
 * Requests (by Context) whose handler a layer of any guard did not let run: the request had its
 * answer when the layer finished its checks. What went out is then no answer of a handler, and a
 * guard's outermost layer frees its key (it would otherwise take the answer sent for the handler's).
 */
const notRun = new WeakSet<Context>();

/**
 * Requests (by Context) that an inner layer of any guard saw answered with less than a 5xx, after
 * its own headers and signature. A 5xx the outermost layer finds in its place was put there by a
 * middleware between them (a timeout's 504 built by an async `onError` while the handler answered):
 * the handler has run, the key is kept as processed.
 */
const answeredBelow = new WeakSet<Context>();

/**
 * True when the response is being sent already: the server took its body, or (@hono/node-server)
 * wrote its head, which a response without a body also shows.
 */
function sentElsewhere(c: Context, response: Response): boolean {
  try {
    if (response.bodyUsed || response.body?.locked === true) return true;
  } catch {
    // @hono/node-server's Response cannot make its body again once the server took it.
    return true;
  }
  const outgoing = (c.env as { outgoing?: { headersSent?: unknown } } | undefined)?.outgoing;
  return outgoing?.headersSent === true;
}

function layerState(guard: Guard): LayerState {
  let state = layerStates.get(guard);
  if (!state) {
    state = { replays: new WeakSet(), recorders: new WeakMap() };
    layerStates.set(guard, state);
  }
  return state;
}

function checkAdapterOptions(adapter: FapiHonoOptions): void {
  for (const key of Object.keys(adapter)) {
    if (!ADAPTER_KEYS.includes(key))
      throw new TypeError(`fapi-guard: unknown @fapi-guard/hono option "${key}" (known: ${ADAPTER_KEYS.join(', ')})`);
  }
  if (adapter.connection !== undefined && typeof adapter.connection !== 'function') {
    throw new TypeError('fapi-guard: @fapi-guard/hono option connection must be a function');
  }
  checkRefusalOptions('@fapi-guard/hono', adapter);
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
  const { replays, recorders } = layerState(guard);
  /** Records what the request is answered with, once, with the claim in force: the response to send (its body copied on the way). */
  const recordAnswer = (c: Context, response: Response, answeredElsewhere: boolean): Response | undefined => {
    const record = recorders.get(c);
    recorders.delete(c);
    return record?.(response, answeredElsewhere);
  };
  return {
    guard,
    metadata(): MiddlewareHandler {
      return async (c, next) => {
        const answer = guard.metadataResponse(c.req.method, connectionOf(c).target ?? requestTarget(c.req.url));
        if (answer) return fetchResponse(answer);
        await next();
      };
    },
    protect,
    requireScopes: (...scopes) => protect({ scopes }),
    onError(handler) {
      return async (error, c) => {
        const answer = await handler(error, c);
        if (!(error instanceof FapiRefusalException)) return answer;
        const { refusal } = error;
        const headers = new Headers(answer.headers);
        for (const [name, value] of Object.entries(refusal.headers)) headers.set(name, value);
        return new Response(answer.body, { status: refusal.status, headers });
      };
    },
  };

  /** A refusal: the response, or (`errors: 'framework'`) thrown to Hono's error handling. */
  function refuse(error: GuardError): Response {
    const response = fetchErrorResponse(error, adapter.errorBody);
    if (adapter.errors === 'framework') throw new FapiRefusalException(error, response);
    return response;
  }

  function protect(policy?: RoutePolicy): MiddlewareHandler<FapiEnv> {
    const compiled = guard.policy(policy);
    return async (c, next) => {
      // The mark of earlier layers is kept by the Context, one per request (sub-apps share it).
      const earlier = authorizationOf(guard, c);
      const { result, body } = await protectFetchRequest(guard, c, c.req.raw, connectionOf(c), compiled);
      if (!result.ok) return refuse(result);
      // Idempotency keys: a refusal or a retry's stored response is the answer; the handler does not run.
      const idempotent = await startFetchIdempotency(guard, compiled, result, c.req.raw, connectionOf(c), body, c);
      if (c.finalized) {
        // The request has its answer already (a timeout in front of this layer, or between it and
        // an earlier one, answered while it checked; the chain runs on behind it). Hono keeps the
        // first response set on the Context and drops a handler's later one: the handler does not
        // run, and a key claimed here (a slow store) or by an earlier layer is freed (recorded as
        // a server error) for the client's retry, which is the one processed.
        notRun.add(c);
        if (idempotent.kind === 'claimed') idempotent.record(new Response(null, { status: 500 }), false);
        recordAnswer(c, new Response(null, { status: 500 }), false);
        return;
      }
      if (idempotent.kind === 'answer') {
        // A refusal of the key is signed as the route's answers are (Open Finance Brasil: the bank's
        // JWT), and a replay signed anew for this request (RFC 9421 §2.4, `;req`), by the layer that
        // answers for the authorization: a later layer's answer is signed by the earlier one on its
        // way out, told that a replay is one (the stored answer may be the bank's own JWT).
        const answer = idempotent.error ? refuse(idempotent.error) : idempotent.response;
        const replayed = !idempotent.error;
        if (result !== earlier) return signFetchResponse(guard, result, c.req.method, answer, replayed);
        // Stryker disable next-line ConditionalExpression: equivalent, a refusal marked as a replay is signed the same (its JSON is no stored bank JWT to re-sign from)
        if (replayed) replays.add(c);
        return answer;
      }
      // The guard consumed the stream: the application reads the same bytes (as Hono's bodyLimit does).
      // Stryker disable next-line ConditionalExpression: equivalent, a Request made from one whose body was not read keeps that body when `body` is undefined
      if (idempotent.body) c.req.raw = new Request(c.req.raw, { body: idempotent.body });
      c.set('auth', result);
      // The layer that produced this authorization answers for it (headers once, signature once).
      const answers = result !== earlier;
      const headers = answers ? Object.entries(result.headers) : [];
      // Set before the handler: Hono puts them on the response it builds (c.json, c.body…).
      // Set after it, they would make Hono copy the finished response, and @hono/node-server
      // then streams the copy instead of writing it at once — several times the route's CPU time.
      for (const [name, value] of headers) c.header(name, value);
      if (idempotent.kind === 'claimed') {
        // A claim under another key (another header) of an earlier layer is kept too: both record the answer.
        const earlierRecord = recorders.get(c);
        const { record } = idempotent;
        recorders.set(c, earlierRecord ? (response, elsewhere) => record(earlierRecord(response, elsewhere), elsewhere) : record);
      }
      waiting.set(c, (waiting.get(c) ?? 0) + 1);
      try {
        await next();
      } catch (error) {
        // Hono turns an Error into a 500 itself, and passes on anything else a handler throws:
        // the claim is freed as for any 5xx (a retry is processed, not held for the key's lifetime).
        // Unless an answer went out in the handler's place already (below): the handler ran on
        // after it, and what it did before it threw (a payment, then a header set on the finished
        // Context) is kept as processed.
        if (earlier === undefined) {
          const elsewhere = sentElsewhere(c, c.res);
          recordAnswer(c, elsewhere ? c.res : new Response(null, { status: 500 }), elsewhere);
        }
        throw error;
      } finally {
        waiting.set(c, (waiting.get(c) as number) - 1);
      }
      // A 5xx come back over an answer an inner layer saw below 500 (before this layer's own
      // signature, which fails as a 500 of the handler's answer, freeing the key as on Node).
      const replacedBelow = c.res.status >= 500 && answeredBelow.has(c);
      // The response went out before this layer resumed: a middleware in front of the guard
      // answered in the handler's place (hono/timeout's 504) and the server is sending it (its
      // body is taken; reading it throws). Nothing is set on it; the handler has run: its key is
      // kept as processed, its answer not kept (409 to retries), never freed for a second payment.
      // The first layer to see it records it (the recorder is taken): no middleware between the
      // layers can put another answer in its place on the record.
      if (sentElsewhere(c, c.res)) {
        // A later layer (another guard's) that let no handler run: the key is freed.
        if (notRun.has(c)) recordAnswer(c, new Response(null, { status: 500 }), false);
        else recordAnswer(c, c.res, true);
        return;
      }
      if (answers) {
        // A response the handler built itself does not carry them (and a handler may overwrite
        // one): those are set again, on a copy as Hono does, so the guard's value is what is sent.
        // Stryker disable next-line ConditionalExpression: equivalent in what is sent (the same value set again); the condition spares the copy of the response that setting a header costs (see bench/README.md, Hono's mTLS route)
        for (const [name, value] of headers) if (c.res.headers.get(name) !== value) c.header(name, value);
        // Signed once, by the layer of the latest authorization: it carries what earlier layers
        // established (the request signature the response must cover).
        if (guard.signsResponse(result) && authorizationOf(guard, c) === result) {
          const signed = await signFetchResponse(guard, result, c.req.method, c.res, replays.has(c));
          // Cleared first: assigning over a response merges its headers into the new one.
          c.res = undefined;
          c.res = signed;
        }
      }
      // Recorded as sent, by the outermost layer: after every layer's headers and the response
      // signature. A layer still waiting inside it, or a 5xx over an answer an inner layer saw:
      // the handler runs on or has answered, this answer went out in its place (processed, its
      // answer not kept: never freed while the payment is being made).
      const inPlace = (waiting.get(c) ?? 0) > 0 || replacedBelow;
      const recorded = earlier === undefined ? recordAnswer(c, c.res, inPlace) : undefined;
      if (recorded) {
        // Cleared first: assigning over a response merges its headers into the new one.
        c.res = undefined;
        c.res = recorded;
      }
      if (c.res.status < 500) answeredBelow.add(c);
    };
  }
}

/**
 * The seam between Node's HTTP server and the core: every adapter (Express, Koa, Fastify) hands
 * over the Node `IncomingMessage` it wraps, and writes back the response the core describes.
 * Keeping this here is what makes the three adapters behave byte-for-byte alike.
 */

import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { GuardError } from '../errors.js';
import type { Authenticated, Authorized, Guard } from '../guard.js';
import type { ResponseParts } from '../outcomes.js';
import type { CompiledPolicy } from '../policy.js';
import { announcesBody, type GuardRequest, headersFromRaw } from '../request.js';
import { guardRequestOn, nodeConnection } from './connection.js';
import { authorizationOf, rememberAuthorization, rememberRefusal } from './layers.js';
import { bodyUnread, type RawBody, readRawBody, rememberedRawBody, rememberRawBody, tapRawBody } from './node-body.js';
import { type ErrorBody, refusalBody } from './refusals.js';

export interface NodeRequestParts {
  /** The request target the client sent (path and query), before any router rewrote it. */
  path: string;
  /** The body, when a parser already read it (only inspected to refuse an `access_token` in it). */
  body?: unknown;
}

/**
 * The core's view of a Node request: raw header lines (Node keeps only the first
 * `Authorization` in `req.headers`), the absolute URL from the guard's origin rules, and the
 * client certificate of a TLS connection. A request whose URL cannot be trusted is refused.
 */
export function guardRequestFromNode(
  guard: Guard,
  req: IncomingMessage,
  parts: NodeRequestParts,
  policy?: CompiledPolicy,
): GuardRequest | GuardError {
  const connection = nodeConnection(req);
  const headers = headersFromRaw(connection.rawHeaders);
  const request = guardRequestOn(guard, req.method ?? 'GET', headers, { ...connection, target: parts.path }, policy);
  if ('method' in request) request.body = parts.body;
  return request;
}

/** Request targets as the server received them, before any router rewrote `req.url`. */
const receivedTargets = new WeakMap<IncomingMessage, string>();
const tracked = new WeakSet<object>();

/**
 * Records the request target of every request `server` receives, ahead of the framework's own
 * listener, for {@link receivedTarget}. Frameworks that rewrite `req.url` before routing
 * (Fastify's `rewriteUrl`) and middleware that copy it (`@fastify/middie` overwrites
 * `originalUrl`) then cannot change the URL a DPoP proof's `htu` is compared with: the one the
 * client addressed (RFC 9449 §4.3 #9). Once per server.
 */
export function trackReceivedTargets(server: Pick<EventEmitter, 'prependListener'>): void {
  if (tracked.has(server)) return;
  tracked.add(server);
  server.prependListener('request', (req: IncomingMessage) => {
    if (req.url !== undefined) receivedTargets.set(req, req.url);
  });
}

/**
 * The request target the client sent: as recorded on arrival ({@link trackReceivedTargets}),
 * else Fastify's `originalUrl` (kept when `rewriteUrl` changed `url`), else `url`.
 */
export function receivedTarget(req: IncomingMessage): string {
  return receivedTargets.get(req) ?? (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '/';
}

/**
 * Both phases of the guard for a Node request: {@link Guard.authenticate} on the headers, and
 * only for an authenticated request the body — on `signedRequest` routes the bytes a `rawBody()`
 * tap kept, or, when no one has read the stream yet, read here and put back for the body parsers
 * that follow — then {@link Guard.complete}.
 */
export async function authorizeNodeRequest(
  guard: Guard,
  req: IncomingMessage,
  parts: NodeRequestParts,
  policy: CompiledPolicy,
): Promise<Authorized | GuardError> {
  const request = guardRequestFromNode(guard, req, parts, policy);
  if (!('method' in request)) return request;
  const authenticated = await guard.authenticate(request, policy);
  if (!authenticated.ok) return authenticated;
  return completeNodeRequest(guard, req, request, authenticated, policy);
}

/**
 * The second phase alone, for adapters that authenticate before the body is parsed (Fastify's
 * `onRequest`): `request` is the one authenticated, with `body` set to the parsed body, if any.
 */
export async function completeNodeRequest(
  guard: Guard,
  req: IncomingMessage,
  request: GuardRequest,
  authenticated: Authenticated,
  policy: CompiledPolicy,
): Promise<Authorized | GuardError> {
  const tooLarge = await attachRawBody(guard, req, request, policy);
  return tooLarge ?? guard.complete(authenticated, request);
}

/**
 * Every layer of protection on a Node request (an app-wide `protect()`, a router's, a route's):
 * the first one this guard runs for `req` authorizes it with {@link authorizeNodeRequest}; each
 * later one checks only its own policy ({@link Guard.authorizeLayer}), so the DPoP proof is
 * checked, and its `jti` spent, once. The mark is kept by `req` itself (see layers.ts).
 */
export async function protectNodeRequest(
  guard: Guard,
  req: IncomingMessage,
  parts: NodeRequestParts,
  policy: CompiledPolicy,
): Promise<Authorized | GuardError> {
  const earlier = authorizationOf(guard, req);
  let result: Authorized | GuardError;
  if (earlier) {
    const request = guardRequestFromNode(guard, req, parts, policy);
    if (!('method' in request)) return request;
    result = (await attachRawBody(guard, req, request, policy)) ?? (await guard.authorizeLayer(earlier, request, policy));
  } else {
    result = await authorizeNodeRequest(guard, req, parts, policy);
  }
  if (result.ok) rememberAuthorization(guard, req, result);
  else rememberRefusal(req);
  return result;
}

/** On routes whose checks read the body bytes (`signedRequest`, `jwsSignature`: digests and detached JWS are over them). */
async function attachRawBody(
  guard: Guard,
  req: IncomingMessage,
  request: GuardRequest,
  policy: CompiledPolicy,
): Promise<GuardError | undefined> {
  if (!policy.readsBody || !announcesBody(request.headers)) return undefined;
  const raw = await rawBodyOf(guard, req);
  if (raw?.ok) request.rawBody = raw.body;
  else if (raw?.reason === 'too_large')
    return guard.refuse('body_too_large', 'request body exceeds messageSigning.maxBodyBytes', policy, request.headers);
  // No bytes (a parser read them first, or the client went away): the core refuses with body_unavailable.
  return undefined;
}

/** The bytes kept for `req` earlier, or read now if no one has read the stream yet (then kept). */
async function rawBodyOf(guard: Guard, req: IncomingMessage): Promise<RawBody | undefined> {
  const kept = rememberedRawBody(req);
  if (kept || !bodyUnread(req)) return kept;
  const raw = await readRawBody(req, guard.options.messageSigning?.maxBodyBytes ?? 0);
  rememberRawBody(req, raw);
  return raw;
}

/**
 * The `rawBody()` middleware's work: keeps the body bytes of every request that has one (bounded
 * by `messageSigning.maxBodyBytes`, or without message signing by `idempotency.maxRequestBytes`)
 * as the body parsers mounted after it read them, for signature checks and idempotency
 * fingerprints later on. It reads nothing itself.
 */
export function captureRawBody(guard: Guard, req: IncomingMessage): void {
  const limit = guard.options.messageSigning?.maxBodyBytes ?? guard.options.idempotency.maxRequestBytes;
  if (announcesBody(headersFromRaw(req.rawHeaders))) tapRawBody(req, limit);
}

export type { ResponseParts };

/**
 * A refusal's response: its status and headers (RFC 6750 §3, RFC 9449 §7.1), the body in `format`;
 * on Open Finance Brasil routes the bank-signed JWT envelope, which the regime mandates whatever the format.
 */
export function errorResponse(error: GuardError, format?: ErrorBody): ResponseParts {
  if (error.signedBody !== undefined) {
    return { status: error.status, headers: { ...error.headers, 'content-type': 'application/jwt' }, body: error.signedBody };
  }
  const { contentType, body } = refusalBody(error, format);
  return { status: error.status, headers: { ...error.headers, 'content-type': contentType }, body };
}

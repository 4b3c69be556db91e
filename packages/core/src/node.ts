/**
 * The seam between Node's HTTP server and the core: every adapter (Express, Koa, Fastify) hands
 * over the Node `IncomingMessage` it wraps, and writes back the response the core describes.
 * Keeping this here is what makes the three adapters behave byte-for-byte alike.
 */
import type { IncomingMessage } from 'node:http';
import { guardRequestOn, nodeConnection } from './connection.js';
import type { GuardError } from './errors.js';
import type { Authenticated, Authorized, Guard } from './guard.js';
import { bodyUnread, type RawBody, readRawBody, rememberedRawBody, rememberRawBody, tapRawBody } from './node-body.js';
import type { CompiledPolicy } from './policy.js';
import { announcesBody, type GuardRequest, headersFromRaw } from './request.js';

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
  if (policy.signedRequest && announcesBody(request.headers)) {
    const raw = await rawBodyOf(guard, req);
    if (raw?.ok) request.rawBody = raw.body;
    else if (raw?.reason === 'too_large')
      return guard.refuse('body_too_large', 'request body exceeds messageSigning.maxBodyBytes', policy, request.headers);
    // No bytes (a parser read them first, or the client went away): the core refuses with body_unavailable.
  }
  return guard.complete(authenticated, request);
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

/** What an adapter writes for a refusal: status, headers and the JSON body text. */
export interface ResponseParts {
  status: number;
  headers: Readonly<Record<string, string>>;
  /** Serialised once here so every adapter sends the same bytes. */
  body: string;
}

export function errorResponse(error: GuardError): ResponseParts {
  return {
    status: error.status,
    headers: { ...error.headers, 'content-type': 'application/json; charset=utf-8' },
    body: JSON.stringify(error.body),
  };
}

/**
 * What differs between Nest's Express and Fastify platforms, in one place: the Node objects
 * behind the platform's request and response, and how a response the core describes is written.
 * Express hands Nest the Node objects themselves; Fastify wraps them (`request.raw`, `reply.raw`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ErrorBody, errorResponse, type GuardError, type ResponseParts, receivedTarget } from '@fapi-guard/core';

/** The parts of Fastify's request used here (no dependency on Fastify's types). */
export interface FastifyRequestLike {
  raw: IncomingMessage;
  method: string;
  body?: unknown;
  routeOptions?: { config?: Record<string, unknown> };
}

/** The parts of Fastify's reply used here. */
export interface FastifyReplyLike {
  raw: ServerResponse;
  /** The status the reply will send (set on `raw` only once it is sent). */
  readonly statusCode: number;
  code(status: number): FastifyReplyLike;
  header(name: string, value: string): FastifyReplyLike;
  headers(values: Record<string, string>): FastifyReplyLike;
  send(body: string): FastifyReplyLike;
  callNotFound(): void;
  hijack(): void;
}

/** Express's request: Node's `IncomingMessage` with the parsed body and the unrewritten target. */
type ExpressRequestLike = IncomingMessage & { body?: unknown; originalUrl?: string };

const isFastify = (value: object): value is FastifyRequestLike | FastifyReplyLike => 'raw' in value;

/** Node's request behind the platform's request object. */
export function nodeRequest(request: object): IncomingMessage {
  return isFastify(request) ? (request as FastifyRequestLike).raw : (request as IncomingMessage);
}

/** The request target as the client sent it, and the body a parser already read, if any. */
export function requestParts(request: object): { path: string; body: unknown } {
  if (isFastify(request)) {
    const fastify = request as FastifyRequestLike;
    // The target as received, before rewriteUrl changed raw.url (as in @fapi-guard/fastify).
    return { path: receivedTarget(fastify.raw), body: fastify.body };
  }
  const express = request as ExpressRequestLike;
  // originalUrl keeps the mount path of routers (req.url loses it), as in @fapi-guard/express.
  return { path: express.originalUrl ?? express.url ?? '/', body: express.body };
}

/** Node's response behind the platform's response object. */
export function nodeResponse(response: object): ServerResponse {
  return isFastify(response) ? (response as FastifyReplyLike).raw : (response as ServerResponse);
}

/** Headers the guard adds to an answer it lets through (e.g. a fresh `DPoP-Nonce`). */
export function setHeaders(response: object, headers: Readonly<Record<string, string>>): void {
  if (isFastify(response)) {
    const reply = response as FastifyReplyLike;
    for (const [name, value] of Object.entries(headers)) reply.header(name, value);
    return;
  }
  for (const [name, value] of Object.entries(headers)) (response as ServerResponse).setHeader(name, value);
}

/**
 * Writes a response the core describes, as the Express and Fastify adapters do, so the bytes are
 * the same: on Fastify through the reply (its hooks run), on Express on Node's response.
 */
export function writeResponse(response: object, { status, headers, body }: ResponseParts): void {
  if (isFastify(response)) {
    (response as FastifyReplyLike)
      .code(status)
      .headers({ ...headers })
      .send(body);
    return;
  }
  const res = response as ServerResponse;
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(body);
}

/** Writes a refusal: status, challenge headers and the short JSON body (RFC 6750 §3, RFC 9449 §7.1). */
export function writeRefusal(response: object, error: GuardError, format?: ErrorBody): void {
  writeResponse(response, errorResponse(error, format));
}

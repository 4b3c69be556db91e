/**
 * Idempotency for Web-standard runtimes (a Fetch `Request` in, a `Response` out: Hono): the
 * decision before the handler, and the handler's `Response` — after any response signature was
 * added — recorded as it is returned, its body copied (bounded) from a clone as it is sent.
 */

import type { GuardError } from '../errors.js';
import type { Authorized, Guard } from '../guard.js';
import type { CompiledPolicy } from '../policy.js';
import type { GuardRequest } from '../request.js';
import type { RequestConnection } from '../runtime/connection.js';
import { fetchErrorResponse, guardRequestFromFetch, NULL_BODY_STATUSES, readFetchBody } from '../runtime/fetch.js';
import type { BodyBytes, IdempotencyTicket, SentResponse } from './exchange.js';
import { idempotencyApplies, idempotencyAtLayer } from './layers.js';
import type { StoredResponse } from './store.js';

export type FetchIdempotencyStart =
  | { kind: 'pass'; body?: Uint8Array }
  /** A refusal or the stored response of the first request: return it, do not run the handler. */
  | { kind: 'answer'; response: Response; error?: GuardError }
  /**
   * Run the handler, then return `record(response)` (the response itself, recorded as it is
   * sent: the key is settled once its whole body was read). `body`: the request's bytes when they
   * were read here (the stream is consumed; build the request the application sees from them).
   */
  | { kind: 'claimed'; body?: Uint8Array; record(response: Response): Response };

/** The stored response as a new `Response`: the same status, header lines and bytes. */
export function storedFetchResponse(stored: StoredResponse): Response {
  const headers = new Headers();
  for (const [name, value] of stored.headers) headers.append(name, value);
  const body = NULL_BODY_STATUSES.has(stored.status) ? null : stored.body;
  return new Response(body, { status: stored.status, headers });
}

/** The body of `response` copied from a clone, at most `max` bytes (past it only the status is kept). */
async function sentResponse(response: Response, max: number): Promise<SentResponse> {
  const headers = [...response.headers];
  const stream = response.clone().body;
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (stream) {
    const reader = stream.getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      size += next.value.byteLength;
      if (size > max) {
        reader.cancel().catch(() => undefined);
        return { status: response.status, tooLarge: true };
      }
      chunks.push(next.value);
    }
  }
  return { status: response.status, headers, body: Buffer.concat(chunks) };
}

/**
 * Finishes the ticket with what `response` sends, copied from a clone in the background: the
 * response goes out as its body is produced (a stream is not held until it ends, as the Node
 * adapters send as the handler writes), and the key is settled once the whole body was read.
 */
function recorder(ticket: IdempotencyTicket): (response: Response) => Response {
  return (response) => {
    // The clone is taken now, before the response is sent (sentResponse clones before it awaits).
    sentResponse(response, ticket.maxResponseBytes)
      // The body could not be read (the handler's stream failed): the client gets no complete answer.
      .catch((): SentResponse => ({ status: 500, tooLarge: true }))
      .then((sent) => ticket.finish(sent))
      .catch(() => undefined);
    return response;
  };
}

/**
 * After `auth` was authorized for `policy` by one layer: the idempotency decision for `request`,
 * across layers (layers.ts). `body` is the request's bytes when the guard already read them (form
 * bodies, `signedRequest` routes); `key` is the framework's object for this request that every
 * layer sees (Hono's `Context`; the `Request` by default).
 */
export async function startFetchIdempotency(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  request: Request,
  connection: RequestConnection,
  body: Uint8Array | undefined,
  key: object = request,
): Promise<FetchIdempotencyStart> {
  if (!idempotencyApplies(guard, policy, key)) return { kind: 'pass', body };
  let checked: GuardRequest | GuardError | undefined;
  const exchangeRequest = () => {
    checked ??= guardRequestFromFetch(guard, request, connection, policy);
    return checked;
  };
  let read = body;
  const readBody = async (): Promise<BodyBytes> => {
    if (read) return { ok: true, body: read };
    const bytes = await readFetchBody(request, guard.options.idempotency.maxRequestBytes);
    if (!bytes.ok) return { ok: false, reason: bytes.reason === 'too_large' ? 'too_large' : 'unavailable' };
    read = request.body ? bytes.body : undefined;
    return bytes;
  };
  const start = await idempotencyAtLayer(guard, policy, auth, key, exchangeRequest, readBody);
  if (start.kind === 'pass') return { kind: 'pass', body: read };
  if (start.kind === 'refused') return { kind: 'answer', response: fetchErrorResponse(start.error), error: start.error };
  if (start.kind === 'replay') return { kind: 'answer', response: storedFetchResponse(start.response) };
  return { kind: 'claimed', body: read, record: recorder(start.ticket) };
}

/**
 * Idempotency for Web-standard runtimes (a Fetch `Request` in, a `Response` out: Hono): the
 * decision before the handler, and the handler's `Response` — after any response signature was
 * added — recorded as it is sent, its body copied (bounded) on its way to the client.
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
   * Run the handler, then return `record(response)`: the same response, recorded as it is sent
   * (the key is settled once its body was read whole); with `answeredElsewhere` the handler ran
   * but another middleware's answer went out in its place (processed, its answer not kept).
   * `body`: the request's bytes when they
   * were read here (the stream is consumed; build the request the application sees from them).
   */
  | { kind: 'claimed'; body?: Uint8Array; record(response: Response, answeredElsewhere?: boolean): Response };

/** The stored response as a new `Response`: the same status, header lines and bytes. */
export function storedFetchResponse(stored: StoredResponse): Response {
  const headers = new Headers();
  for (const [name, value] of stored.headers) headers.append(name, value);
  const body = NULL_BODY_STATUSES.has(stored.status) ? null : stored.body;
  return new Response(body, { status: stored.status, headers });
}

/** Resolves `undefined` once pending I/O callbacks ran: what a stream has not produced by then, it waits for. */
const nextTurn = () => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 0));

/**
 * `response` with its body passed on as the client reads it, copied (at most `maxResponseBytes`)
 * on the way: the response goes out as its body is produced (a stream is not held until it ends,
 * as the Node adapters send as the handler writes), and the key is settled once the body has been
 * read whole. A body that fails midway, or that the client stops reading (it went away; the
 * handler's stream is told, as without a key), went out in part after its head: the request was
 * processed and its response not kept (409 to retries, as on the Node adapters).
 */
function recorder(ticket: IdempotencyTicket): (response: Response, answeredElsewhere?: boolean) => Response {
  return (response, answeredElsewhere = false) => {
    if (answeredElsewhere) {
      // Nothing is read of `response`: it is being sent by someone else (its fields may throw).
      // Stryker disable next-line BooleanLiteral: equivalent, the exchange reads whether `handled` is there (exchange.ts), not its value
      ticket.finish({ handled: true }).catch(() => undefined);
      return response;
    }
    const { status } = response;
    let settled = false;
    const settle = (sent: SentResponse) => {
      // Stryker disable next-line ConditionalExpression: equivalent, a second finish of the ticket does nothing (exchange.ts: a ticket ends once); this keeps the recorder from asking
      if (settled) return;
      // Stryker disable next-line BooleanLiteral: equivalent, as the check above
      settled = true;
      ticket.finish(sent).catch(() => undefined);
    };
    const source = response.body;
    if (!source) {
      settle({ status, headers: [...response.headers], body: Buffer.alloc(0) });
      return response;
    }
    let reader: ReadableStreamDefaultReader<Uint8Array>;
    try {
      reader = source.getReader();
    } catch {
      // A body some other code has read already: nothing of it can be kept.
      // Stryker disable next-line BooleanLiteral: equivalent, the exchange reads whether `tooLarge` is there, not its value
      settle({ status, tooLarge: true });
      return response;
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    const keep = (chunk: Uint8Array) => {
      size += chunk.byteLength;
      if (size <= ticket.maxResponseBytes) chunks.push(chunk);
      else chunks.length = 0;
    };
    // Stryker disable next-line BooleanLiteral: equivalent, the exchange reads whether `tooLarge` is there, not its value
    const notKept = () => settle({ status, tooLarge: true });
    const whole = () =>
      size > ticket.maxResponseBytes ? notKept() : settle({ status, headers: [...response.headers], body: Buffer.concat(chunks) });
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          let next: Awaited<ReturnType<typeof reader.read>>;
          try {
            next = await reader.read();
          } catch (error) {
            notKept();
            controller.error(error);
            return;
          }
          if (next.done) {
            whole();
            controller.close();
            return;
          }
          keep(next.value);
          controller.enqueue(next.value);
        },
        async cancel(reason) {
          // The client went away. A body already made (in memory) is read to its end and kept, as
          // the Node adapters keep what the handler wrote; a stream that would wait for more is
          // told (the handler's stream sees the abort, as without a key): not kept.
          try {
            for (;;) {
              const next = await Promise.race([reader.read(), nextTurn()]);
              // Stryker disable next-line ConditionalExpression: equivalent, without the break `next.done` throws on undefined and the catch below does the same (not kept, the stream told)
              if (next === undefined) break;
              if (next.done) return whole();
              keep(next.value);
            }
          } catch {
            // The handler's stream failed: what went out was not the whole answer.
          }
          notKept();
          await reader.cancel(reason);
        },
      },
      // Read ahead up to the bound: a body within it is read whole, and the key settled, whether or
      // not the response is sent (another middleware may answer in its place); past it, the body
      // is not kept and goes at the client's pace. One byte more than the bound: a queue holding
      // exactly the bound is full, and its end would not be read until the client reads.
      new ByteLengthQueuingStrategy({ highWaterMark: ticket.maxResponseBytes + 1 }),
    );
    return new Response(body, { status, statusText: response.statusText, headers: response.headers });
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
    // Stryker disable next-line ConditionalExpression: equivalent, a failed read has no body, so `read` stays undefined either way
    if (bytes.ok) {
      read = request.body ? bytes.body : undefined;
    }
    return bytes;
  };
  const start = await idempotencyAtLayer(guard, policy, auth, key, exchangeRequest, readBody);
  if (start.kind === 'pass') return { kind: 'pass', body: read };
  if (start.kind === 'refused') return { kind: 'answer', response: fetchErrorResponse(start.error), error: start.error };
  if (start.kind === 'replay') return { kind: 'answer', response: storedFetchResponse(start.response) };
  return { kind: 'claimed', body: read, record: recorder(start.ticket) };
}

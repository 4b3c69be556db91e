/**
 * Idempotency on Node's `ServerResponse`, for every adapter whose framework writes through it
 * (Express, Koa, Fastify, NestJS on both platforms): the response is copied as it is written —
 * it still goes out at once — and recorded when the handler ends it, after any response
 * signature was added (FAPI 2.0 Message Signing §5.6.2.1); a retry's stored response is written
 * with Node's own methods, exactly as stored.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GuardError } from '../errors.js';
import type { Authorized, Guard } from '../guard.js';
import type { CompiledPolicy } from '../policy.js';
import { announcesBody, type GuardRequest } from '../request.js';
import { errorResponse, guardRequestFromNode } from '../runtime/node.js';
import { bodyUnread, readRawBody, rememberedRawBody, rememberRawBody } from '../runtime/node-body.js';
import { applyWriteHead, type Chunk, markReplay, toBuffer } from '../runtime/node-response.js';
import type { BodyBytes, IdempotencyTicket, SentResponse } from './exchange.js';
import { idempotencyAtLayer } from './layers.js';
import type { StoredResponse } from './store.js';

export type NodeIdempotencyStart =
  /** Run the handler (its response is being recorded when the request was claimed: `claim` is set then). */
  | { kind: 'pass'; claim?: NodeClaim }
  /** Answer with {@link writeIdempotencyAnswer} and do not run the handler. */
  | { kind: 'refused'; error: GuardError }
  | { kind: 'replay'; response: StoredResponse };

/**
 * What an adapter tells the recorder of a claimed request that only the framework knows. A
 * client that went away before the answer leaves a response some frameworks never end (Koa),
 * or end with an error of their own about sending it (Fastify's 500 for a stream cut off).
 */
export interface NodeClaim {
  /**
   * The handler's answer is on its way (Fastify's `onSend`; its status is read here): unless a
   * server error, the request was processed. A server error written after it to a client already
   * gone is the framework's failure to send it, and a response to a client gone that the
   * framework never ends is left so: both kept as processed, the response not kept (409 to
   * retries), never freed for a second processing. (To a client still there, a server error, an answer that could not be signed,
   * frees the key as always.)
   */
  answered(): void;
  /**
   * The handler chain has settled (Koa's `next()`); `failed` when it threw. A response to a client
   * gone (now, or before anything ends it) that is not ended is settled: the key freed when the
   * handler failed (nothing to repeat), kept as processed with its response not kept when it
   * completed (a server error it answered frees the key, as when sent).
   */
  settled(failed: boolean): void;
}

/** The body bytes as received: kept by a `rawBody()` tap, or read here and put back for the parsers. */
async function nodeBodyBytes(guard: Guard, req: IncomingMessage): Promise<BodyBytes> {
  const limit = guard.options.idempotency.maxRequestBytes;
  let raw = rememberedRawBody(req);
  if (!raw) {
    // Stryker disable next-line ObjectLiteral,StringLiteral: equivalent, the exchange answers every reason but too_large as body_unavailable
    if (!bodyUnread(req)) return { ok: false, reason: 'unavailable' };
    raw = await readRawBody(req, limit);
    rememberRawBody(req, raw);
  }
  if (!raw.ok) return raw;
  return raw.body.length > limit ? { ok: false, reason: 'too_large' } : { ok: true, body: raw.body };
}

const NO_BODY: BodyBytes = { ok: true, body: new Uint8Array(0) };

/**
 * After `auth` was authorized for `policy` by one layer: the idempotency decision for the request
 * (`target` is the request target as the client sent it), across layers (layers.ts). On `pass`
 * for a claimed key, `res` records the response it sends.
 */
export async function startNodeIdempotency(
  guard: Guard,
  policy: CompiledPolicy,
  auth: Authorized,
  req: IncomingMessage,
  res: ServerResponse,
  target: string,
): Promise<NodeIdempotencyStart> {
  let request: GuardRequest | GuardError | undefined;
  const exchangeRequest = () => {
    request ??= guardRequestFromNode(guard, req, { path: target }, policy);
    return request;
  };
  // The body is read only for a key found, after the request was built.
  const readBody = () => {
    const built = exchangeRequest();
    return 'method' in built && announcesBody(built.headers) ? nodeBodyBytes(guard, req) : Promise.resolve(NO_BODY);
  };
  const start = await idempotencyAtLayer(guard, policy, auth, req, exchangeRequest, readBody);
  if (start.kind !== 'claimed') return start;
  // The answer went out while the key was being claimed (a timeout's 504 in front of this layer,
  // the store slow): no event of the response is left for the recorder. Whatever runs on is kept
  // as processed, its answer not kept (409 to retries), as for an answer sent in the handler's place.
  if (res.headersSent) {
    // Stryker disable next-line BooleanLiteral: equivalent, the exchange reads whether `handled` is there, not its value
    void start.ticket.finish({ handled: true });
    return { kind: 'pass' };
  }
  return { kind: 'pass', claim: recordNodeResponse(res, start.ticket) };
}

/** Header lines as set on `res`, names in the case they were set in where Node keeps it. */
function headerLines(res: ServerResponse): [string, string][] {
  const lines: [string, string][] = [];
  // Node ≥ 15.13 (not in @types/node 20): the names as they were set, not lower-cased. HTTP/2's
  // compatibility response has no such method (its header names are lower case on the wire anyway).
  const raw = (res as ServerResponse & { getRawHeaderNames?(): string[] }).getRawHeaderNames;
  for (const name of raw ? raw.call(res) : res.getHeaderNames()) {
    // HTTP/2: `:status` and the other pseudo-headers are the stream's own (RFC 9113 §8.3), never header lines.
    if (name.startsWith(':')) continue;
    const value = res.getHeader(name);
    // Stryker disable next-line ConditionalExpression: equivalent, Node lists no header without a value (setHeader refuses undefined); the check is for the type
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) lines.push([name, String(v)]);
  }
  return lines;
}

/**
 * Copies what is written to `res` (the body up to the ticket's bound) and hands it to the ticket
 * once the handler ends the response. Installed after a response-signing wrapper, it sees the
 * headers that wrapper adds, since it reads them when the inner `end` has returned.
 */
/** True when the client has gone: the connection (HTTP/1) or the stream (HTTP/2's compatibility response has no `destroyed`). */
function clientGone(res: ServerResponse): boolean {
  // Stryker disable next-line OptionalChaining: equivalent, HTTP/1's `destroyed` is a boolean, and HTTP/2's compatibility response always has its stream
  return res.destroyed ?? (res as { stream?: { destroyed?: boolean } }).stream?.destroyed === true;
}

function recordNodeResponse(res: ServerResponse, ticket: IdempotencyTicket): NodeClaim {
  const { write, end, writeHead } = res;
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  /**
   * What is known of the handler's answer while no head was sent: it is on its way (the
   * adapter's `answered`), it is being written or piped (`written`), or the handler chain ended
   * (`completed`, `failed`). A response whose client went away before its head may never be
   * ended by the framework; once one of these is known, it is settled without its `end`.
   */
  let answer: 'answered' | 'written' | 'completed' | 'failed' | undefined;
  /** The status the answer had when it was on its way, written or piped: a server error of its own frees the key. */
  let answerStatus = 0;
  /** The handler's own answer, no server error, was on its way: whatever follows, the request was processed. */
  const onItsWay = () => (answer === 'answered' || answer === 'written') && answerStatus < 500;
  const answering = (how: 'answered' | 'written') => {
    if (answer === 'answered' || answer === 'written') return;
    answer = how;
    answerStatus = sentStatus();
    settleUnended();
  };
  /**
   * The status the head went out with. Node lets `statusCode` change after the head was sent
   * (an error handler's `res.status(500)` on a 201 already streaming): what was sent is recorded.
   * Node's implicit head (a `write`, `end`, `flushHeaders`) goes through `writeHead` too; HTTP/2's
   * compatibility response does not, so there the status as it stands is read.
   */
  let headStatus: number | undefined;
  const sentStatus = () => headStatus ?? res.statusCode;
  /** Inside the inner `end`: HTTP/2's compatibility `end(chunk)` writes its chunk through `write`, already kept. */
  let ending = false;
  const keep = (chunk: Chunk | undefined | null, encoding: unknown) => {
    if (ending || chunk === undefined || chunk === null || typeof chunk === 'function') return;
    // Stryker disable next-line ConditionalExpression: equivalent, Buffer.from reads a string in UTF-8 when the encoding is no string (a callback)
    const bytes = toBuffer(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined);
    size += bytes.length;
    if (size <= ticket.maxResponseBytes) chunks.push(bytes);
  };
  /** What was sent, as recorded: kept, or (too large, not sent as declared, unreadable) "not kept". */
  const sentOf = (misframed: boolean): SentResponse => {
    const notKept = { status: sentStatus(), tooLarge: true as const };
    if (size > ticket.maxResponseBytes || misframed) return notKept;
    try {
      return { status: sentStatus(), headers: headerLines(res), body: Buffer.concat(chunks) };
    } catch {
      // Headers that cannot be read back: never left in flight, never replayed wrong.
      return notKept;
    }
  };
  /**
   * A response to a client gone, whose answer is known (`answer`) and that nothing has ended:
   * settled after this turn, so that a framework that ends it at once still records what it
   * sends. The handler failed: nothing to repeat, the key is freed. Its answer was on its way:
   * processed, not kept. Otherwise its own status decides (a server error frees the key).
   */
  const settleUnended = () => {
    if (finished || answer === undefined || !clientGone(res)) return;
    setImmediate(() => {
      // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, every `end` passes the recorder's, which sets `finished` first
      if (finished || res.writableEnded) return;
      // Stryker disable next-line BooleanLiteral: equivalent, a ticket ends once: a second finish or release does nothing (exchange.ts)
      finished = true;
      // (A disable comment before an `else` is not honoured by Stryker: the branch has braces.)
      if (answer === 'failed') void ticket.release();
      else {
        // Stryker disable next-line BooleanLiteral: equivalent, the exchange reads whether `handled` or `tooLarge` is there, not its value
        void ticket.finish(onItsWay() ? { handled: true } : { status: sentStatus(), tooLarge: true });
      }
    });
  };
  // writeHead(status, headers) sends headers that never pass setHeader: applied as setHeader
  // calls first, so that the headers recorded are the ones sent.
  res.writeHead = function recordedWriteHead(this: ServerResponse, ...args: unknown[]) {
    // A second head is refused by Node (ERR_HTTP_HEADERS_SENT): nothing of it is applied.
    if (this.headersSent) return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    applyWriteHead(res, args);
    const result = writeHead.call(this, this.statusCode);
    // Sent only if Node's own ran: a response-signing wrapper underneath holds the head until `end`
    // (and may answer 500 then), and its head goes out through Node's writeHead, not this one.
    if (this.headersSent) headStatus = this.statusCode;
    return result;
  } as typeof res.writeHead;
  res.write = function recordedWrite(this: ServerResponse, chunk: Chunk, ...rest: unknown[]) {
    keep(chunk, rest[0]);
    answering('written');
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof res.write;
  // A stream piped into the response (Express's `stream.pipe(res)`, Nest's StreamableFile) may
  // never write to a response whose client has gone, nor end it.
  res.once('pipe', () => answering('written'));
  res.end = function recordedEnd(this: ServerResponse, chunk?: Chunk | (() => void), ...rest: unknown[]) {
    if (typeof chunk !== 'function') keep(chunk, rest[0]);
    // A body shorter or longer than its Content-Length was not sent as declared (the client went
    // away and the framework ended the response without its body): replaying those headers
    // with these bytes would leave the retry waiting for bytes that never come. Not kept (409).
    // Read before the inner `end`: an Open Finance Brasil signer there replaces the body and its length.
    const declared = res.getHeader('content-length');
    // A client gone before the answer: Koa then ends without serialising an object body (no
    // Content-Length, no bytes). Only a body framed by its length is known to be whole then.
    const gone = clientGone(res);
    ending = true;
    let ended = false;
    try {
      const result = (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
      ended = true;
      return result;
    } finally {
      ending = false;
      if (!finished) {
        finished = true;
        // An `end` that threw (a signer's failure) sent no answer as recorded: not kept.
        // A server error to a client gone after the handler's own answer was on its way, written
        // or piped, is the failure to send it (Fastify's 500 for a stream cut off, an error
        // handler's 500 for `pipeline` rejecting at the closed response): processed.
        const failedToSend = onItsWay() && gone && sentStatus() >= 500;
        void ticket.finish(
          failedToSend ? { handled: true } : sentOf(!ended || (declared === undefined ? gone : Number(declared) !== size)),
        );
      }
    }
  } as typeof res.end;
  // A response that never ends: Express's final handler destroys the socket of a handler that
  // failed after its head was sent, and `end` is never called. Settled when the connection
  // closes: part of the answer went out, so the request was processed and its response not kept
  // (409 to retries, as for any answer not sent as declared), and the claim's renewal stops.
  // Before the head, the handler may still be running (its client went away): its `end` settles
  // it, or what is known of its answer already (settleUnended).
  res.once('close', () => {
    // Stryker disable next-line ConditionalExpression: equivalent, a ticket ends once: a second finish or release does nothing (exchange.ts)
    if (finished) return;
    if (!res.headersSent) return settleUnended();
    // Stryker disable next-line BooleanLiteral: equivalent, a ticket ends once: a second finish or release does nothing (exchange.ts)
    finished = true;
    // Stryker disable next-line BooleanLiteral: equivalent, the exchange reads whether `tooLarge` is there, not its value
    void ticket.finish({ status: sentStatus(), tooLarge: true });
  });
  return {
    answered() {
      answering('answered');
    },
    settled(failed) {
      // A throw after the answer was written or piped reports its sending (the client was gone), not the payment.
      if (failed && answer !== 'written') answer = 'failed';
      else {
        // Stryker disable next-line StringLiteral: equivalent, every check of `answer` treats '' as 'completed'
        answer ??= 'completed';
      }
      settleUnended();
    },
  };
}

/**
 * Writes a refusal, or a stored response as it was first sent (status, header lines, body
 * bytes; the exchange's own `x-fapi-interaction-id` and `DPoP-Nonce` are already this request's).
 * A refusal takes off the wrappers an adapter installed on `res` (a refusal is not signed). A
 * replay keeps the response-signing wrapper: the stored status and bytes are signed anew for
 * this request (RFC 9421 §2.4: the signature covers the request it answers, `;req`), so the
 * client verifies it against the retry it sent. `Date`, `Connection` and the framing headers
 * Node adds for the connection are the server's own for each response.
 */
export function writeIdempotencyAnswer(res: ServerResponse, answer: Exclude<NodeIdempotencyStart, { kind: 'pass' }>): void {
  if (answer.kind === 'refused') {
    // The wrappers are own properties; deleting one that is not there does nothing.
    for (const method of ['writeHead', 'write', 'end'] as const) delete (res as Partial<ServerResponse>)[method];
    const { status, headers, body } = errorResponse(answer.error);
    res.statusCode = status;
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.end(body);
    return;
  }
  const { status, headers, body } = answer.response;
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  res.statusCode = status;
  const grouped = new Map<string, string[]>();
  for (const [name, value] of headers) grouped.set(name, [...(grouped.get(name) ?? []), value]);
  for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? (values[0] as string) : values);
  markReplay(res);
  res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
}

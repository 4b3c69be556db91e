/**
 * Signed responses on Node's `ServerResponse` (FAPI 2.0 Message Signing §5.6.2.1), for every
 * adapter: writes are held back until `end()`, when the status, the headers and every body byte
 * are known; then `Content-Digest`, `Signature-Input` and `Signature` are added and the response
 * goes out unchanged otherwise. Express, Koa and Fastify all finish with `end()` (Fastify and
 * some handlers call `writeHead` first, which is deferred the same way).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Authorized, Guard } from '../guard.js';
import type { GuardHeaders } from '../request.js';

export type Chunk = string | Uint8Array;

export function toBuffer(chunk: Chunk, encoding?: BufferEncoding): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

function headerSnapshot(res: ServerResponse): GuardHeaders {
  const headers: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(res.getHeaders())) {
    if (value === undefined) continue;
    headers[name.toLowerCase()] = Array.isArray(value) ? value.map(String) : [String(value)];
  }
  return headers;
}

/**
 * The `[name, value]` entries of a writeHead header list, in either form Node takes: flat
 * `[name, value, name, value]`, or `[name, value]` pairs (node:http's `_storeHeader`, node:http2's
 * compatibility `writeHead`; attack review 15).
 */
function listEntries(headers: readonly unknown[]): Array<readonly [unknown, unknown]> {
  if (headers.length > 0 && Array.isArray(headers[0]))
    return headers.map((pair) => [(pair as unknown[])[0], (pair as unknown[])[1]] as const);
  // Node refuses a flat list of odd length before it changes anything.
  if (headers.length % 2 !== 0) {
    throw Object.assign(new TypeError("The argument 'headers' is invalid: a flat list of names and values has an even length"), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  const entries: Array<readonly [unknown, unknown]> = [];
  for (let i = 0; i < headers.length; i += 2) entries.push([headers[i], headers[i + 1]]);
  return entries;
}

/**
 * Applies `writeHead(status[, message][, headers])` as setHeader calls, so nothing is sent yet.
 * As in Node, a name in a list replaces the value set before, and a name listed twice keeps both.
 */
export function applyWriteHead(res: ServerResponse, args: unknown[]): void {
  const [status, second, third] = args;
  const headers = typeof second === 'string' ? third : second;
  const entries = Array.isArray(headers) ? listEntries(headers) : undefined;
  res.statusCode = status as number;
  if (typeof second === 'string') res.statusMessage = second;
  if (entries) {
    const grouped = new Map<string, string[]>();
    for (const [name, value] of entries) {
      const key = String(name).toLowerCase();
      grouped.set(key, [...(grouped.get(key) ?? []), ...(Array.isArray(value) ? value.map(String) : [String(value)])]);
    }
    for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? (values[0] as string) : values);
  } else if (headers) {
    for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) if (value !== undefined) res.setHeader(name, value);
  }
}

/** Responses that answer a retry with the stored response of its first request (idempotency keys). */
const replays = new WeakSet<ServerResponse>();

/** Marks `res` as a stored response replayed to a retry: it is signed anew from what was stored. */
export function markReplay(res: ServerResponse): void {
  replays.add(res);
}

/** Responses already made to sign themselves, and the authorization they sign for. */
const signing = new WeakMap<ServerResponse, { auth: Authorized }>();

/**
 * Makes `res` sign itself when it ends, if the route of `auth` signs responses. The whole body is
 * held until then (a signed response cannot be streamed). Signing failures never send an
 * unsigned answer: the client gets a 500, or the connection is closed if headers were flushed.
 */
export function signNodeResponse(guard: Guard, auth: Authorized, req: IncomingMessage, res: ServerResponse): void {
  if (!guard.signsResponse(auth)) return;
  // Signed once, though several layers let the request through: for the latest authorization,
  // which carries what the earlier layers established (the request signature it must cover).
  const held = signing.get(res);
  if (held) {
    held.auth = auth;
    return;
  }
  const signer = { auth };
  signing.set(res, signer);
  const chunks: Buffer[] = [];
  const { end, write, writeHead } = res;
  // Node's own end() calls this.writeHead(): the originals go back before the response is sent.
  const send = (body: string | Buffer, cb?: () => void) => {
    Object.assign(res, { end, write, writeHead });
    return res.end(body, cb);
  };
  res.writeHead = ((...args: unknown[]) => {
    applyWriteHead(res, args);
    return res;
  }) as typeof res.writeHead;
  res.write = ((chunk: Chunk, encoding?: BufferEncoding | ((e?: Error | null) => void), cb?: (e?: Error | null) => void) => {
    chunks.push(toBuffer(chunk, typeof encoding === 'string' ? encoding : undefined));
    const callback = typeof encoding === 'function' ? encoding : cb;
    if (callback) process.nextTick(callback);
    return true;
  }) as typeof res.write;
  res.end = ((chunk?: Chunk | (() => void), encoding?: BufferEncoding | (() => void), cb?: () => void) => {
    if (typeof chunk === 'function') cb = chunk;
    else if (chunk !== undefined && chunk !== null) chunks.push(toBuffer(chunk, typeof encoding === 'string' ? encoding : undefined));
    if (typeof encoding === 'function') cb = encoding;
    const body = Buffer.concat(chunks);
    // A client that went away receives nothing: nothing to sign. (Koa then ends without the body,
    // which must not become a signed empty answer, stored for retries.)
    if (res.destroyed) return send(body, cb);
    try {
      // HEAD: the body the handler produced is not sent, so nothing is digested (RFC 9110 §9.3.2).
      const content = req.method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304 ? undefined : body;
      const outgoing = { status: res.statusCode, headers: headerSnapshot(res), body: content, replayed: replays.has(res) };
      const signed = guard.signResponse(signer.auth, outgoing);
      for (const [name, value] of Object.entries(signed?.headers ?? {})) res.setHeader(name, value);
      // Open Finance Brasil: the signed JWT takes the place of the body.
      if (signed?.body) return send(Buffer.from(signed.body), cb);
    } catch {
      // Headers already on the wire (flushHeaders): an unsigned answer must not follow them.
      if (res.headersSent) {
        res.destroy();
        return res;
      }
      res.statusCode = 500;
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      res.setHeader('content-type', 'application/json; charset=utf-8');
      return send(JSON.stringify({ error_description: 'The response could not be signed' }), cb);
    }
    return send(body, cb);
  }) as typeof res.end;
}

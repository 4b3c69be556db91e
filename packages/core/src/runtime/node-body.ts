/**
 * The request body as received, for RFC 9530 digests (SIG-09, DIG-03): the bytes are read from
 * Node's `IncomingMessage` before any body parser decodes them, then put back on the stream
 * (`readable.unshift`, which exists to "un-consume" data) so the application's parsers read the
 * same bytes afterwards. Content coding stays applied; Node's HTTP parser has removed the
 * transfer coding.
 */
import type { IncomingMessage } from 'node:http';

export type RawBody = { ok: true; body: Buffer } | { ok: false; reason: 'too_large' | 'aborted' };

const remembered = new WeakMap<IncomingMessage, RawBody>();

/** What a reader found for `req` (the adapters' `rawBody()` middleware, Fastify's preParsing hook). */
export function rememberRawBody(req: IncomingMessage, body: RawBody): void {
  remembered.set(req, body);
}

export function rememberedRawBody(req: IncomingMessage): RawBody | undefined {
  return remembered.get(req);
}

/** Requests whose body {@link tapRawBody} is keeping, with what it has kept so far. */
const taps = new WeakMap<IncomingMessage, { push: IncomingMessage['push']; chunks: Buffer[]; size: number }>();

/**
 * True while the whole body is still on the stream: nobody has read from it yet, or only
 * {@link tapRawBody}, which puts back what it takes.
 */
export function bodyUnread(req: IncomingMessage): boolean {
  return (!req.readableDidRead || taps.has(req)) && !req.readableEnded && !req.destroyed;
}

function untap(req: IncomingMessage, result?: RawBody): void {
  const tap = taps.get(req);
  if (!tap) return;
  taps.delete(req);
  req.push = tap.push;
  if (result) remembered.set(req, result);
}

/**
 * Keeps the body bytes as whoever reads the stream reads them (the application's body parser),
 * without reading it: an unauthenticated client's body is never read for the guard's sake.
 * Node's HTTP parser hands each body chunk to `req.push`, wrapped here; bytes already buffered
 * when the tap goes on are taken and put back. Past `limit` bytes it keeps `too_large`.
 */
export function tapRawBody(req: IncomingMessage, limit: number): void {
  if (remembered.has(req) || taps.has(req) || !bodyUnread(req)) return;
  const tap = { push: req.push, chunks: [] as Buffer[], size: 0 };
  const keep = (chunk: Buffer): void => {
    tap.size += chunk.length;
    if (tap.size > limit) untap(req, { ok: false, reason: 'too_large' });
    else tap.chunks.push(chunk);
  };
  const finish = () => untap(req, { ok: true, body: Buffer.concat(tap.chunks) });
  taps.set(req, tap);
  req.push = function push(chunk, encoding) {
    // The parser sets `complete`, then pushes null: the end of the message.
    if (chunk === null) finish();
    else if (Buffer.isBuffer(chunk)) keep(chunk);
    return tap.push.call(this, chunk, encoding);
  };
  if (req.readableLength > 0) {
    const head = req.read() as Buffer | null;
    if (head) {
      req.unshift(head);
      keep(head);
    }
  }
  if (req.complete && taps.has(req)) finish();
}

/**
 * True once the whole message is on the stream: HTTP/1's `complete` (set by the parser before it
 * pushes the end); HTTP/2's compatibility request sets `complete` only once the end was read, so
 * the end already pushed onto the stream (`ended`) counts too.
 */
function received(req: IncomingMessage): boolean {
  return req.complete || (req as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
}

/**
 * Reads the whole body (at most `limit` bytes) and leaves it on the stream for the next reader.
 * Past the limit it stops, puts back what it read, and reports `too_large`; the rest of the
 * stream is left to the application.
 */
export function readRawBody(req: IncomingMessage, limit: number): Promise<RawBody> {
  // What a tap kept so far is still on the stream: read all of it here instead.
  untap(req);
  // The whole message came and nothing is buffered (an empty chunked body): no 'readable' would
  // follow, only an 'end' that the parsers after the guard must still see.
  if (received(req) && req.readableLength === 0) return Promise.resolve({ ok: true, body: Buffer.alloc(0) });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: RawBody) => {
      req.off('readable', onReadable);
      req.off('error', onError);
      req.off('aborted', onError);
      const read = result.ok ? result.body : Buffer.concat(chunks);
      // Before 'end' has been emitted, unshift puts the bytes back for the next consumer.
      if (read.length > 0 && !req.readableEnded) req.unshift(read);
      resolve(result);
    };
    const onError = () => finish({ ok: false, reason: 'aborted' });
    const onReadable = () => {
      for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null) {
        chunks.push(chunk);
        size += chunk.length;
        if (size > limit) {
          finish({ ok: false, reason: 'too_large' });
          return;
        }
      }
      if (received(req)) finish({ ok: true, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks) });
    };
    req.on('error', onError);
    req.on('aborted', onError);
    req.on('readable', onReadable);
  });
}

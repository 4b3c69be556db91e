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

/** True while nobody has read from the request stream yet. */
export function bodyUnread(req: IncomingMessage): boolean {
  return !req.readableDidRead && !req.readableEnded && !req.destroyed;
}

/**
 * Reads the whole body (at most `limit` bytes) and leaves it on the stream for the next reader.
 * Past the limit it stops, puts back what it read, and reports `too_large`; the rest of the
 * stream is left to the application.
 */
export function readRawBody(req: IncomingMessage, limit: number): Promise<RawBody> {
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
      // `complete`: the HTTP parser has delivered the whole message.
      if (req.complete) finish({ ok: true, body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks) });
    };
    req.on('error', onError);
    req.on('aborted', onError);
    req.on('readable', onReadable);
  });
}

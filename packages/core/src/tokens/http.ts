/**
 * Outbound HTTPS for calls that `fetch` cannot make: a client certificate on the connection
 * (RFC 8705 `tls_client_auth`) and a private CA. Bounded in time and size; every failure is a
 * `ServiceUnavailable`, which the guard turns into 503 (DEC-09).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export class ServiceUnavailable extends Error {}

export interface PostOptions {
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  /** Client certificate and key (PEM) to present, and a CA (PEM) to trust besides the system's. */
  tls?: { cert?: string; key?: string; ca?: string };
}

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

const MAX_ANSWER_BYTES = 256 * 1024;

export function postForm(url: string, options: PostOptions): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const common = {
      method: 'POST',
      headers: { ...options.headers, 'content-length': String(Buffer.byteLength(options.body)) },
      timeout: options.timeoutMs,
    };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          req.destroy(new ServiceUnavailable(`answer from ${target.origin} exceeds ${MAX_ANSWER_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type'] ?? '').toLowerCase(),
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', (e) => reject(new ServiceUnavailable(e.message)));
    };
    const req =
      target.protocol === 'https:'
        ? httpsRequest(target, { ...common, ...options.tls, agent: options.tls?.cert ? false : undefined }, onResponse)
        : httpRequest(target, common, onResponse);
    // A hard deadline for the whole exchange, not only for idle sockets.
    const deadline = setTimeout(
      () => req.destroy(new ServiceUnavailable(`no answer from ${target.origin} in ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => req.destroy(new ServiceUnavailable(`no answer from ${target.origin} in ${options.timeoutMs} ms`)));
    req.on('error', (e) => reject(e instanceof ServiceUnavailable ? e : new ServiceUnavailable(`POST ${target.origin}: ${e.message}`)));
    req.end(options.body);
  });
}

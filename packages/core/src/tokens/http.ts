/**
 * Every outbound call of the guard goes through `exchange`: discovery and JWK sets (GET),
 * introspection (POST), client key sets. One place for what each call must respect, however its
 * URL was learned (configured, discovered from metadata, returned by a client resolver):
 * - FAPI 2.0 §5.2.1: TLS; plain http on loopback only. Checked before anything is sent.
 * - Size: a `Content-Length` above the limit is refused before the body is read, and the body is
 *   read chunk by chunk with the connection dropped at the limit, so a document that never ends
 *   costs at most the limit (not the memory of the process).
 * - A hard deadline for the whole exchange, not only for idle sockets.
 * - No redirects: a 3xx is an answer like any other non-200.
 * Node's own client rather than `fetch`, because introspection needs a client certificate on the
 * connection (RFC 8705 `tls_client_auth`) and a private CA. Every failure is a
 * `ServiceUnavailable`, which the guard turns into 503 (DEC-09).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { assertSecureUrl } from '../url.js';

export class ServiceUnavailable extends Error {}

export interface ExchangeOptions {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** Largest answer body accepted, in bytes. */
  maxBytes: number;
  /** What the URL is, for messages (`jwks_uri`, `introspection_endpoint`, ...). */
  what: string;
  /** Client certificate and key (PEM) to present, and a CA (PEM) to trust besides the system's. */
  tls?: { cert?: string; key?: string; ca?: string };
}

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

/**
 * The check every outbound URL passes, as a `ServiceUnavailable` with the reason for operators:
 * a discovered URL that fails it is a misconfigured (or hostile) authorization server, not a
 * start-up error.
 */
export function outboundUrl(value: string, what: string): URL {
  try {
    return assertSecureUrl(value, what);
  } catch (e) {
    throw new ServiceUnavailable((e as Error).message);
  }
}

export function exchange(url: string, options: ExchangeOptions): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const target = outboundUrl(url, options.what);
    const where = `${options.method} ${options.what} ${target.origin}`;
    const { maxBytes } = options;
    const headers = { ...options.headers };
    if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    const common = { method: options.method, headers, timeout: options.timeoutMs };
    const onResponse = (res: IncomingMessage) => {
      const declared = Number(res.headers['content-length']);
      if (declared > maxBytes) {
        req.destroy(new ServiceUnavailable(`${where}: Content-Length ${declared} exceeds ${maxBytes} bytes`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          req.destroy(new ServiceUnavailable(`${where}: answer exceeds ${maxBytes} bytes`));
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
      res.on('error', (e) => reject(e instanceof ServiceUnavailable ? e : new ServiceUnavailable(`${where}: ${e.message}`)));
    };
    let req: ReturnType<typeof httpRequest>;
    try {
      req =
        target.protocol === 'https:'
          ? httpsRequest(target, { ...common, ...options.tls, agent: options.tls?.cert ? false : undefined }, onResponse)
          : httpRequest(target, common, onResponse);
    } catch (e) {
      reject(new ServiceUnavailable(`${where}: ${(e as Error).message}`));
      return;
    }
    const late = () => new ServiceUnavailable(`${where}: no answer in ${options.timeoutMs} ms`);
    const deadline = setTimeout(() => req.destroy(late()), options.timeoutMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => req.destroy(late()));
    req.on('error', (e) => reject(e instanceof ServiceUnavailable ? e : new ServiceUnavailable(`${where}: ${e.message}`)));
    req.end(options.body);
  });
}

const MAX_ANSWER_BYTES = 256 * 1024;

/** POSTs a form (RFC 7662 §2.1); the answer is bounded to 256 KiB. */
export function postForm(url: string, options: Omit<ExchangeOptions, 'method' | 'maxBytes'>): Promise<HttpAnswer> {
  return exchange(url, { ...options, method: 'POST', maxBytes: MAX_ANSWER_BYTES });
}

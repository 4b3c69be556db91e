/**
 * The probe's only way to the network: one HTTP(S) request at a time, spaced to a bounded rate,
 * counted, with a hard cap on the total. Built on node:http(s) rather than fetch because the
 * probe must send what fetch refuses to (two `Authorization` fields, a body on GET) and read
 * every `WWW-Authenticate` field separately.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** A client certificate for mutual TLS (RFC 8705), PEM. */
export interface ClientCertificate {
  cert: string;
  key: string;
}

export interface Exchange {
  status: number;
  /** Header fields by lower-case name, each field value separately, in order. */
  headers: Record<string, string[]>;
  body: string;
}

export interface OutgoingRequest {
  method: string;
  url: string;
  /** Field name → value(s); an array sends the field once per value. */
  headers?: Record<string, string | string[]>;
  body?: string;
  /** Client certificate for this connection; none when absent. */
  certificate?: ClientCertificate;
}

export interface SenderOptions {
  /** Requests per second, at most. */
  rate: number;
  /** Requests in the whole run, at most. */
  maxRequests: number;
  /** Total time for one exchange, connection to the last body byte. */
  timeoutMs: number;
  /** Accept any server certificate (staging servers with private CAs). */
  insecureTls: boolean;
  /** Extra CA certificates (PEM) to trust for the server. */
  ca?: string;
}

export class RequestBudgetExceeded extends Error {}

/** Why no HTTP answer came: what a user checks differs for each. */
export type NetworkFailure = 'refused' | 'dns' | 'timeout' | 'unreachable' | 'reset' | 'tls' | 'other';

const FAILURE_TEXT: Record<NetworkFailure, string> = {
  refused: 'connection refused',
  dns: 'host name not found (DNS)',
  timeout: 'timeout',
  unreachable: 'network unreachable',
  reset: 'connection closed without a complete answer',
  tls: 'TLS handshake failed',
  other: 'no answer',
};

/** No HTTP answer at all (connection, DNS, TLS, deadline): not a verdict on the server's checks. */
export class NetworkError extends Error {
  constructor(
    readonly url: string,
    readonly failure: NetworkFailure,
    detail: string,
  ) {
    super(`${FAILURE_TEXT[failure]}: ${detail}`);
  }
}

/** The kind of a Node.js socket, DNS or TLS error, by its `code`. */
export function networkFailure(code: string | undefined): NetworkFailure {
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ENOTFOUND' || (code?.startsWith('EAI_') ?? false)) return 'dns';
  if (code === 'ETIMEDOUT' || code === 'ESOCKETTIMEDOUT') return 'timeout';
  if (code === 'ENETUNREACH' || code === 'EHOSTUNREACH' || code === 'EHOSTDOWN') return 'unreachable';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED') return 'reset';
  if (code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code)) return 'tls';
  return 'other';
}

/** Sends requests one after another, never faster than `rate` per second. */
export class Sender {
  /** Requests sent so far. */
  count = 0;
  private next = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: SenderOptions) {}

  send(request: OutgoingRequest): Promise<Exchange> {
    const run = this.queue.then(async () => {
      if (this.count >= this.options.maxRequests) {
        throw new RequestBudgetExceeded(`request budget of ${this.options.maxRequests} spent`);
      }
      const wait = this.next - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      this.next = Date.now() + Math.ceil(1000 / this.options.rate);
      this.count++;
      return this.raw(request);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private raw(request: OutgoingRequest): Promise<Exchange> {
    const url = new URL(request.url);
    const tls = url.protocol === 'https:';
    const headers: Record<string, string | string[]> = { ...request.headers };
    if (request.body !== undefined) headers['content-length'] = String(Buffer.byteLength(request.body));
    const send = tls ? httpsRequest : httpRequest;
    const { timeoutMs } = this.options;
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        f();
      };
      const fail = (e: Error) => settle(() => reject(e));
      const failNetwork = (e: Error) =>
        fail(e instanceof NetworkError ? e : new NetworkError(request.url, networkFailure((e as NodeJS.ErrnoException).code), e.message));
      const req = send(
        url,
        {
          method: request.method,
          headers,
          // Idle: no byte for this long. The deadline below bounds the whole exchange.
          timeout: timeoutMs,
          agent: false,
          ...(tls
            ? {
                rejectUnauthorized: !this.options.insecureTls,
                ...(this.options.ca ? { ca: this.options.ca } : {}),
                ...(request.certificate ? { cert: request.certificate.cert, key: request.certificate.key } : {}),
              }
            : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            // A bounded read: the probe needs status, headers and an error body, never more.
            if (size <= MAX_BODY) chunks.push(chunk);
          });
          res.on('end', () =>
            settle(() =>
              resolve({ status: res.statusCode ?? 0, headers: fields(res.rawHeaders), body: Buffer.concat(chunks).toString('utf8') }),
            ),
          );
          res.on('error', failNetwork);
          res.on('aborted', () =>
            fail(new NetworkError(request.url, 'reset', `${request.method} ${request.url}: the connection closed mid-answer`)),
          );
        },
      );
      // A total deadline: a server that trickles an endless body, a byte at a time, cannot hold the run.
      const deadline = setTimeout(() => {
        const error = new NetworkError(
          request.url,
          'timeout',
          `${request.method} ${request.url}: no complete answer within ${timeoutMs} ms`,
        );
        fail(error);
        req.destroy(error);
      }, timeoutMs);
      req.on('timeout', () =>
        req.destroy(new NetworkError(request.url, 'timeout', `${request.method} ${request.url}: no answer in ${timeoutMs} ms`)),
      );
      req.on('error', failNetwork);
      req.end(request.body);
    });
  }
}

const MAX_BODY = 1_048_576;

function fields(raw: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const values = out[name] ?? [];
    values.push(raw[i + 1] as string);
    out[name] = values;
  }
  return out;
}

/** The headers as fetch's `Headers` would join them (for oauth4webapi). */
export function joinedHeaders(headers: Record<string, string[]>): Headers {
  const out = new Headers();
  for (const [name, values] of Object.entries(headers)) for (const value of values) out.append(name, value);
  return out;
}

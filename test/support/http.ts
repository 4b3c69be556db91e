/**
 * A small HTTP client on node:http that can send what fetch cannot: repeated header lines
 * (two `Authorization` or `DPoP` headers), raw methods, request targets that are not normalised,
 * and bodies with any content type.
 */
import type { KeyObject } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { type AddressInfo, connect } from 'node:net';

export interface SendOptions {
  method?: string;
  /** A string[] value is sent as that many header lines. */
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /**
   * Send the body as these pieces instead, each written after a pause of 20 ms (with
   * `Transfer-Encoding: chunked`, one chunk each).
   */
  chunks?: readonly Buffer[];
  /** For https URLs: the client certificate and key to present, and the CA to trust. */
  tls?: { cert?: string; key?: string; ca?: string };
  /** The request target exactly as sent (parsing `url` would normalise its dot segments away). */
  target?: string;
}

export interface Received {
  status: number;
  headers: IncomingHttpHeaders;
  /** Header lines as received (name, value, name, value…). */
  rawHeaders: string[];
  text: string;
  json: Record<string, unknown>;
}

export function send(url: string, options: SendOptions = {}): Promise<Received> {
  return new Promise((resolve, reject) => {
    const common = { method: options.method ?? 'GET', timeout: 10_000, ...(options.target === undefined ? {} : { path: options.target }) };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, text, json });
      });
    };
    const req = url.startsWith('https:')
      ? httpsRequest(url, { ...common, ...options.tls, agent: false }, onResponse)
      : httpRequest(url, common, onResponse);
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    for (const [name, value] of Object.entries(options.headers ?? {})) req.setHeader(name, value);
    const pieces = [...(options.chunks ?? [])];
    const next = () => {
      const piece = pieces.shift();
      if (piece === undefined) req.end();
      else req.write(piece, () => setTimeout(next, 20));
    };
    if (options.chunks) next();
    else req.end(options.body);
  });
}

/**
 * Writes a request head over a raw socket with the given `head` bytes of its body, then sends
 * nothing more (unless `rest` is given, after `restAfterMs`). Resolves with the status the
 * server answered while the body was withheld; rejects when no answer came within `waitMs`.
 */
export function trickle(
  url: string,
  request: {
    method?: string;
    path: string;
    headers: Record<string, string>;
    head: string | Buffer;
    rest?: string | Buffer;
    restAfterMs?: number;
  },
  waitMs = 5000,
): Promise<{ status: number; head: string; text: string; sentBytes: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = '';
    let sentBytes = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${waitMs} ms while ${sentBytes} body bytes were sent`));
    }, waitMs);
    const lines = Object.entries({ host: `${hostname}:${port}`, ...request.headers }).map(([name, value]) => `${name}: ${value}\r\n`);
    socket.on('connect', () => {
      socket.write(`${request.method ?? 'POST'} ${request.path} HTTP/1.1\r\n${lines.join('')}\r\n`);
      socket.write(request.head);
      sentBytes = Buffer.byteLength(request.head);
      const { rest } = request;
      if (rest !== undefined)
        setTimeout(() => {
          socket.write(rest);
          sentBytes += Buffer.byteLength(rest);
        }, request.restAfterMs ?? 50);
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(received);
      if (end < 0 || !length || received.length < end + 4 + Number(length[1])) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(received.slice(9, 12)), head: received.slice(0, end), text: received.slice(end + 4), sentBytes });
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** A server on 127.0.0.1: its URL, and how to close it with its open connections. */
export interface Listening {
  url: string;
  close(): Promise<unknown>;
}

/** `server` once it listens (call `listen(0, '127.0.0.1')` on it first). */
export async function listening(server: Server): Promise<Listening> {
  if (!server.listening) await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

/** A client's JWK set on 127.0.0.1: `publicKey` as `kid` (use sig) at `/client.jwks`, 404 elsewhere. */
export function clientKeyStore(publicKey: KeyObject, kid = 'client-key'): Promise<Listening> {
  const jwk = { ...(publicKey.export({ format: 'jwk' }) as object), kid, use: 'sig' };
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/client.jwks' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.url === '/client.jwks' ? { keys: [jwk] } : {}));
  });
  return listening(server.listen(0, '127.0.0.1'));
}

/**
 * The status of one HTTP/2 request on `session` (`:method` GET unless given): -1 when the stream
 * errs (a reset), -2 when no answer ends within 5 s.
 */
export function h2Status(session: ClientHttp2Session, headers: Record<string, string>): Promise<number> {
  return new Promise<number>((resolve) => {
    const stream = session.request({ ':method': 'GET', ...headers });
    let status = 0;
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.on('error', () => resolve(-1));
    stream.setTimeout(5000, () => {
      stream.close();
      resolve(-2);
    });
    stream.resume();
    stream.on('end', () => resolve(status));
  });
}

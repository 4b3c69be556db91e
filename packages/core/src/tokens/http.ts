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
 * `ServiceUnavailable`, which the guard turns into 503.
 */
import { type Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { assertSecureUrl } from '../common/url.js';

// proxy-from-env ships no types. Its one function: the proxy URL for a URL from HTTP(S)_PROXY /
// ALL_PROXY, or '' when there is none or NO_PROXY names the host.
const { getProxyForUrl } = require('proxy-from-env') as { getProxyForUrl(url: string): string };

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
  /** How to reach the URL: directly, through a forward proxy, or with the application's agent. */
  outbound?: Outbound;
}

/**
 * How the guard's outbound calls leave the process (see `GuardOptions.outbound`).
 * Without it, every call connects directly.
 */
export interface OutboundOptions {
  /**
   * A forward proxy for every outbound call. `'env'`: the `HTTPS_PROXY` / `HTTP_PROXY` /
   * `ALL_PROXY` variables, with `NO_PROXY` naming hosts reached directly (curl's rules, read at
   * each call). A URL (`http://proxy.internal:3128`, credentials allowed): every call goes through
   * it. https targets are tunnelled with `CONNECT` (RFC 9110 §9.3.6), so TLS, the server's
   * certificate check and any client certificate stay end to end; http targets (loopback only)
   * are sent in absolute form (RFC 9112 §3.2.2).
   * @default undefined (direct connections)
   */
  proxy?: 'env' | string;
  /**
   * An `http.Agent` / `https.Agent` of the application's (e.g. from a proxy library, or with
   * keep-alive tuning) used for every call instead. It must verify TLS as Node's own does.
   * Not combinable with `proxy`.
   * @default undefined
   */
  agent?: Agent;
}

/** The resolved form of {@link OutboundOptions}: the proxy, if any, for one target. */
export interface Outbound {
  agent?: Agent;
  proxyFor(target: URL): URL | undefined;
}

export function resolveOutbound(options: OutboundOptions | undefined): Outbound | undefined {
  if (!options || (options.proxy === undefined && options.agent === undefined)) return undefined;
  if (options.proxy !== undefined && options.agent !== undefined) {
    throw new TypeError('fapi-guard: outbound.proxy and outbound.agent cannot be combined (the agent decides how to connect)');
  }
  const { proxy, agent } = options;
  if (proxy === undefined || proxy === 'env') {
    return {
      agent,
      proxyFor: (target) => (proxy === 'env' ? proxyUrl(getProxyForUrl(target.href), 'HTTPS_PROXY / HTTP_PROXY') : undefined),
    };
  }
  const fixed = proxyUrl(proxy, 'outbound.proxy', TypeError);
  return { proxyFor: () => fixed };
}

/** A proxy is spoken to in plain HTTP (`http://host:port`); anything else is refused, not guessed. */
function proxyUrl(value: string, what: string, Failure: new (message: string) => Error = ServiceUnavailable): URL | undefined {
  if (value === '') return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Failure(`fapi-guard: ${what} is not a URL`);
  }
  if (url.protocol !== 'http:') throw new Failure(`fapi-guard: ${what} must be an http:// proxy URL (got ${url.protocol})`);
  return url;
}

function proxyAuthorization(proxy: URL): Record<string, string> {
  if (proxy.username === '' && proxy.password === '') return {};
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'proxy-authorization': `Basic ${Buffer.from(credentials).toString('base64')}` };
}

/** The host to connect to: an IPv6 literal without the brackets a URL writes it in (RFC 3986 §3.2.2). */
export const hostOf = (url: URL): string => (url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname);

/**
 * Opens a `CONNECT` tunnel to `target` through `proxy` and starts TLS inside it, verifying the
 * target's certificate for the target's name. Returns the CONNECT request so the caller's deadline
 * can drop it.
 */
function tunnel(
  proxy: URL,
  target: URL,
  tls: ExchangeOptions['tls'],
  done: (error: Error | null, socket?: Socket) => void,
): ReturnType<typeof httpRequest> {
  const authority = `${target.hostname}:${target.port || 443}`;
  const connect = httpRequest({
    host: hostOf(proxy),
    port: proxy.port || 80,
    method: 'CONNECT',
    path: authority,
    headers: { host: authority, ...proxyAuthorization(proxy) },
    agent: false,
  });
  connect.once('connect', (res, socket) => {
    if (res.statusCode !== 200) {
      socket.destroy();
      done(new ServiceUnavailable(`proxy ${proxy.host} refused CONNECT ${authority}: ${res.statusCode}`));
      return;
    }
    const host = hostOf(target);
    done(null, tlsConnect({ ...tls, socket, host, servername: isIP(host) ? undefined : host }));
  });
  connect.once('error', (e) => done(new ServiceUnavailable(`proxy ${proxy.host}: ${e.message}`)));
  connect.end();
  return connect;
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
    // A body is sent whole by `end(body)`, which gives it its Content-Length (RFC 9110 §8.6).
    const common = { method: options.method, headers: { ...options.headers } };
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
    let connect: ReturnType<typeof httpRequest> | undefined;
    try {
      const proxy = options.outbound?.proxyFor(target);
      const agent = options.outbound?.agent;
      if (proxy && target.protocol === 'https:') {
        const createConnection = (_: unknown, done: (error: Error | null, socket?: Socket) => void) => {
          connect = tunnel(proxy, target, options.tls, done);
          return undefined;
        };
        // `http` speaks HTTP over the TLS socket the tunnel hands back (it refuses https: URLs).
        // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, the tunnel is the connection (createConnection) and Host is set: the port is not used
        const at = { host: hostOf(target), port: target.port || 443, path: `${target.pathname}${target.search}` };
        req = httpRequest({ ...common, ...at, headers: { ...common.headers, host: target.host }, createConnection } as never, onResponse);
      } else if (proxy) {
        // Absolute form: the proxy forwards to the origin named in the request line.
        const headers = { ...common.headers, host: target.host, ...proxyAuthorization(proxy) };
        req = httpRequest({ ...common, headers, host: hostOf(proxy), port: proxy.port || 80, path: target.href, agent: false }, onResponse);
      } else if (target.protocol === 'https:') {
        req = httpsRequest(target, { ...common, ...options.tls, agent: agent ?? (options.tls?.cert ? false : undefined) }, onResponse);
      } else {
        req = httpRequest(target, { ...common, agent }, onResponse);
      }
    } catch (e) {
      reject(new ServiceUnavailable(`${where}: ${(e as Error).message}`));
      return;
    }
    const late = () => new ServiceUnavailable(`${where}: no answer in ${options.timeoutMs} ms`);
    const deadline = setTimeout(() => req.destroy(late()), options.timeoutMs);
    req.on('close', () => {
      clearTimeout(deadline);
      connect?.destroy();
    });
    req.on('error', (e) => reject(e instanceof ServiceUnavailable ? e : new ServiceUnavailable(`${where}: ${e.message}`)));
    req.end(options.body);
  });
}

const MAX_ANSWER_BYTES = 256 * 1024;

/** POSTs a form (RFC 7662 §2.1); the answer is bounded to 256 KiB. */
export function postForm(url: string, options: Omit<ExchangeOptions, 'method' | 'maxBytes'>): Promise<HttpAnswer> {
  return exchange(url, { ...options, method: 'POST', maxBytes: MAX_ANSWER_BYTES });
}

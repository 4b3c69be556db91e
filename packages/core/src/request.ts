/**
 * The framework-free request the core checks, and the construction of the absolute URL the
 * client addressed (needed for DPoP `htu`, RFC 9449 §4.3 step 9, and RFC 9421 `@target-uri`).
 */
import { AddressList } from './common/addresses.js';

/** Header lines by lower-cased name, every line kept (duplicates matter: RFC 9449 §4.3 step 1). */
export type GuardHeaders = Readonly<Record<string, readonly string[]>>;

/** What an adapter hands to `guard.check`. */
export interface GuardRequest {
  /** Request method, as received (RFC 9110 methods are case-sensitive). */
  method: string;
  /** Absolute URL as the client addressed it, query included. Build it with {@link requestUrl}. */
  url: string;
  /** All header lines, names lower-cased. Build it with {@link headersFromRaw}. */
  headers: GuardHeaders;
  /** The request body when the framework already read one: parsed (an object, `URLSearchParams`, a string) or its bytes (`Uint8Array`); a form body is looked at to refuse a token in it (RFC 6750 §2.2). */
  body?: unknown;
  /**
   * The body bytes as received (content coding applied, transfer coding removed), for routes
   * that check request signatures (RFC 9530 digests are over these bytes).
   */
  rawBody?: Uint8Array;
  /** DER of the client certificate of the TLS connection, when there is one. */
  clientCertificate?: Uint8Array;
  /** Address of the peer (a proxy, when there is one): decides whether its certificate header is believed. */
  remoteAddress?: string;
}

/**
 * Groups Node's `rawHeaders` (name, value, name, value…) by lower-cased name. Node folds or
 * drops duplicates in `req.headers` (it keeps only the first `Authorization`), so the adapters
 * read `rawHeaders` to see what the client really sent.
 */
export function headersFromRaw(raw: readonly string[]): GuardHeaders {
  const headers: Record<string, string[]> = Object.create(null);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    const lines = headers[name];
    if (lines) lines.push(value);
    else headers[name] = [value];
  }
  return headers;
}

/** The lines of one header (empty when absent). */
export function headerLines(headers: GuardHeaders, name: string): readonly string[] {
  return headers[name] ?? [];
}

/**
 * True when the request may carry content: a positive Content-Length or a Transfer-Encoding
 * (RFC 9112 §6.3); on HTTP/2 (pseudo-header `:method` in the lines) also no Content-Length at all,
 * since there the frames delimit the content and Content-Length is optional (RFC 9113 §8.1.1).
 */
export function announcesBody(headers: GuardHeaders): boolean {
  if (headerLines(headers, 'transfer-encoding').length > 0) return true;
  const length = headerLines(headers, 'content-length')[0];
  if (length === undefined) return headerLines(headers, ':method').length > 0;
  return length.trim() !== '0';
}

/** How the absolute request URL is found. All fields are optional; see each default. */
export interface OriginOptions {
  /**
   * The public origin(s) clients address, e.g. `https://api.bank.example`. DPoP `htu`
   * (RFC 9449 §4.3 step 9) and RFC 9421 `@target-uri` are checked against a URL built from it,
   * never from a client-chosen `Host` alone (RFC 9421 §7.4.3). With one origin, `Host` is not
   * looked at; with several, the one whose host equals the request's `Host` (or a trusted
   * proxy's `X-Forwarded-Host`) is used and a request for any other host is refused (400).
   * For local development set it explicitly, e.g. `http://localhost:3000`.
   * @default the distinct origins of the `audience` values (the resource identifier is the URL
   * clients address, RFC 8707 §2); required when an audience is not an http(s) URL (a URN)
   */
  publicUrl?: string | readonly string[];
  /**
   * Peers (IP addresses or CIDR ranges) whose `X-Forwarded-Host` (and `X-Forwarded-Proto`) are
   * believed. They only select among the configured origins: a forwarded host that is none of
   * them is refused. Forwarding headers from any other peer are ignored.
   * @default [] (forwarding headers are never believed)
   */
  trustedProxies?: readonly string[];
}

/** What the adapter knows of the connection and the request line. */
export interface ConnectionInfo {
  /** True when the connection to this process is TLS. */
  encrypted: boolean;
  /** Remote address of the connection (the proxy, when there is one). */
  remoteAddress: string | undefined;
  /** Request target as received: path and query (origin-form; any other form is refused). */
  path: string;
  headers: GuardHeaders;
}

/** The result of URL construction: the URL, or why none can be trusted (`reason` when it is not `request_host_unknown`). */
export type UrlResult = { ok: true; url: string } | { ok: false; reason?: 'request_target_form'; detail: string };

const HOST_SYNTAX = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/;

/** Parsed form of {@link OriginOptions}, built once at start-up. */
export class OriginResolver {
  private readonly origins: readonly URL[];
  private readonly proxies: AddressList;

  /** `publicUrl` is required here; `createGuard` fills it in from the audience when unset. */
  constructor(options: OriginOptions) {
    const list = options.publicUrl === undefined ? [] : [options.publicUrl].flat();
    if (list.length === 0) throw new TypeError("fapi-guard: publicUrl is required: the origin clients address, e.g. 'https://api.example'");
    this.origins = list.map((value) => {
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        throw new TypeError(`fapi-guard: publicUrl "${value}" is not an absolute URL`);
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        throw new TypeError(`fapi-guard: publicUrl "${value}" must be an http(s) origin`);
      }
      if (url.pathname !== '/' || url.search || url.hash) {
        throw new TypeError(`fapi-guard: publicUrl "${value}" must be an origin without path, query or fragment`);
      }
      return url;
    });
    // An empty list believes no peer.
    this.proxies = new AddressList(options.trustedProxies ?? [], 'trustedProxies');
  }

  /** True when the peer is one of `trustedProxies`. */
  isTrustedProxy(remoteAddress: string | undefined): boolean {
    return this.proxies.has(remoteAddress);
  }

  /**
   * Builds the absolute URL the client addressed, on a configured origin only. Never throws:
   * a `Host` that is malformed or names no configured origin gives a refusal (400).
   */
  resolve(conn: ConnectionInfo): UrlResult {
    // Origin-form only. RFC 9112 §3.2.2 has servers accept the absolute-form too, but the routers
    // in front of the guard read it differently (Fastify 4's and @nestjs/platform-fastify's
    // find-my-way route `https://api.example?/accounts` as `/accounts`, the URL parser reads `/`), so a
    // proof or signature would be checked against a URL the app may not serve: refused, 400.
    if (!conn.path.startsWith('/')) return { ok: false, reason: 'request_target_form', detail: 'request target is not in origin-form' };
    const hostLines = headerLines(conn.headers, 'host');
    if (hostLines.length > 1) return { ok: false, detail: 'several Host headers' };
    // HTTP/2 and HTTP/3 carry the authority in `:authority` (Node's compatibility API keeps it in
    // the header lines); HTTP/1.1 cannot send a field name with a colon.
    const authority = headerLines(conn.headers, ':authority');
    if (authority.length > 1) return { ok: false, detail: 'several :authority pseudo-headers' };
    let scheme = conn.encrypted ? 'https:' : 'http:';
    const given = hostLines[0]?.trim();
    const pseudo = authority[0]?.trim();
    // RFC 9113 §8.3.1: a Host that names another entity than :authority makes the request malformed.
    if (given !== undefined && pseudo !== undefined && (hostOn(scheme, given) ?? given) !== (hostOn(scheme, pseudo) ?? pseudo)) {
      return { ok: false, detail: 'Host and :authority differ' };
    }
    if (this.origins.length === 1) return { ok: true, url: join(this.origins[0] as URL, conn.path) };
    let host = given ?? pseudo;
    if (this.isTrustedProxy(conn.remoteAddress)) {
      const proto = lastForwarded(conn.headers, 'x-forwarded-proto');
      const fwdHost = lastForwarded(conn.headers, 'x-forwarded-host');
      if (proto === 'https' || proto === 'http') scheme = `${proto}:`;
      if (fwdHost) host = fwdHost;
    }
    if (!host || !HOST_SYNTAX.test(host)) return { ok: false, detail: 'missing or malformed Host' };
    const named = this.origins.filter((o) => o.host === hostOn(o.protocol, host));
    // The same host under http and https: the scheme of the connection (or trusted proxy) decides.
    const origin = named.find((o) => o.protocol === scheme) ?? named[0];
    return origin ? { ok: true, url: join(origin, conn.path) } : { ok: false, detail: `host ${host} is not a configured origin` };
  }
}

/** `host` as the URL parser normalises it under `protocol` (case, default port), or `undefined` when it cannot be a host. */
function hostOn(protocol: string, host: string): string | undefined {
  const url = `${protocol}//${host}`;
  // Not parsed: an out-of-range port, a bad IDNA label (`xn--a`), a malformed IPv6 literal.
  return URL.canParse(url) ? new URL(url).host : undefined;
}

/** The value the nearest proxy appended (the last one; earlier ones came from the client side). */
function lastForwarded(headers: GuardHeaders, name: string): string | undefined {
  const lines = headerLines(headers, name);
  const last = lines[lines.length - 1];
  if (last === undefined) return undefined;
  const parts = last.split(',');
  // split() gives at least one part.
  return (parts[parts.length - 1] as string).trim().toLowerCase() || undefined;
}

function join(origin: URL, path: string): string {
  return `${origin.protocol}//${origin.host}${path}`;
}

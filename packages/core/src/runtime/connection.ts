/**
 * What an adapter knows of the connection a request came on — header lines as received, the
 * request target, TLS, the peer's address and certificate — and the one place where that becomes
 * the core's {@link GuardRequest}: Node adapters and Fetch (Web-standard) adapters share it.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { GuardError } from '../errors.js';
import type { Guard } from '../guard.js';
import type { CompiledPolicy } from '../policy.js';
import type { GuardHeaders, GuardRequest } from '../request.js';

/** Facts about the connection of one request. Every field is optional; see each default. */
export interface RequestConnection {
  /**
   * Header lines as received (name, value, name, value…): Node's `rawHeaders`. They show every
   * repeated line (RFC 9449 §4.3 step 1: one `DPoP` header, RFC 6750 §2: one `Authorization`).
   * @default the request's `Headers`, which fold repeated lines into one comma-joined value
   */
  rawHeaders?: readonly string[];
  /**
   * The request target as received: path and query (origin-form, RFC 9112 §3.2.1; any other form is refused).
   * @default path and query of the request's URL
   */
  target?: string;
  /**
   * True when the connection to this process is TLS.
   * @default true when the request's URL is `https:`
   */
  encrypted?: boolean;
  /**
   * Address of the peer (a proxy, when there is one): decides whether forwarding and certificate
   * headers are believed (`trustedProxies`, `mtls.proxy.trustedPeers`).
   * @default undefined (no peer is trusted)
   */
  remoteAddress?: string;
  /** DER of the client certificate of the TLS connection (RFC 8705 §3). @default undefined */
  clientCertificate?: Uint8Array;
}

/** A connection whose header lines, target and TLS state are known (Node's, or a Fetch request's with the defaults applied). */
export type KnownConnection = RequestConnection & { rawHeaders?: readonly string[]; target: string; encrypted: boolean };

/** The connection of a Node request: raw header lines, target, TLS socket and its peer certificate. */
export function nodeConnection(req: IncomingMessage): KnownConnection & { rawHeaders: readonly string[] } {
  const socket = req.socket as Partial<TLSSocket> | undefined;
  const encrypted = socket?.encrypted === true;
  const connection: KnownConnection & { rawHeaders: readonly string[] } = {
    rawHeaders: req.rawHeaders,
    target: req.url ?? '/',
    encrypted,
  };
  if (socket?.remoteAddress) connection.remoteAddress = socket.remoteAddress;
  if (encrypted && typeof socket?.getPeerCertificate === 'function') {
    const cert = socket.getPeerCertificate();
    if (cert?.raw) connection.clientCertificate = new Uint8Array(cert.raw);
  }
  return connection;
}

/**
 * The core's view of one request: the absolute URL from the guard's origin rules (never from a
 * client-chosen `Host` alone), the headers, and the peer. A request whose URL cannot be trusted
 * is refused (400).
 */
export function guardRequestOn(
  guard: Guard,
  method: string,
  headers: GuardHeaders,
  connection: KnownConnection,
  policy?: CompiledPolicy,
): GuardRequest | GuardError {
  const { encrypted, remoteAddress, target } = connection;
  const url = guard.requestUrl({ encrypted, remoteAddress, path: target, headers });
  if (!url.ok) return guard.refuse(url.reason ?? 'request_host_unknown', url.detail, policy, headers);
  const request: GuardRequest = { method, url: url.url, headers };
  if (remoteAddress) request.remoteAddress = remoteAddress;
  if (connection.clientCertificate) request.clientCertificate = connection.clientCertificate;
  return request;
}

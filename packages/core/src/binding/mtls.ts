/**
 * RFC 8705 certificate-bound access tokens: the `x5t#S256` confirmation method (§3.1), and where
 * the client certificate comes from — the TLS connection, or a TLS-terminating proxy that is
 * explicitly trusted (RFC 9440; nginx and Envoy formats). A certificate header from anyone
 * else is ignored: a client that merely writes a header proves nothing (RFC 9440 §4).
 */
import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { parseItem, parseList } from 'structured-headers';
import { AddressList } from '../common/addresses.js';
import { type GuardRequest, headerLines } from '../request.js';

/** base64url (no padding) SHA-256 of the certificate DER (RFC 8705 §3.1). */
export function certificateThumbprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

/** How a TLS-terminating proxy forwards the client certificate. */
export type ClientCertificateFormat =
  /** RFC 9440 `Client-Cert: :base64(DER):` (and `Client-Cert-Chain`). */
  | 'rfc9440'
  /** nginx `$ssl_client_escaped_cert`: URL-encoded PEM. */
  | 'nginx'
  /**
   * Envoy `x-forwarded-client-cert` (`Hash=…;Cert="…"`): the last element, which the nearest
   * proxy wrote. Safe with `forward_client_cert_details: SANITIZE_SET` (recommended) or
   * `APPEND_FORWARD`; never with `FORWARD_ONLY` or `ALWAYS_FORWARD_ONLY`, which pass on the
   * client's own text.
   */
  | 'envoy';

/** A TLS-terminating proxy whose certificate header is believed. Off unless configured. */
export interface CertificateProxyOptions {
  /** @default 'rfc9440' */
  format?: ClientCertificateFormat;
  /**
   * The header carrying the certificate.
   * @default 'client-cert' (rfc9440), 'x-ssl-client-cert' (nginx), 'x-forwarded-client-cert' (envoy)
   */
  header?: string;
  /** Peers (IPs or CIDR ranges) the proxy connects from. Give this, `sharedSecret`, or both. */
  trustedPeers?: readonly string[];
  /**
   * A header the proxy sets to a secret value (and strips from client requests). Give this,
   * `trustedPeers`, or both; with both, both must match.
   */
  sharedSecret?: { header: string; value: string };
}

/** Certificate-bound token support (RFC 8705). */
export interface MtlsOptions {
  /**
   * Trust a TLS-terminating proxy to forward the client certificate (RFC 9440 §4: opt-in).
   * @default undefined: only the certificate of the TLS connection itself counts
   */
  proxy?: CertificateProxyOptions;
}

/** The client certificate found for a request. */
export interface ClientCertificate {
  /** `x5t#S256` of the leaf. */
  thumbprint: string;
  /** Where it came from; responses decided by a header must not be cached (RFC 9440 §2.4). */
  source: 'tls' | 'proxy';
  /** DER of the leaf, when known (Envoy may forward only its hash). */
  der?: Uint8Array;
  /**
   * RFC 9440 `Client-Cert-Chain` (TLS order, leaf excluded), when a trusted proxy sent a
   * well-formed one with the certificate. Not validated: proof of possession needs no chain
   * (RFC 8705 §6.2); it is here for policies that want their own CA checks.
   */
  chain?: Uint8Array[];
}

export type CertificateLookup = { certificate?: ClientCertificate; note?: string };

const DEFAULT_HEADERS: Record<ClientCertificateFormat, string> = {
  rfc9440: 'client-cert',
  nginx: 'x-ssl-client-cert',
  envoy: 'x-forwarded-client-cert',
};

const PEM_CERTIFICATE = /^-----BEGIN CERTIFICATE-----\r?\n?([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----\r?\n?$/;

/**
 * DER of a PEM certificate (RFC 7468 §5), or `undefined` unless the text is exactly one
 * certificate: nothing before or after it, and base64 that decodes one way only (Node's decoder
 * would otherwise stop at a stray `=` and skip unknown characters).
 */
function pemToDer(pem: string): Uint8Array | undefined {
  // Stryker disable next-line OptionalChaining: equivalent, without a match it throws inside urlEncodedCertificate's try: no certificate either way
  const body = PEM_CERTIFICATE.exec(pem)?.[1]?.replace(/\r?\n/g, '');
  // Stryker disable next-line ConditionalExpression: equivalent, Buffer.from(undefined) throws inside urlEncodedCertificate's try: no certificate either way
  if (body === undefined) return undefined;
  const der = Buffer.from(body, 'base64');
  // Only canonical base64 (RFC 4648 §4) encodes back to itself: no stray `=`, missing padding
  // or non-zero padding bits.
  return der.toString('base64') === body ? der : undefined;
}

/** The DER only if it is exactly one X.509 certificate (no bytes after it). */
function asCertificate(der: Uint8Array | undefined): Uint8Array | undefined {
  // Stryker disable next-line ConditionalExpression: equivalent, X509Certificate refuses an empty DER and the catch answers undefined too
  if (!der || der.length === 0) return undefined;
  try {
    return new X509Certificate(der).raw.equals(der) ? der : undefined;
  } catch {
    // not DER of an X.509 certificate
  }
  return undefined;
}

/** A URL-encoded PEM certificate (nginx `$ssl_client_escaped_cert`, Envoy `Cert`): its DER. */
function urlEncodedCertificate(value: string): Uint8Array | undefined {
  try {
    return asCertificate(pemToDer(decodeURIComponent(value)));
  } catch {
    // malformed percent-encoding
  }
  return undefined;
}

/**
 * RFC 9440 §2.2: one sf-binary item (RFC 8941 §3.3.5). Parameters are not defined for
 * `Client-Cert`: an item that carries any is refused rather than read past.
 */
function parseRfc9440(value: string): Uint8Array | undefined {
  try {
    const [bare, parameters] = parseItem(value);
    return bare instanceof ArrayBuffer && parameters.size === 0 ? new Uint8Array(bare) : undefined;
  } catch {
    // not an RFC 8941 item
  }
  return undefined;
}

/**
 * RFC 9440 §2.3: an sf-list of sf-binary items (leaf excluded), without parameters.
 * `undefined` when malformed.
 */
export function parseClientCertChain(value: string): Uint8Array[] | undefined {
  try {
    const list = parseList(value);
    const chain: Uint8Array[] = [];
    for (const [bare, parameters] of list) {
      if (!(bare instanceof ArrayBuffer) || parameters.size !== 0) return undefined;
      chain.push(new Uint8Array(bare));
    }
    return chain;
  } catch {
    // not an RFC 8941 list
  }
  return undefined;
}

/** The keys Envoy defines for an XFCC element, lower-cased (keys are case-insensitive). */
const XFCC_KEYS = new Set(['by', 'hash', 'cert', 'chain', 'subject', 'uri', 'dns']);
/** Keys Envoy writes at most once per element; `By`, `URI` and `DNS` come once per SAN. */
const XFCC_ONCE = new Set(['hash', 'cert', 'chain', 'subject']);

/** One XFCC element: each key's values, in order. */
type XfccElement = Map<string, string[]>;

// Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent, a key is then one of XFCC_KEYS, none of which has a Z or a character above it: a wider alpha only makes another unknown key
const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/**
 * Envoy `x-forwarded-client-cert` by its grammar: elements separated by `,`, `key=value` pairs
 * by `;`, a value either bare (no `,` `;` `"`) or double-quoted with `\` escaping the next
 * character. One pass, linear in the length. `undefined` for anything else — an unterminated
 * quote, an empty element or pair, an unknown key, `Hash`/`Cert`/`Chain`/`Subject` twice in one
 * element, whitespace around separators, text after a closing quote — and for an unescaped `;`
 * inside quotes: Envoy never writes one (`Subject` is RFC 4514 text, which escapes `;`;
 * `Cert` and `Chain` are URL-encoded), but a client-written quote that opens before the proxy's
 * element and closes inside it always swallows one (`Hash=…;`).
 */
function parseXfcc(value: string): XfccElement[] | undefined {
  const elements: XfccElement[] = [];
  let element: XfccElement = new Map();
  const n = value.length;
  let i = 0;
  for (;;) {
    let k = i;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent, charCodeAt past the end is NaN, which is no letter
    while (k < n && isAlpha(value.charCodeAt(k))) k++;
    if (value[k] !== '=') return undefined;
    const key = value.slice(i, k).toLowerCase();
    if (!XFCC_KEYS.has(key)) return undefined;
    i = k + 1;
    let v = '';
    if (value[i] === '"') {
      let from = ++i;
      for (;;) {
        // Stryker disable next-line EqualityOperator: equivalent, at i === n the character is undefined and the next turn answers undefined
        if (i >= n) return undefined;
        const c = value[i];
        if (c === '"') break;
        if (c === ';') return undefined;
        if (c === '\\') {
          // Stryker disable next-line all: equivalent, without it the index passes the end and the loop's own check answers undefined
          if (i + 1 >= n) return undefined;
          v += value.slice(from, i) + value[i + 1];
          i += 2;
          from = i;
        } else i++;
      }
      v += value.slice(from, i++);
    } else {
      const from = i;
      // Stryker disable next-line EqualityOperator: equivalent, one step past the end slices the same value
      while (i < n && value[i] !== ';' && value[i] !== ',') {
        if (value[i] === '"') return undefined;
        i++;
      }
      v = value.slice(from, i);
    }
    const values = element.get(key);
    if (!values) element.set(key, [v]);
    else if (XFCC_ONCE.has(key)) return undefined;
    else values.push(v);
    if (i >= n) {
      elements.push(element);
      return elements;
    }
    // After a value: `;` (next pair) or `,` (next element); anything else follows a closing quote.
    const separator = value[i++];
    if (separator === ',') {
      elements.push(element);
      element = new Map();
    } else if (separator !== ';') return undefined;
  }
}

const only = (element: XfccElement, key: string) => element.get(key)?.[0];

/**
 * The certificate in Envoy XFCC, from the element the nearest proxy wrote: the last one
 * (`APPEND_FORWARD` appends it after whatever the client sent; `SANITIZE_SET` writes only it).
 * Its `Cert` (URL-encoded PEM) when present, checked against its `Hash` when both are; else its
 * `Hash`. Envoy writes `URI` and `DNS` values as they are in the certificate, unquoted, so a
 * SAN holding `,Hash=…` forges an element boundary: an element before the last one that holds
 * `URI` or `DNS` makes the header ambiguous, and it counts as no certificate.
 */
function parseEnvoy(value: string): { der?: Uint8Array; thumbprint: string } | undefined {
  const elements = parseXfcc(value);
  const last = elements?.at(-1);
  // Stryker disable next-line LogicalOperator: equivalent, a parsed header always has a last element
  if (!elements || !last) return undefined;
  for (const element of elements) {
    if (element !== last && (element.has('uri') || element.has('dns'))) return undefined;
  }
  const hash = only(last, 'hash');
  if (hash !== undefined && !/^[0-9a-fA-F]{64}$/.test(hash)) return undefined;
  const cert = only(last, 'cert');
  if (cert !== undefined) {
    const der = urlEncodedCertificate(cert);
    if (!der) return undefined;
    if (hash !== undefined && createHash('sha256').update(der).digest('hex') !== hash.toLowerCase()) return undefined;
    return { der, thumbprint: certificateThumbprint(der) };
  }
  return hash === undefined ? undefined : { thumbprint: Buffer.from(hash, 'hex').toString('base64url') };
}

/** Finds the client certificate of a request: from a trusted proxy's header, else from TLS. */
export class CertificateSource {
  private readonly proxy:
    | { format: ClientCertificateFormat; header: string; peers?: AddressList; secret?: { header: string; value: Buffer } }
    | undefined;

  constructor(options: MtlsOptions = {}) {
    const proxy = options.proxy;
    if (!proxy) return;
    const format = proxy.format ?? 'rfc9440';
    if (!(format in DEFAULT_HEADERS)) throw new TypeError(`fapi-guard: mtls.proxy.format "${format}" is not rfc9440, nginx or envoy`);
    if (!proxy.trustedPeers?.length && !proxy.sharedSecret) {
      throw new TypeError(
        'fapi-guard: mtls.proxy needs trustedPeers (the proxy addresses) or sharedSecret: a certificate header from anyone else proves nothing (RFC 9440 §4)',
      );
    }
    const peers = proxy.trustedPeers?.length ? new AddressList(proxy.trustedPeers, 'mtls.proxy.trustedPeers') : undefined;
    const secret = proxy.sharedSecret;
    // Header values arrive as bytes read one per character: a secret is visible ASCII (RFC 9110
    // §5.5 field-vchar without obs-text), so the configured value and the received one are the same bytes.
    if (secret && (typeof secret.header !== 'string' || typeof secret.value !== 'string' || !/^[\x21-\x7e]{16,}$/.test(secret.value))) {
      throw new TypeError(
        'fapi-guard: mtls.proxy.sharedSecret needs a header name and a value of at least 16 visible ASCII characters (no spaces)',
      );
    }
    this.proxy = {
      format,
      header: (proxy.header ?? DEFAULT_HEADERS[format]).toLowerCase(),
      peers,
      secret: secret ? { header: secret.header.toLowerCase(), value: Buffer.from(secret.value) } : undefined,
    };
  }

  private trusted(request: GuardRequest): boolean {
    const proxy = this.proxy;
    // Stryker disable next-line ConditionalExpression,BooleanLiteral: equivalent, lookup() asks only when a proxy is configured
    if (!proxy) return false;
    if (proxy.peers && !proxy.peers.has(request.remoteAddress)) return false;
    if (proxy.secret) {
      const lines = headerLines(request.headers, proxy.secret.header);
      if (lines.length !== 1) return false;
      const given = Buffer.from(lines[0] as string);
      if (given.length !== proxy.secret.value.length || !timingSafeEqual(given, proxy.secret.value)) return false;
    }
    return true;
  }

  /**
   * The client certificate of `request`. `expected` (the token's `cnf.x5t#S256`) lets a header
   * seen before with that thumbprint be recognised by comparing strings, without parsing or
   * hashing it again.
   */
  lookup(request: GuardRequest, expected?: string): CertificateLookup {
    const proxy = this.proxy;
    const header = proxy?.header ?? DEFAULT_HEADERS.rfc9440;
    const lines = headerLines(request.headers, header);
    if (lines.length > 0) {
      if (!proxy || !this.trusted(request)) {
        // RFC 9440 §4: only a trusted proxy's header counts; this one is ignored.
        return { ...this.fromTls(request), note: `${header} header from an untrusted peer ignored` };
      }
      // RFC 9440 §2.2: a single instance; anything else is treated as no certificate.
      if (lines.length > 1) return { note: `${lines.length} ${header} headers: treated as no certificate` };
      const found = this.parse(proxy.format, lines[0] as string, expected);
      if (!found) return { note: `malformed ${header} header: treated as no certificate` };
      const certificate: ClientCertificate = { ...found, source: 'proxy' };
      // RFC 9440 §2.3: the chain only counts alongside Client-Cert, as one well-formed list.
      // Stryker disable next-line ArrayDeclaration: equivalent, any other line is no sf-list of binary items, so no chain either
      const chainLines = proxy.format === 'rfc9440' ? headerLines(request.headers, 'client-cert-chain') : [];
      const chain = chainLines.length === 1 ? parseClientCertChain(chainLines[0] as string) : undefined;
      if (chain) certificate.chain = chain;
      return { certificate };
    }
    return this.fromTls(request);
  }

  /** Parsed header values: parsing a certificate costs more than the rest of a request. */
  private readonly parsed = new LRUCache<string, { thumbprint: string; der?: Uint8Array } | false>({ max: 1000 });

  /** The last header value seen per thumbprint: one string comparison for a client's next request. */
  private readonly byThumbprint = new LRUCache<string, { value: string; found: { thumbprint: string; der?: Uint8Array } }>({ max: 1000 });

  private parse(format: ClientCertificateFormat, value: string, expected?: string): { thumbprint: string; der?: Uint8Array } | undefined {
    // Stryker disable next-line ConditionalExpression,EqualityOperator,BlockStatement: equivalent, a memo; without it the header is parsed again
    if (expected !== undefined) {
      const seen = this.byThumbprint.get(expected);
      // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the header is parsed again
      if (seen && seen.value === value) return seen.found;
    }
    const cached = this.parsed.get(value);
    // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the header is parsed again
    const found = cached !== undefined ? cached || undefined : this.parseUncached(format, value);
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent, a memo that is never filled, or filled again with the same value
    if (cached === undefined) this.parsed.set(value, found ?? false);
    // Stryker disable next-line ConditionalExpression,ObjectLiteral: equivalent, a memo; an entry without the value is never matched
    if (found) this.byThumbprint.set(found.thumbprint, { value, found });
    return found;
  }

  private parseUncached(format: ClientCertificateFormat, value: string): { thumbprint: string; der?: Uint8Array } | undefined {
    if (format === 'envoy') return parseEnvoy(value);
    const der = format === 'rfc9440' ? asCertificate(parseRfc9440(value)) : urlEncodedCertificate(value);
    return der ? { thumbprint: certificateThumbprint(der), der } : undefined;
  }

  private fromTls(request: GuardRequest): CertificateLookup {
    const der = request.clientCertificate;
    return der && der.length > 0 ? { certificate: { thumbprint: certificateThumbprint(der), source: 'tls', der } } : {};
  }
}

/**
 * DPoP proof verification at the resource server: every check of RFC 9449 §4.3 (steps 1–12),
 * plus `ath` (§7), replay detection (§11.1) and server nonces (§8, §9).
 *
 * Order: the proof's stateless checks, the key bound to the token (`cnf.jkt`), the signature,
 * then the nonce and the replay store — cheapest and stateless first, so a hostile proof costs
 * no signature check unless it carries the token's own key (bounded in size, rsa.ts).
 *
 * Per request, the proof's signature is the one signature verified every time; the proof key
 * import is cached by thumbprint (same required members ⇒ same public key, RFC 7638 §3.2).
 */
import type { KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import { sha256base64url } from '../common/hash.js';
import { decodeJsonSegment, isExplicitType, publicKeyFromJwk, verifyCompactJws, verifyCompactJwsInPool } from '../common/jws.js';
import { rsaKeyProblem } from '../common/rsa.js';
import type { ReplayStore } from '../common/stores.js';
import type { GuardErrorReason } from '../errors.js';
import { keyMatches } from '../tokens/issuer.js';
import type { DpopNonces } from './nonce.js';
import { jwkThumbprint } from './thumbprint.js';

export interface DpopVerifierSettings {
  /** Allowed proof algorithms (FAPI 2.0 §5.4.1). */
  algorithms: readonly string[];
  /** Oldest accepted `iat`, in seconds before now (RFC 9449 §11.1). */
  maxAgeSec: number;
  /** Furthest accepted `iat` in the future, in seconds (FAPI 2.0 §5.3.2.1 #14). */
  maxFutureSec: number;
  replayStore: ReplayStore;
  nonces: DpopNonces | undefined;
  now: () => number;
  /** Where the proof signature is checked: on the event loop, or on libuv's thread pool. @default 'main' */
  verifyOn?: 'main' | 'threadpool';
}

export interface DpopProofRequest {
  /** Every `DPoP` header line of the request. */
  proofs: readonly string[];
  method: string;
  /** Absolute URL the client addressed. */
  url: string;
  /** The access token presented with the proof (for `ath`). */
  accessToken: string;
  /** base64url SHA-256 of `accessToken`, when already computed (it is the expected `ath`). */
  accessTokenHash?: string;
  /** Whether this route requires a server nonce. */
  requireNonce: boolean;
  /** The token's `cnf.jkt`; `undefined` for a token that is not DPoP-bound (RFC 9449 §6, DPOP-19). */
  boundJkt: string | undefined;
}

export type DpopResult =
  | {
      ok: true;
      /** RFC 7638 thumbprint of the proof key, to compare with `cnf.jkt`. */
      jkt: string;
      /** A nonce to hand out with the response (a newer one exists than the proof's). */
      nextNonce?: string;
      /** Set when the proof carried a server nonce that was checked (RFC 9449 §9). */
      nonced?: true;
    }
  | {
      ok: false;
      reason: GuardErrorReason;
      detail: string;
      nonce?: string;
      /**
       * Set when `htu` names the request's path at another origin: the mark of an API behind a
       * proxy that computes its own URL (no `publicUrl`), worth a hint to the operator.
       */
      htuOrigin?: { proof: string; request: string };
    };

/** Members that make a JWK private or symmetric (RFC 9449 §4.3 step 7). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
/** Bounds that keep a hostile proof cheap to refuse (DPOP-23). */
const MAX_PROOF_LENGTH = 8 * 1024;
const MAX_JTI_LENGTH = 256;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** A URL normalised for `htu` comparison, and whether normalising left its path as sent. */
interface NormalizedUrl {
  readonly htu: string;
  /**
   * False when the URL parser changed the path: it removes `.` and `..` segments (also as `%2e`),
   * reads `\\` as `/` and drops what follows a `#` — Node lets all of these through — while the
   * app's router matches the path as sent: `/statements/%2e%2e/accounts` reaches
   * `/statements/:id/accounts` but normalises to `/accounts`, so a proof for the one would pass
   * for the other. Clients send paths in the parser's form.
   */
  readonly pathAsSent: boolean;
}

const URI_START = /^https?:\/\/[^/?#@]+(?:[/?#]|$)/i;
/**
 * What no URI holds (RFC 3986 §2): any character outside its unreserved and reserved sets and `%`
 * (controls, space, `"`, `<`, `>`, `\\`, `^`, `` ` ``, `{`, `|`, `}`, anything beyond ASCII), and a
 * `%` that does not start a percent-encoded octet (§2.1).
 */
const NOT_IN_URI = /[^A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]|%(?![0-9A-Fa-f]{2})/;

/**
 * An `htu` is an http(s) URI written as RFC 3986 §3 has it, `scheme://authority…`, with a host
 * (RFC 9110 §4.2.1: an empty one is invalid) and nothing but URI characters: the WHATWG parser
 * would also read `https:host/path` (an RFC 3986 path, no authority), `https:///host`, backslashes
 * for slashes, IRIs, and drop tabs and line breaks. No userinfo (RFC 9110 §4.2.4: a recipient
 * treats it as an error).
 */
function isUriForm(htu: string): boolean {
  return URI_START.test(htu) && !NOT_IN_URI.test(htu);
}

/** URLs longer than this are normalised each time, not remembered: the memo stays small whatever requests name. */
const MEMO_MAX_LENGTH = 2048;

/** RFC 3986 §6.2.2.1, §6.2.2.2: percent-encoded unreserved characters decoded, every other triplet in upper case. */
function decodeUnreserved(value: string): string {
  return value.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
}

/**
 * The reg-name or IPv4 host as written after `//` (no userinfo: `isUriForm` refuses `@`), its port
 * left out, in RFC 3986 §6.2.2 normal form; `undefined` for an IP literal (`[…]`), an address that
 * the parser writes in its canonical form (RFC 5952), as the request URL's host is. The WHATWG
 * parser goes further than RFC 3986 on the others: it decodes and IDNA-maps any percent-encoded
 * octet (`%EF%BD%92%EF%BD%93.example.com` is `rs.example.com` to it) and reads `127.1`,
 * `0x7f.0.0.1` or `2130706433` as IPv4 addresses, which RFC 3986 §3.2.2 makes reg-names.
 */
function hostAsWritten(value: string): string | undefined {
  const authority = value.slice(value.indexOf('//') + 2);
  if (authority.startsWith('[')) return undefined;
  return decodeUnreserved(authority.split(/[:/?#]/, 1)[0] as string).toLowerCase();
}

/** Only for http(s) URLs: the request's (on the configured origins) and an htu `isUriForm` admitted. */
function normalizeUrl(value: string): NormalizedUrl | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  // A host the parser changed beyond RFC 3986's normalisation names another host than the one written.
  const written = hostAsWritten(value);
  if (written !== undefined && written !== url.hostname) return undefined;
  const path = decodeUnreserved(url.pathname);
  // The path as sent: after the scheme's `//`, from the first `/` (an authority has none) to any `?`.
  const sent = value.slice(value.indexOf('/', value.indexOf('//') + 2)).split('?', 1)[0];
  return { htu: `${url.protocol}//${url.host}${path}`, pathAsSent: sent === url.pathname };
}

/**
 * The URI a proof's `htu` is compared on: RFC 3986 §6.2.2 syntax-based normalisation (case of
 * scheme and host, percent-encoding case, unreserved characters decoded, dot segments) and
 * §6.2.3 scheme-based normalisation (default port, empty path), then without query and
 * fragment (RFC 9449 §4.3 step 9). `undefined` when it is not an absolute http(s) URI.
 */
export function normalizeHtu(value: string): string | undefined {
  return isUriForm(value) ? normalizeUrl(value)?.htu : undefined;
}

/** `ath`: base64url SHA-256 of the ASCII access token (RFC 9449 §4.2). */
export function accessTokenHash(accessToken: string): string {
  return sha256base64url(accessToken);
}

/** A JSON number that is finite (JSON.parse reads 1e400 as Infinity). */
function isFiniteNumber(value: unknown): value is number {
  return Number.isFinite(value);
}

type Fail = Extract<DpopResult, { ok: false }>;
const invalid = (detail: string): Fail => ({ ok: false, reason: 'dpop_proof_invalid', detail });
const NOT_NORMAL = 'the request path is not in normal form (dot segments, \\, #)';

function htuMismatch(htu: string, normalizedHtu: string | undefined, expected: string | undefined): Fail {
  const refusal = invalid(`htu ${htu} is not ${expected}`);
  if (normalizedHtu === undefined || expected === undefined) return refusal;
  const [proof, request] = [new URL(normalizedHtu), new URL(expected)];
  // Stryker disable next-line ConditionalExpression: equivalent, the same path at the same origin is the same normalised URL, which matched before
  if (proof.pathname === request.pathname && proof.origin !== request.origin) {
    refusal.htuOrigin = { proof: proof.origin, request: request.origin };
  }
  return refusal;
}

export class DpopVerifier {
  /** Imported proof keys by `alg` + thumbprint: a client's key is imported once, not per request. */
  private readonly keys = new LRUCache<string, KeyObject>({ max: 10_000 });
  /** Checked proof headers by their encoded segment (bounded: clients reuse one header). */
  private readonly headers = new LRUCache<string, { ok: true; alg: string; jkt: string; publicKey: KeyObject }>({ max: 10_000 });
  /** Normalised URLs (`htu` and request URLs), bounded. */
  private readonly urls = new Map<string, NormalizedUrl | undefined>();

  constructor(private readonly settings: DpopVerifierSettings) {}

  /** RFC 9449 §4.3 checks; synchronous unless the replay store answers asynchronously. */
  verify(request: DpopProofRequest): DpopResult | Promise<DpopResult> {
    const s = this.settings;
    // Step 1: exactly one DPoP header.
    if (request.proofs.length === 0) return { ok: false, reason: 'dpop_proof_missing', detail: 'no DPoP header' };
    if (request.proofs.length > 1) return invalid(`${request.proofs.length} DPoP headers`);
    const proof = (request.proofs[0] as string).trim();
    // Step 2: one well-formed compact JWS.
    if (proof.length > MAX_PROOF_LENGTH) return invalid(`proof of ${proof.length} characters`);
    if (!COMPACT_JWS.test(proof)) return invalid('not a compact JWS');
    const [h, p] = proof.split('.') as [string, string, string];
    const claims = decodeJsonSegment(p);
    if (!claims) return invalid('payload is not a JSON object');
    // Step 3: required claims (at the RS also ath, §7).
    const { jti, htm, htu, iat, ath } = claims;
    if (typeof jti !== 'string' || jti.length === 0) return invalid('jti missing');
    if (jti.length > MAX_JTI_LENGTH) return invalid(`jti of ${jti.length} characters`);
    if (typeof htm !== 'string') return invalid('htm missing');
    if (typeof htu !== 'string') return invalid('htu missing');
    if (!isFiniteNumber(iat)) return invalid('iat missing');
    if (typeof ath !== 'string') return invalid('ath missing');
    // Steps 4, 5 and 7: the header decides typ, alg and key; a client repeats the same header.
    const checked = this.proofHeader(h);
    if (!checked.ok) return checked;
    const { alg, jkt, publicKey } = checked;
    // Step 8: htm.
    if (htm !== request.method) return invalid(`htm ${htm} on a ${request.method} request`);
    // Step 9: htu, without query and fragment, after normalisation. The request's query is not
    // compared; its path must be one the parser takes as sent: URI characters only (checked
    // first: the parser would percent-encode any other, at several times its size), no dot
    // segments, `\\` or `#`.
    const [bare] = request.url.split('?', 1) as [string];
    if (NOT_IN_URI.test(bare)) return invalid(NOT_NORMAL);
    const target = this.normalized(bare);
    if (target && !target.pathAsSent) return invalid(NOT_NORMAL);
    const expected = target?.htu;
    const normalizedHtu = isUriForm(htu) ? this.normalized(htu)?.htu : undefined;
    if (expected === undefined || normalizedHtu !== expected) return htuMismatch(htu, normalizedHtu, expected);
    // Step 11: a fresh proof (checked before the nonce so stale proofs are not answered with a nonce).
    const now = s.now() / 1000;
    if (iat < now - s.maxAgeSec) return invalid(`iat ${iat} is older than ${s.maxAgeSec} s`);
    if (iat > now + s.maxFutureSec) return invalid(`iat ${iat} is in the future`);
    // Step 12: ath binds the proof to the presented token.
    if (ath !== (request.accessTokenHash ?? accessTokenHash(request.accessToken))) return invalid('ath does not match the access token');
    // Step 12 / §6.1: the proof key is the key the token is bound to. Compared before the
    // signature, so a proof made with any other key costs no signature check.
    if (request.boundJkt === undefined) return { ok: false, reason: 'binding_mismatch', detail: 'token has no cnf.jkt' };
    if (request.boundJkt !== jkt) return { ok: false, reason: 'binding_mismatch', detail: 'proof key thumbprint differs from cnf.jkt' };
    // Step 6, after the cheap checks because it costs the most: the signature verifies with the
    // header key (JWTBCP-04: an off-curve key already failed on import). Only then are the
    // nonce and the replay store consulted.
    const bad = () => invalid('signature does not verify with the header jwk');
    // Stryker disable next-line all: equivalent, the verdict is the same on either thread (only where it is computed differs)
    if (s.verifyOn === 'threadpool') {
      return verifyCompactJwsInPool(proof, alg, publicKey).then((ok) =>
        ok ? this.finish(request, claims, jti, iat, expected, jkt) : bad(),
      );
    }
    if (!verifyCompactJws(proof, alg, publicKey)) return bad();
    return this.finish(request, claims, jti, iat, expected, jkt);
  }

  /** A proof header's checks (RFC 9449 §4.3 steps 4, 5, 7) and its imported key; cached per header. */
  private proofHeader(segment: string): { ok: true; alg: string; jkt: string; publicKey: KeyObject } | Fail {
    const cached = this.headers.get(segment);
    // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the same header is checked again
    if (cached) return cached;
    const s = this.settings;
    const header = decodeJsonSegment(segment);
    if (!header) return invalid('header is not a JSON object');
    // Step 4: explicit type.
    if (!isExplicitType(header.typ, 'dpop+jwt')) return invalid(`typ ${JSON.stringify(header.typ)}`);
    // Step 5: an allowed asymmetric algorithm (never none or a MAC).
    const alg = s.algorithms.find((allowed) => allowed === header.alg);
    if (alg === undefined) return invalid(`alg ${JSON.stringify(header.alg)}`);
    // RFC 7515 §4.1.11: a `crit` extension must be understood, and this verifier understands
    // none (`b64` of RFC 7797 included), so a proof that lists any is refused.
    if (header.crit !== undefined) return invalid('crit lists extensions this verifier does not understand');
    // Step 7 (before using the key): a public key only, of the type alg needs, RSA of 2048 to
    // 8192 bits with an exponent below 2^32 (rsa.ts).
    const jwk = header.jwk;
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return invalid('jwk missing');
    const key = jwk as JWK;
    if (PRIVATE_MEMBERS.some((m) => m in key)) return invalid('jwk holds private key material');
    if (!keyMatches({ ...key, kid: undefined }, alg, undefined)) return invalid(`jwk does not fit ${alg}`);
    let jkt: string;
    let publicKey: KeyObject;
    try {
      jkt = jwkThumbprint(key as Record<string, unknown>);
      // RFC 8725 §3.4 / JWTBCP-04: a point off its curve is refused here.
      publicKey = this.importKey(key, jkt);
    } catch (e) {
      return invalid(`jwk: ${(e as Error).message}`);
    }
    const result = { ok: true as const, alg, jkt, publicKey };
    this.headers.set(segment, result);
    return result;
  }

  /** RFC 3986 normalisation of a URL, remembered (both sides repeat: the route and the client's htu). */
  private normalized(url: string): NormalizedUrl | undefined {
    // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the URL is normalised again
    if (this.urls.has(url)) return this.urls.get(url);
    const value = normalizeUrl(url);
    if (url.length > MEMO_MAX_LENGTH) return value;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: clearing more often is equivalent; never clearing, or past 1000, fails the bound test
    if (this.urls.size >= 1000) this.urls.clear();
    this.urls.set(url, value);
    return value;
  }

  /** Step 10 (the server nonce), then the replay check, which writes to the store: after the signature. */
  private finish(
    request: DpopProofRequest,
    claims: Record<string, unknown>,
    jti: string,
    iat: number,
    expected: string,
    jkt: string,
  ): DpopResult | Promise<DpopResult> {
    const s = this.settings;
    // Step 10: the server nonce (RFC 9449 §9).
    let nextNonce: string | undefined;
    const nonce = claims.nonce;
    const nonceChecked = request.requireNonce || nonce !== undefined;
    if (s.nonces && nonceChecked) {
      const state = typeof nonce === 'string' ? s.nonces.check(nonce) : 'invalid';
      if (state === 'invalid') {
        return {
          ok: false,
          reason: 'dpop_nonce_required',
          detail: nonce === undefined ? 'no nonce' : 'nonce unknown or expired',
          nonce: s.nonces.current(),
        };
      }
      if (state === 'stale') nextNonce = s.nonces.current();
    } else if (nonce !== undefined && typeof nonce !== 'string') {
      return invalid('nonce is not a string');
    }
    // §11.1: a proof is used once. The key covers htu and jti, hashed so its size is fixed (the
    // whole SHA-256: a 43-character string costs less memory than a slice that keeps it alive).
    const replayKey = sha256base64url(`${expected}\n${jti}`);
    const expiresAt = (iat + s.maxAgeSec + s.maxFutureSec) * 1000;
    const answer = (first: unknown): DpopResult => {
      // Only an explicit `true` means first use: anything else a faulty store returns is a refusal.
      if (first !== true) return { ok: false, reason: 'dpop_proof_replayed', detail: `jti ${jti.slice(0, 64)} already used` };
      const ok: Extract<DpopResult, { ok: true }> = { ok: true, jkt };
      if (nextNonce !== undefined) ok.nextNonce = nextNonce;
      if (s.nonces && nonceChecked) ok.nonced = true;
      return ok;
    };
    const unavailable = (e: unknown): DpopResult => ({
      ok: false,
      reason: 'store_unavailable',
      detail: `replay store: ${(e as Error)?.message}`,
    });
    try {
      // An in-process store answers at once; a shared one (Redis) through a promise.
      if (s.replayStore.claimNow) return answer(s.replayStore.claimNow(replayKey, expiresAt));
      return s.replayStore.claim(replayKey, expiresAt).then(answer, unavailable);
    } catch (e) {
      return unavailable(e);
    }
  }

  /**
   * The proof key, imported once per thumbprint (same required members ⇒ same key, RFC 7638 §3.2).
   * An RSA key outside the bounds of `rsaKeyProblem` throws: its checks would cost too much.
   */
  private importKey(jwk: JWK, jkt: string): KeyObject {
    let key = this.keys.get(jkt);
    // Stryker disable next-line ConditionalExpression: equivalent, a memo; without it the key is imported (and its size checked) again
    if (!key) {
      key = publicKeyFromJwk(jwk as Record<string, unknown>);
      const problem = rsaKeyProblem(key);
      if (problem) throw new TypeError(problem);
      this.keys.set(jkt, key);
    }
    return key;
  }
}

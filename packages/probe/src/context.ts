/**
 * What a case can do: send the probe's standard request with one thing changed, and read the
 * answer. Every request carries a fresh `x-fapi-interaction-id`; every exchange is kept for the
 * cases that judge the whole run (error syntax, interaction ids).
 */
import { randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import { type Challenge, param, parseChallenges } from './challenge.js';
import { staleToken } from './freshness.js';
import type { ClientCertificate, Exchange, OutgoingRequest, Sender } from './http.js';
import { type DpopKey, decodeJwt, type ProofFault, proof } from './jws.js';
import { type MessageSigner, type SignatureFault, signRequest } from './regimes.js';

export type Binding = 'dpop' | 'mtls';

/** The probe's access token expired during the run: the case that would send it is not run. */
export class AccessTokenExpired extends Error {}

/** Tokens with a defect only the authorization server can sign; supplied by the user. */
export type FaultToken = 'wrong-typ' | 'expired' | 'wrong-audience' | 'unbound';

export interface Logged {
  request: OutgoingRequest;
  interactionId: string;
  exchange: Exchange;
  /** The request went to the protected resource (not to the metadata document). */
  protected: boolean;
}

export interface CallOptions {
  /** Authorization scheme. @default 'DPoP' with DPoP binding, else 'Bearer' */
  scheme?: string;
  /** The token; `null` sends no Authorization field. @default the probe's token */
  token?: string | null;
  /** DPoP header: a proof with this defect, `none` for no header, or a proof by this key. */
  proof?: ProofFault | 'none' | { key: DpopKey } | { jti: string } | { nonce: string | null };
  /** Client certificate; `null` connects without one. @default the probe's certificate */
  certificate?: ClientCertificate | null;
  /** Replaces the Authorization field (several values send it several times). */
  authorization?: string[];
  /** Extra DPoP fields (sent after the proof). */
  extraDpop?: string[];
  query?: Record<string, string>;
  /** Form-encoded body (`application/x-www-form-urlencoded`). */
  form?: Record<string, string>;
  /** With a regime's request signing (`uk-ob`, `br-of`): leave the signature out, or change the body after signing. @default signed correctly */
  signature?: SignatureFault;
  /** Answer one `use_dpop_nonce` challenge by retrying with the nonce (RFC 9449 §9). @default true */
  retryNonce?: boolean;
}

export interface ContextInit {
  sender: Sender;
  resource: string;
  method: string;
  binding: Binding;
  token: string;
  dpopKey?: DpopKey;
  certificate?: ClientCertificate;
  otherCertificate?: ClientCertificate;
  issuerKeys?: JWK[];
  insufficientToken?: string;
  faultTokens: Partial<Record<FaultToken, string>>;
  body?: { contentType: string; value: string };
  headers: Record<string, string>;
  /** Signs the body of every request as the regime asks (`--profile uk-ob | br-of`). */
  signer?: MessageSigner;
}

export class Context {
  readonly log: Logged[] = [];
  /** The last DPoP nonce the server gave (RFC 9449 §9). */
  nonce: string | undefined;
  /** The server has asked for a nonce at least once. */
  nonceRequested = false;
  /** `htu`: the resource URL without query and fragment (RFC 9449 §4.2). */
  readonly htu: string;

  constructor(readonly init: ContextInit) {
    const url = new URL(init.resource);
    this.htu = `${url.origin}${url.pathname}`;
  }

  get token(): string {
    return this.init.token;
  }

  /** The probe's standard request to the resource, with what `options` changes. */
  async call(options: CallOptions = {}): Promise<Exchange> {
    // Every case compares with the valid token: once it has expired, a refusal proves nothing.
    const stale = staleToken(this.init.token, 'access');
    if (stale) throw new AccessTokenExpired(stale);
    const first = await this.once(options);
    if (options.retryNonce !== false && first.status === 401 && this.nonceChallenge(first)) return this.once(options);
    return first;
  }

  private nonceChallenge(exchange: Exchange): boolean {
    const nonce = exchange.headers['dpop-nonce']?.[0];
    return nonce !== undefined && errorOf(exchange) === 'use_dpop_nonce';
  }

  private async once(options: CallOptions): Promise<Exchange> {
    const { init } = this;
    const token = options.token === undefined ? init.token : options.token;
    const scheme = options.scheme ?? (init.binding === 'dpop' ? 'DPoP' : 'Bearer');
    const url = new URL(init.resource);
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.append(k, v);
    const interactionId = randomUUID();
    const headers: Record<string, string | string[]> = { ...init.headers, 'x-fapi-interaction-id': interactionId };
    if (options.authorization) headers.authorization = options.authorization;
    else if (token !== null) headers.authorization = `${scheme} ${token}`;
    // A token moved out of the header (query, body) still gets a proof with its ath.
    const dpop = await this.proofFor(options, token ?? init.token);
    const dpopFields = [...(dpop ? [dpop] : []), ...(options.extraDpop ?? [])];
    if (dpopFields.length > 0) headers.dpop = dpopFields.length === 1 ? (dpopFields[0] as string) : dpopFields;
    let body = init.body?.value;
    if (options.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(options.form).toString();
    } else if (init.body) {
      headers['content-type'] = init.body.contentType;
      if (init.signer) {
        const signed = await signRequest(init.signer, init.body.value, this.htu, options.signature);
        body = signed.body;
        Object.assign(headers, signed.headers);
      }
    }
    const request: OutgoingRequest = {
      method: init.method,
      url: url.href,
      headers,
      ...(body !== undefined ? { body } : {}),
    };
    const certificate = options.certificate === undefined ? init.certificate : (options.certificate ?? undefined);
    if (certificate) request.certificate = certificate;
    const exchange = await init.sender.send(request);
    this.log.push({ request, interactionId, exchange, protected: true });
    const nonce = exchange.headers['dpop-nonce']?.[0];
    if (nonce !== undefined && init.binding === 'dpop') {
      this.nonce = nonce;
      if (errorOf(exchange) === 'use_dpop_nonce') this.nonceRequested = true;
    }
    return exchange;
  }

  private async proofFor(options: CallOptions, token: string): Promise<string | undefined> {
    const { init } = this;
    if (init.binding !== 'dpop' || !init.dpopKey || options.proof === 'none') return undefined;
    const spec = options.proof;
    const key = typeof spec === 'object' && 'key' in spec ? spec.key : init.dpopKey;
    const nonce = typeof spec === 'object' && 'nonce' in spec ? (spec.nonce ?? undefined) : this.nonce;
    return proof(key, {
      htm: init.method,
      htu: this.htu,
      accessToken: token,
      ...(nonce !== undefined ? { nonce } : {}),
      ...(typeof spec === 'object' && 'jti' in spec ? { jti: spec.jti } : {}),
      ...(typeof spec === 'string' ? { fault: spec } : {}),
    });
  }

  /** A plain GET outside the protected resource (metadata). */
  async get(url: string): Promise<Exchange> {
    const interactionId = randomUUID();
    const request: OutgoingRequest = {
      method: 'GET',
      url,
      headers: { accept: 'application/json', 'x-fapi-interaction-id': interactionId },
    };
    const exchange = await this.init.sender.send(request);
    this.log.push({ request, interactionId, exchange, protected: false });
    return exchange;
  }
}

/** The challenges of a response; empty when `WWW-Authenticate` is absent or unreadable. */
export function challenges(exchange: Exchange): Challenge[] {
  const parsed = parseChallenges(exchange.headers['www-authenticate'] ?? []);
  return parsed.ok ? parsed.challenges : [];
}

/**
 * The OAuth error code: read from the `WWW-Authenticate` challenge only (RFC 6750 §3, RFC 9449
 * §7.1). A JSON body's `"error"` is the application's business (its error handler may write one
 * for any reason) and never decides a case.
 */
export function errorOf(exchange: Exchange): string | undefined {
  return challengeParam(exchange, 'error');
}

/** The first value of an auth-param among the response's challenges. */
export function challengeParam(exchange: Exchange, name: string): string | undefined {
  for (const c of challenges(exchange)) {
    const value = param(c, name);
    if (value !== undefined) return value;
  }
  return undefined;
}

/** `401 DPoP error=invalid_token "the token expired"`: what came back, in one line. */
export function describe(exchange: Exchange): string {
  const schemes = challenges(exchange).map((c) => c.scheme);
  const error = errorOf(exchange);
  const description = challengeParam(exchange, 'error_description');
  const parts = [String(exchange.status)];
  if (schemes.length > 0) parts.push(schemes.join('+'));
  else if (exchange.status >= 400)
    parts.push((exchange.headers['www-authenticate'] ?? []).length > 0 ? 'unreadable WWW-Authenticate' : 'no WWW-Authenticate');
  if (error) parts.push(`error=${error}`);
  if (description) parts.push(JSON.stringify(description.slice(0, 200)));
  return parts.join(' ');
}

/** The request as sent, one line, tokens and proofs shortened (the report is not a secret store). */
export function describeRequest(request: OutgoingRequest): string {
  const short = (v: string) => (v.length > 24 ? `${v.slice(0, 12)}…(${v.length} chars)` : v);
  const url = new URL(request.url);
  for (const [k, v] of url.searchParams) if (k === 'access_token') url.searchParams.set(k, short(v));
  const parts = [`${request.method} ${url.href.replace(/%E2%80%A6/g, '…')}`];
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (name !== 'authorization' && name !== 'dpop') continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      const at = v.indexOf(' ');
      parts.push(
        name === 'authorization' && at > 0
          ? `Authorization: ${v.slice(0, at)} ${short(v.slice(at + 1))}`
          : `DPoP: ${short(v)}${proofTarget(v, request.method)}`,
      );
    }
  }
  if (!request.headers?.authorization) parts.push('no Authorization');
  if (request.body !== undefined && request.headers?.['content-type'] === 'application/x-www-form-urlencoded')
    parts.push(`body ${short(request.body)}`);
  if (request.certificate) parts.push('client certificate');
  return parts.join('; ');
}

/** ` (htu https://…/x)`: where a proof says it is for (RFC 9449 §4.2), its htm too when it is not the request's. */
function proofTarget(proofJwt: string, method: string): string {
  const claims = decodeJwt(proofJwt)?.claims;
  if (!claims) return '';
  const shown = (v: unknown) => JSON.stringify(String(v).slice(0, 200)).slice(1, -1);
  const parts = [...(claims.htm !== method ? [`htm ${shown(claims.htm)}`] : []), `htu ${shown(claims.htu)}`];
  return ` (${parts.join(', ')})`;
}

/**
 * A DPoP client for tests: makes proofs (RFC 9449 §4), valid or deliberately faulty, and sends
 * requests that answer a `use_dpop_nonce` challenge by themselves (§8, §9).
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

export type DpopAlgorithm = 'ES256' | 'PS256' | 'EdDSA' | 'RS256';

/** Deliberate defects of a proof. */
export type ProofFault =
  /** `htm` is another method. */
  | 'wrong-htm'
  /** `htu` is another path. */
  | 'wrong-htu'
  /** `iat` ten minutes ago. */
  | 'old-iat'
  /** `iat` two minutes ahead. */
  | 'future-iat'
  /** `ath` of another token. */
  | 'wrong-ath'
  /** No `ath`. */
  | 'no-ath'
  /** No `jti`. */
  | 'no-jti'
  /** Signed with another key than the header `jwk` (signature does not verify). */
  | 'bad-signature'
  /** `typ: JWT`. */
  | 'wrong-typ'
  /** HS256 keyed with the public key. */
  | 'hs256'
  /** `alg: none`. */
  | 'alg-none'
  /** The header `jwk` includes the private key (`d`…). */
  | 'private-jwk'
  /** A 10 kB `jti`. */
  | 'huge-jti';

export interface ProofOptions {
  htm: string;
  htu: string;
  /** The access token the proof goes with (`ath`). */
  accessToken?: string;
  /** Server nonce to include. */
  nonce?: string;
  /** Fixed `jti` (to make a replay). @default a random UUID */
  jti?: string;
  /** `iat` in seconds. @default now */
  iat?: number;
  fault?: ProofFault;
  /** Extra or overriding header members / claims. */
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
}

export interface DpopRequestOptions {
  method?: string;
  accessToken: string;
  headers?: Record<string, string>;
  body?: string;
  /** Proof defects for this request. */
  fault?: ProofFault;
  /**
   * The origin the API is configured with (its `publicUrl`, or its audience's origin), when the
   * request goes elsewhere (e.g. a test server on 127.0.0.1): the proof's `htu` names this origin.
   * @default the origin of `url`
   */
  publicUrl?: string;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export class DpopClient {
  /** Last nonce each origin gave this client. */
  readonly nonces = new Map<string, string>();

  private constructor(
    readonly alg: DpopAlgorithm,
    private readonly privateKey: CryptoKey,
    private readonly privateJwk: JWK,
    /** The public key, as it goes in the proof header. */
    readonly publicJwk: JWK,
    /** RFC 7638 thumbprint of the key: the `cnf.jkt` of tokens bound to this client. */
    readonly jkt: string,
    private readonly clock: () => number,
  ) {}

  /** A client with a fresh key pair. */
  static async create(alg: DpopAlgorithm = 'ES256', options: { clock?: () => number; modulusLength?: number } = {}): Promise<DpopClient> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, modulusLength: options.modulusLength });
    const publicJwk = await exportJWK(publicKey);
    const privateJwk = await exportJWK(privateKey);
    return new DpopClient(alg, privateKey, privateJwk, publicJwk, await calculateJwkThumbprint(publicJwk), options.clock ?? Date.now);
  }

  /**
   * The private key as a JWK with its `alg`, e.g. to write the file fapi-probe reads with
   * `--dpop-key`. It is the client's secret: keep it in test fixtures only.
   */
  exportPrivateJwk(): JWK {
    return { ...this.privateJwk, alg: this.alg };
  }

  /** A DPoP proof JWT. */
  async proof(options: ProofOptions): Promise<string> {
    const { fault } = options;
    const now = Math.floor(this.clock() / 1000);
    const claims: Record<string, unknown> = {
      jti: fault === 'huge-jti' ? 'j'.repeat(10_240) : (options.jti ?? randomUUID()),
      htm: fault === 'wrong-htm' ? (options.htm === 'POST' ? 'GET' : 'POST') : options.htm,
      htu: fault === 'wrong-htu' ? new URL('/elsewhere', options.htu).href : options.htu,
      iat: fault === 'old-iat' ? now - 600 : fault === 'future-iat' ? now + 120 : (options.iat ?? now),
    };
    if (options.accessToken !== undefined && fault !== 'no-ath') {
      claims.ath = createHash('sha256')
        .update(fault === 'wrong-ath' ? `${options.accessToken}x` : options.accessToken)
        .digest('base64url');
    }
    if (fault === 'no-jti') delete claims.jti;
    if (options.nonce !== undefined) claims.nonce = options.nonce;
    Object.assign(claims, options.claims);
    const header: Record<string, unknown> = {
      typ: fault === 'wrong-typ' ? 'JWT' : 'dpop+jwt',
      alg: this.alg,
      jwk: fault === 'private-jwk' ? this.privateJwk : this.publicJwk,
      ...options.header,
    };
    if (fault === 'alg-none') return `${b64({ ...header, alg: 'none' })}.${b64(claims)}.`;
    if (fault === 'hs256') {
      const input = `${b64({ ...header, alg: 'HS256' })}.${b64(claims)}`;
      return `${input}.${createHmac('sha256', JSON.stringify(this.publicJwk)).update(input).digest('base64url')}`;
    }
    const signer = fault === 'bad-signature' ? (await generateKeyPair(this.alg)).privateKey : this.privateKey;
    return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(signer);
  }

  /**
   * Sends a DPoP request with `fetch`; on `401 use_dpop_nonce` it retries once with the nonce
   * from `DPoP-Nonce`, as RFC 9449 §9 asks clients to. Remembers nonces per origin.
   */
  async request(url: string, options: DpopRequestOptions): Promise<Response> {
    const method = options.method ?? 'GET';
    const target = new URL(url);
    const origin = options.publicUrl === undefined ? target.origin : new URL(options.publicUrl).origin;
    const htu = `${origin}${target.pathname}`;
    const send = async () => {
      const proof = await this.proof({
        htm: method,
        htu,
        accessToken: options.accessToken,
        nonce: this.nonces.get(origin),
        fault: options.fault,
      });
      const res = await fetch(url, {
        method,
        headers: { ...options.headers, authorization: `DPoP ${options.accessToken}`, dpop: proof },
        body: options.body,
      });
      const nonce = res.headers.get('dpop-nonce');
      if (nonce) this.nonces.set(origin, nonce);
      return res;
    };
    const first = await send();
    if (first.status === 401 && first.headers.get('www-authenticate')?.includes('error="use_dpop_nonce"')) {
      await first.body?.cancel();
      return send();
    }
    return first;
  }
}

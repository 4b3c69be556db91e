/**
 * JWS the probe makes: DPoP proofs (RFC 9449 §4.2), correct or with one defect each, and forged
 * access tokens (a key the issuer does not publish, `alg: none`, HMAC keyed with the issuer's
 * public key — RFC 8725 §2.1 / §3.1).
 */
import { createHash, createHmac, createPublicKey, randomUUID } from 'node:crypto';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';

/** The client's DPoP key. */
export interface DpopKey {
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  /** Private members, only to send them by mistake on purpose (`jwk` with `d`). */
  privateJwk: JWK;
  /** RFC 7638 thumbprint: the `cnf.jkt` of bound tokens. */
  jkt: string;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** Reads a private JWK (e.g. from a file) as a DPoP key; `alg` from the JWK or the key type. */
export async function dpopKeyFromJwk(jwk: JWK): Promise<DpopKey> {
  const alg = jwk.alg ?? (jwk.kty === 'EC' ? 'ES256' : jwk.kty === 'OKP' ? 'EdDSA' : jwk.kty === 'RSA' ? 'PS256' : undefined);
  if (!alg || !jwk.d) throw new Error('the DPoP key must be a private EC, OKP or RSA JWK (with "d")');
  const publicJwk: JWK = Object.fromEntries(
    Object.entries(jwk).filter(([k]) => !PRIVATE_MEMBERS.includes(k) && !['alg', 'kid', 'use', 'key_ops', 'ext'].includes(k)),
  );
  const privateKey = (await importJWK(jwk, alg, { extractable: false })) as CryptoKey;
  const publicKey = (await importJWK(publicJwk, alg, { extractable: true })) as CryptoKey;
  return { alg, privateKey, publicKey, publicJwk, privateJwk: jwk, jkt: await calculateJwkThumbprint(publicJwk) };
}

/** A fresh key pair. @default ES256 */
export async function newDpopKey(alg = 'ES256'): Promise<DpopKey> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return dpopKeyFromJwk({ ...(await exportJWK(privateKey)), alg });
}

/** One defect of a proof, each the target of one RFC 9449 §4.3 check. */
export type ProofFault =
  | 'typ'
  | 'alg-none'
  | 'alg-hmac'
  | 'jwk-private'
  | 'jwk-missing'
  | 'signature'
  | 'htm'
  | 'htu'
  | 'iat-old'
  | 'iat-future'
  | 'iat-minutes-old'
  | 'iat-minutes-ahead'
  | 'jti-missing'
  | 'ath-missing'
  | 'ath-wrong';

export interface ProofInput {
  htm: string;
  htu: string;
  accessToken?: string;
  nonce?: string;
  jti?: string;
  fault?: ProofFault;
}

/**
 * RFC 9449 §11.1 leaves the window to the server ("a limited time ... preferably seconds or
 * minutes"): a day either way is outside any window; ten minutes old or two minutes ahead is
 * outside a short one only (our advice, not the RFC's rule).
 */
const IAT_SHIFT: Record<string, number> = {
  'iat-old': -86_400,
  'iat-future': 86_400,
  'iat-minutes-old': -600,
  'iat-minutes-ahead': 120,
};

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

export async function proof(key: DpopKey, input: ProofInput): Promise<string> {
  const { fault } = input;
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    jti: input.jti ?? randomUUID(),
    htm: fault === 'htm' ? (input.htm === 'POST' ? 'PUT' : 'POST') : input.htm,
    // Another path on the same origin: the narrowest htu mismatch.
    htu: fault === 'htu' ? new URL('/fapi-probe-elsewhere', input.htu).href : input.htu,
    iat: now + (IAT_SHIFT[fault ?? ''] ?? 0),
  };
  if (fault === 'jti-missing') delete claims.jti;
  if (input.accessToken !== undefined && fault !== 'ath-missing') {
    claims.ath = sha256(fault === 'ath-wrong' ? `${input.accessToken}.other` : input.accessToken);
  }
  if (input.nonce !== undefined) claims.nonce = input.nonce;
  const header: Record<string, unknown> = {
    typ: fault === 'typ' ? 'JWT' : 'dpop+jwt',
    alg: key.alg,
    jwk: fault === 'jwk-private' ? key.privateJwk : key.publicJwk,
  };
  if (fault === 'jwk-missing') delete header.jwk;
  if (fault === 'alg-none') return `${b64({ ...header, alg: 'none' })}.${b64(claims)}.`;
  if (fault === 'alg-hmac') return hmac({ ...header, alg: 'HS256' }, claims, JSON.stringify(key.publicJwk));
  const signer = fault === 'signature' ? (await generateKeyPair(key.alg)).privateKey : key.privateKey;
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(signer);
}

function hmac(header: Record<string, unknown>, claims: Record<string, unknown>, secret: string | Buffer): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** The header and claims of a compact JWS, or undefined when it is not one. */
export function decodeJwt(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString('utf8'));
    const claims = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8'));
    return typeof header === 'object' && header && typeof claims === 'object' && claims ? { header, claims } : undefined;
  } catch {
    return undefined;
  }
}

/** The real token's claims signed with a key nobody published, under a `kid` the issuer does not use. */
export async function forgeUntrusted(token: { header: Record<string, unknown>; claims: Record<string, unknown> }): Promise<string> {
  const alg = 'ES256';
  const { privateKey } = await generateKeyPair(alg);
  return new SignJWT(token.claims).setProtectedHeader({ ...token.header, alg, kid: `fapi-probe-${randomUUID()}` }).sign(privateKey);
}

/** The real token's claims, `alg: none`, no signature. */
export function forgeNone(token: { header: Record<string, unknown>; claims: Record<string, unknown> }): string {
  return `${b64({ ...token.header, alg: 'none' })}.${b64(token.claims)}.`;
}

/**
 * HS256 keyed with the issuer's public key (RFC 8725 §2.1 algorithm confusion), in the two
 * encodings a vulnerable verifier might use as the secret: the JWK JSON and the SPKI PEM.
 */
export function forgeHmac(token: { header: Record<string, unknown>; claims: Record<string, unknown> }, issuerKey: JWK): string[] {
  const header = { ...token.header, alg: 'HS256' };
  const pem = createPublicKey({ key: issuerKey as import('node:crypto').JsonWebKey, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
  return [hmac(header, token.claims, JSON.stringify(issuerKey)), hmac(header, token.claims, pem)];
}

/** The real token with one claim changed and its signature kept. */
export function tamper(token: string): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  claims.scope = typeof claims.scope === 'string' ? `${claims.scope} fapi-probe-admin` : 'fapi-probe-admin';
  return `${h}.${b64(claims)}.${s}`;
}

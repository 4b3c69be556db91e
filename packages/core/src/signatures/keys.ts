/**
 * Keys for HTTP Message Signatures, from JWKs. The RFC 9421 algorithm follows from the key
 * (§3.2 step 6: key and algorithm must agree), restricted to the FAPI 2.0 Message Signing
 * allow-list (§5.6, FAPI 2.0 Security Profile §5.4.1): ed25519, ecdsa-p256-sha256, rsa-pss-sha512.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, type webcrypto } from 'node:crypto';
import { rsaKeyProblem } from '../common/rsa.js';
import type { HttpSignatureAlgorithm, SignatureKey } from './verify.js';

/** The algorithms FAPI 2.0 allows for message signatures. */
export const FAPI_SIGNATURE_ALGORITHMS: readonly HttpSignatureAlgorithm[] = ['ed25519', 'ecdsa-p256-sha256', 'rsa-pss-sha512'];

/**
 * A JWK with the members this module reads. Built on `webcrypto.JsonWebKey`, which every
 * `@types/node` major exports (`crypto.JsonWebKey` is gone from the newer ones, which broke the
 * published declarations for applications type-checked with `skipLibCheck: false`).
 */
export interface SignatureJwk extends webcrypto.JsonWebKey {
  kid?: string;
  alg?: string;
  use?: string;
  [member: string]: unknown;
}

/** The RFC 9421 algorithm a JWK can be used with, or why it cannot be used. */
export function signatureAlgorithmOf(jwk: SignatureJwk): HttpSignatureAlgorithm | string {
  // A JWS `alg` on the key must name the same algorithm (RFC 7518 names).
  const expect = (jws: string, algorithm: HttpSignatureAlgorithm) =>
    jwk.alg === undefined || jwk.alg === jws ? algorithm : `alg ${jwk.alg} does not fit a ${jwk.kty} key for ${algorithm}`;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return expect('EdDSA', 'ed25519');
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return expect('ES256', 'ecdsa-p256-sha256');
  if (jwk.kty === 'RSA') return expect('PS512', 'rsa-pss-sha512');
  return `key type ${jwk.kty}${jwk.crv ? `/${jwk.crv}` : ''} is not allowed for message signatures`;
}

export interface NamedSignatureKey extends SignatureKey {
  /** The `keyid` (the JWK `kid`). */
  keyid: string;
}

function usable(jwk: SignatureJwk, what: string): HttpSignatureAlgorithm {
  if (typeof jwk !== 'object' || jwk === null) throw new TypeError(`fapi-guard: ${what} is not a JWK`);
  if (typeof jwk.kid !== 'string' || jwk.kid === '') throw new TypeError(`fapi-guard: ${what} needs a kid (it is the keyid)`);
  if (jwk.use !== undefined && jwk.use !== 'sig') throw new TypeError(`fapi-guard: ${what} has use "${jwk.use}", not "sig"`);
  const algorithm = signatureAlgorithmOf(jwk);
  if (!FAPI_SIGNATURE_ALGORITHMS.includes(algorithm as HttpSignatureAlgorithm)) throw new TypeError(`fapi-guard: ${what}: ${algorithm}`);
  return algorithm as HttpSignatureAlgorithm;
}

function assertRsaSize(key: KeyObject, what: string): void {
  // FAPI 2.0 §5.4.1 #2: at least 2048 bits; and a modulus and exponent that keep checks cheap.
  const problem = rsaKeyProblem(key);
  if (problem) throw new TypeError(`fapi-guard: ${what} has an ${problem}`);
}

/** A client's public verification key. Throws a TypeError saying why a JWK cannot be used. */
export function verificationKey(jwk: SignatureJwk, what = 'message signing key'): NamedSignatureKey {
  const algorithm = usable(jwk, what);
  if (jwk.d !== undefined) throw new TypeError(`fapi-guard: ${what} holds private key material`);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  assertRsaSize(key, what);
  return { keyid: jwk.kid as string, algorithm, key };
}

/** The resource server's private signing key and the public JWK to publish. */
export interface ResponseSigningKey extends NamedSignatureKey {
  publicJwk: SignatureJwk;
}

export function signingKey(jwk: SignatureJwk, what = 'messageSigning.responseKey'): ResponseSigningKey {
  const algorithm = usable(jwk, what);
  if (jwk.d === undefined) throw new TypeError(`fapi-guard: ${what} must be a private JWK (with d)`);
  const key = createPrivateKey({ key: jwk, format: 'jwk' });
  assertRsaSize(key, what);
  const publicJwk = createPublicKey(key).export({ format: 'jwk' }) as SignatureJwk;
  // The JWS name of the algorithm (RFC 7518), published with the key: one for each allowed algorithm.
  const alg = { ed25519: 'EdDSA', 'ecdsa-p256-sha256': 'ES256', 'rsa-pss-sha512': 'PS512' }[algorithm as string];
  return { keyid: jwk.kid as string, algorithm, key, publicJwk: { ...publicJwk, kid: jwk.kid, use: 'sig', alg } };
}

/** RFC 9421 §3.3: the signature over `base` with a private key. */
export function signBase(base: string, { algorithm, key }: SignatureKey): Uint8Array {
  // Stryker disable next-line StringLiteral: equivalent, a signature base is ASCII (signatureBase refuses other characters), the same bytes in every encoding
  const data = Buffer.from(base, 'ascii');
  switch (algorithm) {
    case 'ed25519':
      return sign(null, data, key);
    case 'ecdsa-p256-sha256':
      return sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
    case 'rsa-pss-sha512':
      // §3.3.1: RSASSA-PSS with SHA-512, MGF1-SHA-512, salt length 64.
      return sign('sha512', data, { key, padding: 6, saltLength: 64 });
    default:
      throw new TypeError(`fapi-guard: cannot sign with ${algorithm}`);
  }
}

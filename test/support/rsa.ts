/**
 * RSA public JWKs of any shape, for tests of the key bounds (security review 15.7): a public key
 * needs no factors, so any modulus and exponent can be written down and imported.
 */
import { createHash } from 'node:crypto';

/** A type alias, not an interface: it fits `JsonWebKey` and `Record<string, unknown>`. */
export type RsaPublicJwk = { kty: 'RSA'; n: string; e: string };

/** A public RSA JWK whose modulus has exactly `bits` bits (0xa5 octets under the top one: odd) and exponent `e`. */
export function rsaPublicJwk(bits: number, e = 65537n): RsaPublicJwk {
  const n = Buffer.alloc(Math.ceil(bits / 8), 0xa5);
  n[0] = 1 << ((bits - 1) % 8);
  const hex = e.toString(16);
  return { kty: 'RSA', n: n.toString('base64url'), e: Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex').toString('base64url') };
}

/** RFC 7638 thumbprint of an RSA JWK (the token's `cnf.jkt`). */
export function rsaThumbprint(jwk: { n?: string; e?: string }): string {
  return createHash('sha256')
    .update(JSON.stringify({ e: jwk.e, kty: 'RSA', n: jwk.n }))
    .digest('base64url');
}

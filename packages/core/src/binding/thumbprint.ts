/** RFC 7638 JWK thumbprints (SHA-256), as used for DPoP `cnf.jkt` (RFC 9449 §6.1). */
import { createHash } from 'node:crypto';

/** RFC 7638 §3.2 and RFC 8037 §2: the required members, already in code-point order. */
const REQUIRED_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  RSA: ['e', 'kty', 'n'],
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
  oct: ['k', 'kty'],
};

/**
 * base64url SHA-256 thumbprint of a JWK. Only the required public members enter the hash, so
 * `kid`, `alg` or private members do not change it (RFC 7638 §3.2–3.3, §3.2.1).
 * Throws a `TypeError` for an unknown `kty` or a missing / non-string member.
 */
export function jwkThumbprint(jwk: Readonly<Record<string, unknown>>): string {
  const members = typeof jwk.kty === 'string' ? REQUIRED_MEMBERS[jwk.kty] : undefined;
  if (!members) throw new TypeError(`unsupported kty ${JSON.stringify(jwk.kty)}`);
  const canonical: Record<string, string> = {};
  for (const name of members) {
    const value = jwk[name];
    if (typeof value !== 'string') throw new TypeError(`JWK member "${name}" is missing`);
    canonical[name] = value;
  }
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url');
}

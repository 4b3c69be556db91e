/**
 * Bounds on the RSA public keys a client chooses: DPoP proof keys (RFC 9449 §4.3 step 7) and
 * message-signing keys (FAPI 2.0 Message Signing §5.6). A verification costs about the square of
 * the modulus length times the bit length of the public exponent, and is paid before the
 * signature is known to be good: a 3071-bit exponent made one PS256 check with a garbage
 * signature 100× dearer than with 65537.
 */
import type { KeyObject } from 'node:crypto';

/** FAPI 2.0 §5.4.1 #2: RSA keys of at least 2048 bits. */
export const MIN_RSA_MODULUS_BITS = 2048;

/**
 * The largest modulus accepted. Keys in use are 2048 to 4096 bits; 8192 leaves room and costs
 * about 16× a 2048-bit check (OpenSSL's own cap, 16384 bits, would allow 64×).
 */
export const MAX_RSA_MODULUS_BITS = 8192;

/**
 * The largest public exponent accepted, 2^32 − 1. Key generators use 65537 (FIPS 186-5 wants at
 * least that); Go refuses exponents over 2^31 − 1 and BoringSSL over 33 bits. A 32-bit exponent
 * costs at most ~4× 65537 (62 modular multiplications against 17).
 */
export const MAX_RSA_PUBLIC_EXPONENT = 2n ** 32n - 1n;

/**
 * Why an RSA public key is outside the bounds — modulus of 2048 (FAPI 2.0 §5.4.1 #2) to 8192
 * bits, odd public exponent from 3 to 2^32 − 1 (1 makes every message its own signature) — or
 * `undefined` when it is within them or not an RSA key.
 */
export function rsaKeyProblem(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') return undefined;
  const { modulusLength = 0, publicExponent = 0n } = key.asymmetricKeyDetails ?? {};
  if (modulusLength < MIN_RSA_MODULUS_BITS) return `RSA modulus of ${modulusLength} bits (at least ${MIN_RSA_MODULUS_BITS})`;
  if (modulusLength > MAX_RSA_MODULUS_BITS) return `RSA modulus of ${modulusLength} bits (at most ${MAX_RSA_MODULUS_BITS})`;
  if (publicExponent < 3n || publicExponent > MAX_RSA_PUBLIC_EXPONENT || publicExponent % 2n === 0n) {
    return `RSA public exponent of ${publicExponent.toString(2).length} bits${publicExponent % 2n === 0n ? ', even' : ''} (odd, 3 to 2^32 - 1)`;
  }
  return undefined;
}

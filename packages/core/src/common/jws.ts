/**
 * Compact JWS parts: JSON segments (RFC 7515 §3.1, with RFC 8725 §3.7's UTF-8 rule) and
 * signature verification on Node's `crypto.verify` (RFC 7515 §5.2, RFC 7518 §3, RFC 8037 §3.1),
 * either on the calling thread or, with a callback, on libuv's thread pool — where signature
 * checks run beside the event loop on the other cores. For the small inputs of a DPoP proof
 * both are about twice as fast as the WebCrypto path. Only the algorithms listed here exist;
 * anything else fails.
 */
import { createPublicKey, type KeyObject, verify } from 'node:crypto';

/**
 * The largest Open Finance Brasil signed body read (regimes/br-signed-jwt.ts verifies none
 * larger; idempotency/ reads none larger unverified): the payments API's payload limits with room to spare.
 */
export const BR_JWT_MAX_LENGTH = 256 * 1024;

type VerifyParams = { hash: string | null; padding?: number; saltLength?: number; dsaEncoding?: 'ieee-p1363' };

/** RFC 7518 §3.3–3.5 and RFC 8037 §3.1: the verification parameters of each algorithm. */
const PARAMS: Readonly<Record<string, VerifyParams>> = {
  ES256: { hash: 'sha256', dsaEncoding: 'ieee-p1363' },
  ES384: { hash: 'sha384', dsaEncoding: 'ieee-p1363' },
  ES512: { hash: 'sha512', dsaEncoding: 'ieee-p1363' },
  PS256: { hash: 'sha256', padding: 6, saltLength: 32 }, // 6 = RSA_PKCS1_PSS_PADDING
  PS384: { hash: 'sha384', padding: 6, saltLength: 48 },
  PS512: { hash: 'sha512', padding: 6, saltLength: 64 },
  RS256: { hash: 'sha256' },
  RS384: { hash: 'sha384' },
  RS512: { hash: 'sha512' },
  EdDSA: { hash: null },
  Ed25519: { hash: null },
};

/**
 * A public key from a JWK's public members. `createPublicKey` rejects points that are not on
 * the curve (RFC 8725 §3.4). Throws for an unusable key.
 */
export function publicKeyFromJwk(jwk: Readonly<Record<string, unknown>>): KeyObject {
  const pub: Record<string, unknown> = { kty: jwk.kty };
  for (const m of ['crv', 'x', 'y', 'n', 'e'] as const) if (jwk[m] !== undefined) pub[m] = jwk[m];
  return createPublicKey({ key: pub as never, format: 'jwk' });
}

/**
 * Verifies a JWS `signature` over its signing input (RFC 7515 §5.2 step 8) with `alg` pinned;
 * false on any failure (an algorithm not listed, a key of another type).
 */
export function verifyJwsSignature(input: Uint8Array, signature: Uint8Array, alg: string, key: KeyObject): boolean {
  const params = PARAMS[alg];
  if (!params) return false;
  const { hash, ...options } = params;
  try {
    return verify(hash, input, { key, ...options }, signature);
  } catch {
    return false;
  }
}

/** Verifies a compact JWS (`header.payload.signature`) with `alg` pinned; false on any failure. */
export function verifyCompactJws(jws: string, alg: string, key: KeyObject): boolean {
  const dot = jws.lastIndexOf('.');
  return verifyJwsSignature(Buffer.from(jws.slice(0, dot), 'ascii'), Buffer.from(jws.slice(dot + 1), 'base64url'), alg, key);
}

/** A JSON number that is finite, else `undefined` (`Number.isFinite` is false for every non-number). */
export function finiteNumber(value: unknown): number | undefined {
  return Number.isFinite(value) ? (value as number) : undefined;
}

/** {@link verifyCompactJws} on libuv's thread pool; resolves false on any failure, never rejects. */
export function verifyCompactJwsInPool(jws: string, alg: string, key: KeyObject): Promise<boolean> {
  const params = PARAMS[alg];
  if (!params) return Promise.resolve(false);
  const dot = jws.lastIndexOf('.');
  const signature = Buffer.from(jws.slice(dot + 1), 'base64url');
  const input = Buffer.from(jws.slice(0, dot), 'ascii');
  const { hash, ...options } = params;
  return new Promise((resolve) => {
    try {
      verify(hash, input, { key, ...options }, signature, (error, ok) => resolve(!error && ok === true));
    } catch {
      resolve(false);
    }
  });
}

/** RFC 8725 §3.7: JWT JSON is UTF-8; invalid sequences are refused, not replaced. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A base64url JSON-object segment (header or payload), or `undefined`. `JSON.parse` keeps the
 * last of duplicate members, the same way everywhere (RFC 7519 §4).
 */
export function decodeJsonSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(utf8.decode(Buffer.from(segment, 'base64url')));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Explicit typing (RFC 8725 §3.11): `typ` names the media type `application/<type>`. RFC 7515
 * §4.1.9: a value without `/` is read with `application/` before it; media types compare
 * case-insensitively (RFC 9110 §8.3.1). So `dpop+jwt`, `application/dpop+jwt` and `DPoP+JWT` are
 * one type.
 */
export function isExplicitType(typ: unknown, type: string): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return lower === type || lower === `application/${type}`;
}

/** RFC 9110 §8.3.1: the media type `application/jwt` (RFC 7519 §10.3.1), case-insensitive, parameters ignored. */
export function isJwtMediaType(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';', 1)[0]?.trim().toLowerCase() === 'application/jwt';
}

/** The payload of a compact JWS (three base64url segments) when it is a JSON object; the signature is not checked. */
export function compactPayload(text: string): Record<string, unknown> | undefined {
  const parts = text.split('.');
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return undefined;
  return decodeJsonSegment(parts[1] as string);
}

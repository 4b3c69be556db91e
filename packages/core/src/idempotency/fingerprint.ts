/**
 * The request fingerprint (draft-ietf-httpapi-idempotency-key-header §2.4 "Idempotency
 * Fingerprint"): what a retry must repeat exactly to be answered with the first response.
 * SHA-256 over the method, the absolute target URI (path and query, as the guard computed it)
 * and the SHA-256 of the body bytes as received. Each part is length-prefixed, so no two
 * different requests can be written as the same input. It is written `<target>.<request>`:
 * the first part, SHA-256 over method and target URI alone, tells whether a request under a
 * used key went to the same route as the first one ({@link sameTarget}).
 */
import { createHash, type Hash } from 'node:crypto';
import { BR_JWT_MAX_LENGTH, compactPayload, isJwtMediaType } from '../common/jws.js';

export function requestFingerprint(method: string, targetUri: string, body: Uint8Array): string {
  return fingerprint([method, targetUri], [], createHash('sha256').update(body).digest());
}

/**
 * The fingerprint of a request whose body is an Open Finance Brasil signed JWT ("Idempotência"):
 * every attempt is signed anew, with a new `jti` and `iat`, so a retry is the same request when
 * its `data` claim has the same content. The claim is hashed in a canonical form (canonicalJson),
 * behind a part that marks it, so it never equals a fingerprint of body bytes.
 */
export function payloadFingerprint(method: string, targetUri: string, data: unknown): string {
  return fingerprint([method, targetUri], ['br-of:data'], createHash('sha256').update(canonicalJson(data)).digest());
}

/**
 * The claims of a request body that is an `application/jwt` compact JWS, not verified, less
 * those each attempt may make anew (`jti`, `iat`, and the validity window `exp`, `nbf`): what a
 * layer that has not verified an Open Finance Brasil signed body fingerprints the request by
 * (exchange.ts), so that a retry signed anew is the same request there, and a body with any other
 * claim changed is another. Read from the bytes already read for the fingerprint, and only up to
 * the size the verifier reads (a larger body is fingerprinted by its bytes, and refused where verified).
 */
export function unverifiedJwtClaims(contentType: string | undefined, body: Uint8Array): Record<string, unknown> | undefined {
  if (!isJwtMediaType(contentType) || body.byteLength > BR_JWT_MAX_LENGTH) return undefined;
  const claims = compactPayload(Buffer.from(body).toString('latin1').trim());
  if (!claims) return undefined;
  const { jti: _jti, iat: _iat, exp: _exp, nbf: _nbf, ...rest } = claims;
  return rest;
}

/**
 * The fingerprint of an Open Finance Brasil signed body read by a layer that has not verified it:
 * its claims less those made anew ({@link unverifiedJwtClaims}), in canonical form, behind a part of its own (never equal to a
 * fingerprint of verified `data` or of body bytes).
 */
export function unverifiedClaimsFingerprint(method: string, targetUri: string, claims: Record<string, unknown>): string {
  return fingerprint([method, targetUri], ['br-of:claims'], createHash('sha256').update(canonicalJson(claims)).digest());
}

/**
 * True when `stored` (what a key holds) fingerprints the same request as `fingerprint`. A
 * fingerprint stored by a release before the target part was added is the request part alone.
 */
export function sameRequest(stored: string, fingerprint: string): boolean {
  return stored === fingerprint || stored === fingerprint.slice(fingerprint.indexOf('.') + 1);
}

/** True when two fingerprints are of requests with the same method and target URI. */
export function sameTarget(a: string, b: string): boolean {
  // A fingerprint of an earlier release has no target part: never the same target.
  const dot = a.indexOf('.');
  return dot > 0 && a.slice(0, dot + 1) === b.slice(0, dot + 1);
}

function lengthPrefixed(hash: Hash, parts: readonly string[]): Hash {
  for (const part of parts) {
    const bytes = Buffer.from(part); // UTF-8, as every string hashed here
    hash.update(`${bytes.length}:`).update(bytes);
  }
  return hash;
}

function fingerprint(target: readonly string[], marks: readonly string[], bodyDigest: Buffer): string {
  const targetPart = lengthPrefixed(createHash('sha256'), target).digest('base64url');
  const whole = lengthPrefixed(createHash('sha256'), [...target, ...marks])
    .update(bodyDigest)
    .digest('base64url');
  return `${targetPart}.${whole}`;
}

/**
 * A parsed JSON value written with object members sorted by name (by code unit, as JavaScript
 * compares strings) and no white space, as RFC 8785 §3.2 writes it (JSON.stringify writes
 * numbers and strings that way; numbers beyond a double's range, which RFC 8785 leaves out, as
 * `Infinity` or `-Infinity`). Iterative: an attacker's body may nest arrays deeper than the stack.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  // What is left to write, last first: values, or the literal text between them.
  const todo: Array<{ value: unknown } | string> = [{ value }];
  while (todo.length > 0) {
    const next = todo.pop() as { value: unknown } | string;
    if (typeof next === 'string') {
      out.push(next);
      continue;
    }
    const v = next.value;
    if (Array.isArray(v)) {
      todo.push(']');
      for (let i = v.length - 1; i >= 0; i--) {
        todo.push({ value: v[i] });
        if (i > 0) todo.push(',');
      }
      out.push('[');
    } else if (typeof v === 'object' && v !== null) {
      const names = Object.keys(v).sort();
      todo.push('}');
      for (let i = names.length - 1; i >= 0; i--) {
        const name = names[i] as string;
        todo.push({ value: (v as Record<string, unknown>)[name] });
        todo.push(`${i > 0 ? ',' : ''}${JSON.stringify(name)}:`);
      }
      out.push('{');
    } else if (typeof v === 'number' && !Number.isFinite(v)) {
      // A number too large for a double (1e400) is parsed as Infinity, which JSON writes as null:
      // kept apart from null, since the handler sees Infinity.
      out.push(String(v));
    } else {
      out.push(JSON.stringify(v));
    }
  }
  return out.join('');
}

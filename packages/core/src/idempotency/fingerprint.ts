/**
 * The request fingerprint (draft-ietf-httpapi-idempotency-key-header §2.4 "Idempotency
 * Fingerprint"): what a retry must repeat exactly to be answered with the first response.
 * SHA-256 over the method, the absolute target URI (path and query, as the guard computed it)
 * and the SHA-256 of the body bytes as received. Each part is length-prefixed, so no two
 * different requests can be written as the same input.
 */
import { createHash } from 'node:crypto';

export function requestFingerprint(method: string, targetUri: string, body: Uint8Array): string {
  return fingerprint([method, targetUri], createHash('sha256').update(body).digest());
}

/**
 * The fingerprint of a request whose body is an Open Finance Brasil signed JWT ("Idempotência"):
 * every attempt is signed anew, with a new `jti` and `iat`, so a retry is the same request when
 * its verified `data` claim has the same content. The claim is hashed in a canonical form
 * (canonicalJson), behind a part that marks it, so it never equals a fingerprint of body bytes.
 */
export function payloadFingerprint(method: string, targetUri: string, data: unknown): string {
  return fingerprint([method, targetUri, 'br-of:data'], createHash('sha256').update(canonicalJson(data), 'utf8').digest());
}

function fingerprint(parts: readonly string[], bodyDigest: Buffer): string {
  const hash = createHash('sha256');
  for (const part of parts) {
    const bytes = Buffer.from(part, 'utf8');
    hash.update(`${bytes.length}:`).update(bytes);
  }
  return hash.update(bodyDigest).digest('base64url');
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

/**
 * The request fingerprint (draft-ietf-httpapi-idempotency-key-header §2.4 "Idempotency
 * Fingerprint"): what a retry must repeat exactly to be answered with the first response.
 * SHA-256 over the method, the absolute target URI (path and query, as the guard computed it)
 * and the SHA-256 of the body bytes as received. Each part is length-prefixed, so no two
 * different requests can be written as the same input.
 */
import { createHash } from 'node:crypto';

export function requestFingerprint(method: string, targetUri: string, body: Uint8Array): string {
  const bodyDigest = createHash('sha256').update(body).digest();
  const hash = createHash('sha256');
  for (const part of [method, targetUri]) {
    const bytes = Buffer.from(part, 'utf8');
    hash.update(`${bytes.length}:`).update(bytes);
  }
  return hash.update(bodyDigest).digest('base64url');
}

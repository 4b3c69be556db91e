/** RFC 8705 certificate-bound access tokens: the `x5t#S256` confirmation method (§3.1). */
import { createHash } from 'node:crypto';

/** base64url (no padding) SHA-256 of the certificate DER (RFC 8705 §3.1). */
export function certificateThumbprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

/**
 * SHA-256 in base64url, the one hash the per-request path computes (token handles, `ath`,
 * replay keys). Node's one-shot `crypto.hash` (Node ≥ 20.12) skips the Hash object: about 40 %
 * faster for a token-sized input; older Node falls back to `createHash`.
 */
import * as crypto from 'node:crypto';

type OneShot = (algorithm: string, data: string, encoding: 'base64url') => string;
const oneShot = (crypto as unknown as { hash?: OneShot }).hash;

export const sha256base64url: (data: string) => string = oneShot
  ? (data) => oneShot('sha256', data, 'base64url')
  : (data) => crypto.createHash('sha256').update(data).digest('base64url');

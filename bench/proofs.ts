/** A DPoP client key and a fast proof factory for load runs: proofs are signed before the load. */
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';

export function proofFactory() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const jkt = createHash('sha256')
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
    .digest('base64url');
  const header = Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk })).toString('base64url');
  /** One proof for `htu` and `token`, with a fresh jti and iat. */
  const one = (htu: string, token: string, jti: string = randomUUID()): string => {
    const ath = createHash('sha256').update(token).digest('base64url');
    const payload = Buffer.from(JSON.stringify({ jti, htm: 'GET', htu, iat: Math.floor(Date.now() / 1000), ath })).toString('base64url');
    const input = `${header}.${payload}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };
  return {
    jkt,
    one,
    make(count: number, htu: string, token: string): string[] {
      const run = randomUUID();
      return Array.from({ length: count }, (_v, i) => one(htu, token, `${run}-${i}`));
    },
  };
}

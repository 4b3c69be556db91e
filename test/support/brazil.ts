/**
 * Open Finance Brasil test parties: the resource server's audience, three organisations (two
 * clients and the bank), their RSA keys, a client's signed request body and the bank's signed
 * answer checked ("Como assinar o payload": PS256 compact JWS, `aud`, `iss`, `iat`, `jti`, `data`).
 */
import { constants, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { jwtVerify } from 'jose';

export const AUDIENCE = 'https://rs.example.com';
export const URL_PAYMENTS = `${AUDIENCE}/payments`;
export const CLIENT_ORG = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
export const OTHER_ORG = '74e929d9-33b6-4d85-8ba7-c146c867a817';
export const BANK_ORG = 'b961c4eb-509d-4edf-afeb-35642b38185d';

/** `client-1`'s key (kid `client-key`), `client-2`'s (kid `other-key`), the bank's (kid `bank-key`). */
export const clientKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const bankKey = generateKeyPairSync('rsa', { modulusLength: 2048 });

/** The bank's private JWK, as `messageSigning.openFinanceBrasil.responseKey`. */
export const bankResponseKey = () => ({ ...(bankKey.privateKey.export({ format: 'jwk' }) as object), kid: 'bank-key' });

/**
 * A body signed by `client-1` (or `client-2` with `other`) for POST /payments, `dataText` written
 * as is (a test may send JSON that no serialiser would write).
 */
export function signedBody(dataText: string, other = false, jti = randomUUID(), kid = other ? 'other-key' : 'client-key'): string {
  const header = Buffer.from(JSON.stringify({ alg: 'PS256', typ: 'JWT', kid })).toString('base64url');
  const claims = `{"aud":${JSON.stringify(URL_PAYMENTS)},"iss":${JSON.stringify(other ? OTHER_ORG : CLIENT_ORG)},"iat":${Math.floor(Date.now() / 1000)},"jti":${JSON.stringify(jti)},"data":${dataText}}`;
  const input = `${header}.${Buffer.from(claims).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), {
    key: (other ? otherKey : clientKey).privateKey,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: 32,
  });
  return `${input}.${signature.toString('base64url')}`;
}

/** The bank's signed answer, verified: PS256 with `bank-key`, `typ` JWT, audience the client's organisation, issuer the bank. */
export async function bankPayload(text: string, audience = CLIENT_ORG) {
  const { payload, protectedHeader } = await jwtVerify(text, bankKey.publicKey, {
    algorithms: ['PS256'],
    audience,
    issuer: BANK_ORG,
    typ: 'JWT',
  });
  if (protectedHeader.kid !== 'bank-key' || typeof payload.jti !== 'string') throw new Error('not the bank’s answer: kid or jti');
  return payload as { data: Record<string, unknown>; jti: string };
}

/**
 * The regimes the probe can hold a deployment to (`--profile`), and the request signing of the
 * open-banking ones: UK Open Banking's detached `x-jws-signature` over the body bytes (Read/Write
 * API v3.1.4+ "Message Signing") and Open Finance Brasil's body as a signed JWT ("Como assinar o
 * payload"). The probe signs as the client, with the client's key, so a correct request passes.
 */
import { randomUUID } from 'node:crypto';
import { type CryptoKey, FlattenedSign, importJWK, type JWK, SignJWT } from 'jose';

export type ProbeProfile = 'fapi2' | 'fapi1-advanced' | 'uk-ob' | 'br-of';
export const PROFILES: readonly ProbeProfile[] = ['fapi2', 'fapi1-advanced', 'uk-ob', 'br-of'];

/** The profiles built on FAPI 1.0 Advanced: certificate-bound tokens only (Part 2 §6.2.1 #2). */
export const isFapi1 = (profile: ProbeProfile) => profile !== 'fapi2';

/** What the client signs with. */
export interface SignerInput {
  /** The client's private signing JWK (RSA, PS256), with the `kid` its key set publishes it under. */
  key: JWK;
  /** UK: `http://openbanking.org.uk/iss` (org id / software statement id); Brazil: the organisation id. */
  iss: string;
  /** UK: `http://openbanking.org.uk/tan`. @default 'openbanking.org.uk' */
  trustAnchor?: string;
}

export interface MessageSigner {
  scheme: 'uk-ob' | 'br-of';
  key: CryptoKey | Uint8Array;
  kid: string;
  iss: string;
  trustAnchor: string;
}

/** A request's signature: made correctly, left out, or made and then the body changed. */
export type SignatureFault = 'missing' | 'tampered';

const OB_IAT = 'http://openbanking.org.uk/iat';
const OB_ISS = 'http://openbanking.org.uk/iss';
const OB_TAN = 'http://openbanking.org.uk/tan';

export async function messageSigner(scheme: 'uk-ob' | 'br-of', input: SignerInput): Promise<MessageSigner> {
  if (typeof input.key.kid !== 'string' || input.key.kid === '') throw new Error(`${scheme}: the signing key needs its kid`);
  if (input.key.kty !== 'RSA' || typeof input.key.d !== 'string')
    throw new Error(`${scheme}: the signing key must be a private RSA JWK (PS256)`);
  if (input.iss === '') throw new Error(`${scheme}: the signer's iss is required`);
  return {
    scheme,
    key: await importJWK(input.key, 'PS256'),
    kid: input.key.kid,
    iss: input.iss,
    trustAnchor: input.trustAnchor ?? 'openbanking.org.uk',
  };
}

/** The JSON body as an object, for the Brazil `data` claim; anything else is a usage error. */
export function dataClaim(body: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    value = undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error('br-of: the body must be a JSON object: it is sent as the data claim of a signed JWT');
  }
  return value as Record<string, unknown>;
}

/** The body with one member added: other bytes and another meaning than what was signed. */
function tamperedJson(body: string): string {
  try {
    const value = JSON.parse(body);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return JSON.stringify({ ...value, fapiProbe: 'tampered' });
  } catch {
    // not JSON: a byte appended is a change all the same
  }
  return `${body} `;
}

/** The body and headers of a signed request to `url`, or of one with the fault. */
export async function signRequest(
  signer: MessageSigner,
  body: string,
  url: string,
  fault?: SignatureFault,
): Promise<{ body: string; headers: Record<string, string> }> {
  if (signer.scheme === 'uk-ob') {
    if (fault === 'missing') return { body, headers: {} };
    const jws = await new FlattenedSign(new TextEncoder().encode(body))
      .setProtectedHeader({
        alg: 'PS256',
        kid: signer.kid,
        [OB_IAT]: Math.floor(Date.now() / 1000),
        [OB_ISS]: signer.iss,
        [OB_TAN]: signer.trustAnchor,
        crit: [OB_IAT, OB_ISS, OB_TAN],
      })
      .sign(signer.key, { crit: { [OB_IAT]: true, [OB_ISS]: true, [OB_TAN]: true } });
    return { body: fault === 'tampered' ? tamperedJson(body) : body, headers: { 'x-jws-signature': `${jws.protected}..${jws.signature}` } };
  }
  const headers = { 'content-type': 'application/jwt' };
  if (fault === 'missing') return { body, headers: { 'content-type': 'application/json' } };
  const jwt = await new SignJWT({ data: dataClaim(body) })
    .setProtectedHeader({ alg: 'PS256', typ: 'JWT', kid: signer.kid })
    .setAudience(url)
    .setIssuer(signer.iss)
    .setIssuedAt()
    .setJti(randomUUID())
    .sign(signer.key);
  if (fault !== 'tampered') return { body: jwt, headers };
  const [header, payload, signature] = jwt.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const changed = Buffer.from(JSON.stringify({ ...claims, data: JSON.parse(tamperedJson(JSON.stringify(claims.data))) })).toString(
    'base64url',
  );
  return { body: `${header}.${changed}.${signature}`, headers };
}

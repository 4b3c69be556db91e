/**
 * UK Open Banking message signing (Read/Write API Specification, "Message Signing", v3.1.x):
 * `x-jws-signature` is a JWS with a detached payload — the exact body bytes — in compact form
 * (`header..signature`). Header rules: `alg` PS256, `kid` a key of the signer in its trust
 * anchor's JWK set, `typ` "JOSE" and `cty` "json" / "application/json" when present, and the
 * private parameters `http://openbanking.org.uk/iat` (a number of seconds), `…/iss` (who signed)
 * and `…/tan` (the trust anchor's domain), all listed in `crit`. Up to v3.1.3 the payload is not
 * base64url-encoded (`b64: false`, RFC 7797, with `b64` in `crit`); from v3.1.4 `b64` is absent
 * and the payload is encoded as in RFC 7515.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import { decodeJsonSegment, finiteNumber, verifyJwsSignature } from '../common/jws.js';
import { rsaKeyProblem } from '../common/rsa.js';
import type { ClientKeys } from '../signatures/client-keys.js';
import type { SignatureJwk } from '../signatures/keys.js';

export const OB_IAT = 'http://openbanking.org.uk/iat';
export const OB_ISS = 'http://openbanking.org.uk/iss';
export const OB_TAN = 'http://openbanking.org.uk/tan';

/** Which message-signing rules: `3.1.3` and earlier (`b64: false`), or `3.1.4` and later (no `b64`). */
export type ObSigningVersion = '3.1.3' | '3.1.4';

/** The largest `x-jws-signature` read: a PS256 signature of 4096 bits and a header with room to spare. */
export const OB_SIGNATURE_MAX_LENGTH = 4096;

/** Why a signature failed, as the OB error codes name it (`UK.OBIE.Signature.*`). */
export type ObSignatureFailure = 'Missing' | 'Malformed' | 'MissingClaim' | 'InvalidClaim' | 'Invalid' | 'Unavailable';

/** A key of a signer's JWK set usable for PS256. */
export interface ObKey {
  keyid: string;
  key: KeyObject;
}

/** What a verified signature said. */
export interface VerifiedObSignature {
  readonly kid: string;
  readonly iss: string;
  readonly tan: string;
  readonly iat: number;
}

export type ObSignatureResult = { ok: true; verified: VerifiedObSignature } | { ok: false; failure: ObSignatureFailure; detail: string };

export interface ObVerifySettings {
  version: ObSigningVersion;
  /** Trust anchor domains (`tan`) accepted. */
  trustAnchors: ReadonlySet<string>;
  /** Key sets by trust anchor and signer (owner `tan|iss`), each fetched from that trust anchor. */
  keys: ClientKeys<ObKey>;
  maxAgeSec: number;
  maxFutureSec: number;
}

/** RFC 7518 §3.5: RSASSA-PSS with SHA-256, MGF1 with SHA-256, a 32-byte salt. */
const PS256 = { padding: 6, saltLength: 32 } as const;

/** The `crit` members each version requires, no more and no fewer. */
function requiredCrit(version: ObSigningVersion): readonly string[] {
  return version === '3.1.3' ? ['b64', OB_IAT, OB_ISS, OB_TAN] : [OB_IAT, OB_ISS, OB_TAN];
}

/** The JWS signing input (RFC 7515 §5.1 step 8; RFC 7797 §3 when `b64` is false). */
function signingInput(protectedHeader: string, body: Uint8Array, version: ObSigningVersion): Buffer {
  // base64url text is ASCII: its UTF-8 bytes (Buffer.from's default) are the ASCII ones.
  const payload = version === '3.1.3' ? Buffer.from(body) : Buffer.from(Buffer.from(body).toString('base64url'));
  return Buffer.concat([Buffer.from(`${protectedHeader}.`), payload]);
}

/** An RSA JWK of a signer's set as a PS256 verification key; throws for anything else. */
export function obVerificationKey(jwk: SignatureJwk): ObKey {
  if (jwk.kty !== 'RSA' || typeof jwk.kid !== 'string' || jwk.kid === '') throw new TypeError('not an RSA key with a kid');
  if (jwk.use !== undefined && jwk.use !== 'sig') throw new TypeError(`use ${jwk.use}`);
  if (jwk.alg !== undefined && jwk.alg !== 'PS256') throw new TypeError(`alg ${jwk.alg}`);
  if (jwk.d !== undefined) throw new TypeError('private key material');
  const key = createPublicKey({ key: { kty: 'RSA', n: jwk.n as string, e: jwk.e as string }, format: 'jwk' });
  const problem = rsaKeyProblem(key);
  if (problem) throw new TypeError(problem);
  return { keyid: jwk.kid, key };
}

const fail = (failure: ObSignatureFailure, detail: string): ObSignatureResult => ({ ok: false, failure, detail });

/** The header checks, cheapest first; `undefined` when the header is acceptable. */
function checkHeader(
  header: Record<string, unknown>,
  expectedIss: string,
  settings: ObVerifySettings,
  now: number,
): ObSignatureResult | undefined {
  if (header.alg === undefined) return fail('MissingClaim', 'no alg');
  if (header.alg !== 'PS256') return fail('InvalidClaim', `alg ${JSON.stringify(header.alg)}, not PS256`);
  if (header.kid === undefined) return fail('MissingClaim', 'no kid');
  if (typeof header.kid !== 'string' || header.kid === '') return fail('InvalidClaim', 'kid is not a non-empty string');
  if (header.typ !== undefined && header.typ !== 'JOSE') return fail('InvalidClaim', 'typ is not "JOSE"');
  if (header.cty !== undefined && header.cty !== 'json' && header.cty !== 'application/json') return fail('InvalidClaim', 'cty');
  // RFC 7515 §4.1.11: every crit member must be understood and present; the OB lists are exact
  // (as long as the list, and containing each member: so no member twice and none other).
  const crit = header.crit;
  if (crit === undefined) return fail('MissingClaim', 'no crit');
  const required = requiredCrit(settings.version);
  if (!Array.isArray(crit) || crit.length !== required.length || !required.every((name) => crit.includes(name))) {
    return fail('InvalidClaim', `crit must list exactly ${required.join(', ')}`);
  }
  // v3.1.3: b64 false (RFC 7797); v3.1.4 and later: no b64 at all.
  if (settings.version === '3.1.3' ? header.b64 !== false : header.b64 !== undefined) {
    return fail('InvalidClaim', settings.version === '3.1.3' ? 'b64 must be false' : 'b64 must be absent from v3.1.4');
  }
  for (const name of [OB_IAT, OB_ISS, OB_TAN]) if (header[name] === undefined) return fail('MissingClaim', `no ${name}`);
  const iat = finiteNumber(header[OB_IAT]);
  if (iat === undefined) return fail('InvalidClaim', 'iat is not a number');
  if (iat < now - settings.maxAgeSec) return fail('InvalidClaim', `iat ${iat} is older than ${settings.maxAgeSec} s`);
  if (iat > now + settings.maxFutureSec) return fail('InvalidClaim', `iat ${iat} is in the future`);
  if (typeof header[OB_TAN] !== 'string' || !settings.trustAnchors.has(header[OB_TAN])) {
    return fail('InvalidClaim', 'tan is not a configured trust anchor');
  }
  if (header[OB_ISS] !== expectedIss) return fail('InvalidClaim', 'iss is not the client that sent the request');
  return undefined;
}

/**
 * Verifies one request's `x-jws-signature` lines over `body`, signed by `expectedIss` (the
 * client's own identity: a signature by anyone else is refused before any key is fetched).
 */
export async function verifyObSignature(
  lines: readonly string[],
  body: Uint8Array,
  expectedIss: string,
  settings: ObVerifySettings,
  now: number,
): Promise<ObSignatureResult> {
  if (lines.length === 0) return fail('Missing', 'no x-jws-signature');
  if (lines.length > 1) return fail('Malformed', `${lines.length} x-jws-signature lines`);
  const value = (lines[0] as string).trim();
  if (value.length > OB_SIGNATURE_MAX_LENGTH) return fail('Malformed', `${value.length} characters`);
  const parts = value.split('.');
  if (parts.length !== 3 || parts[1] !== '') return fail('Malformed', 'not a compact JWS with a detached payload (header..signature)');
  const [protectedHeader, , signature] = parts as [string, string, string];
  if (!/^[A-Za-z0-9_-]+$/.test(protectedHeader) || !/^[A-Za-z0-9_-]+$/.test(signature)) return fail('Malformed', 'not base64url');
  const header = decodeJsonSegment(protectedHeader);
  if (!header) return fail('Malformed', 'the protected header is not a JSON object');
  const refused = checkHeader(header, expectedIss, settings, now);
  if (refused) return refused;
  const kid = header.kid as string;
  // The signer's key set at the trust anchor it names (the owner is `tan|iss`).
  const found = await settings.keys.key(`${header[OB_TAN] as string}|${expectedIss}`, kid);
  if (!found.ok) return fail(found.unavailable ? 'Unavailable' : 'Invalid', found.detail);
  const input = signingInput(protectedHeader, body, settings.version);
  if (!verifyJwsSignature(input, Buffer.from(signature, 'base64url'), 'PS256', found.key.key))
    return fail('Invalid', 'the signature does not verify over the body');
  return { ok: true, verified: { kid, iss: expectedIss, tan: header[OB_TAN] as string, iat: header[OB_IAT] as number } };
}

/** The bank's response-signing key: RSA ≥ 2048 bits, with a `kid`. */
export interface ObSigningKey {
  kid: string;
  key: KeyObject;
}

export function obSigningKey(jwk: SignatureJwk, what: string): ObSigningKey {
  if (jwk?.kty !== 'RSA' || jwk.d === undefined) throw new TypeError(`fapi-guard: ${what} must be a private RSA JWK (PS256)`);
  if (typeof jwk.kid !== 'string' || jwk.kid === '') throw new TypeError(`fapi-guard: ${what} needs a kid`);
  const key = createPrivateKey({ key: jwk, format: 'jwk' });
  const problem = rsaKeyProblem(key);
  if (problem) throw new TypeError(`fapi-guard: ${what} has an ${problem}`);
  return { kid: jwk.kid, key };
}

/** Signs a response body the OB way: `header..signature`, as the bank (`iss`) under trust anchor `tan`. */
export function signObBody(
  body: Uint8Array,
  signer: { key: ObSigningKey; iss: string; tan: string; version: ObSigningVersion },
  now: number,
): string {
  const header: Record<string, unknown> = {
    alg: 'PS256',
    kid: signer.key.kid,
    typ: 'JOSE',
    cty: 'application/json',
    ...(signer.version === '3.1.3' ? { b64: false } : {}),
    [OB_IAT]: Math.floor(now),
    [OB_ISS]: signer.iss,
    [OB_TAN]: signer.tan,
    crit: requiredCrit(signer.version),
  };
  const protectedHeader = Buffer.from(JSON.stringify(header)).toString('base64url');
  const signature = sign('sha256', signingInput(protectedHeader, body, signer.version), { key: signer.key.key, ...PS256 });
  return `${protectedHeader}..${signature.toString('base64url')}`;
}

/**
 * Open Finance Brasil signed payloads ("Como assinar o payload", payments and consents): the
 * request body is a JWS in compact form (`Content-Type: application/jwt`), header `alg` PS256,
 * `typ` JWT and `kid`, claims `aud` (the URL of the resource called), `iss` (the client's
 * organisation id), `iat`, `jti` and `data` (the payload). Responses, errors included, come back
 * the same way, signed by the bank: `aud` the client's organisation, `iss` the bank's.
 */
import { randomUUID, sign } from 'node:crypto';
import { BR_JWT_MAX_LENGTH, compactPayload, decodeJsonSegment, finiteNumber, isJwtMediaType, verifyCompactJws } from '../common/jws.js';
import type { ReplayStore } from '../common/stores.js';
import type { ClientKeys } from '../signatures/client-keys.js';
import type { ObKey, ObSigningKey } from './uk-ob-signature.js';

export { BR_JWT_MAX_LENGTH };

/** What a verified body carried. */
export interface VerifiedJwtBody {
  /** The `data` claim: the payload the handler works on. */
  readonly data: Readonly<Record<string, unknown>>;
  readonly iss: string;
  readonly jti: string;
  readonly iat: number;
  readonly kid: string;
}

export type JwtBodyFailure = 'media_type' | 'malformed' | 'header' | 'claims' | 'signature' | 'replayed' | 'unavailable';

export type JwtBodyResult = { ok: true; verified: VerifiedJwtBody } | { ok: false; failure: JwtBodyFailure; detail: string };

export interface JwtBodySettings {
  /** Key sets by client id. */
  keys: ClientKeys<ObKey>;
  replayStore: ReplayStore;
  maxAgeSec: number;
  maxFutureSec: number;
}

const fail = (failure: JwtBodyFailure, detail: string): JwtBodyResult => ({ ok: false, failure, detail });
/** RFC 7518 §3.5. */
const PS256 = { padding: 6, saltLength: 32 } as const;
const JTI = /^[\x21-\x7e]{1,256}$/;

export { isJwtMediaType };

function checkClaims(claims: Record<string, unknown>, expected: { aud: string; iss: string }, settings: JwtBodySettings, now: number) {
  if (claims.iss !== expected.iss) return fail('claims', 'iss is not the organisation of the client holding the token');
  if (claims.aud !== expected.aud) return fail('claims', `aud is not ${expected.aud}`);
  const iat = finiteNumber(claims.iat);
  if (iat === undefined) return fail('claims', 'iat is not a number');
  if (iat < now - settings.maxAgeSec || iat > now + settings.maxFutureSec) return fail('claims', `iat ${iat} is outside the window`);
  if (typeof claims.jti !== 'string' || !JTI.test(claims.jti)) return fail('claims', 'jti is not 1 to 256 visible characters');
  const data = claims.data;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return fail('claims', 'data is not an object');
  return undefined;
}

/**
 * Verifies a signed request body: the cheap checks (media type, shape, header, claims bound to
 * the client and the URL), then the signature with the client's key, then `jti` against the
 * replay store (only a signed `jti` is remembered, so no one can burn another client's ids).
 */
export async function verifyJwtBody(
  request: { contentType: string | undefined; body: Uint8Array; url: string },
  client: { clientId: string; organisationId: string },
  settings: JwtBodySettings,
  now: number,
): Promise<JwtBodyResult> {
  if (!isJwtMediaType(request.contentType)) return fail('media_type', 'the body is not application/jwt');
  if (request.body.length > BR_JWT_MAX_LENGTH) return fail('malformed', `${request.body.length} bytes`);
  const text = Buffer.from(request.body).toString('latin1').trim();
  const parts = text.split('.');
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return fail('malformed', 'not a compact JWS');
  const [headerPart, payloadPart] = parts as [string, string, string];
  const header = decodeJsonSegment(headerPart);
  const claims = decodeJsonSegment(payloadPart);
  if (!header || !claims) return fail('malformed', 'header or payload is not a JSON object');
  if (header.alg !== 'PS256') return fail('header', `alg ${JSON.stringify(header.alg)}, not PS256`);
  if (header.typ !== 'JWT') return fail('header', 'typ is not JWT');
  if (typeof header.kid !== 'string' || header.kid === '') return fail('header', 'no kid');
  if (header.crit !== undefined) return fail('header', 'crit is not understood here');
  const refused = checkClaims(claims, { aud: request.url.split('?', 1)[0] as string, iss: client.organisationId }, settings, now);
  if (refused) return refused;
  const found = await settings.keys.key(client.clientId, header.kid);
  if (!found.ok) return fail(found.unavailable ? 'unavailable' : 'signature', found.detail);
  if (!verifyCompactJws(text, 'PS256', found.key.key)) return fail('signature', 'the signature does not verify with the client key');
  const iat = claims.iat as number;
  const jti = claims.jti as string;
  // Remembered until the iat window has passed for it: after that the body is refused as stale anyway.
  let fresh: boolean;
  try {
    fresh = await settings.replayStore.claim(`br-jti:${client.organisationId}:${jti}`, (iat + settings.maxAgeSec + 1) * 1000);
  } catch (e) {
    return fail('unavailable', `replay store: ${(e as Error)?.message ?? String(e)}`);
  }
  if (!fresh) return fail('replayed', `jti ${jti} was already used`);
  return {
    ok: true,
    verified: { data: claims.data as Record<string, unknown>, iss: client.organisationId, jti, iat, kid: header.kid },
  };
}

/**
 * The `data` claim of a stored answer that is the bank's signed JWT (an idempotent replay, when the
 * answer was recorded after it was signed), or `undefined` when `text` is not a compact JWS with a
 * `data` claim (the handler's JSON, recorded before signing: never three base64url segments).
 * The signature is not checked: the store holds only what this API sent (a key rotated since,
 * another instance's key), and the caller takes stored answers only.
 */
export function storedJwtData(text: string): { data: unknown } | undefined {
  const claims = compactPayload(text);
  return claims && Object.hasOwn(claims, 'data') ? { data: claims.data } : undefined;
}

/** A response payload as the bank's signed JWT (`aud` the client's organisation, `iss` the bank's). */
export function signJwtBody(data: unknown, signer: { key: ObSigningKey; iss: string }, aud: string, now: number): string {
  const header = Buffer.from(JSON.stringify({ alg: 'PS256', typ: 'JWT', kid: signer.key.kid })).toString('base64url');
  const claims = { aud, iss: signer.iss, iat: Math.floor(now), jti: randomUUID(), data };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), { key: signer.key.key, ...PS256 });
  return `${header}.${payload}.${signature.toString('base64url')}`;
}

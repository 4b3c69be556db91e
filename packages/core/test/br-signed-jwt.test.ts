/**
 * Open Finance Brasil signed bodies in process: every header and claim rule at its boundary,
 * with bodies signed by hand (PS256 over whatever header is written), so that each check is the
 * one that refuses.
 */
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { canonicalJson, payloadFingerprint, unverifiedClaimsFingerprint, unverifiedJwtClaims } from '../src/idempotency/fingerprint';
import {
  BR_JWT_MAX_LENGTH,
  ClientKeys,
  isJwtMediaType,
  MemoryReplayStore,
  type ObKey,
  obVerificationKey,
  requestFingerprint,
  verifyJwtBody,
} from '../src/index';

const NOW = 1_765_000_000;
const URL = 'https://rs.example.com/payments';
const ORG = 'c2a8ea4b-19e3-4de9-a0a2-36e6c3bdbf0f';
const key = generateKeyPairSync('rsa', { modulusLength: 2048 });

const settings = () => ({
  keys: new ClientKeys<ObKey>(
    { clients: { 'client-1': { jwks: { keys: [{ ...(key.publicKey.export({ format: 'jwk' }) as object), kid: 'k1' }] } } } },
    () => NOW * 1000,
    undefined,
    obVerificationKey,
  ),
  replayStore: new MemoryReplayStore({ clock: () => NOW * 1000 }),
  maxAgeSec: 60,
  maxFutureSec: 5,
});

/** A compact JWS with exactly this header and these claims, PS256 over them. */
function jws(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), { key: key.privateKey, padding: 6, saltLength: 32 });
  return `${input}.${signature.toString('base64url')}`;
}

const HEADER = { alg: 'PS256', typ: 'JWT', kid: 'k1' };
const claims = (extra: Record<string, unknown> = {}) => ({ aud: URL, iss: ORG, iat: NOW, jti: randomUUID(), data: { a: 1 }, ...extra });

async function check(body: string, contentType = 'application/jwt', s = settings()) {
  return verifyJwtBody(
    { contentType, body: new TextEncoder().encode(body), url: `${URL}?x=1` },
    { clientId: 'client-1', organisationId: ORG },
    s,
    NOW,
  );
}

describe('signed JWT body', () => {
  it('BR-01 accepts a body signed as asked, the URL compared without its query', async () => {
    expect(await check(jws(HEADER, claims({ jti: 'j-1' })))).toEqual({
      ok: true,
      verified: { data: { a: 1 }, iss: ORG, jti: 'j-1', iat: NOW, kid: 'k1' },
    });
  });

  it('BR-05 refuses any alg but PS256 even when the signature is PS256 math, and typ, kid or crit out of rule', async () => {
    for (const header of [
      { ...HEADER, alg: 'PS384' },
      { ...HEADER, typ: 'JOSE' },
      { ...HEADER, typ: undefined },
      { ...HEADER, kid: undefined },
      { ...HEADER, kid: '' },
      { ...HEADER, kid: 7 },
      { ...HEADER, crit: ['exp'], exp: 1 },
    ]) {
      expect([header, await check(jws(header, claims()))]).toEqual([header, expect.objectContaining({ ok: false, failure: 'header' })]);
    }
  });

  it('BR-01 needs aud, iss, iat, jti and data, with jti of 1 to 256 visible characters and data an object', async () => {
    for (const name of ['aud', 'iss', 'iat', 'jti', 'data']) {
      expect([name, await check(jws(HEADER, claims({ [name]: undefined })))]).toEqual([
        name,
        expect.objectContaining({ failure: 'claims' }),
      ]);
    }
    for (const jti of ['', 'a'.repeat(257), 'with space', 7]) {
      expect([jti, await check(jws(HEADER, claims({ jti })))]).toEqual([jti, expect.objectContaining({ failure: 'claims' })]);
    }
    expect((await check(jws(HEADER, claims({ jti: 'a'.repeat(256) })))).ok).toBe(true);
    for (const data of [[1], 'text', null, 3]) {
      expect([data, await check(jws(HEADER, claims({ data })))]).toEqual([data, expect.objectContaining({ failure: 'claims' })]);
    }
  });

  it('BR-03 takes iat from 60 s ago to 5 s ahead, not a second more', async () => {
    const at = async (iat: number) => (await check(jws(HEADER, claims({ iat })))).ok;
    expect(await at(NOW - 60)).toBe(true);
    expect(await at(NOW - 61)).toBe(false);
    expect(await at(NOW + 5)).toBe(true);
    expect(await at(NOW + 6)).toBe(false);
  });

  it('BR-04 remembers a jti only once its signature is good', async () => {
    const s = settings();
    const forged = `${jws(HEADER, claims({ jti: 'victim' })).slice(0, -4)}AAAA`;
    expect((await check(forged, 'application/jwt', s)).ok).toBe(false);
    expect((await check(jws(HEADER, claims({ jti: 'victim' })), 'application/jwt', s)).ok).toBe(true);
    expect(await check(jws(HEADER, claims({ jti: 'victim' })), 'application/jwt', s)).toMatchObject({ failure: 'replayed' });
  });

  it('BR-06 reads application/jwt only (case and parameters aside), and bounds the body at 256 KiB', async () => {
    expect(isJwtMediaType('application/jwt')).toBe(true);
    expect(isJwtMediaType('Application/JWT; charset=utf-8')).toBe(true);
    expect(isJwtMediaType('application/jwt+json')).toBe(false);
    expect(isJwtMediaType('application/json')).toBe(false);
    expect(isJwtMediaType(undefined)).toBe(false);
    const body = jws(HEADER, claims({ pad: '' }));
    const padded = (n: number) => jws(HEADER, claims({ pad: 'x'.repeat(n) }));
    const limit = 256 * 1024;
    // Find a pad that lands exactly on the limit (base64url grows 4 for 3).
    let pad = Math.floor(((limit - body.length) * 3) / 4);
    while (padded(pad).length > limit) pad--;
    while (padded(pad + 1).length <= limit) pad++;
    expect((await check(padded(pad))).ok).toBe(true);
    const over = `${padded(pad)} `.padEnd(limit + 1, ' ');
    expect(await check(over)).toMatchObject({ failure: 'malformed' });
  });
});

describe('unverifiedJwtClaims (a layer ahead of the one that verifies the body)', () => {
  const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = { aud: 'https://rs.example.com/payments', iss: 'org', iat: 1, jti: 'j', data: { amount: '1.00' } };
  const jws = (payload: string) => Buffer.from(`${segment({ alg: 'PS256' })}.${payload}.c2ln`);

  it('IDEM-17 reads every claim but those each attempt makes anew (jti, iat, exp, nbf), of an application/jwt compact JWS only', () => {
    const expected = { aud: claims.aud, iss: 'org', data: { amount: '1.00' } };
    expect(unverifiedJwtClaims('Application/JWT; charset=utf-8', jws(segment(claims)))).toEqual(expected);
    // A client that also signs a validity window signs it anew with each attempt.
    expect(unverifiedJwtClaims('application/jwt', jws(segment({ ...claims, exp: 301, nbf: 1 })))).toEqual(expected);
    for (const [type, body] of [
      ['application/json', jws(segment(claims))],
      [undefined, jws(segment(claims))],
      ['application/jwt', Buffer.from(`${segment({})}.${segment(claims)}`)],
      ['application/jwt', Buffer.from(`${segment({})}.${segment(claims)}.c2ln.x`)],
      ['application/jwt', Buffer.from(`${segment({})}.${segment(claims)}.c2l+`)],
      ['application/jwt', jws(segment([1]))],
      ['application/jwt', jws('not-json')],
    ] as const) {
      expect(unverifiedJwtClaims(type, body)).toBeUndefined();
    }
    // White space around the token is trimmed, as the verifying layer trims it.
    expect(unverifiedJwtClaims('application/jwt', Buffer.from(`  ${jws(segment(claims))}\n`))).toMatchObject({ iss: 'org' });
  });

  it('IDEM-17 BR-06 reads no body larger than the verifier reads (BR_JWT_MAX_LENGTH): such a body is fingerprinted by its bytes', () => {
    // A token of about 3/4 of the bound (base64url writes 4 characters per 3 bytes), then white
    // space (trimmed, as the verifier trims it) up to the bound, and one byte past it.
    const token = jws(segment({ ...claims, pad: 'p'.repeat(BR_JWT_MAX_LENGTH / 2) }));
    const spaced = (length: number) => Buffer.concat([token, Buffer.from(' '.repeat(length - token.length))]);
    expect(unverifiedJwtClaims('application/jwt', spaced(BR_JWT_MAX_LENGTH))).toMatchObject({ iss: 'org' });
    const over = spaced(BR_JWT_MAX_LENGTH + 1);
    expect(unverifiedJwtClaims('application/jwt', over)).toBeUndefined();
  });

  it('IDEM-06 IDEM-17 its fingerprint is neither a verified data fingerprint nor one of body bytes', () => {
    const url = 'https://rs.example.com/payments';
    const rest = unverifiedJwtClaims('application/jwt', jws(segment(claims))) as Record<string, unknown>;
    const fingerprint = unverifiedClaimsFingerprint('POST', url, rest);
    expect(fingerprint).toBe(unverifiedClaimsFingerprint('POST', url, { ...rest }));
    expect(fingerprint).not.toBe(payloadFingerprint('POST', url, rest));
    expect(fingerprint).not.toBe(unverifiedClaimsFingerprint('POST', url, { ...rest, iss: 'other' }));
    expect(fingerprint).not.toBe(requestFingerprint('POST', url, Buffer.from(canonicalJson(rest))));
  });
});

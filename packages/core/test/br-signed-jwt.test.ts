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

/** The same over a payload written by hand (JSON that JSON.stringify does not write). */
function jwsRaw(header: Record<string, unknown>, payload: string): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), { key: key.privateKey, padding: 6, saltLength: 32 });
  return `${input}.${signature.toString('base64url')}`;
}

const refusal = (failure: string, detail: string) => ({ ok: false, failure, detail });

const HEADER = { alg: 'PS256', typ: 'JWT', kid: 'k1' };
const claims = (extra: Record<string, unknown> = {}) => ({ aud: URL, iss: ORG, iat: NOW, jti: randomUUID(), data: { a: 1 }, ...extra });

async function check(body: string, contentType = 'application/jwt', s: Parameters<typeof verifyJwtBody>[2] = settings()) {
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
    // White space (trimmed) up to the limit exactly is read; one byte more is not.
    expect((await check(padded(pad).padEnd(limit, ' '))).ok).toBe(true);
    const over = `${padded(pad)} `.padEnd(limit + 1, ' ');
    expect(await check(over)).toEqual(refusal('malformed', `${limit + 1} bytes`));
    expect(await check(jws(HEADER, claims()), 'application/json')).toEqual(refusal('media_type', 'the body is not application/jwt'));
  });

  it('BR-06 trims white space around the token, and refuses a segment with any character out of base64url', async () => {
    expect((await check(` \r\n${jws(HEADER, claims())}\n\t `)).ok).toBe(true);
    const [h, p, s] = jws(HEADER, claims()).split('.') as [string, string, string];
    for (const body of [
      `${h}.${p}`,
      `${h}.${p}.${s}.x`,
      `${h}.${p}.${s}=`,
      `${h}.${p}.+${s}`,
      `+${h}.${p}.${s}`,
      `${h}.${p}=.${s}`,
      `${h}..${s}`,
    ]) {
      expect([body, await check(body)]).toEqual([body, refusal('malformed', 'not a compact JWS')]);
    }
    const notJson = Buffer.from('not json').toString('base64url');
    for (const body of [`${h}.${notJson}.${s}`, `${notJson}.${p}.${s}`, `${notJson}.${notJson}.${s}`]) {
      expect([body, await check(body)]).toEqual([body, refusal('malformed', 'header or payload is not a JSON object')]);
    }
  });

  it('BR-05 BR-01 names each header and claim refusal: its failure code and detail', async () => {
    expect(await check(jws({ ...HEADER, alg: 'PS384' }, claims()))).toEqual(refusal('header', 'alg "PS384", not PS256'));
    expect(await check(jws({ ...HEADER, typ: 'JOSE' }, claims()))).toEqual(refusal('header', 'typ is not JWT'));
    for (const kid of [undefined, '', 7]) {
      expect([kid, await check(jws({ ...HEADER, kid }, claims()))]).toEqual([kid, refusal('header', 'no kid')]);
    }
    expect(await check(jws({ ...HEADER, crit: ['exp'], exp: 1 }, claims()))).toEqual(refusal('header', 'crit is not understood here'));
    expect(await check(jws(HEADER, claims({ iss: 'other' })))).toEqual(
      refusal('claims', 'iss is not the organisation of the client holding the token'),
    );
    expect(await check(jws(HEADER, claims({ aud: `${URL}/x` })))).toEqual(refusal('claims', `aud is not ${URL}`));
    for (const iat of [String(NOW), undefined, null]) {
      expect([iat, await check(jws(HEADER, claims({ iat })))]).toEqual([iat, refusal('claims', 'iat is not a number')]);
    }
    // JSON 1e999 parses to Infinity: a number, but not a number of seconds.
    for (const inf of ['1e999', '-1e999']) {
      const payload = JSON.stringify(claims({ iat: 'INF' })).replace('"INF"', inf);
      expect([inf, await check(jwsRaw(HEADER, payload))]).toEqual([inf, refusal('claims', 'iat is not a number')]);
    }
    expect(await check(jws(HEADER, claims({ iat: NOW - 61 })))).toEqual(refusal('claims', `iat ${NOW - 61} is outside the window`));
    expect(await check(jws(HEADER, claims({ jti: '' })))).toEqual(refusal('claims', 'jti is not 1 to 256 visible characters'));
    expect(await check(jws(HEADER, claims({ data: [1] })))).toEqual(refusal('claims', 'data is not an object'));
  });

  it('BR-02 names each signature refusal: unknown kid, keys unavailable, a bad signature, a verification that throws', async () => {
    expect(await check(jws({ ...HEADER, kid: 'k2' }, claims()))).toEqual(
      refusal('signature', 'keyid "k2" is not a key of client client-1'),
    );
    const down = {
      ...settings(),
      keys: new ClientKeys<ObKey>(
        {
          resolveClient: () => {
            throw new Error('registry down');
          },
        },
        () => NOW * 1000,
        undefined,
        obVerificationKey,
      ),
    };
    expect(await check(jws(HEADER, claims()), 'application/jwt', down)).toEqual(
      refusal('unavailable', 'keys of client client-1 unavailable: registry down'),
    );
    expect(await check(`${jws(HEADER, claims()).slice(0, -4)}AAAA`)).toEqual(
      refusal('signature', 'the signature does not verify with the client key'),
    );
    // A key PS256 cannot use (crypto.verify throws): refused, never taken.
    const ed = generateKeyPairSync('ed25519');
    const odd = {
      ...settings(),
      keys: new ClientKeys<ObKey>(
        { clients: { 'client-1': { jwks: { keys: [{ ...(key.publicKey.export({ format: 'jwk' }) as object), kid: 'k1' }] } } } },
        () => NOW * 1000,
        undefined,
        (k) => ({ keyid: k.kid as string, key: ed.publicKey }),
      ),
    };
    expect(await check(jws(HEADER, claims()), 'application/jwt', odd)).toEqual(
      refusal('signature', 'the signature does not verify with the client key'),
    );
  });

  it('BR-04 claims the jti until the iat window has passed, and says why a claim fails', async () => {
    const claimed: [string, number][] = [];
    const spy = {
      ...settings(),
      replayStore: {
        claim: async (k: string, expiresAt: number) => {
          claimed.push([k, expiresAt]);
          return true;
        },
      },
    };
    expect((await check(jws(HEADER, claims({ jti: 'j-1', iat: NOW - 10 })), 'application/jwt', spy)).ok).toBe(true);
    expect(claimed).toEqual([[`br-jti:${ORG}:j-1`, (NOW - 10 + 60 + 1) * 1000]]);
    for (const [thrown, detail] of [
      [new Error('store down'), 'replay store: store down'],
      ['just a string', 'replay store: just a string'],
      [undefined, 'replay store: undefined'],
      [null, 'replay store: null'],
    ] as const) {
      const failing = {
        ...settings(),
        replayStore: {
          claim: async () => {
            throw thrown;
          },
        },
      };
      expect([detail, await check(jws(HEADER, claims()), 'application/jwt', failing)]).toEqual([detail, refusal('unavailable', detail)]);
    }
    const s = settings();
    expect((await check(jws(HEADER, claims({ jti: 'once' })), 'application/jwt', s)).ok).toBe(true);
    expect(await check(jws(HEADER, claims({ jti: 'once' })), 'application/jwt', s)).toEqual(
      refusal('replayed', 'jti once was already used'),
    );
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

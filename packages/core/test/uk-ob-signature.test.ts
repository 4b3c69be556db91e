/**
 * UK Open Banking `x-jws-signature` in process, against jose's flattened JWS with a detached
 * payload as the independent signer and verifier: both message-signing versions (`b64: false`
 * up to v3.1.3, no `b64` from v3.1.4), every header rule, the `iat` window at its boundaries.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { FlattenedSign, flattenedVerify } from 'jose';
import {
  ClientKeys,
  type ObKey,
  type ObSigningVersion,
  obSigningKey,
  obVerificationKey,
  signObBody,
  verifyObSignature,
} from '../src/index';

const IAT = 'http://openbanking.org.uk/iat';
const ISS = 'http://openbanking.org.uk/iss';
const TAN = 'http://openbanking.org.uk/tan';
const CRIT = { [IAT]: true, [ISS]: true, [TAN]: true };
const SIGNER = '0015800001041RHAAY/2kiXQyo0tedjW2somjSgH7';
const NOW = 1_765_000_000;
const BODY = new TextEncoder().encode('{"Data":{"Initiation":{"InstructedAmount":{"Amount":"10.00","Currency":"GBP"}}},"Risk":{}}');

const tpp = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = (key: KeyObject, kid: string) => ({ ...(key.export({ format: 'jwk' }) as object), kid, use: 'sig', alg: 'PS256' });

function settings(version: ObSigningVersion) {
  const keys = new ClientKeys<ObKey>(
    {
      resolveClient: (owner) =>
        owner === `openbanking.org.uk|${SIGNER}` ? { jwks: { keys: [jwk(tpp.publicKey, 'tpp-key')] } } : undefined,
    },
    () => NOW * 1000,
    undefined,
    obVerificationKey,
  );
  return { version, trustAnchors: new Set(['openbanking.org.uk']), keys, maxAgeSec: 60, maxFutureSec: 5 };
}

function header(version: ObSigningVersion, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    alg: 'PS256',
    kid: 'tpp-key',
    ...(version === '3.1.3' ? { b64: false } : {}),
    [IAT]: NOW,
    [ISS]: SIGNER,
    [TAN]: 'openbanking.org.uk',
    crit: version === '3.1.3' ? ['b64', IAT, ISS, TAN] : [IAT, ISS, TAN],
    ...extra,
  };
}

/** jose signs: the flattened JWS with a detached payload, written as `protected..signature`. */
async function joseSign(protectedHeader: Record<string, unknown>, body = BODY, key: KeyObject = tpp.privateKey): Promise<string> {
  const jws = await new FlattenedSign(body).setProtectedHeader(protectedHeader as never).sign(key, { crit: CRIT });
  return `${jws.protected}..${jws.signature}`;
}

const verify = (value: string | string[], version: ObSigningVersion, body = BODY, now = NOW) =>
  verifyObSignature(Array.isArray(value) ? value : [value], body, SIGNER, settings(version), now);

/** A header written by hand (no signature needed: every refusal here comes before the key). */
const handWritten = (json: string) => `${Buffer.from(json).toString('base64url')}..c2ln`;
const refusal = (failure: string, detail: string) => ({ ok: false, failure, detail });

describe.each(['3.1.3', '3.1.4'] as const)('x-jws-signature, message signing v%s', (version) => {
  it('UKOB-01 UKOB-02 verifies jose’s detached JWS over the exact body bytes', async () => {
    const result = await verify(await joseSign(header(version)), version);
    expect(result).toEqual({ ok: true, verified: { kid: 'tpp-key', iss: SIGNER, tan: 'openbanking.org.uk', iat: NOW } });
  });

  it('UKOB-02 refuses the signature over a body changed by one byte, or over no body', async () => {
    const signature = await joseSign(header(version));
    const tampered = Uint8Array.from(BODY);
    tampered[30] = (tampered[30] as number) ^ 1;
    expect(await verify(signature, version, tampered)).toMatchObject({ ok: false, failure: 'Invalid' });
    expect(await verify(signature, version, new Uint8Array())).toMatchObject({ ok: false, failure: 'Invalid' });
    // The same bytes re-serialised (another JSON spacing) are another body.
    const respaced = new TextEncoder().encode(JSON.stringify(JSON.parse(new TextDecoder().decode(BODY)), null, 1));
    expect(await verify(signature, version, respaced)).toMatchObject({ ok: false, failure: 'Invalid' });
  });

  it('UKOB-02 refuses a signature by another key under the same kid', async () => {
    expect(await verify(await joseSign(header(version), BODY, other.privateKey), version)).toMatchObject({ ok: false, failure: 'Invalid' });
  });

  it('UKOB-08 signs responses that jose verifies with the bank key', async () => {
    const bank = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const key = obSigningKey({ ...(bank.privateKey.export({ format: 'jwk' }) as object), kid: 'bank-key' }, 'responseKey');
    const value = signObBody(BODY, { key, iss: '0015800001041RHAAY', tan: 'openbanking.org.uk', version }, NOW);
    const [protectedHeader, payload, signature] = value.split('.');
    expect(payload).toBe('');
    const verified = await flattenedVerify(
      {
        protected: protectedHeader as string,
        payload: version === '3.1.3' ? BODY : Buffer.from(BODY).toString('base64url'),
        signature: signature as string,
      },
      bank.publicKey,
      { crit: CRIT, algorithms: ['PS256'] },
    );
    expect(verified.protectedHeader).toEqual({
      alg: 'PS256',
      kid: 'bank-key',
      typ: 'JOSE',
      cty: 'application/json',
      ...(version === '3.1.3' ? { b64: false } : {}),
      [IAT]: NOW,
      [ISS]: '0015800001041RHAAY',
      [TAN]: 'openbanking.org.uk',
      crit: version === '3.1.3' ? ['b64', IAT, ISS, TAN] : [IAT, ISS, TAN],
    });
  });

  it('UKOB-03 takes iat up to maxAgeSec old and maxFutureSec ahead, not a second more', async () => {
    const at = async (iat: number) => (await verify(await joseSign(header(version, { [IAT]: iat })), version)).ok;
    expect(await at(NOW - 60)).toBe(true);
    expect(await at(NOW - 61)).toBe(false);
    expect(await at(NOW + 5)).toBe(true);
    expect(await at(NOW + 6)).toBe(false);
    expect(await verify(await joseSign(header(version, { [IAT]: String(NOW) })), version)).toMatchObject({ failure: 'InvalidClaim' });
  });

  it('UKOB-04 refuses an iss other than the client’s, and a tan that is not a configured trust anchor', async () => {
    expect(await verify(await joseSign(header(version, { [ISS]: 'someone/else' })), version)).toMatchObject({ failure: 'InvalidClaim' });
    expect(await verify(await joseSign(header(version, { [TAN]: 'evil.example' })), version)).toMatchObject({ failure: 'InvalidClaim' });
  });

  it('UKOB-05 refuses every alg but PS256, and a missing kid, alg or OB parameter', async () => {
    for (const alg of ['PS512', 'RS256', 'ES256', 'none', 'HS256']) {
      const value = `${Buffer.from(JSON.stringify(header(version, { alg }))).toString('base64url')}..c2ln`;
      expect([alg, await verify(value, version)]).toEqual([alg, expect.objectContaining({ failure: 'InvalidClaim' })]);
    }
    for (const name of ['alg', 'kid', 'crit']) {
      const value = `${Buffer.from(JSON.stringify(header(version, { [name]: undefined }))).toString('base64url')}..c2ln`;
      expect([name, await verify(value, version)]).toEqual([name, expect.objectContaining({ failure: 'MissingClaim' })]);
    }
    for (const name of [IAT, ISS, TAN]) {
      // Named in crit but absent: jose refuses to sign it, so it is written by hand.
      const value = `${Buffer.from(JSON.stringify(header(version, { [name]: undefined }))).toString('base64url')}..c2ln`;
      expect([name, await verify(value, version)]).toEqual([name, expect.objectContaining({ failure: 'MissingClaim' })]);
    }
    expect(await verify(await joseSign(header(version, { typ: 'JWT' })), version)).toMatchObject({ failure: 'InvalidClaim' });
    expect(await verify(await joseSign(header(version, { cty: 'text/plain' })), version)).toMatchObject({ failure: 'InvalidClaim' });
    expect((await verify(await joseSign(header(version, { typ: 'JOSE', cty: 'json' })), version)).ok).toBe(true);
  });

  it('UKOB-06 holds crit to the exact list of the version: nothing missing, nothing extra, nothing twice', async () => {
    const crit = version === '3.1.3' ? ['b64', IAT, ISS, TAN] : [IAT, ISS, TAN];
    const games = [
      crit.slice(1),
      [...crit, 'exp'],
      [...crit, IAT],
      crit.join(','),
      [],
      version === '3.1.3' ? [IAT, ISS, TAN] : ['b64', ...crit],
    ];
    for (const value of games) {
      const jws = `${Buffer.from(JSON.stringify(header(version, { crit: value }))).toString('base64url')}..c2ln`;
      expect([value, await verify(jws, version)]).toEqual([value, expect.objectContaining({ ok: false, failure: 'InvalidClaim' })]);
    }
    // The order of the list does not matter.
    expect((await verify(await joseSign(header(version, { crit: [...crit].reverse() })), version)).ok).toBe(true);
  });

  it('UKOB-05 UKOB-06 UKOB-07 names each header refusal: its failure code and detail', async () => {
    const hand = (extra: Record<string, unknown>) => handWritten(JSON.stringify(header(version, extra)));
    expect(await verify(hand({ alg: undefined }), version)).toEqual(refusal('MissingClaim', 'no alg'));
    expect(await verify(hand({ alg: 'RS256' }), version)).toEqual(refusal('InvalidClaim', 'alg "RS256", not PS256'));
    expect(await verify(hand({ kid: undefined }), version)).toEqual(refusal('MissingClaim', 'no kid'));
    // kid present but not a non-empty string: each condition on its own.
    for (const kid of ['', 7, null, ['tpp-key']]) {
      expect([kid, await verify(hand({ kid }), version)]).toEqual([kid, refusal('InvalidClaim', 'kid is not a non-empty string')]);
    }
    expect(await verify(hand({ typ: 'JWT' }), version)).toEqual(refusal('InvalidClaim', 'typ is not "JOSE"'));
    expect(await verify(hand({ cty: 'text/plain' }), version)).toEqual(refusal('InvalidClaim', 'cty'));
    expect(await verify(hand({ crit: undefined }), version)).toEqual(refusal('MissingClaim', 'no crit'));
    const list = version === '3.1.3' ? `b64, ${IAT}, ${ISS}, ${TAN}` : `${IAT}, ${ISS}, ${TAN}`;
    expect(await verify(hand({ crit: [] }), version)).toEqual(refusal('InvalidClaim', `crit must list exactly ${list}`));
    // crit as the version wants it, b64 not.
    for (const b64 of version === '3.1.3' ? [true, undefined, 'false', 0] : [false, true]) {
      expect([b64, await verify(hand({ b64 }), version)]).toEqual([
        b64,
        refusal('InvalidClaim', version === '3.1.3' ? 'b64 must be false' : 'b64 must be absent from v3.1.4'),
      ]);
    }
    for (const name of [IAT, ISS, TAN]) {
      expect(await verify(hand({ [name]: undefined }), version)).toEqual(refusal('MissingClaim', `no ${name}`));
    }
    expect(await verify(hand({ [IAT]: String(NOW) }), version)).toEqual(refusal('InvalidClaim', 'iat is not a number'));
    // A number that is not finite (JSON 1e999 parses to Infinity) is not a number of seconds either.
    for (const inf of ['1e999', '-1e999']) {
      const json = JSON.stringify(header(version, { [IAT]: 'INF' })).replace('"INF"', inf);
      expect([inf, await verify(handWritten(json), version)]).toEqual([inf, refusal('InvalidClaim', 'iat is not a number')]);
    }
    expect(await verify(hand({ [IAT]: NOW - 61 }), version)).toEqual(refusal('InvalidClaim', `iat ${NOW - 61} is older than 60 s`));
    expect(await verify(hand({ [IAT]: NOW + 6 }), version)).toEqual(refusal('InvalidClaim', `iat ${NOW + 6} is in the future`));
    expect(await verify(hand({ [TAN]: 'evil.example' }), version)).toEqual(refusal('InvalidClaim', 'tan is not a configured trust anchor'));
    // A tan that is not a string is refused as such, whatever the configured set holds.
    const loose = { ...settings(version), trustAnchors: new Set(['openbanking.org.uk', 7 as unknown as string]) };
    expect(await verifyObSignature([hand({ [TAN]: 7 })], BODY, SIGNER, loose, NOW)).toEqual(
      refusal('InvalidClaim', 'tan is not a configured trust anchor'),
    );
    expect(await verify(hand({ [ISS]: 'someone/else' }), version)).toEqual(
      refusal('InvalidClaim', 'iss is not the client that sent the request'),
    );
    expect(await verify(hand({}), version)).toEqual(refusal('Invalid', 'the signature does not verify over the body'));
  });

  it('UKOB-05 accepts cty "json" and "application/json", no other', async () => {
    for (const cty of ['json', 'application/json']) {
      expect([cty, (await verify(await joseSign(header(version, { cty })), version)).ok]).toEqual([cty, true]);
    }
    for (const cty of ['JSON', 'text/json', 'application/jose', '']) {
      expect([cty, await verify(await joseSign(header(version, { cty })), version)]).toEqual([cty, refusal('InvalidClaim', 'cty')]);
    }
  });

  it('UKOB-07 holds b64 to the version: false up to v3.1.3, absent from v3.1.4', async () => {
    const wrong = version === '3.1.3' ? { b64: true } : { b64: false, crit: ['b64', IAT, ISS, TAN] };
    const value = `${Buffer.from(JSON.stringify(header(version, wrong))).toString('base64url')}..c2ln`;
    expect(await verify(value, version)).toMatchObject({ failure: 'InvalidClaim' });
    // A signature of the other version never verifies under this one.
    const otherVersion = version === '3.1.3' ? '3.1.4' : '3.1.3';
    expect((await verify(await joseSign(header(otherVersion)), version)).ok).toBe(false);
  });
});

describe('x-jws-signature shape', () => {
  it('UKOB-09 refuses an attached payload, two header lines, non-base64url parts, an oversized value; a missing one is Missing', async () => {
    const good = await joseSign(header('3.1.4'));
    const [h, , s] = good.split('.');
    expect(await verify(`${h}.${Buffer.from(BODY).toString('base64url')}.${s}`, '3.1.4')).toMatchObject({ failure: 'Malformed' });
    expect(await verify([good, good], '3.1.4')).toMatchObject({ failure: 'Malformed' });
    expect(await verify(`${h}..${s}.x`, '3.1.4')).toMatchObject({ failure: 'Malformed' });
    expect(await verify(`${h}..${s}=`, '3.1.4')).toMatchObject({ failure: 'Malformed' });
    expect(await verify(`e30..${s}`, '3.1.4')).toMatchObject({ failure: 'MissingClaim' });
    expect(await verify(`bm90IGpzb24..${s}`, '3.1.4')).toMatchObject({ failure: 'Malformed' });
    expect(await verify(`${h}..${'A'.repeat(4096)}`, '3.1.4')).toMatchObject({ failure: 'Malformed' });
    expect(await verify([], '3.1.4')).toMatchObject({ failure: 'Missing' });
    // Surrounding whitespace of the field value is not part of it.
    expect((await verify(` ${good} `, '3.1.4')).ok).toBe(true);
  });

  it('UKOB-05 refuses an unknown kid as Invalid (no key of the signer verifies it)', async () => {
    expect(await verify(await joseSign(header('3.1.4', { kid: 'not-a-key' })), '3.1.4')).toEqual(
      refusal('Invalid', `keyid "not-a-key" is not a key of client openbanking.org.uk|${SIGNER}`),
    );
  });

  it('UKOB-09 names each shape refusal: its failure code and detail', async () => {
    const good = await joseSign(header('3.1.4'));
    const [h, , s] = good.split('.') as [string, string, string];
    expect(await verify([], '3.1.4')).toEqual(refusal('Missing', 'no x-jws-signature'));
    expect(await verify([good, good], '3.1.4')).toEqual(refusal('Malformed', '2 x-jws-signature lines'));
    expect(await verify(`${h}.${Buffer.from(BODY).toString('base64url')}.${s}`, '3.1.4')).toEqual(
      refusal('Malformed', 'not a compact JWS with a detached payload (header..signature)'),
    );
    expect(await verify(`bm90IGpzb24..${s}`, '3.1.4')).toEqual(refusal('Malformed', 'the protected header is not a JSON object'));
    // A character out of base64url at the start or the end of either part.
    for (const value of [`+${h}..${s}`, `${h}+..${s}`, `${h}..+${s}`, `${h}..${s}+`, `=${h}..${s}`, `${h}..=${s}`]) {
      expect([value, await verify(value, '3.1.4')]).toEqual([value, refusal('Malformed', 'not base64url')]);
    }
  });

  it('UKOB-09 reads a value of exactly 4096 characters, refuses 4097', async () => {
    const h = (await joseSign(header('3.1.4'))).split('.')[0] as string;
    const sized = (length: number) => `${h}..${'A'.repeat(length - h.length - 2)}`;
    expect(sized(4096)).toHaveLength(4096);
    // At the limit the value is read through to its (bad) signature.
    expect(await verify(sized(4096), '3.1.4')).toEqual(refusal('Invalid', 'the signature does not verify over the body'));
    expect(await verify(sized(4097), '3.1.4')).toEqual(refusal('Malformed', '4097 characters'));
    // Surrounding white space is not counted.
    expect(await verify(` ${sized(4096)}\t`, '3.1.4')).toMatchObject({ failure: 'Invalid' });
  });

  it('UKOB-02 refuses when the verification itself throws (a key that cannot do PS256)', async () => {
    const ed = generateKeyPairSync('ed25519');
    const keys = new ClientKeys<ObKey>(
      { resolveClient: () => ({ jwks: { keys: [jwk(tpp.publicKey, 'tpp-key')] } }) },
      () => NOW * 1000,
      undefined,
      (k) => ({ keyid: k.kid as string, key: ed.publicKey }),
    );
    const s = { ...settings('3.1.4'), keys };
    expect(await verifyObSignature([await joseSign(header('3.1.4'))], BODY, SIGNER, s, NOW)).toEqual(
      refusal('Invalid', 'the signature does not verify over the body'),
    );
  });
});

describe('x-jws-signature keys', () => {
  const pub = tpp.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
  const priv = tpp.privateKey.export({ format: 'jwk' }) as Record<string, unknown>;
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  it('UKOB-05 takes a signer’s RSA key with a kid, for sig and PS256 when it says, public only', () => {
    expect(obVerificationKey({ ...pub, kid: 'k' }).keyid).toBe('k');
    expect(obVerificationKey({ ...pub, kid: 'k', use: 'sig', alg: 'PS256' }).keyid).toBe('k');
    const notRsa = /^not an RSA key with a kid$/;
    expect(() => obVerificationKey({ ...(ec.publicKey.export({ format: 'jwk' }) as object), kid: 'k' })).toThrow(notRsa);
    expect(() => obVerificationKey({ ...pub })).toThrow(notRsa);
    expect(() => obVerificationKey({ ...pub, kid: '' })).toThrow(notRsa);
    expect(() => obVerificationKey({ ...pub, kid: 7 as unknown as string })).toThrow(notRsa);
    expect(() => obVerificationKey({ ...pub, kid: 'k', use: 'enc' })).toThrow(/^use enc$/);
    expect(() => obVerificationKey({ ...pub, kid: 'k', alg: 'RS256' })).toThrow(/^alg RS256$/);
    expect(() => obVerificationKey({ ...priv, kid: 'k' })).toThrow(/^private key material$/);
    expect(() => obVerificationKey({ ...(weak.publicKey.export({ format: 'jwk' }) as object), kid: 'k' })).toThrow(
      /^RSA modulus of 1024 bits \(at least 2048\)$/,
    );
  });

  it('UKOB-08 takes the bank’s private RSA key with a kid, nothing else', () => {
    expect(obSigningKey({ ...priv, kid: 'bank' }, 'responseKey').kid).toBe('bank');
    const notPrivateRsa = /^fapi-guard: responseKey must be a private RSA JWK \(PS256\)$/;
    expect(() => obSigningKey(undefined as never, 'responseKey')).toThrow(notPrivateRsa);
    expect(() => obSigningKey({ ...pub, kid: 'bank' }, 'responseKey')).toThrow(notPrivateRsa);
    expect(() => obSigningKey({ ...(ec.privateKey.export({ format: 'jwk' }) as object), kid: 'bank' }, 'responseKey')).toThrow(
      notPrivateRsa,
    );
    const noKid = /^fapi-guard: responseKey needs a kid$/;
    expect(() => obSigningKey({ ...priv }, 'responseKey')).toThrow(noKid);
    expect(() => obSigningKey({ ...priv, kid: '' }, 'responseKey')).toThrow(noKid);
    expect(() => obSigningKey({ ...priv, kid: 7 as unknown as string }, 'responseKey')).toThrow(noKid);
    expect(() => obSigningKey({ ...(weak.privateKey.export({ format: 'jwk' }) as object), kid: 'bank' }, 'responseKey')).toThrow(
      /^fapi-guard: responseKey has an RSA modulus of 1024 bits \(at least 2048\)$/,
    );
  });
});

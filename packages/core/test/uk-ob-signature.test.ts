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
    expect(await verify(await joseSign(header('3.1.4', { kid: 'not-a-key' })), '3.1.4')).toMatchObject({ failure: 'Invalid' });
  });
});

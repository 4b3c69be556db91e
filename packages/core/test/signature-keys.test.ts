/**
 * Keys for HTTP Message Signatures from JWKs, in process: the algorithm each key may sign with
 * (FAPI 2.0 Message Signing §5.6: ed25519, ecdsa-p256-sha256, rsa-pss-sha512; RFC 9421 §3.2 step 6:
 * key and algorithm agree), why a JWK is refused (exact messages), the public JWK published for a
 * response key, and signatures made with each algorithm (RFC 9421 §3.3).
 */
import { generateKeyPairSync } from 'node:crypto';
import { type SignatureJwk, signatureAlgorithmOf, signBase, signingKey, verificationKey, verifySignatureValue } from '@fapi-guard/core';

/** A fresh private JWK of each allowed kind, with its kid. */
function privateJwk(kind: 'ed25519' | 'p256' | 'rsa', kid = `${kind}-key`): SignatureJwk {
  const pair =
    kind === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : kind === 'p256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...(pair.privateKey.export({ format: 'jwk' }) as SignatureJwk), kid };
}
const publicOf = ({ d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...rest }: SignatureJwk): SignatureJwk => rest;

describe('signatureAlgorithmOf', () => {
  it('HMS-04 FAPI-RS-13 maps each allowed key to its one algorithm, a JWS alg on it must agree', () => {
    expect(signatureAlgorithmOf({ kty: 'OKP', crv: 'Ed25519' })).toBe('ed25519');
    expect(signatureAlgorithmOf({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' })).toBe('ed25519');
    expect(signatureAlgorithmOf({ kty: 'EC', crv: 'P-256', alg: 'ES256' })).toBe('ecdsa-p256-sha256');
    expect(signatureAlgorithmOf({ kty: 'RSA', alg: 'PS512' })).toBe('rsa-pss-sha512');
    expect(signatureAlgorithmOf({ kty: 'RSA', alg: 'RS256' })).toBe('alg RS256 does not fit a RSA key for rsa-pss-sha512');
    expect(signatureAlgorithmOf({ kty: 'EC', crv: 'P-256', alg: 'ES384' })).toBe('alg ES384 does not fit a EC key for ecdsa-p256-sha256');
  });

  it('HMS-04 refuses every other key type and curve, saying which', () => {
    for (const [jwk, named] of [
      [{ kty: 'OKP', crv: 'X25519' }, 'OKP/X25519'],
      [{ kty: 'OKP', crv: 'Ed448' }, 'OKP/Ed448'],
      [{ kty: 'EC', crv: 'P-384' }, 'EC/P-384'],
      [{ kty: 'EC', crv: 'Ed25519' }, 'EC/Ed25519'],
      // The curve alone names no key type: P-256 is an EC curve only.
      [{ kty: 'OKP', crv: 'P-256' }, 'OKP/P-256'],
      [{ kty: 'oct' }, 'oct'],
    ] as const) {
      expect(signatureAlgorithmOf(jwk)).toBe(`key type ${named} is not allowed for message signatures`);
    }
  });
});

describe('verificationKey and signingKey', () => {
  it('HMS-03 refuses what is no JWK, a JWK without a kid, or one not for signatures', () => {
    const jwk = publicOf(privateJwk('ed25519'));
    const refusals: [unknown, string][] = [
      [null, 'fapi-guard: message signing key is not a JWK'],
      ['a key', 'fapi-guard: message signing key is not a JWK'],
      [{ ...jwk, kid: undefined }, 'fapi-guard: message signing key needs a kid (it is the keyid)'],
      [{ ...jwk, kid: 7 }, 'fapi-guard: message signing key needs a kid (it is the keyid)'],
      [{ ...jwk, kid: '' }, 'fapi-guard: message signing key needs a kid (it is the keyid)'],
      [{ ...jwk, use: 'enc' }, 'fapi-guard: message signing key has use "enc", not "sig"'],
      [{ kty: 'EC', crv: 'P-384', kid: 'k' }, 'fapi-guard: message signing key: key type EC/P-384 is not allowed for message signatures'],
      [privateJwk('p256'), 'fapi-guard: message signing key holds private key material'],
    ];
    for (const [value, message] of refusals) expect(() => verificationKey(value as SignatureJwk)).toThrow(new TypeError(message));
    expect(verificationKey({ ...jwk, use: 'sig' })).toMatchObject({ keyid: 'ed25519-key', algorithm: 'ed25519' });
    expect(() => verificationKey({ ...jwk, kid: '' }, 'client-a key')).toThrow('fapi-guard: client-a key needs a kid');
  });

  it('HMS-11 a response key: private, and its public JWK published with kid, use and the JWS alg', () => {
    expect(() => signingKey(publicOf(privateJwk('ed25519')))).toThrow(
      new TypeError('fapi-guard: messageSigning.responseKey must be a private JWK (with d)'),
    );
    expect(() => signingKey({ ...privateJwk('rsa'), use: 'enc' })).toThrow(
      new TypeError('fapi-guard: messageSigning.responseKey has use "enc", not "sig"'),
    );
    for (const [kind, algorithm, alg] of [
      ['ed25519', 'ed25519', 'EdDSA'],
      ['p256', 'ecdsa-p256-sha256', 'ES256'],
      ['rsa', 'rsa-pss-sha512', 'PS512'],
    ] as const) {
      const jwk = privateJwk(kind);
      const key = signingKey(jwk);
      expect(key).toMatchObject({ keyid: jwk.kid, algorithm });
      expect(key.publicJwk).toEqual({ ...publicOf(jwk), kid: jwk.kid, use: 'sig', alg });
      // What it signs verifies with the published key (RFC 9421 §3.3.1, §3.3.4, §3.3.6).
      const signature = signBase('"@method": GET\n"@signature-params": ("@method")', key);
      if (kind === 'p256') expect(signature).toHaveLength(64);
      expect(verifySignatureValue('"@method": GET\n"@signature-params": ("@method")', signature, verificationKey(key.publicJwk))).toBe(
        true,
      );
    }
  });

  it('HMS-04 signs with no algorithm outside the allow-list', () => {
    const key = signingKey(privateJwk('ed25519'));
    expect(() => signBase('x', { ...key, algorithm: 'hmac-sha256' })).toThrow(new TypeError('fapi-guard: cannot sign with hmac-sha256'));
  });
});

/**
 * Is the token an access token at all (RFC 8725 §3.11–3.12)? The marks of other kinds of JWT a
 * loosened `typ` must not let through, and the introspection `token_type` values taken
 * (RFC 7662 §2.2, RFC 6749 §7.1, RFC 9449 §6.2).
 */
import { introspectedType, otherJwtKind } from '../src/tokens/token-kind';

const AUD = 'https://rs.example.com';

describe('introspectedType', () => {
  it('takes an absent token_type, and the access-token kind names exactly, as unbound', () => {
    for (const value of [undefined, 'access_token', 'urn:ietf:params:oauth:token-type:access_token']) {
      expect(introspectedType(value)).toEqual({ ok: true, scheme: undefined });
    }
  });

  it('takes Bearer and DPoP in any case, with their scheme in lower case (RFC 6749 §5.1)', () => {
    for (const [value, scheme] of [
      ['Bearer', 'bearer'],
      ['BEARER', 'bearer'],
      ['DPoP', 'dpop'],
      ['dpop', 'dpop'],
    ]) {
      expect(introspectedType(value)).toEqual({ ok: true, scheme });
    }
  });

  it('JWTBCP-10 refuses another kind of token, the kind names in another case, and N_A', () => {
    for (const value of ['refresh_token', 'ACCESS_TOKEN', 'urn:ietf:params:oauth:token-type:id_token', 'N_A', 'mac', '']) {
      expect(introspectedType(value)).toEqual({
        ok: false,
        reason: 'token_type',
        detail: `introspection token_type ${JSON.stringify(value)} is not an access token type`,
      });
    }
  });

  it('says at most 80 characters of the refused value', () => {
    const result = introspectedType('x'.repeat(200));
    expect(result).toEqual({
      ok: false,
      reason: 'token_type',
      detail: `introspection token_type "${'x'.repeat(80)}" is not an access token type`,
    });
  });

  it('refuses a token_type that is not a string as an invalid claim', () => {
    for (const value of [1, null, ['Bearer'], { type: 'Bearer' }]) {
      expect(introspectedType(value)).toEqual({
        ok: false,
        reason: 'token_claim_invalid',
        detail: 'introspection token_type is not a string',
      });
    }
  });
});

describe('otherJwtKind: marks of a JWT that is not an access token', () => {
  it('none on a plain access token, nor on an azp naming another client', () => {
    expect(otherJwtKind({ sub: 'a', scope: 'x', azp: 'client-1' }, [AUD])).toBeUndefined();
  });

  it('JWTBCP-10 a security event (logout) token by its events claim, whatever else it says', () => {
    expect(otherJwtKind({ events: {}, typ: 'Bearer' }, [AUD])).toBe('events claim of a security event (logout) token');
  });

  it('the issuer typing in the payload: Bearer and DPoP pass in any case, anything else is another kind', () => {
    for (const typ of ['Bearer', 'bearer', 'DPoP', 'DPOP']) expect(otherJwtKind({ typ, nonce: 'n' }, [AUD])).toBeUndefined();
    expect(otherJwtKind({ typ: 'ID' }, [AUD])).toBe('payload typ "ID"');
    expect(otherJwtKind({ typ: 'Refresh', token_use: 'access' }, [AUD])).toBe('payload typ "Refresh"');
    expect(otherJwtKind({ typ: 5 }, [AUD])).toBe('payload typ 5');
    expect(otherJwtKind({ typ: { toString: 1 } }, [AUD])).toBe('payload typ {"toString":1}');
  });

  it('says at most 40 characters of a claim value', () => {
    expect(otherJwtKind({ typ: 'y'.repeat(100) }, [AUD])).toBe(`payload typ "${'y'.repeat(39)}`);
  });

  it('Cognito token_use: access passes (even with a nonce), id and others do not', () => {
    expect(otherJwtKind({ token_use: 'access', nonce: 'n' }, [AUD])).toBeUndefined();
    expect(otherJwtKind({ token_use: 'id' }, [AUD])).toBe('token_use "id"');
    expect(otherJwtKind({ token_use: 'Access' }, [AUD])).toBe('token_use "Access"');
  });

  it.each(['nonce', 'at_hash', 'c_hash', 's_hash'])('JWTBCP-10 an ID token by its %s claim', (name) => {
    expect(otherJwtKind({ [name]: 'v' }, [AUD])).toBe(`${name} claim of an ID token`);
  });

  it('JWTBCP-10 an ID token issued to this API as a client: azp is one of its audiences', () => {
    expect(otherJwtKind({ azp: AUD }, ['https://other.example', AUD])).toBe('azp is this API: an ID token issued to it');
    expect(otherJwtKind({ azp: [AUD] }, [AUD])).toBeUndefined();
  });
});

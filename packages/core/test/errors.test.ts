import { challengeParamValue, GuardError, renderChallenges } from '@fapi-guard/core';

const ctx = { schemes: ['DPoP', 'Bearer'] as const, realm: 'https://rs.example.com', dpopAlgorithms: ['ES256', 'PS256', 'EdDSA'] };

describe('WWW-Authenticate rendering', () => {
  it('BEARER-03 DPOP-20 DEC-06 gives every accepted scheme a challenge, realm on Bearer, algs on DPoP, no error without a token', () => {
    expect(renderChallenges('credentials_missing', ctx)).toBe('DPoP algs="ES256 PS256 EdDSA", Bearer realm="https://rs.example.com"');
  });

  it('DPOP-21 puts the error only on the scheme the client used', () => {
    expect(renderChallenges('token_expired', { ...ctx, usedScheme: 'Bearer' })).toBe(
      'DPoP algs="ES256 PS256 EdDSA", Bearer realm="https://rs.example.com", error="invalid_token", error_description="The access token has expired"',
    );
    expect(renderChallenges('dpop_proof_invalid', { ...ctx, usedScheme: 'DPoP' })).toBe(
      'DPoP algs="ES256 PS256 EdDSA", error="invalid_dpop_proof", error_description="The DPoP proof is invalid", Bearer realm="https://rs.example.com"',
    );
  });

  it('DPOP-21 DEC-10 puts invalid_request on both schemes when the credentials are ambiguous', () => {
    const value = renderChallenges('credentials_ambiguous', ctx) as string;
    expect(value.match(/error="invalid_request"/g)).toHaveLength(2);
  });

  it('BEARER-06 adds scope only to insufficient_scope', () => {
    expect(renderChallenges('scope_insufficient', { ...ctx, usedScheme: 'Bearer', scope: 'accounts' })).toContain('scope="accounts"');
    expect(renderChallenges('token_expired', { ...ctx, usedScheme: 'Bearer', scope: 'accounts' })).not.toContain('scope=');
  });

  it('BEARER-04 drops characters RFC 6750 forbids in parameter values', () => {
    expect(challengeParamValue('a"b\\c\u00e9d\ne')).toBe('abcde');
    expect(renderChallenges('credentials_missing', { ...ctx, realm: 'bank "A"\\' })).toContain('realm="bank A"');
  });

  it('DEC-09 renders no challenge for 503', () => {
    expect(renderChallenges('issuer_unavailable', ctx)).toBeUndefined();
  });

  it('GuardError carries status, code and a short body without the detail', () => {
    const e = new GuardError('token_expired', 'exp 1 is past', {});
    expect(e).toMatchObject({ ok: false, status: 401, error: 'invalid_token', reason: 'token_expired' });
    expect(e.body).toEqual({ error: 'invalid_token', error_description: 'The access token has expired' });
    expect(JSON.stringify(e.body)).not.toContain('exp 1');
  });
});

/**
 * Third outside review (issue 24), its findings: each attack that got through, as a regression
 * test over real HTTP on every adapter where the adapter matters.
 */
import { guardOptionsFromEnv } from '@fapi-guard/core';

describe('III.4 guardOptionsFromEnv: a FAPI_ prefix in another case', () => {
  const minimal = { FAPI_ISSUER: 'https://as.bank.example', FAPI_AUDIENCE: 'https://api.bank.example' };

  it.each(['fapi_dpop_nonce_required', 'Fapi_Dpop_Nonce_Required', 'FAPI_dpop_nonce_required', 'fAPI_DPOP_NONCE_REQUIRED'])(
    'III.4 %s=true is a start-up error naming FAPI_DPOP_NONCE_REQUIRED',
    (name) => {
      expect(() => guardOptionsFromEnv({ ...minimal, [name]: 'true' })).toThrow(
        `environment variable ${name} is not a fapi-guard variable; did you mean FAPI_DPOP_NONCE_REQUIRED?`,
      );
    },
  );

  it('III.4 a typo after a lower-case prefix names the nearest variable; other prefixes stay the application’s', () => {
    expect(() => guardOptionsFromEnv({ ...minimal, fapi_audiences: 'x' })).toThrow(
      /fapi_audiences is not a fapi-guard variable; did you mean FAPI_AUDIENCE\?/,
    );
    expect(() => guardOptionsFromEnv({ ...minimal, fapi_framework: 'koa' })).toThrow(/allow: \['fapi_framework'\]/);
    expect(() => guardOptionsFromEnv({ ...minimal, fapi_framework: 'koa' }, { allow: ['fapi_framework'] })).not.toThrow();
    // Not the prefix: FAPIX_, XFAPI_ and FAPI without the underscore are not ours.
    expect(() => guardOptionsFromEnv({ ...minimal, FAPIX_A: '1', XFAPI_A: '1', FAPI: '1', fapi: '1' })).not.toThrow();
  });
});

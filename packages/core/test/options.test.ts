import { availableParallelism } from 'node:os';
import { createGuard, type GuardOptions } from '@fapi-guard/core';

const base: GuardOptions = { issuer: 'https://as.example.com', audience: 'https://rs.example.com' };
const fails = (options: Partial<GuardOptions>, message: RegExp) =>
  expect(() => createGuard({ ...base, ...options } as GuardOptions)).toThrow(message);

describe('start-up validation', () => {
  it('accepts the minimal FAPI configuration with FAPI defaults', () => {
    const guard = createGuard(base);
    expect(guard.options.algorithms).toEqual(['ES256', 'PS256', 'EdDSA']);
    expect(guard.options.clockToleranceSec).toBe(10);
    expect(guard.options.realm).toBe('https://rs.example.com');
  });

  it('requires an audience', () => {
    fails({ audience: undefined }, /audience is required/);
    fails({ audience: [] }, /audience is required/);
    fails({ audience: '' }, /audience is required/);
  });

  it('AUD-03 refuses an audience with a fragment or that is not an absolute URI', () => {
    fails({ audience: 'https://rs.example.com/#frag' }, /fragment/);
    fails({ audience: 'https://rs.example.com#' }, /fragment/);
    fails({ audience: 'rs.example.com' }, /absolute URI/);
  });

  it('FAPI-RS-12 JWTBCP-01 refuses none and symmetric algorithms', () => {
    fails({ algorithms: ['none'] }, /algorithm "none" is not allowed/);
    fails({ algorithms: ['ES256', 'HS256'] }, /algorithm "HS256" is not allowed/);
    fails({ algorithms: [] }, /must not be empty/);
  });

  it('FAPI-RS-11 JWTAT-10 under the default fapi2 profile refuses an algorithm outside FAPI 2.0 §5.4.1 unless explicitly accepted', () => {
    for (const alg of ['RS256', 'PS384', 'ES384', 'RS512']) {
      fails(
        { algorithms: ['ES256', alg] },
        new RegExp(`algorithm "${alg}" is outside FAPI 2.0 §5.4.1 .*compat: \\{ acceptNonFapiAlgorithms: true \\}`),
      );
      fails({ profile: 'fapi2', algorithms: [alg] }, /is outside FAPI 2.0 §5.4.1/);
    }
    // The FAPI algorithms, with EdDSA under its fully-specified name, need nothing.
    expect(createGuard({ ...base, algorithms: ['PS256', 'ES256', 'EdDSA', 'Ed25519'] }).options.algorithms).toHaveLength(4);
    // The loosening is explicit and named, and does not open up none or HMAC.
    expect(createGuard({ ...base, algorithms: ['RS256'], compat: { acceptNonFapiAlgorithms: true } }).options.algorithms).toEqual([
      'RS256',
    ]);
    fails({ algorithms: ['HS256'], compat: { acceptNonFapiAlgorithms: true } }, /algorithm "HS256" is not allowed/);
    fails({ algorithms: ['RS256'], compat: { acceptNonFapiAlgorithms: false } }, /is outside FAPI 2.0/);
    fails({ algorithms: ['RS256'], compat: { acceptNonFapiAlgorithms: 'yes' as never } }, /acceptNonFapiAlgorithms must be/);
    // The oauth2 profile (outside FAPI) needs no opt-in.
    expect(createGuard({ ...base, profile: 'oauth2', algorithms: ['RS256'] }).options.algorithms).toEqual(['RS256']);
  });

  it('FAPI-RS-16 refuses an http issuer or jwks_uri that is not loopback', () => {
    fails({ issuer: 'http://as.example.com' }, /must use https/);
    fails({ issuer: { issuer: 'https://as.example.com', jwksUri: 'http://as.example.com/jwks' } }, /jwksUri .* must use https/);
    expect(() => createGuard({ ...base, issuer: 'http://127.0.0.1:8080' })).not.toThrow();
    expect(() => createGuard({ ...base, issuer: 'http://localhost:8080' })).not.toThrow();
  });

  it('refuses an issuer given twice, no issuer, or a static JWKS with private keys', () => {
    fails({ issuer: undefined, issuers: [] }, /set issuer/);
    fails({ issuers: ['https://as.example.com'] }, /configured twice/);
    fails({ issuer: { issuer: 'https://as.example.com', jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } } }, /private or symmetric/);
  });

  it('checks proof signatures on the thread pool when there are several cores, and refuses an unknown place', () => {
    expect(createGuard(base).options.dpop.verifyOn).toBe(availableParallelism() > 1 ? 'threadpool' : 'main');
    expect(createGuard({ ...base, dpop: { verifyOn: 'main' } }).options.dpop.verifyOn).toBe('main');
    fails({ dpop: { verifyOn: 'gpu' as never } }, /option dpop.verifyOn must be one of "main", "threadpool" \(got the string "gpu"\)/);
  });

  it('DEC-08 bounds the clock tolerance to 60 s', () => {
    fails({ clockToleranceSec: 61 }, /between 0 and 60/);
    fails({ clockToleranceSec: -1 }, /between 0 and 60/);
  });

  it('refuses a public URL with a path and a trusted proxy that is not an address', () => {
    fails({ publicUrl: 'https://api.example.com/v1' }, /origin without path/);
    fails({ trustedProxies: ['proxy.internal'] }, /not an IP or CIDR/);
  });

  it('15.6 Host-chosen origin: without publicUrl the origins come from the http(s) audiences, never from Host', () => {
    const resolve = (options: Partial<GuardOptions>, host: string) =>
      createGuard({ ...base, ...options }).requestUrl({
        encrypted: false,
        remoteAddress: '127.0.0.1',
        path: '/accounts',
        headers: { host: [host] },
      });
    expect(resolve({}, 'other-rs.example')).toEqual({ ok: true, url: 'https://rs.example.com/accounts' });
    const two = { audience: ['https://a.example/api', 'https://b.example', 'https://a.example/other'] };
    expect(resolve(two, 'b.example')).toEqual({ ok: true, url: 'https://b.example/accounts' });
    expect(resolve(two, 'a.example')).toEqual({ ok: true, url: 'https://a.example/accounts' });
    expect(resolve(two, 'other-rs.example')).toMatchObject({ ok: false });
    // publicUrl, when set, wins over the audience.
    expect(resolve({ publicUrl: 'http://localhost:3000' }, 'other-rs.example')).toEqual({
      ok: true,
      url: 'http://localhost:3000/accounts',
    });
  });

  it('15.6 Host-chosen origin: an audience that is not an http(s) URL needs publicUrl, and the message says so', () => {
    fails(
      { audience: 'urn:bank:accounts-api' },
      /audience "urn:bank:accounts-api" is not an http\(s\) URL.*publicUrl: 'https:\/\/api\.example'/,
    );
    fails({ audience: ['https://rs.example.com', 'urn:bank:api'] }, /audience "urn:bank:api" is not an http\(s\) URL/);
    expect(() => createGuard({ ...base, audience: 'urn:bank:api', publicUrl: 'https://api.bank.example' })).not.toThrow();
  });

  it('refuses a route policy with a scope that cannot be a scope-token', () => {
    const guard = createGuard(base);
    expect(() => guard.policy({ scopes: ['a b'] })).toThrow(/scope-token/);
    expect(() => guard.policy({ scopes: ['a"b'] })).toThrow(/scope-token/);
    expect(() => guard.policy({ claims: { acr: 'x' as never } })).toThrow(/equals/);
  });
});

describe('compatibility options', () => {
  it('never lets client_id become optional (the client must always be known)', () => {
    expect(() => createGuard({ ...base, compat: { optionalClaims: ['client_id' as never] } })).toThrow(/clientIdClaim/);
    expect(() => createGuard({ ...base, compat: { optionalClaims: ['jti', 'sub'] } })).not.toThrow();
  });
});

describe('mtls.proxy.sharedSecret', () => {
  const withSecret = (value: string) => () =>
    createGuard({ ...base, mtls: { proxy: { format: 'rfc9440', sharedSecret: { header: 'x-proxy-secret', value } } } });

  it('needs at least 16 visible ASCII characters: 15 or a space or a non-ASCII character is a start-up error', () => {
    expect(withSecret('a'.repeat(16))).not.toThrow();
    expect(withSecret('!~'.repeat(8))).not.toThrow();
    // One below the bound.
    expect(withSecret('a'.repeat(15))).toThrow(/at least 16 visible ASCII characters/);
    // Header values reach Node one byte per character: a non-ASCII secret could never match.
    expect(withSecret(`${'a'.repeat(15)}é`)).toThrow(/visible ASCII/);
    expect(withSecret(`${'a'.repeat(8)} ${'a'.repeat(8)}`)).toThrow(/visible ASCII/);
  });
});

/**
 * Issue 15.1: configuration fails closed. Every options object and every route policy is checked
 * at start-up for unknown keys (with the nearest valid one named), wrong types and empty
 * requirements.
 */
import { createGuard, type GuardOptions } from '@fapi-guard/core';
import { editDistance, nearestKey } from '../src/config/check.js';

const base: GuardOptions = { issuer: 'https://as.example.com', audience: 'https://rs.example.com' };
const build = (options: Record<string, unknown>) => () => createGuard({ ...base, ...options } as GuardOptions);
const policy = (p: Record<string, unknown>) => () => createGuard(base).policy(p as never);
const quoted = (s: string) => s.replace(/[.[\]()]/g, '\\$&');
/** The message names the key and the nearest valid one. */
const typo = (kind: string, key: string, near: string) => new RegExp(`unknown ${kind} "${quoted(key)}"; did you mean "${quoted(near)}"\\?`);

describe('15.1 typo fails open: edit distance', () => {
  it('counts insertions, deletions, substitutions and adjacent transpositions', () => {
    expect(editDistance('scope', 'scopes')).toBe(1);
    expect(editDistance('scopez', 'scopes')).toBe(1);
    expect(editDistance('scpoes', 'scopes')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
  });

  it('suggests only keys close enough to be a typo', () => {
    expect(nearestKey('scope', ['scopes', 'anyScopes'])).toBe('scopes');
    expect(nearestKey('allowbearer', ['allowBearer', 'dpopNonce'])).toBe('allowBearer');
    expect(nearestKey('clockTolerance', ['clockToleranceSec', 'clock'])).toBe('clockToleranceSec');
    expect(nearestKey('colour', ['scopes', 'anyScopes'])).toBeUndefined();
  });
});

describe('15.1 typo fails open: route policies', () => {
  it('refuses an unknown key, naming the nearest valid one', () => {
    expect(policy({ scope: ['accounts'] })).toThrow(typo('route policy key', 'scope', 'scopes'));
    expect(policy({ scopes: ['accounts'], scopez: ['x'] })).toThrow(typo('route policy key', 'scopez', 'scopes'));
    expect(policy({ anyScope: ['a'] })).toThrow(typo('route policy key', 'anyScope', 'anyScopes'));
    expect(policy({ allowbearer: true })).toThrow(typo('route policy key', 'allowbearer', 'allowBearer'));
    // Set to undefined, a typo is still a typo.
    expect(policy({ scope: undefined })).toThrow(typo('route policy key', 'scope', 'scopes'));
    // Nothing close: the valid keys are listed.
    expect(policy({ colour: 'red' })).toThrow(/unknown route policy key "colour"; valid keys: scopes, anyScopes, claims/);
  });

  it('refuses a scope string instead of parsing it (documented: scopes are a list of scope-tokens)', () => {
    expect(policy({ scopes: 'accounts' })).toThrow(
      /route policy key scopes must be a list of scope-tokens, e\.g\. \['accounts'\], not a string/,
    );
    expect(policy({ anyScopes: 'a b' })).toThrow(/anyScopes must be a list of scope-tokens, e\.g\. \['a', 'b'\]/);
    expect(policy({ scopes: ['a b'] })).toThrow(/scope-token/);
  });

  it('refuses an explicitly empty requirement', () => {
    expect(policy({ scopes: [] })).toThrow(/route policy key scopes is empty; leave scopes out/);
    expect(policy({ anyScopes: [] })).toThrow(/anyScopes is empty/);
    expect(policy({ acrValues: [] })).toThrow(/acrValues is empty/);
    expect(policy({ authorizationDetails: [] })).toThrow(/authorizationDetails is empty/);
    expect(policy({ claims: {} })).toThrow(/claims is empty/);
    expect(policy({})).not.toThrow();
    expect(policy({ scopes: ['a'] })).not.toThrow();
  });

  it('refuses values of the wrong type', () => {
    expect(policy({ scopes: [1] })).toThrow(/route policy key scopes\[0\] must be a string \(got number 1\)/);
    expect(policy({ allowBearer: 'yes' })).toThrow(/allowBearer must be true or false/);
    expect(policy({ dpopNonce: 1 })).toThrow(/dpopNonce must be true or false/);
    expect(policy({ clientCertificate: true })).toThrow(/clientCertificate must be a function/);
    expect(policy({ acrValues: [null] })).toThrow(/acrValues\[0\] must be a string/);
    expect(policy({ maxAuthAgeSec: '60' })).toThrow(/maxAuthAgeSec must be a number/);
    expect(policy({ authorizationDetails: ['payment'] })).toThrow(/authorizationDetails\[0\] must be an object/);
    expect(policy({ signedRequest: true })).toThrow(/signedRequest must be one of "required", "optional"/);
    expect(policy({ signResponse: 'yes' })).toThrow(/signResponse must be true or false/);
    expect(() => createGuard(base).policy('accounts' as never)).toThrow(/route policy must be an object/);
    expect(() => createGuard(base).policy(['accounts'] as never)).toThrow(/route policy must be an object \(got an array\)/);
  });

  it('refuses a claim check that is not a function, { equals } or { includes }', () => {
    expect(policy({ claims: { acr: 'x' } })).toThrow(/claims\.acr must be a function, \{ equals \} or \{ includes \}/);
    expect(policy({ claims: { acr: { equal: 'x' } } })).toThrow(/claims\.acr .*did you mean "equals"\?/);
    expect(policy({ claims: { acr: { equals: 'x', includes: 'y' } } })).toThrow(/claims\.acr must be/);
    expect(policy({ claims: { acr: { equals: 'x' }, amr: { includes: 'hwk' }, sub: () => true } })).not.toThrow();
  });
});

describe('15.1 typo fails open: guard options', () => {
  it('refuses an unknown top-level option, naming the nearest valid one', () => {
    expect(build({ clockTolerance: 5 })).toThrow(typo('option', 'clockTolerance', 'clockToleranceSec'));
    expect(build({ audiences: ['https://rs.example.com'] })).toThrow(typo('option', 'audiences', 'audience'));
    expect(build({ publicURL: 'https://rs.example.com' })).toThrow(typo('option', 'publicURL', 'publicUrl'));
    expect(build({ trustProxy: true })).toThrow(/unknown option "trustProxy"/);
  });

  it.each([
    ['dpop', { dpop: { maxAge: 30 } }, 'dpop.maxAge', 'dpop.maxAgeSec'],
    ['dpop.nonce', { dpop: { nonce: { stepSecs: 30 } } }, 'dpop.nonce.stepSecs', 'dpop.nonce.stepSec'],
    ['keys', { keys: { maxAge: 1 } }, 'keys.maxAge', 'keys.maxAgeMs'],
    ['tokenCache', { tokenCache: { maximum: 1 } }, 'tokenCache.maximum', 'tokenCache.max'],
    ['mtls', { mtls: { proxies: {} } }, 'mtls.proxies', 'mtls.proxy'],
    ['mtls.proxy', { mtls: { proxy: { trustedPeer: ['10.0.0.1'] } } }, 'mtls.proxy.trustedPeer', 'mtls.proxy.trustedPeers'],
    [
      'mtls.proxy.sharedSecret',
      { mtls: { proxy: { sharedSecret: { header: 'x-s', values: 'x'.repeat(16) } } } },
      'mtls.proxy.sharedSecret.values',
      'mtls.proxy.sharedSecret.value',
    ],
    [
      'introspection',
      { introspection: { clientId: 'rs', clientAuth: { method: 'client_secret_basic', clientSecret: 's' }, endpoints: 'x' } },
      'introspection.endpoints',
      'introspection.endpoint',
    ],
    [
      'introspection.clientAuth',
      { introspection: { clientId: 'rs', clientAuth: { method: 'client_secret_basic', secret: 's' } } },
      'introspection.clientAuth.secret',
      'introspection.clientAuth.clientSecret',
    ],
    [
      'introspection.cache',
      { introspection: { clientId: 'rs', clientAuth: { method: 'client_secret_basic', clientSecret: 's' }, cache: { maxTtl: 5 } } },
      'introspection.cache.maxTtl',
      'introspection.cache.maxTtlSec',
    ],
    ['messageSigning', { messageSigning: { client: {} } }, 'messageSigning.client', 'messageSigning.clients'],
    [
      'messageSigning.clients',
      { messageSigning: { clients: { tpp: { jwks_uri: 'https://tpp.example/jwks' } } } },
      'messageSigning.clients.tpp.jwks_uri',
      'messageSigning.clients.tpp.jwksUri',
    ],
    ['resourceMetadata', { resourceMetadata: { scopes: ['a'] } }, 'resourceMetadata.scopes', 'resourceMetadata.scopesSupported'],
    ['compat', { compat: { acceptJwtType: true } }, 'compat.acceptJwtType', 'compat.acceptJwtTyp'],
    [
      'issuer config',
      { issuer: { issuer: 'https://as.example.com', jwks_uri: 'https://as.example.com/j' } },
      'issuer.jwks_uri',
      'issuer.jwksUri',
    ],
    ['issuers[i]', { issuer: undefined, issuers: [{ issuer: 'https://as.example.com', jwk: {} }] }, 'issuers[0].jwk', 'issuers[0].jwks'],
  ])('refuses an unknown key in %s', (_name, options, key, near) => {
    expect(build(options)).toThrow(typo('option', key, near));
  });

  it.each([
    [{ profile: 'fapi' }, /option profile must be one of "fapi2", "fapi1-advanced", "oauth2" \(got the string "fapi"\)/],
    [{ interactionId: 'on' }, /option interactionId must be true or false/],
    [{ issuer: 42 }, /option issuer must be an issuer URL or \{ issuer, jwksUri\?, jwks\? \} \(got number 42\)/],
    [{ audience: 42 }, /option audience must be a URI or a list of URIs/],
    [{ audience: ['https://rs.example.com', 7] }, /option audience\[1\] must be a string/],
    [{ algorithms: 'ES256' }, /option algorithms must be an array/],
    [{ clockToleranceSec: '10' }, /option clockToleranceSec must be a number/],
    [{ clockToleranceSec: Number.NaN }, /option clockToleranceSec must be a number/],
    [{ realm: 1 }, /option realm must be a string/],
    [{ keys: { timeoutMs: '5s' } }, /option keys\.timeoutMs must be a number/],
    [{ tokenCache: true }, /option tokenCache must be one of false/],
    [{ tokenCache: 100 }, /option tokenCache must be false or \{ max \}/],
    [{ mtls: 'yes' }, /option mtls must be true, false or \{ proxy \}/],
    [
      { mtls: { proxy: { format: 'haproxy', trustedPeers: ['10.0.0.1'] } } },
      /mtls\.proxy\.format must be one of "rfc9440", "nginx", "envoy"/,
    ],
    [{ mtls: { proxy: { trustedPeers: '10.0.0.1' } } }, /mtls\.proxy\.trustedPeers must be an array/],
    [
      { introspection: { clientId: 'rs', clientAuth: { method: 'basic' } } },
      /introspection\.clientAuth\.method must be one of client_secret_basic/,
    ],
    [
      { introspection: { clientId: 'rs', clientAuth: { method: 'private_key_jwt', privateKey: {}, alg: 'RS256' } } },
      /clientAuth\.alg must be one of/,
    ],
    [
      { introspection: { clientId: 'rs', clientAuth: { method: 'tls_client_auth', cert: 'x', key: 'y' }, cache: true } },
      /introspection\.cache must be one of false/,
    ],
    [
      { introspection: { clientId: 'rs', clientAuth: { method: 'tls_client_auth', cert: 'x', key: 'y' }, signedResponse: 1 } },
      /signedResponse must be true or false/,
    ],
    [{ tokenFormat: 'JWT' }, /option tokenFormat must be one of "jwt", "opaque", "auto"/],
    [{ introspectJwts: 'true' }, /option introspectJwts must be true or false/],
    [{ dpop: { maxAgeSec: '60' } }, /option dpop\.maxAgeSec must be a number/],
    [{ dpop: { replayStore: 'redis' } }, /option dpop\.replayStore must be an object/],
    [{ dpop: { nonce: { required: 'yes' } } }, /option dpop\.nonce\.required must be true or false/],
    [{ dpop: { nonce: { secret: 42 } } }, /option dpop\.nonce\.secret must be a string, bytes, or a list of them/],
    [{ dpop: { nonce: { secret: ['s'.repeat(32), 42] } } }, /option dpop\.nonce\.secret\[1\] must be a string or bytes/],
    [{ messageSigning: { clients: { tpp: 'https://tpp.example/jwks' } } }, /messageSigning\.clients\.tpp must be an object/],
    [{ messageSigning: { resolveClient: {} } }, /messageSigning\.resolveClient must be a function/],
    [{ messageSigning: { clients: {}, onSignedExchange: 'log' } }, /messageSigning\.onSignedExchange must be a function/],
    [{ resourceMetadata: 'yes' }, /option resourceMetadata must be true, false or an object/],
    [{ resourceMetadata: { maxAgeSec: '60' } }, /resourceMetadata\.maxAgeSec must be a number/],
    [{ compat: { optionalClaims: 'jti' } }, /compat\.optionalClaims must be an array/],
    [{ onDecision: console }, /option onDecision must be a function/],
    [{ clock: 0 }, /option clock must be a function/],
    [{ publicUrl: 1 }, /option publicUrl must be an origin or a list of origins/],
    [{ publicUrl: [] }, /option publicUrl is empty; give at least one origin/],
    [{ trustedProxies: '10.0.0.1' }, /option trustedProxies must be an array/],
  ])('refuses a value of the wrong type: %j', (options, message) => {
    expect(build(options)).toThrow(message);
  });

  it('refuses options that are not an object', () => {
    expect(() => createGuard([] as never)).toThrow(/options must be an object \(got an array\)/);
  });

  it('accepts every option spelled right', () => {
    const store = { get: async () => undefined, set: async () => undefined };
    expect(
      build({
        profile: 'fapi2',
        compat: { acceptJwtTyp: false, acceptMissingTyp: false, clientIdClaim: 'azp', optionalClaims: ['jti'] },
        resourceMetadata: { resource: 'https://rs.example.com', scopesSupported: ['a'], resourceName: 'API', maxAgeSec: 60 },
        interactionId: true,
        issuer: { issuer: 'https://as.example.com', jwksUri: 'https://as.example.com/jwks' },
        algorithms: ['ES256'],
        clockToleranceSec: 5,
        realm: 'api',
        keys: { maxAgeMs: 1, cooldownMs: 1, timeoutMs: 1 },
        tokenCache: { max: 10 },
        mtls: {
          proxy: { format: 'nginx', header: 'x-cert', trustedPeers: ['10.0.0.1'], sharedSecret: { header: 'x-s', value: 's'.repeat(16) } },
        },
        introspection: {
          endpoint: 'https://as.example.com/introspect',
          clientId: 'rs',
          clientAuth: { method: 'client_secret_post', clientSecret: 's' },
          signedResponse: false,
          timeoutMs: 1000,
          cache: { maxTtlSec: 1, negativeTtlSec: 1, max: 1, store },
        },
        tokenFormat: 'auto',
        introspectJwts: true,
        dpop: {
          maxAgeSec: 30,
          maxFutureSec: 5,
          nonce: { secret: [new Uint8Array(32), 'n'.repeat(32)], stepSec: 30, required: true },
          verifyOn: 'main',
        },
        messageSigning: {
          clients: { tpp: { jwksUri: 'https://tpp.example/jwks' } },
          cacheMs: 1,
          cooldownMs: 1,
          timeoutMs: 1,
          maxAgeSec: 30,
        },
        onDecision: () => undefined,
        clock: Date.now,
        publicUrl: ['https://rs.example.com'],
        trustedProxies: ['10.0.0.0/8'],
      }),
    ).not.toThrow();
  });
});

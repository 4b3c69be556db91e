/**
 * Route policies in-process (issue 20): what compilePolicy accepts at start-up and what
 * checkPolicy answers, each rule on both sides of its edge. The HTTP suites (test/profile.test.ts)
 * show the same rules as status codes and challenges.
 */
import { type AccessTokenClaims, checkPolicy, compilePolicy, grantedScopes } from '@fapi-guard/core';

const NOW = 1_900_000_000;
const claims = (extra: Record<string, unknown> = {}) =>
  Object.freeze({ iss: 'i', sub: 's', scope: 'accounts', ...extra }) as AccessTokenClaims;
const check = (policy: Parameters<typeof compilePolicy>[0], extra: Record<string, unknown> = {}, tolerance = 0) => {
  const c = claims(extra);
  return checkPolicy(compilePolicy(policy), c, grantedScopes(c), NOW, tolerance);
};

describe('compilePolicy at start-up', () => {
  it('FAPI-RS-07 refuses scope and acr values that are not RFC 6749 scope-tokens', () => {
    expect(() => compilePolicy({ scopes: ['accounts read'] })).toThrow(/not an RFC 6749 scope-token/);
    expect(() => compilePolicy({ anyScopes: ['"x"'] })).toThrow(/not an RFC 6749 scope-token/);
    expect(() => compilePolicy({ acrValues: ['urn:acr:a', 'urn acr b'] })).toThrow(/acrValues must be strings without spaces/);
    expect(compilePolicy({ acrValues: ['urn:acr:a'] }).acrValues).toEqual(['urn:acr:a']);
  });

  it('STEP-02 maxAuthAgeSec is a non-negative integer', () => {
    expect(compilePolicy({ maxAuthAgeSec: 0 }).maxAuthAgeSec).toBe(0);
    for (const bad of [-1, 1.5]) expect(() => compilePolicy({ maxAuthAgeSec: bad })).toThrow(/non-negative integer/);
  });

  it('FAPI-RS-07 each authorizationDetails entry needs a string type', () => {
    expect(() => compilePolicy({ authorizationDetails: [{ type: 'payment_initiation' }, { type: 5 } as never] })).toThrow(/string type/);
    expect(compilePolicy({ authorizationDetails: [{ type: 'payment_initiation' }] }).authorizationDetails).toHaveLength(1);
  });

  it('FAPI-RS-03 allowBearer: the route decides, else the guard default, else false', () => {
    expect(compilePolicy({}).allowBearer).toBe(false);
    expect(compilePolicy({}, {}).allowBearer).toBe(false);
    expect(compilePolicy({}, { allowBearer: true }).allowBearer).toBe(true);
    expect(compilePolicy({ allowBearer: false }, { allowBearer: true }).allowBearer).toBe(false);
    expect(compilePolicy({ allowBearer: true }).allowBearer).toBe(true);
    expect(compilePolicy({ signResponse: true }).signResponse).toBe(true);
    expect(compilePolicy({}).signResponse).toBe(false);
  });
});

describe('checkPolicy', () => {
  it('FAPI-RS-07 a token without a scope claim grants no scope and passes a route without scope rules', () => {
    expect(grantedScopes(claims({ scope: undefined }))).toEqual([]);
    expect(grantedScopes(claims({ scope: 5 }))).toEqual([]);
    expect(check({}, { scope: undefined })).toEqual({ ok: true });
    expect(check({ scopes: ['accounts'] }, { scope: undefined })).toMatchObject({ ok: false, reason: 'scope_insufficient' });
  });

  it('FAPI-RS-07 a refusal names every required scope, space-separated, for the challenge', () => {
    expect(check({ scopes: ['accounts', 'payments'] }, { scope: 'accounts' })).toEqual({
      ok: false,
      reason: 'scope_insufficient',
      detail: 'missing scope payments',
      scope: 'accounts payments',
    });
    expect(check({ anyScopes: ['payments:read', 'payments:write'] })).toEqual({
      ok: false,
      reason: 'scope_insufficient',
      detail: 'none of payments:read payments:write',
      scope: 'payments:read payments:write',
    });
  });

  it('FAPI-RS-07 anyScopes: one granted scope of the list is enough', () => {
    expect(check({ anyScopes: ['payments', 'accounts'] })).toEqual({ ok: true });
    expect(check({ anyScopes: ['accounts', 'payments'] })).toEqual({ ok: true });
  });

  it('STEP-01 STEP-02 acr and auth_time at their edges', () => {
    const route = { acrValues: ['urn:acr:mfa'], maxAuthAgeSec: 300 };
    expect(check(route, { acr: 'urn:acr:mfa', auth_time: NOW - 300 })).toEqual({ ok: true });
    expect(check(route, { acr: 'urn:acr:mfa', auth_time: NOW - 301 })).toMatchObject({
      reason: 'user_authentication_insufficient',
      maxAge: 300,
    });
    expect(check(route, { acr: 'urn:acr:mfa', auth_time: NOW - 301 })).not.toHaveProperty('acrValues');
    expect(check(route, { acr: 'urn:acr:pwd', auth_time: NOW })).toMatchObject({ acrValues: 'urn:acr:mfa' });
    expect(check(route, { acr: 'urn:acr:pwd', auth_time: NOW })).not.toHaveProperty('maxAge');
    expect(check(route, { acr: ['urn:acr:mfa'], auth_time: NOW })).toMatchObject({ reason: 'user_authentication_insufficient' });
    expect(check(route, { acr: 'urn:acr:mfa' })).toMatchObject({ detail: 'auth_time absent is older than 300 s', maxAge: 300 });
    expect(check(route, { acr: 'urn:acr:mfa', auth_time: String(NOW) })).toMatchObject({ reason: 'user_authentication_insufficient' });
    // An auth_time ahead of now: accepted within the clock tolerance, refused beyond it.
    expect(check(route, { acr: 'urn:acr:mfa', auth_time: NOW + 5 }, 5)).toEqual({ ok: true });
    expect(check(route, { acr: 'urn:acr:mfa', auth_time: NOW + 6 }, 5)).toMatchObject({ detail: 'auth_time 1900000006 is in the future' });
    expect(check(route, { acr: 'urn:acr:mfa', auth_time: NOW + 1 })).toMatchObject({ reason: 'user_authentication_insufficient' });
    // A route with only one of the two rules ignores the other claim.
    expect(check({ maxAuthAgeSec: 300 }, { auth_time: NOW })).toEqual({ ok: true });
    expect(check({ acrValues: ['urn:acr:mfa'] }, { acr: 'urn:acr:mfa' })).toEqual({ ok: true });
  });

  it('STEP-02 without an explicit time, auth_time is judged against the clock', () => {
    const route = compilePolicy({ maxAuthAgeSec: 60 });
    const fresh = claims({ auth_time: Math.floor(Date.now() / 1000) - 5 });
    const stale = claims({ auth_time: Math.floor(Date.now() / 1000) - 120 });
    expect(checkPolicy(route, fresh, grantedScopes(fresh))).toEqual({ ok: true });
    expect(checkPolicy(route, stale, grantedScopes(stale))).toMatchObject({ reason: 'user_authentication_insufficient' });
  });

  it('STEP-02 a step-up refusal also names a short scope', () => {
    expect(check({ scopes: ['payments'], acrValues: ['urn:acr:mfa'] }, { acr: 'urn:acr:pwd' })).toMatchObject({
      reason: 'user_authentication_insufficient',
      acrValues: 'urn:acr:mfa',
      scope: 'payments',
    });
    expect(check({ scopes: ['accounts'], acrValues: ['urn:acr:mfa'] }, { acr: 'urn:acr:pwd' })).not.toHaveProperty('scope');
  });

  it('FAPI-RS-07 authorization_details: same type, equal members, listed values contained', () => {
    const route = { authorizationDetails: [{ type: 'payment_initiation', actions: ['initiate'], currency: 'EUR' }] };
    const entry = { type: 'payment_initiation', actions: ['initiate', 'status'], currency: 'EUR' };
    expect(check(route, { authorization_details: [entry] })).toEqual({ ok: true });
    expect(check(route, { authorization_details: [{ type: 'other' }, entry] })).toEqual({ ok: true });
    for (const granted of [
      [{ ...entry, currency: 'USD' }],
      [{ ...entry, actions: ['status'] }],
      [{ ...entry, actions: 'initiate' }],
      [{ ...entry, type: 'account_information' }],
      [null, 'payment_initiation'],
      [undefined],
      entry,
      undefined,
    ]) {
      expect(check(route, { authorization_details: granted })).toMatchObject({ ok: false, reason: 'authorization_details_insufficient' });
    }
    // Every required entry needs its own match.
    const two = { authorizationDetails: [{ type: 'payment_initiation' }, { type: 'account_information' }] };
    expect(check(two, { authorization_details: [entry] })).toMatchObject({ reason: 'authorization_details_insufficient' });
  });

  it('FAPI-RS-07 claim checks: equals (deep), includes (array member or space-separated word), functions (only true passes)', () => {
    expect(check({ claims: { tier: { equals: { level: 2 } } } }, { tier: { level: 2 } })).toEqual({ ok: true });
    expect(check({ claims: { tier: { equals: { level: 2 } } } }, { tier: { level: '2' } })).toMatchObject({ reason: 'claim_check_failed' });
    expect(check({ claims: { groups: { includes: 'ops' } } }, { groups: ['dev', 'ops'] })).toEqual({ ok: true });
    expect(check({ claims: { groups: { includes: 'ops' } } }, { groups: 'dev ops' })).toEqual({ ok: true });
    expect(check({ claims: { groups: { includes: 'ops' } } }, { groups: 'devops' })).toMatchObject({ reason: 'claim_check_failed' });
    expect(check({ claims: { groups: { includes: 'ops' } } }, { groups: undefined })).toMatchObject({ reason: 'claim_check_failed' });
    expect(check({ claims: { level: { includes: 2 } } }, { level: '2' })).toMatchObject({ reason: 'claim_check_failed' });
    expect(check({ claims: { sub: (v) => v === 's' } })).toEqual({ ok: true });
    expect(check({ claims: { sub: () => 1 as unknown as boolean } })).toMatchObject({ reason: 'claim_check_failed' });
    const thrower = () => {
      throw new Error('boom');
    };
    expect(check({ claims: { sub: thrower } })).toMatchObject({ reason: 'claim_check_failed', detail: 'claim sub check failed' });
    // The function sees the claim and all the claims.
    const seen: unknown[] = [];
    check({ claims: { sub: (v, all) => seen.push(v, all.iss) > 0 } });
    expect(seen).toEqual(['s', 'i']);
  });
});

describe('what compilePolicy keeps of a route policy', () => {
  it('IDEM-01 FAPI-RS-07 the idempotency settings, profiles and body-signature rules, as frozen copies', () => {
    expect(compilePolicy({ idempotency: 'required' }).idempotency).toMatchObject({ mode: 'required', header: 'idempotency-key' });
    expect(compilePolicy({}).idempotency).toBeUndefined();
    const profiles: ('fapi2' | 'fapi1-advanced')[] = ['fapi2'];
    const compiled = compilePolicy({ profiles, jwsSignature: { request: 'required' }, jwtBody: { response: true } });
    profiles.push('fapi1-advanced');
    expect([compiled.profiles, compiled.jwsSignature, compiled.jwtBody]).toEqual([['fapi2'], { request: 'required' }, { response: true }]);
    expect([Object.isFrozen(compiled.profiles), Object.isFrozen(compiled.jwsSignature), Object.isFrozen(compiled.jwtBody)]).toEqual([
      true,
      true,
      true,
    ]);
    expect([compilePolicy({}).profiles, compilePolicy({}).jwsSignature, compilePolicy({}).jwtBody]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('FAPI-RS-03 readsBody: only a request signature or a signed body needs the body bytes', () => {
    const reads = (policy: Parameters<typeof compilePolicy>[0]) => compilePolicy(policy).readsBody;
    expect(reads({})).toBe(false);
    expect(reads({ signedRequest: 'optional' })).toBe(true);
    expect(reads({ jwsSignature: { request: 'required' } })).toBe(true);
    expect(reads({ jwtBody: { request: 'required' } })).toBe(true);
    expect(reads({ signResponse: true, jwsSignature: { response: true }, jwtBody: { response: true } })).toBe(false);
  });
});

describe('what a refusal says, for the operator (detail) and the challenge', () => {
  it('FAPI-RS-07 every missing scope, space-separated, in the detail and, with a step-up refusal, in the challenge', () => {
    expect(check({ scopes: ['payments', 'transfers'] })).toMatchObject({ detail: 'missing scope payments transfers' });
    expect(check({ scopes: ['payments', 'transfers'], acrValues: ['urn:acr:mfa'] }, { acr: 'urn:acr:pwd' })).toMatchObject({
      reason: 'user_authentication_insufficient',
      detail: 'acr "urn:acr:pwd"',
      scope: 'payments transfers',
    });
  });

  it('STEP-02 an auth_time within the clock tolerance but past the max age is old, not in the future', () => {
    expect(check({ maxAuthAgeSec: 0 }, { auth_time: NOW - 5 }, 10)).toMatchObject({ detail: 'auth_time 1899999995 is older than 0 s' });
  });

  it('FAPI-RS-07 authorization_details: every listed value is needed, and the unmet type is named', () => {
    const route = { authorizationDetails: [{ type: 'payment_initiation', actions: ['initiate', 'cancel'] }] };
    expect(check(route, { authorization_details: [{ type: 'payment_initiation', actions: ['initiate'] }] })).toEqual({
      ok: false,
      reason: 'authorization_details_insufficient',
      detail: 'no authorization_details entry of type payment_initiation matches',
    });
    expect(check(route, { authorization_details: [{ type: 'payment_initiation', actions: ['cancel', 'initiate'] }] })).toEqual({
      ok: true,
    });
  });
});

/**
 * The three profiles and how a client is matched to one (regimes/profiles.ts), in process through
 * `createGuard(...).check()`: what each profile accepts (sender constraints, algorithms, unbound
 * tokens, the FAPI 1.0 customer headers), and which profile serves which client — registered by
 * client id, named by a token claim, else the guard's own. The same over real HTTP, on every
 * adapter, is test/regimes-migration.test.ts and test/regimes-fapi1.test.ts.
 */
import { createGuard, type GuardError, type GuardOptions, type GuardRequest, type RoutePolicy } from '@fapi-guard/core';
import { createCertificate, DpopClient, MockIssuer, type TestCertificate } from '@fapi-guard/testing';

const ISSUER = 'https://as.example.com';
const AUDIENCE = 'https://rs.example.com';
const URL_ = `${AUDIENCE}/accounts`;
const LEGACY = 'legacy-tpp';

let as: MockIssuer;
let dpop: DpopClient;
let cert: TestCertificate;

beforeAll(async () => {
  as = await MockIssuer.create({ issuer: ISSUER, audience: AUDIENCE });
  dpop = await DpopClient.create('ES256');
  cert = await createCertificate({ subject: 'CN=tpp' });
});

const guardWith = (extra: Partial<GuardOptions> = {}) =>
  createGuard({ issuer: { issuer: ISSUER, jwks: as.jwks }, audience: AUDIENCE, publicUrl: AUDIENCE, mtls: true, ...extra });
type Guard = ReturnType<typeof guardWith>;

const lines = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, [v]]));
type Mint = Parameters<MockIssuer['mint']>[0];

/** A DPoP-bound token with its proof. */
async function viaDpop(mint: Mint = {}, extra: Record<string, string> = {}): Promise<GuardRequest> {
  const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt, ...mint });
  const proof = await dpop.proof({ htm: 'GET', htu: URL_, accessToken: token });
  return { method: 'GET', url: URL_, headers: lines({ authorization: `DPoP ${token}`, dpop: proof, ...extra }) };
}

/** A certificate-bound token presented over a connection with that certificate. */
async function viaCertificate(mint: Mint = {}, extra: Record<string, string> = {}): Promise<GuardRequest> {
  const token = await as.mint({ scope: 'accounts', x5t: cert.x5t, alg: 'PS256', ...mint });
  return { method: 'GET', url: URL_, headers: lines({ authorization: `Bearer ${token}`, ...extra }), clientCertificate: cert.der };
}

/** An unbound token. */
async function unbound(mint: Mint = {}): Promise<GuardRequest> {
  const token = await as.mint({ scope: 'accounts', ...mint });
  return { method: 'GET', url: URL_, headers: lines({ authorization: `Bearer ${token}` }) };
}

async function outcome(guard: Guard, request: GuardRequest, policy: RoutePolicy = { scopes: ['accounts'] }) {
  const result = await guard.check(request, policy);
  return result.ok ? 'ok' : (result as GuardError).reason;
}

async function detailOf(guard: Guard, request: GuardRequest) {
  const result = await guard.check(request, { scopes: ['accounts'] });
  return result.ok ? 'ok' : (result as GuardError).detail;
}

const client = (clientId: string, claims: Record<string, unknown> = {}): Mint => ({ claims: { client_id: clientId, ...claims } });
const BAD_AUTH_DATE = { 'x-fapi-auth-date': '2026-12-06T09:00:00Z' };

describe('what each profile accepts', () => {
  it('FAPIA-RS-01 FAPIA-RS-02 fapi1-advanced: certificate-bound tokens only, even on a route that allows bearer tokens', async () => {
    const guard = guardWith({ profile: 'fapi1-advanced' });
    expect(await outcome(guard, await viaCertificate())).toBe('ok');
    // No profile of this guard accepts DPoP: the DPoP scheme is not one it reads (RFC 6750 §3.1, no
    // error code), and DPoP proofs have no algorithms.
    expect(await outcome(guard, await viaDpop())).toBe('credentials_missing');
    expect(await outcome(guard, await unbound(), { scopes: ['accounts'], allowBearer: true })).toBe('binding_missing');
    expect(guard.options.dpopAlgorithms).toEqual([]);
  });

  it('FAPIA-RS-03 fapi1-advanced: PS256 and ES256 tokens only', async () => {
    const guard = guardWith({ profile: 'fapi1-advanced' });
    expect(guard.options.algorithms).toEqual(['PS256', 'ES256']);
    expect(await outcome(guard, await viaCertificate({ alg: 'ES256' }))).toBe('ok');
    expect(await outcome(guard, await viaCertificate({ alg: 'EdDSA' }))).toBe('token_algorithm');
  });

  it('FAPIA-RS-07 fapi1-advanced refuses a malformed x-fapi-auth-date; fapi2 and oauth2 do not read it', async () => {
    expect(await outcome(guardWith({ profile: 'fapi1-advanced' }), await viaCertificate({}, BAD_AUTH_DATE))).toBe('fapi_header_invalid');
    expect(await outcome(guardWith(), await viaDpop({}, BAD_AUTH_DATE))).toBe('ok');
    expect(await outcome(guardWith({ profile: 'oauth2' }), await viaDpop({}, BAD_AUTH_DATE))).toBe('ok');
  });

  it('FAPI-RS-08 fapi2: a sender-constrained token of either kind; an unbound one only where the route allows it', async () => {
    const guard = guardWith();
    expect(await outcome(guard, await viaDpop())).toBe('ok');
    expect(await outcome(guard, await viaCertificate())).toBe('ok');
    expect(await outcome(guard, await unbound())).toBe('binding_missing');
    expect(await outcome(guard, await unbound(), { scopes: ['accounts'], allowBearer: true })).toBe('ok');
  });

  it('FAPI-RS-11 fapi2: ES256, PS256 and EdDSA, not RS256', async () => {
    const guard = guardWith();
    expect(guard.options.algorithms).toEqual(['ES256', 'PS256', 'EdDSA']);
    expect(await outcome(guard, await viaDpop({ alg: 'EdDSA' }))).toBe('ok');
    expect(await outcome(guard, await viaDpop({ alg: 'RS256' }))).toBe('token_algorithm');
  });

  it('oauth2: unbound tokens by default, RS256 as well, DPoP and certificates still checked', async () => {
    const guard = guardWith({ profile: 'oauth2' });
    expect(guard.options.algorithms).toEqual(['ES256', 'PS256', 'EdDSA', 'RS256']);
    expect(await outcome(guard, await unbound())).toBe('ok');
    expect(await outcome(guard, await unbound({ alg: 'RS256' }))).toBe('ok');
    expect(await outcome(guard, await viaDpop())).toBe('ok');
    expect(await outcome(guard, await viaCertificate())).toBe('ok');
  });
});

describe('which profile serves a client (clientProfiles)', () => {
  const migrating = (claim?: string) =>
    guardWith({ clientProfiles: { clients: { [LEGACY]: 'fapi1-advanced' }, ...(claim ? { claim } : {}) } });

  it('MIG-01 a registered client is served under its profile; an unlisted one under the guard’s', async () => {
    const guard = migrating();
    expect(await outcome(guard, await viaDpop(client(LEGACY)))).toBe('binding_not_allowed');
    expect(await outcome(guard, await viaCertificate(client(LEGACY)))).toBe('ok');
    expect(await outcome(guard, await viaDpop(client('new-tpp')))).toBe('ok');
  });

  it('MIG-01 the claim names the profile of an unlisted client; without the claim the guard’s profile serves it', async () => {
    const guard = migrating('fapi_profile');
    expect(await outcome(guard, await viaDpop(client('tpp', { fapi_profile: 'fapi1-advanced' })))).toBe('binding_not_allowed');
    expect(await outcome(guard, await viaDpop(client('tpp', { fapi_profile: 'fapi2' })))).toBe('ok');
    expect(await outcome(guard, await viaDpop(client('tpp')))).toBe('ok');
    expect(await outcome(guard, await viaCertificate(client('tpp', { fapi_profile: 'fapi1-advanced' })))).toBe('ok');
  });

  it('MIG-01 without a configured claim, a claim of that name in the token is not read', async () => {
    const guard = migrating();
    expect(await outcome(guard, await viaDpop(client('tpp', { fapi_profile: 'fapi1-advanced' })))).toBe('ok');
    expect(await outcome(guard, await viaDpop(client('tpp', { fapi_profile: 'oauth2' })))).toBe('ok');
    // Not even one named after the unset option.
    expect(await outcome(guard, await viaDpop(client('tpp', { undefined: 'fapi1-advanced' })))).toBe('ok');
  });

  it('MIG-02 the claim cannot move a registered client, and names only fapi2 or fapi1-advanced', async () => {
    const guard = migrating('fapi_profile');
    expect(await detailOf(guard, await viaDpop(client(LEGACY, { fapi_profile: 'fapi2' })))).toBe(
      'fapi_profile claim names fapi2, the client is registered for fapi1-advanced',
    );
    expect(await outcome(guard, await viaCertificate(client(LEGACY, { fapi_profile: 'fapi1-advanced' })))).toBe('ok');
    for (const named of ['oauth2', 'FAPI2', '', null, 2]) {
      expect([named, await detailOf(guard, await viaDpop(client('tpp', { fapi_profile: named })))]).toEqual([
        named,
        'fapi_profile claim names no known profile',
      ]);
    }
  });

  it('MIG-01 DPoP proofs take the algorithms of the first profile that accepts DPoP (a fapi1-advanced guard serving fapi2 clients)', async () => {
    const guard = guardWith({ profile: 'fapi1-advanced', clientProfiles: { clients: { 'new-tpp': 'fapi2' } } });
    expect(guard.options.dpopAlgorithms).toEqual(['ES256', 'PS256', 'EdDSA']);
    expect(await outcome(guard, await viaDpop(client('new-tpp')))).toBe('ok');
    expect(await outcome(guard, await viaDpop(client('tpp')))).toBe('binding_not_allowed');
    // Routes take their default from the guard's profile: no unbound tokens, for either client.
    expect(await outcome(guard, await unbound(client('new-tpp')))).toBe('binding_missing');
  });
});

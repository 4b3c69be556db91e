/**
 * One API, FAPI 1.0 Advanced and FAPI 2.0 clients side by side on the same routes, every adapter,
 * over real HTTP: each client served under its own profile (registered by client id, or named by a
 * token claim), never a weaker one, a token bound one way never accepted another way, and a route
 * that serves FAPI 2.0 clients only.
 */
import { createGuard, type GuardOptions } from '@fapi-guard/core';
import { clientCertHeader, createCertificate, DpopClient, MockIssuer, type TestCertificate } from '@fapi-guard/testing';
import { FRAMEWORKS, ROUTES, type StartedApp, startApp } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const LEGACY = 'legacy-tpp';
const MIGRATED = 'new-tpp';

let as: MockIssuer;
let legacyCert: TestCertificate;
let migratedCert: TestCertificate;
let dpopKey: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  legacyCert = await createCertificate({ subject: 'CN=legacy-tpp' });
  migratedCert = await createCertificate({ subject: 'CN=new-tpp' });
  dpopKey = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

const options = (): GuardOptions => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  mtls: { proxy: { trustedPeers: ['127.0.0.1', '::1'] } },
  clientProfiles: { clients: { [LEGACY]: 'fapi1-advanced', [MIGRATED]: 'fapi2' }, claim: 'fapi_profile' },
});

/** The `/rar` path, mounted here as an endpoint only migrated clients may call. */
const FAPI2_ONLY = { ...ROUTES, rar: { scopes: ['accounts'], profiles: ['fapi2'] } } as const;

describe('clientProfiles configuration', () => {
  it('MIG-01 names fapi2 or fapi1-advanced per client, and needs a FAPI profile for the API', () => {
    const base = options();
    expect(() => createGuard({ ...base, clientProfiles: { clients: { a: 'oauth2' as never } } })).toThrow(
      /clientProfiles\.clients\.a must be one of "fapi2", "fapi1-advanced"/,
    );
    expect(() => createGuard({ ...base, profile: 'oauth2' })).toThrow(/clientProfiles needs profile fapi2 or fapi1-advanced/);
    expect(() => createGuard({ ...base, clientProfiles: { claim: '' } })).toThrow(/clientProfiles\.claim must name a claim/);
    expect(() => createGuard({ ...base, clientProfiles: { claims: 'x' } as never })).toThrow(/did you mean "clientProfiles\.claim"/);
  });

  it('MIG-02 a guard that can serve fapi1-advanced clients needs mtls and keeps interaction ids', () => {
    const { mtls: _mtls, ...noMtls } = options();
    expect(() => createGuard(noMtls)).toThrow(/configure mtls/);
    expect(() => createGuard({ ...options(), interactionId: false })).toThrow(/interactionId cannot be false/);
    // The FAPI 2.0 algorithms for tokens and DPoP proofs; each client is held to its own profile's.
    const guard = createGuard(options());
    expect(guard.options.algorithms).toEqual(['ES256', 'PS256', 'EdDSA']);
    expect(guard.options.dpopAlgorithms).toEqual(['ES256', 'PS256', 'EdDSA']);
  });
});

describe.each(FRAMEWORKS)('FAPI 1.0 Advanced and FAPI 2.0 clients on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, options(), FAPI2_ONLY);
  });
  afterAll(() => app.close());

  const claimsOf = (clientId: string, extra: Record<string, unknown> = {}) => ({ client_id: clientId, ...extra });
  const viaCertificate = (token: string, cert: TestCertificate, path = '/accounts', headers: Record<string, string> = {}) =>
    send(`${app.url}${path}`, { headers: { authorization: `Bearer ${token}`, 'client-cert': clientCertHeader(cert.der), ...headers } });
  const viaDpop = async (token: string, path = '/accounts', headers: Record<string, string> = {}) => {
    const proof = await dpopKey.proof({ htm: 'GET', htu: `${AUDIENCE}${path}`, accessToken: token });
    return send(`${app.url}${path}`, { headers: { authorization: `DPoP ${token}`, dpop: proof, ...headers } });
  };
  const certToken = (clientId: string, cert: TestCertificate, extra: Parameters<MockIssuer['mint']>[0] = {}) =>
    as.mint({ scope: 'accounts', x5t: cert.x5t, alg: 'PS256', ...extra, claims: claimsOf(clientId, extra.claims) });
  const dpopToken = (clientId: string, claims: Record<string, unknown> = {}) =>
    as.mint({ scope: 'accounts', jkt: dpopKey.jkt, claims: claimsOf(clientId, claims) });

  it('MIG-01 serves both kinds of client on the same route, each under its own profile', async () => {
    const legacy = await viaCertificate(await certToken(LEGACY, legacyCert), legacyCert);
    expect(legacy.status).toBe(200);
    expect(legacy.json).toMatchObject({ clientId: LEGACY, profile: 'fapi1-advanced', binding: { type: 'mtls' } });
    const migrated = await viaDpop(await dpopToken(MIGRATED));
    expect(migrated.status).toBe(200);
    expect(migrated.json).toMatchObject({ clientId: MIGRATED, profile: 'fapi2', binding: { type: 'dpop', jkt: dpopKey.jkt } });
    // FAPI 2.0 accepts certificate-bound tokens too (§5.3.2.2).
    const migratedMtls = await viaCertificate(await certToken(MIGRATED, migratedCert, { alg: 'EdDSA' }), migratedCert);
    expect(migratedMtls.json).toMatchObject({ clientId: MIGRATED, profile: 'fapi2', binding: { type: 'mtls' } });
  });

  it('MIG-01 reads the profile of an unlisted client from the token claim, else serves it under the guard profile', async () => {
    const named = await viaCertificate(await certToken('tpp-9', legacyCert, { claims: { fapi_profile: 'fapi1-advanced' } }), legacyCert);
    expect(named.json).toMatchObject({ clientId: 'tpp-9', profile: 'fapi1-advanced' });
    const refused = await viaDpop(await dpopToken('tpp-9', { fapi_profile: 'fapi1-advanced' }));
    expect(refused.status).toBe(401);
    const unnamed = await viaDpop(await dpopToken('tpp-10'));
    expect(unnamed.json).toMatchObject({ clientId: 'tpp-10', profile: 'fapi2' });
  });

  it('MIG-02 holds a FAPI 1.0 client to its profile on a route FAPI 2.0 clients pass', async () => {
    // DPoP, which FAPI 2.0 clients use on this very route.
    const dpop = await viaDpop(await dpopToken(LEGACY));
    expect(dpop.status).toBe(401);
    expect(dpop.headers['www-authenticate']).toMatch(/^DPoP algs="ES256 PS256 EdDSA", error="invalid_token"/);
    expect(dpop.json.error_description).toBe("The access token's sender constraint is not accepted for this client");
    // EdDSA, which FAPI 2.0 allows and FAPI 1.0 Part 2 §8.6 does not.
    const eddsa = await viaCertificate(await certToken(LEGACY, legacyCert, { alg: 'EdDSA' }), legacyCert);
    expect(eddsa.status).toBe(401);
    expect(eddsa.json.error_description).toBe('The access token algorithm is not allowed');
    // The customer headers, validated for it and not for the FAPI 2.0 client.
    const header = { 'x-fapi-customer-ip-address': '198.51.100.7:443' };
    expect((await viaCertificate(await certToken(LEGACY, legacyCert), legacyCert, '/accounts', header)).status).toBe(400);
    expect((await viaDpop(await dpopToken(MIGRATED), '/accounts', header)).status).toBe(200);
  });

  it('MIG-02 a token claim cannot move a registered client, and an unknown profile name is refused', async () => {
    const moved = await viaDpop(await dpopToken(LEGACY, { fapi_profile: 'fapi2' }));
    expect(moved.status).toBe(401);
    expect(moved.json.error_description).toBe('The access token names no security profile this client can be served under');
    for (const value of ['fapi3', 'FAPI2', 'oauth2', '', ['fapi2'], 2]) {
      const res = await viaDpop(await dpopToken('tpp-11', { fapi_profile: value }));
      expect([value, res.status, res.json.error_description]).toEqual([
        value,
        401,
        'The access token names no security profile this client can be served under',
      ]);
    }
    // The same claim value as the registration is fine.
    expect((await viaDpop(await dpopToken(MIGRATED, { fapi_profile: 'fapi2' }))).status).toBe(200);
  });

  it('MIG-03 never accepts a token bound one way another way', async () => {
    const dpopBound = await dpopToken(MIGRATED);
    const asBearer = await viaCertificate(dpopBound, migratedCert);
    expect(asBearer.status).toBe(401);
    expect(asBearer.json.error_description).toBe('A DPoP-bound access token must be sent with the DPoP scheme');
    const certBound = await certToken(MIGRATED, migratedCert);
    const proof = await dpopKey.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: certBound });
    const withProof = await send(`${app.url}/accounts`, {
      headers: { authorization: `DPoP ${certBound}`, dpop: proof, 'client-cert': clientCertHeader(migratedCert.der) },
    });
    expect(withProof.status).toBe(401);
    expect(withProof.json.error_description).toBe('The access token is not bound to the key of this request');
    // A FAPI 1.0 client's certificate-bound token with a DPoP proof: its profile refuses DPoP first.
    const legacyProof = await dpopKey.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: await certToken(LEGACY, legacyCert) });
    const legacy = await send(`${app.url}/accounts`, {
      headers: {
        authorization: `DPoP ${await certToken(LEGACY, legacyCert)}`,
        dpop: legacyProof,
        'client-cert': clientCertHeader(legacyCert.der),
      },
    });
    expect(legacy.status).toBe(401);
  });

  it('MIG-04 a route for FAPI 2.0 clients only refuses a FAPI 1.0 client with 403', async () => {
    expect((await viaDpop(await dpopToken(MIGRATED), '/rar')).status).toBe(200);
    const legacy = await viaCertificate(await certToken(LEGACY, legacyCert), legacyCert, '/rar');
    expect(legacy.status).toBe(403);
    expect(legacy.headers['www-authenticate']).toMatch(/Bearer realm="[^"]+", error="insufficient_scope"/);
    expect(legacy.json.error_description).toBe("This resource is not available under the client's security profile");
    // Authentication still comes first: a bad certificate on that route is 401, not 403.
    expect((await viaCertificate(await certToken(LEGACY, legacyCert), migratedCert, '/rar')).status).toBe(401);
  });

  it('MIG-01 XFAPI-01 both clients get x-fapi-interaction-id', async () => {
    const id = 'c770aef3-6784-41f7-8e0e-ff5f97bddb3a';
    const h = { 'x-fapi-interaction-id': id };
    expect((await viaCertificate(await certToken(LEGACY, legacyCert), legacyCert, '/accounts', h)).headers['x-fapi-interaction-id']).toBe(
      id,
    );
    expect((await viaDpop(await dpopToken(MIGRATED), '/accounts', h)).headers['x-fapi-interaction-id']).toBe(id);
  });
});

/**
 * `profile: 'fapi1-advanced'` (FAPI 1.0 Part 1 and Part 2 §6.2.1, Part 2 §8.6) on every adapter,
 * over real HTTP: certificate-bound tokens only (the certificate forwarded by a trusted proxy,
 * RFC 9440), PS256/ES256 only, query tokens refused, `x-fapi-interaction-id`, and the customer
 * headers validated and handed to the handler.
 */
import { createGuard, type DecisionEvent, type GuardOptions } from '@fapi-guard/core';
import { clientCertHeader, createCertificate, DpopClient, MockIssuer, type TestCertificate } from '@fapi-guard/testing';
import { FRAMEWORKS, type StartedApp, startApp } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const REALM = `Bearer realm="${AUDIENCE}"`;

let as: MockIssuer;
let client: TestCertificate;
let other: TestCertificate;
let dpopKey: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await createCertificate({ subject: 'CN=tpp-1' });
  other = await createCertificate({ subject: 'CN=tpp-2' });
  dpopKey = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

/** The certificate reaches the API as a TLS-terminating proxy on 127.0.0.1 forwards it (RFC 9440). */
const fapi1 = (extra: Partial<GuardOptions> = {}): GuardOptions => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  profile: 'fapi1-advanced',
  mtls: { proxy: { trustedPeers: ['127.0.0.1', '::1'] } },
  ...extra,
});

describe('fapi1-advanced configuration', () => {
  it('FAPIA-RS-02 needs mtls: a FAPI 1.0 Advanced API without certificate-bound tokens does not start', () => {
    expect(() => createGuard({ issuer: as.issuer, audience: AUDIENCE, profile: 'fapi1-advanced' })).toThrow(/configure mtls/);
  });

  it('FAPIA-RS-03 refuses algorithms other than PS256 and ES256 at start-up', () => {
    expect(() => createGuard(fapi1({ algorithms: ['PS256', 'EdDSA'] }))).toThrow(/PS256 and ES256 only/);
    expect(() => createGuard(fapi1({ algorithms: ['RS256'] }))).toThrow(/PS256 and ES256 only/);
    expect(createGuard(fapi1({ algorithms: ['PS256'] })).options.algorithms).toEqual(['PS256']);
    expect(createGuard(fapi1()).options.algorithms).toEqual(['PS256', 'ES256']);
  });

  it('FAPIA-RS-05 keeps x-fapi-interaction-id on: interactionId false does not start', () => {
    expect(() => createGuard(fapi1({ interactionId: false }))).toThrow(/interactionId cannot be false/);
  });

  it('FAPIA-RS-02 refuses a route profile the guard does not serve', () => {
    expect(() => createGuard(fapi1()).policy({ profiles: ['fapi2'] })).toThrow(/serves profile "fapi2"/);
  });
});

describe.each(FRAMEWORKS)('fapi1-advanced on %s', (framework) => {
  let app: StartedApp;
  const decisions: DecisionEvent[] = [];
  beforeAll(async () => {
    app = await startApp(framework, fapi1({ onDecision: (e) => decisions.push(e) }));
  });
  afterAll(() => app.close());

  const mint = (extra: Parameters<MockIssuer['mint']>[0] = {}) => as.mint({ scope: 'accounts', x5t: client.x5t, ...extra });
  const get = (token: string, headers: Record<string, string | string[]> = {}, cert: TestCertificate | null = client, path = '/accounts') =>
    send(`${app.url}${path}`, {
      headers: { authorization: `Bearer ${token}`, ...(cert ? { 'client-cert': clientCertHeader(cert.der) } : {}), ...headers },
    });

  it('FAPIA-RS-01 MTLS-01 accepts a certificate-bound token with its certificate, served under fapi1-advanced', async () => {
    const res = await get(await mint());
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ clientId: 'client-1', binding: { type: 'mtls', x5t: client.x5t }, profile: 'fapi1-advanced' });
    expect(decisions.at(-1)).toMatchObject({ outcome: 'allow', profile: 'fapi1-advanced', binding: 'mtls' });
  });

  it('FAPIA-RS-01 refuses the token with another certificate or none', async () => {
    const token = await mint();
    const wrong = await get(token, {}, other);
    expect(wrong.status).toBe(401);
    expect(wrong.headers['www-authenticate']).toMatch(/^Bearer realm="[^"]+", error="invalid_token"/);
    expect((await get(token, {}, null)).status).toBe(401);
  });

  it('FAPIA-RS-02 refuses an unbound token, and challenges with Bearer only (no DPoP)', async () => {
    const res = await get(await as.mint({ scope: 'accounts' }));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(
      `${REALM}, error="invalid_token", error_description="A sender-constrained access token is required"`,
    );
  });

  it('FAPIA-RS-02 refuses a DPoP-bound token, sent as Bearer or with a valid DPoP proof', async () => {
    const token = await as.mint({ scope: 'accounts', jkt: dpopKey.jkt });
    const asBearer = await get(token, {}, null);
    expect(asBearer.status).toBe(401);
    expect(asBearer.json).toEqual({
      error: 'invalid_token',
      error_description: "The access token's sender constraint is not accepted for this client",
    });
    const proof = await dpopKey.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token });
    const withProof = await send(`${app.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
    // No profile of this API accepts DPoP: the scheme is unknown here, like Basic (RFC 6750 §3.1).
    expect(withProof.status).toBe(401);
    expect(withProof.headers['www-authenticate']).toBe(REALM);
    expect(withProof.headers['www-authenticate']).not.toMatch(/DPoP/);
  });

  it('FAPIA-RS-03 accepts PS256 and ES256 tokens, refuses EdDSA and RS256 ones', async () => {
    expect((await get(await mint({ alg: 'PS256' }))).status).toBe(200);
    expect((await get(await mint({ alg: 'ES256' }))).status).toBe(200);
    for (const alg of ['EdDSA', 'RS256'] as const) {
      const res = await get(await mint({ alg }));
      expect(res.status).toBe(401);
      expect(res.json).toEqual({ error: 'invalid_token', error_description: 'The access token algorithm is not allowed' });
    }
  });

  it('FAPIA-RS-04 never takes a token from the query', async () => {
    const token = await mint();
    const alone = await send(`${app.url}/accounts?access_token=${token}`, { headers: { 'client-cert': clientCertHeader(client.der) } });
    expect(alone.status).toBe(401);
    expect(alone.headers['www-authenticate']).toBe(REALM);
    const beside = await get(token, {}, client, `/accounts?access_token=${token}`);
    expect(beside.status).toBe(400);
  });

  it('FAPIA-RS-05 XFAPI-01 echoes x-fapi-interaction-id, or sends a new UUID, on success and refusal', async () => {
    const id = 'c770aef3-6784-41f7-8e0e-ff5f97bddb3a';
    const token = await mint();
    expect((await get(token, { 'x-fapi-interaction-id': id })).headers['x-fapi-interaction-id']).toBe(id);
    expect((await get(token)).headers['x-fapi-interaction-id']).toMatch(UUID);
    const refused = await get(token, { 'x-fapi-interaction-id': id }, other);
    expect(refused.status).toBe(401);
    expect(refused.headers['x-fapi-interaction-id']).toBe(id);
    expect(decisions.at(-1)).toMatchObject({ outcome: 'deny', interactionId: id });
  });

  it('FAPIA-RS-06 XFAPI-03 never refuses a valid IPv4 or IPv6 customer address, and hands it to the handler', async () => {
    const token = await mint();
    for (const address of ['198.51.100.119', '2001:DB8::1893:25c8:1946', '::ffff:198.51.100.7', '::1', 'fe80::1%eth0', '0.0.0.0']) {
      const res = await get(token, { 'x-fapi-customer-ip-address': address });
      expect([address, res.status]).toEqual([address, 200]);
      expect(res.json.fapiCustomer).toEqual({ customerIpAddress: address });
    }
    // Optional whitespace around a field value is not part of it (RFC 9110 §5.5).
    const spaced = await get(token, { 'x-fapi-customer-ip-address': ' 198.51.100.7\t' });
    expect(spaced.json.fapiCustomer).toEqual({ customerIpAddress: '198.51.100.7' });
  });

  it('FAPIA-RS-07 hands x-fapi-auth-date to the handler, read in each HTTP-date format', async () => {
    const token = await mint();
    for (const value of ['Tue, 11 Sep 2012 19:43:31 GMT', 'Tuesday, 11-Sep-12 19:43:31 GMT', 'Tue Sep 11 19:43:31 2012']) {
      const res = await get(token, { 'x-fapi-auth-date': value });
      expect([value, res.status]).toEqual([value, 200]);
      expect(res.json.fapiCustomer).toEqual({ authDate: '2012-09-11T19:43:31.000Z' });
    }
    const both = await get(token, { 'x-fapi-auth-date': 'Sun, 06 Nov 1994 08:49:37 GMT', 'x-fapi-customer-ip-address': '203.0.113.9' });
    expect(both.json.fapiCustomer).toEqual({ authDate: '1994-11-06T08:49:37.000Z', customerIpAddress: '203.0.113.9' });
  });

  it('DEC-14 refuses malformed or repeated customer headers with 400 invalid_request', async () => {
    const token = await mint();
    const cases: Record<string, string | string[]>[] = [
      { 'x-fapi-customer-ip-address': '198.51.100.7:443' },
      { 'x-fapi-customer-ip-address': '010.1.1.1' },
      { 'x-fapi-customer-ip-address': '[2001:db8::1]' },
      { 'x-fapi-customer-ip-address': '198.51.100.7, 203.0.113.9' },
      { 'x-fapi-customer-ip-address': ['198.51.100.7', '203.0.113.9'] },
      { 'x-fapi-customer-ip-address': '' },
      { 'x-fapi-auth-date': 'Tue, 11 Sep 2012 19:43:31 UTC' },
      { 'x-fapi-auth-date': 'Wed, 11 Sep 2012 19:43:31 GMT' },
      { 'x-fapi-auth-date': 'Thu, 31 Apr 2014 10:00:00 GMT' },
      { 'x-fapi-auth-date': 'tue, 11 sep 2012 19:43:31 gmt' },
      { 'x-fapi-auth-date': '1347392611' },
      { 'x-fapi-auth-date': new Date(Date.now() + 3_600_000).toUTCString() },
      { 'x-fapi-auth-date': ['Tue, 11 Sep 2012 19:43:31 GMT', 'Tue, 11 Sep 2012 19:43:31 GMT'] },
    ];
    for (const headers of cases) {
      const res = await get(token, headers);
      expect([headers, res.status]).toEqual([headers, 400]);
      expect(res.headers['www-authenticate']).toBe(
        `${REALM}, error="invalid_request", error_description="An x-fapi-auth-date or x-fapi-customer-ip-address header is malformed"`,
      );
      expect(res.headers['x-fapi-interaction-id']).toMatch(UUID);
    }
  });

  it('FAPIA-RS-08 refuses a token without the at+jwt type, and an opaque token, unless configured', async () => {
    const legacy = await mint({ fault: 'wrong-typ' });
    const res = await get(legacy);
    expect(res.status).toBe(401);
    expect(res.json).toEqual({ error: 'invalid_token', error_description: 'The token is not an access token' });
    expect((await get(await mint({ fault: 'no-typ' }))).status).toBe(401);
    const opaque = await get('2YotnFZFEjr1zCsicMWpAA');
    expect(opaque.status).toBe(401);
    expect(opaque.headers['www-authenticate']).toMatch(/error="invalid_token"/);
  });
});

describe.each(FRAMEWORKS)('fapi1-advanced with pre-RFC 9068 tokens configured, on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, fapi1({ compat: { acceptJwtTyp: true } }));
  });
  afterAll(() => app.close());

  it('FAPIA-RS-08 accepts typ JWT only because compat.acceptJwtTyp says so; a missing typ stays refused', async () => {
    const headers = (token: string) => ({ authorization: `Bearer ${token}`, 'client-cert': clientCertHeader(client.der) });
    const legacy = await as.mint({ scope: 'accounts', x5t: client.x5t, fault: 'wrong-typ' });
    expect((await send(`${app.url}/accounts`, { headers: headers(legacy) })).status).toBe(200);
    const untyped = await as.mint({ scope: 'accounts', x5t: client.x5t, fault: 'no-typ' });
    expect((await send(`${app.url}/accounts`, { headers: headers(untyped) })).status).toBe(401);
  });
});

describe.each(FRAMEWORKS)('the customer headers under fapi2, on %s', (framework) => {
  let app: StartedApp;
  beforeAll(async () => {
    app = await startApp(framework, { issuer: as.issuer, audience: AUDIENCE });
  });
  afterAll(() => app.close());

  it('XFAPI-03 DEC-14 are handed over when well formed and never refused under fapi2', async () => {
    const call = async (headers: Record<string, string>) => {
      const token = await as.mint({ scope: 'accounts', jkt: dpopKey.jkt });
      const proof = await dpopKey.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token });
      return send(`${app.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof, ...headers } });
    };
    const good = await call({ 'x-fapi-customer-ip-address': '2001:db8::7', 'x-fapi-auth-date': 'Tue, 11 Sep 2012 19:43:31 GMT' });
    expect(good.status).toBe(200);
    expect(good.json).toMatchObject({
      profile: 'fapi2',
      fapiCustomer: { customerIpAddress: '2001:db8::7', authDate: '2012-09-11T19:43:31.000Z' },
    });
    const bad = await call({ 'x-fapi-customer-ip-address': 'not an address', 'x-fapi-auth-date': 'yesterday' });
    expect(bad.status).toBe(200);
    expect(bad.json.fapiCustomer).toEqual({});
  });
});

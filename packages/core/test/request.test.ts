import { headersFromRaw, OriginResolver, readCredentials } from '@fapi-guard/core';

const conn = (raw: string[], extra: Partial<{ encrypted: boolean; remoteAddress: string; path: string }> = {}) => ({
  encrypted: false,
  remoteAddress: '127.0.0.1',
  path: '/accounts?x=1',
  headers: headersFromRaw(raw),
  ...extra,
});

describe('request URL', () => {
  it('15.6 Host-chosen origin: refuses to be built without a configured origin', () => {
    expect(() => new OriginResolver({})).toThrow(/publicUrl is required/);
    expect(() => new OriginResolver({ publicUrl: [] })).toThrow(/publicUrl is required/);
  });

  it('HMS-07 ignores X-Forwarded-Host from peers that are not trusted proxies', () => {
    const r = new OriginResolver({ publicUrl: ['https://a.example', 'https://b.example'], trustedProxies: ['10.0.0.0/8'] });
    const raw = ['Host', 'a.example', 'X-Forwarded-Host', 'b.example', 'X-Forwarded-Proto', 'https'];
    expect(r.resolve(conn(raw))).toEqual({ ok: true, url: 'https://a.example/accounts?x=1' });
    expect(r.resolve(conn(raw, { remoteAddress: '::ffff:10.1.2.3' }))).toEqual({ ok: true, url: 'https://b.example/accounts?x=1' });
  });

  it('15.6 Host-chosen origin: a trusted proxy only selects among the configured origins', () => {
    const r = new OriginResolver({ publicUrl: ['https://a.example', 'https://b.example'], trustedProxies: ['10.0.0.0/8'] });
    const raw = ['Host', 'a.example', 'X-Forwarded-Host', 'evil.example', 'X-Forwarded-Proto', 'http'];
    expect(r.resolve(conn(raw, { remoteAddress: '10.0.0.1' }))).toEqual({
      ok: false,
      detail: 'host evil.example is not a configured origin',
    });
    // One origin: forwarding headers cannot move the URL anywhere else.
    const one = new OriginResolver({ publicUrl: 'https://a.example', trustedProxies: ['10.0.0.0/8'] });
    expect(one.resolve(conn(raw, { remoteAddress: '10.0.0.1' }))).toEqual({ ok: true, url: 'https://a.example/accounts?x=1' });
  });

  it('HMS-07 uses the configured public origin whatever Host says', () => {
    const r = new OriginResolver({ publicUrl: 'https://api.bank.example' });
    expect(r.resolve(conn(['Host', 'internal:3000']))).toEqual({ ok: true, url: 'https://api.bank.example/accounts?x=1' });
  });

  it('with several public origins, refuses a Host that is none of them', () => {
    const r = new OriginResolver({ publicUrl: ['https://a.example', 'https://b.example'] });
    expect(r.resolve(conn(['Host', 'b.example']))).toEqual({ ok: true, url: 'https://b.example/accounts?x=1' });
    expect(r.resolve(conn(['Host', 'B.EXAMPLE:443']))).toEqual({ ok: true, url: 'https://b.example/accounts?x=1' });
    expect(r.resolve(conn(['Host', 'b.example:444'])).ok).toBe(false);
    expect(r.resolve(conn(['Host', 'evil.example'])).ok).toBe(false);
    expect(r.resolve(conn(['Host', 'a.example', 'Host', 'b.example'])).ok).toBe(false);
  });

  it('with the same host under http and https, the scheme of the connection picks', () => {
    const r = new OriginResolver({ publicUrl: ['http://a.example', 'https://a.example'] });
    expect(r.resolve(conn(['Host', 'a.example']))).toEqual({ ok: true, url: 'http://a.example/accounts?x=1' });
    expect(r.resolve(conn(['Host', 'a.example'], { encrypted: true }))).toEqual({ ok: true, url: 'https://a.example/accounts?x=1' });
  });

  it('15.5 hostile Host: a host the URL parser refuses is a refusal, never an exception', () => {
    const r = new OriginResolver({ publicUrl: ['https://api.bank.example', 'https://b.example'] });
    for (const host of ['api.bank.example:99999', 'api.bank.example:65536', 'xn--a', '[1::2::3]', '[::1', '', ' ', 'a..b:']) {
      expect(r.resolve(conn(['Host', host]))).toMatchObject({ ok: false });
    }
    expect(r.resolve(conn(['Host', 'api.bank.example:443']))).toEqual({ ok: true, url: 'https://api.bank.example/accounts?x=1' });
  });
});

describe('credentials', () => {
  const req = (raw: string[], url = 'https://rs.example.com/accounts') => ({ method: 'GET', url, headers: headersFromRaw(raw) });

  it('DPOP-01 reads the DPoP scheme case-insensitively', () => {
    expect(readCredentials(req(['authorization', 'dpop abc.def.ghi']))).toEqual({ ok: true, scheme: 'DPoP', token: 'abc.def.ghi' });
    expect(readCredentials(req(['Authorization', 'DPoP  abc']))).toEqual({ ok: true, scheme: 'DPoP', token: 'abc' });
  });

  it('BEARER-02 accepts token68 with padding only at the end', () => {
    expect(readCredentials(req(['authorization', 'Bearer abc=='])).ok).toBe(true);
    expect(readCredentials(req(['authorization', 'Bearer ab=c']))).toMatchObject({ ok: false, reason: 'credentials_malformed' });
  });

  it('FAPI-RS-02 treats a query token as no credentials, and a query token plus a header as ambiguous', () => {
    expect(readCredentials(req([], 'https://rs.example.com/a?access_token=x'))).toMatchObject({ reason: 'token_in_query' });
    expect(readCredentials(req(['authorization', 'Bearer y'], 'https://rs.example.com/a?access_token=x'))).toMatchObject({
      reason: 'credentials_ambiguous',
      usedScheme: 'Bearer',
    });
  });
});

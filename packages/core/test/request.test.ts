import { headersFromRaw, OriginResolver, readCredentials } from '@fapi-guard/core';

const conn = (raw: string[], extra: Partial<{ encrypted: boolean; remoteAddress: string; path: string }> = {}) => ({
  encrypted: false,
  remoteAddress: '127.0.0.1',
  path: '/accounts?x=1',
  headers: headersFromRaw(raw),
  ...extra,
});

describe('request URL', () => {
  it('takes the scheme from the connection and the host from Host by default', () => {
    const r = new OriginResolver();
    expect(r.resolve(conn(['Host', 'rs.example.com:8443'], { encrypted: true }))).toEqual({
      ok: true,
      url: 'https://rs.example.com:8443/accounts?x=1',
    });
  });

  it('HMS-07 ignores X-Forwarded-* from peers that are not trusted proxies', () => {
    const r = new OriginResolver({ trustedProxies: ['10.0.0.0/8'] });
    const raw = ['Host', 'internal:3000', 'X-Forwarded-Host', 'evil.example', 'X-Forwarded-Proto', 'https'];
    expect(r.resolve(conn(raw))).toEqual({ ok: true, url: 'http://internal:3000/accounts?x=1' });
    expect(r.resolve(conn(raw, { remoteAddress: '::ffff:10.1.2.3' }))).toEqual({ ok: true, url: 'https://evil.example/accounts?x=1' });
  });

  it('HMS-07 uses the configured public origin whatever Host says', () => {
    const r = new OriginResolver({ publicUrl: 'https://api.bank.example' });
    expect(r.resolve(conn(['Host', 'internal:3000']))).toEqual({ ok: true, url: 'https://api.bank.example/accounts?x=1' });
  });

  it('with several public origins, refuses a Host that is none of them', () => {
    const r = new OriginResolver({ publicUrl: ['https://a.example', 'https://b.example'] });
    expect(r.resolve(conn(['Host', 'b.example']))).toEqual({ ok: true, url: 'https://b.example/accounts?x=1' });
    expect(r.resolve(conn(['Host', 'evil.example'])).ok).toBe(false);
    expect(r.resolve(conn(['Host', 'a.example', 'Host', 'b.example'])).ok).toBe(false);
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

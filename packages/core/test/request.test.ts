import { announcesBody, headersFromRaw, OriginResolver, readCredentials } from '@fapi-guard/core';

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

describe('request URL: each check on its own', () => {
  const two = new OriginResolver({
    publicUrl: ['http://a.example', 'https://a.example', 'https://b.example'],
    trustedProxies: ['10.0.0.0/8'],
  });
  const proxy = { remoteAddress: '10.0.0.1' };

  it('15.6 publicUrl must be an absolute http(s) origin', () => {
    expect(() => new OriginResolver({ publicUrl: 'a.example' })).toThrow('fapi-guard: publicUrl "a.example" is not an absolute URL');
    expect(() => new OriginResolver({ publicUrl: 'ftp://a.example' })).toThrow(
      'fapi-guard: publicUrl "ftp://a.example" must be an http(s) origin',
    );
    expect(() => new OriginResolver({ publicUrl: 'https://a.example/api' })).toThrow(/must be an origin without path, query or fragment/);
  });

  it('15.5 a target not in origin-form, several Host lines, several :authority lines, or a Host naming another entity than :authority is refused', () => {
    const r = new OriginResolver({ publicUrl: 'https://a.example' });
    expect(r.resolve(conn(['Host', 'a.example'], { path: 'http://a.example/x' }))).toEqual({
      ok: false,
      reason: 'request_target_form',
      detail: 'request target is not in origin-form',
    });
    expect(r.resolve(conn(['Host', 'a.example', 'Host', 'a.example']))).toEqual({ ok: false, detail: 'several Host headers' });
    const pseudo = [':authority', 'a.example', ':authority', 'a.example'];
    expect(r.resolve(conn(pseudo))).toEqual({ ok: false, detail: 'several :authority pseudo-headers' });
    expect(r.resolve(conn(['Host', 'b.example', ':authority', 'a.example']))).toEqual({ ok: false, detail: 'Host and :authority differ' });
    // The same entity written otherwise (case, default port) is the same.
    expect(r.resolve(conn(['Host', 'A.EXAMPLE:80', ':authority', 'a.example']))).toEqual({
      ok: true,
      url: 'https://a.example/accounts?x=1',
    });
    // Two values the URL parser refuses are compared as written.
    expect(r.resolve(conn(['Host', 'a.example:99999', ':authority', 'a.example:99999'])).ok).toBe(true);
    expect(r.resolve(conn(['Host', 'a.example:99999', ':authority', 'a.example:99998']))).toEqual({
      ok: false,
      detail: 'Host and :authority differ',
    });
  });

  it('15.5 a target in absolute-form or asterisk-form is refused whatever origin it names (routers read it otherwise than the guard)', () => {
    const r = new OriginResolver({ publicUrl: 'https://a.example' });
    const refused = { ok: false, reason: 'request_target_form', detail: 'request target is not in origin-form' };
    for (const path of ['https://a.example/x', 'https://a.example?/x', 'http://b.example/x', '*', 'a.example/x', ''])
      expect([path, r.resolve(conn(['Host', 'a.example'], { path }))]).toEqual([path, refused]);
    expect(two.resolve(conn(['Host', 'a.example'], { path: 'https://a.example/x' }))).toEqual(refused);
  });

  it('HMS-07 with several origins: Host trimmed, :authority when there is no Host, a missing or malformed host refused', () => {
    expect(two.resolve(conn(['Host', ' b.example ']))).toEqual({ ok: true, url: 'https://b.example/accounts?x=1' });
    expect(two.resolve(conn([':authority', ' b.example ']))).toEqual({ ok: true, url: 'https://b.example/accounts?x=1' });
    expect(two.resolve(conn([]))).toEqual({ ok: false, detail: 'missing or malformed Host' });
    expect(two.resolve(conn(['Host', 'b example']))).toEqual({ ok: false, detail: 'missing or malformed Host' });
  });

  it('HMS-07 a trusted proxy’s X-Forwarded-Proto picks the scheme (its last value, any case); without forwarding headers, Host and the connection decide', () => {
    expect(two.resolve(conn(['Host', 'a.example', 'X-Forwarded-Proto', 'https'], proxy))).toEqual({
      ok: true,
      url: 'https://a.example/accounts?x=1',
    });
    expect(two.resolve(conn(['Host', 'a.example', 'X-Forwarded-Proto', 'http, HTTPS'], proxy))).toEqual({
      ok: true,
      url: 'https://a.example/accounts?x=1',
    });
    expect(
      two.resolve(conn(['Host', 'a.example', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Proto', ' http '], { ...proxy, encrypted: true })),
    ).toEqual({
      ok: true,
      url: 'http://a.example/accounts?x=1',
    });
    // Another value, or no value, leaves the connection's scheme.
    expect(two.resolve(conn(['Host', 'a.example', 'X-Forwarded-Proto', 'wss'], { ...proxy, encrypted: true }))).toEqual({
      ok: true,
      url: 'https://a.example/accounts?x=1',
    });
    expect(two.resolve(conn(['Host', 'a.example', 'X-Forwarded-Proto', ''], { ...proxy, encrypted: true }))).toEqual({
      ok: true,
      url: 'https://a.example/accounts?x=1',
    });
    expect(two.resolve(conn(['Host', 'a.example'], proxy))).toEqual({ ok: true, url: 'http://a.example/accounts?x=1' });
    // The same header from a peer that is no trusted proxy is not believed.
    expect(two.resolve(conn(['Host', 'a.example', 'X-Forwarded-Proto', 'https']))).toEqual({
      ok: true,
      url: 'http://a.example/accounts?x=1',
    });
    // X-Forwarded-Host: the last value, any case; an empty one leaves Host.
    expect(two.resolve(conn(['Host', 'a.example', 'X-Forwarded-Host', 'a.example, B.EXAMPLE'], proxy))).toEqual({
      ok: true,
      url: 'https://b.example/accounts?x=1',
    });
    expect(two.resolve(conn(['Host', 'b.example', 'X-Forwarded-Host', ''], proxy))).toEqual({
      ok: true,
      url: 'https://b.example/accounts?x=1',
    });
  });
});

describe('header lines and content', () => {
  it('15.5 a name without a value at the end of rawHeaders is no header', () => {
    const headers = headersFromRaw(['Host', 'a.example', 'X-Dangling']);
    expect(Object.keys(headers)).toEqual(['host']);
  });

  it('RFC 9112 §6.3: content is announced by Transfer-Encoding or a Content-Length above 0; on HTTP/2 also by no Content-Length', () => {
    const announces = (raw: string[]) => announcesBody(headersFromRaw(raw));
    expect(announces(['Transfer-Encoding', 'chunked'])).toBe(true);
    expect(announces(['Content-Length', '5'])).toBe(true);
    expect(announces(['Content-Length', '0'])).toBe(false);
    expect(announces(['Content-Length', ' 0 '])).toBe(false);
    expect(announces([])).toBe(false);
    expect(announces([':method', 'POST'])).toBe(true);
    expect(announces([':method', 'POST', 'Content-Length', '0'])).toBe(false);
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

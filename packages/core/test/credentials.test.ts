/**
 * Where the access token comes from (FAPI 2.0 §5.3.4 #1–2; RFC 6750 §2.1–2.3; RFC 9449 §7.1),
 * in-process (issue 20): each refusal on both sides of its edge.
 */
import { type GuardRequest, readCredentials } from '@fapi-guard/core';

const request = (headers: Record<string, string[]>, extra: Partial<GuardRequest> = {}): GuardRequest => ({
  method: 'GET',
  url: 'https://api.example/accounts',
  headers,
  ...extra,
});
const auth = (...lines: string[]) => request({ authorization: lines });
const form = { 'content-type': ['application/x-www-form-urlencoded; charset=utf-8'] };

describe('readCredentials', () => {
  it('FAPI-RS-01 BEARER-01 reads Bearer and DPoP case-insensitively, one token68 after one or more spaces', () => {
    expect(readCredentials(auth('Bearer abc.def-_~+/=='))).toEqual({ ok: true, scheme: 'Bearer', token: 'abc.def-_~+/==' });
    expect(readCredentials(auth('bEARER   abc  '))).toEqual({ ok: true, scheme: 'Bearer', token: 'abc' });
    expect(readCredentials(auth('dpop abc'))).toEqual({ ok: true, scheme: 'DPoP', token: 'abc' });
    expect(readCredentials(auth('  DPoP abc'))).toEqual({ ok: true, scheme: 'DPoP', token: 'abc' });
  });

  it('BEARER-02 a scheme without one token68 is malformed, for the scheme used', () => {
    for (const line of ['Bearer', 'Bearer a b', 'Bearer a,b', 'Bearer =abc', 'Bearer a=b', 'DPoP tok"en']) {
      const result = readCredentials(auth(line));
      expect(result).toMatchObject({ ok: false, reason: 'credentials_malformed' });
      expect(result).toHaveProperty('usedScheme', line.startsWith('DPoP') ? 'DPoP' : 'Bearer');
    }
  });

  it('BEARER-02 surrounding spaces do not hide the scheme of malformed credentials', () => {
    expect(readCredentials(auth('  Bearer a b  '))).toMatchObject({ ok: false, reason: 'credentials_malformed', usedScheme: 'Bearer' });
  });

  it('BEARER-05 another scheme is no credentials at all', () => {
    for (const line of ['Bearer\tabc', 'Basic dXNlcjpwYXNz', 'Negotiate abc', 'Bearerx abc', 'xBearer abc', '', 'Bearer-Token abc']) {
      expect(readCredentials(auth(line))).toMatchObject({ ok: false, reason: 'credentials_missing' });
      expect(readCredentials(auth(line))).not.toHaveProperty('usedScheme');
    }
    expect(readCredentials(request({}))).toEqual({ ok: false, reason: 'credentials_missing', detail: 'no Authorization header' });
    // Proxy-Authorization is never read (RFC 9449 §7.1).
    expect(readCredentials(request({ 'proxy-authorization': ['DPoP abc'] }))).toMatchObject({ reason: 'credentials_missing' });
  });

  it('BEARER-02 two Authorization lines are ambiguous', () => {
    expect(readCredentials(auth('DPoP a', 'DPoP a'))).toMatchObject({ ok: false, reason: 'credentials_ambiguous' });
  });

  it('FAPI-RS-02 BEARER-02 a token in the query or a form body is refused, alone or beside the header', () => {
    const query = { url: 'https://api.example/accounts?x=1&access_token=abc' };
    expect(readCredentials(request({}, query))).toMatchObject({ ok: false, reason: 'token_in_query' });
    // No query at all: an access_token after & in the path is no query parameter.
    expect(readCredentials(request({}, { url: 'https://api.example/a&access_token=1' }))).toMatchObject({
      ok: false,
      reason: 'credentials_missing',
    });
    expect(readCredentials(request({ authorization: ['Bearer abc'] }, query))).toMatchObject({
      reason: 'credentials_ambiguous',
      usedScheme: 'Bearer',
      detail: 'Authorization header and access_token in the query',
    });
    expect(readCredentials(request({}, { url: 'https://api.example/accounts?access_token' }))).toMatchObject({ reason: 'token_in_query' });
    expect(readCredentials(request({}, { url: 'https://api.example/accounts?xaccess_token=1' }))).toMatchObject({
      reason: 'credentials_missing',
    });
    expect(readCredentials(request({}, { url: 'https://api.example/access_token' }))).toMatchObject({ reason: 'credentials_missing' });
    for (const body of ['a=1&access_token=abc', new URLSearchParams({ access_token: 'abc' }), { access_token: 'abc' }]) {
      expect(readCredentials(request(form, { body }))).toMatchObject({ ok: false, reason: 'token_in_body' });
      expect(readCredentials(request({ ...form, authorization: ['DPoP abc'] }, { body }))).toMatchObject({
        reason: 'credentials_ambiguous',
        usedScheme: 'DPoP',
        detail: 'Authorization header and access_token in the body',
      });
    }
    // Only form-encoded content counts (RFC 6750 §2.2), and only an own access_token member.
    const json = { 'content-type': ['application/json'] };
    expect(readCredentials(request(json, { body: { access_token: 'abc' } }))).toMatchObject({ reason: 'credentials_missing' });
    expect(readCredentials(request(form, { body: Object.create({ access_token: 'abc' }) }))).toMatchObject({
      reason: 'credentials_missing',
    });
    expect(readCredentials(request(form, { body: 'a=1&xaccess_token=2' }))).toMatchObject({ reason: 'credentials_missing' });
    expect(readCredentials(request(form, { body: null }))).toMatchObject({ reason: 'credentials_missing' });
    expect(readCredentials(request(form))).toMatchObject({ ok: false, reason: 'credentials_missing' });
    expect(readCredentials(request(form, { body: 5 }))).toMatchObject({ reason: 'credentials_missing' });
    // A body parsed as something else under a form content type (a JSON array) is no form: no token, no throw.
    expect(readCredentials(request(form, { body: [1, 2] }))).toMatchObject({ reason: 'credentials_missing' });
    // The bytes as received, from a raw body parser, are read as the form they are.
    for (const body of [Buffer.from('a=1&access_token=abc'), new TextEncoder().encode('access_token=abc')]) {
      expect(readCredentials(request(form, { body }))).toMatchObject({ reason: 'token_in_body' });
    }
    expect(readCredentials(request(form, { body: Buffer.from('a=1&access_tokens=abc') }))).toMatchObject({ reason: 'credentials_missing' });
    expect(readCredentials(request({ 'content-type': [] }, { body: 'access_token=1' }))).toMatchObject({ reason: 'credentials_missing' });
    expect(readCredentials(request({ 'content-type': ['APPLICATION/X-WWW-FORM-URLENCODED'] }, { body: 'access_token=1' }))).toMatchObject({
      reason: 'token_in_body',
    });
    // An unsupported scheme beside a query token is still ambiguous, without a scheme to name.
    expect(readCredentials(request({ authorization: ['Basic abc'] }, query))).toMatchObject({
      reason: 'credentials_ambiguous',
      usedScheme: undefined,
    });
  });

  it('each refusal says what was wrong, for the operator (detail)', () => {
    const detail = (r: GuardRequest) => (readCredentials(r) as { detail: string }).detail;
    expect(detail(auth('DPoP a', 'DPoP b', 'DPoP c'))).toBe('3 Authorization headers');
    expect(detail(request({}, { url: 'https://api.example/a?access_token=1' }))).toBe('access_token in the query is never accepted');
    expect(detail(request(form, { body: 'access_token=1' }))).toBe('access_token in the body is never accepted');
    expect(detail(auth('Basic abc'))).toBe('unsupported authentication scheme');
    expect(detail(auth('DPoP a b'))).toBe('DPoP credentials are not one token68');
    expect(detail(auth('Bearer'))).toBe('Bearer credentials are not one token68');
  });
});

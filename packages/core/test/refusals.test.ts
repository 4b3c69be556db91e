/**
 * Refusal bodies in the team's format and refusals pinned on a Node response (issue 25 §3), unit
 * level; over HTTP on every adapter in test/parity.test.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  checkRefusalOptions,
  errorResponse,
  GuardError,
  pinRefusal,
  problemDetails,
  refusalBody,
  takeRefusalOptions,
} from '@fapi-guard/core';

const expired = new GuardError('token_expired', 'exp 1', {
  'www-authenticate': 'DPoP algs="ES256", error="invalid_token"',
  'cache-control': 'no-store',
});
const down = new GuardError('issuer_unavailable', 'down', { 'retry-after': '3' });

describe('refusal bodies', () => {
  it('RFC 9457 problem details: about:blank with the status phrase as title, the OAuth error as an extension member', () => {
    expect(problemDetails(expired)).toEqual({
      type: 'about:blank',
      title: 'Unauthorized',
      status: 401,
      detail: 'The access token has expired',
      error: 'invalid_token',
    });
    expect(problemDetails(down)).toMatchObject({ title: 'Service Unavailable', status: 503, error: 'temporarily_unavailable' });
    expect(refusalBody(expired, 'problem').contentType).toBe('application/problem+json; charset=utf-8');
  });

  it('the default and "oauth" bodies are the RFC 6750 JSON; status and headers never depend on the format', () => {
    const oauth = errorResponse(expired);
    expect(oauth.body).toBe('{"error":"invalid_token","error_description":"The access token has expired"}');
    expect(errorResponse(expired, 'oauth')).toEqual(oauth);
    const custom = errorResponse(expired, (refusal) => ({ Code: String(refusal.status), Errors: [{ ErrorCode: refusal.error }] }));
    expect(custom).toEqual({ ...oauth, body: '{"Code":"401","Errors":[{"ErrorCode":"invalid_token"}]}' });
  });

  it('a formatter that throws or returns nothing JSON can carry gets the OAuth body, never a 500', () => {
    const oauth = errorResponse(expired);
    expect(
      errorResponse(expired, () => {
        throw new Error('formatter bug');
      }),
    ).toEqual(oauth);
    expect(errorResponse(expired, () => undefined)).toEqual(oauth);
  });

  it('15.1 typo fails open: an unknown errors or errorBody value stops start-up', () => {
    expect(() => checkRefusalOptions('x', { errors: 'next' as never })).toThrow(
      "fapi-guard: x option errors must be 'respond' or 'framework'",
    );
    expect(() => checkRefusalOptions('x', { errorBody: 'problem+json' as never })).toThrow(
      "fapi-guard: x option errorBody must be 'oauth', 'problem' or a function",
    );
    expect(takeRefusalOptions({ issuer: 'i', errors: 'framework' as const }, 'x')).toEqual({
      refusals: { errors: 'framework' },
      rest: { issuer: 'i' },
    });
  });
});

describe('pinRefusal', () => {
  let server: Server;
  let url: string;
  /** What the "error handler" does after the refusal was pinned. */
  let handler: (res: import('node:http').ServerResponse) => void;

  beforeAll(async () => {
    server = createServer((_req, res) => {
      pinRefusal(res, expired);
      handler(res);
    }).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('BEARER-03 an implicit head with another status and without the challenge goes out with the refusal’s', async () => {
    handler = (res) => {
      res.statusCode = 200;
      res.removeHeader('www-authenticate');
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    };
    const res = await fetch(url);
    expect(res.status).toBe(401);
    expect(res.statusText).toBe('Unauthorized');
    expect(res.headers.get('www-authenticate')).toBe(expired.headers['www-authenticate']);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.text()).toBe('{"ok":true}');
  });

  it('BEARER-03 an explicit writeHead(200, headers) that overrides the challenge does not change it', async () => {
    handler = (res) => {
      res.writeHead(200, 'OK', { 'www-authenticate': 'Basic', 'x-team': 'kept', 'content-type': 'text/plain' }).end('fine');
    };
    const res = await fetch(url);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(expired.headers['www-authenticate']);
    expect(res.headers.get('x-team')).toBe('kept');
  });

  it('BEARER-03 headers given to writeHead as a flat list of pairs: the pinned names dropped, the others kept', async () => {
    handler = (res) => {
      res.writeHead(200, ['WWW-Authenticate', 'Basic', 'x-team', 'kept']).end();
    };
    const res = await fetch(url);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(expired.headers['www-authenticate']);
    expect(res.headers.get('x-team')).toBe('kept');
  });
});

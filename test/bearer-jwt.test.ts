/**
 * RFC 6750 credentials and errors, RFC 9068 JWT access tokens and the RFC 8725 rules, through
 * real HTTP against an Express app on 127.0.0.1 with tokens from MockIssuer.
 */
import { MockIssuer } from '@fapi-guard/testing';
import { type RunningApp, startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let otherAs: MockIssuer;
let api: RunningApp;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  otherAs = await MockIssuer.start({ audience: AUDIENCE });
  api = await startExpressApp({ issuers: [as.issuer, otherAs.issuer], audience: AUDIENCE });
});
afterAll(async () => {
  await api.close();
  await as.stop();
  await otherAs.stop();
});

const get = (headers: Record<string, string | string[]> = {}, path = '/accounts') => send(`${api.url}${path}`, { headers });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function expectInvalidToken(res: { status: number; headers: Record<string, unknown>; json: Record<string, unknown> }, reason?: string) {
  if (reason) expect(api.decisions.at(-1)?.reason).toBe(reason);
  expect(res.status).toBe(401);
  expect(res.headers['www-authenticate']).toContain('Bearer realm="https://rs.example.com", error="invalid_token"');
  expect(res.json.error).toBe('invalid_token');
}

describe('RFC 6750 credentials', () => {
  it('BEARER-01 accepts the Bearer scheme case-insensitively', async () => {
    const token = await as.mint({ scope: 'accounts' });
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const res = await get({ authorization: `${scheme} ${token}` });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ clientId: 'client-1', scopes: ['accounts'], binding: { type: 'bearer' } });
    }
  });

  it('BEARER-02 refuses broken credentials with 400 invalid_request', async () => {
    for (const value of ['Bearer', 'Bearer ', 'Bearer a b', 'Bearer a,b', 'Bearer "abc"']) {
      const res = await get({ authorization: value });
      expect(res.status).toBe(400);
      expect(res.headers['www-authenticate']).toContain('error="invalid_request"');
      expect(res.json.error).toBe('invalid_request');
    }
  });

  it('BEARER-02 DEC-10 refuses two Authorization headers with 400 invalid_request', async () => {
    const token = await as.mint({ scope: 'accounts' });
    const res = await get({ authorization: [`Bearer ${token}`, `Bearer ${token}`] });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_request');
  });

  it('BEARER-03 BEARER-05 answers a request without credentials with a realm and no error', async () => {
    const res = await get();
    expect(res.status).toBe(401);
    const challenge = res.headers['www-authenticate'] as string;
    expect(challenge).toContain('Bearer realm="https://rs.example.com"');
    expect(challenge).not.toContain('error=');
    expect(res.json.error).toBeUndefined();
  });

  it('BEARER-05 treats another scheme as no credentials (no error information)', async () => {
    const res = await get({ authorization: 'Basic dXNlcjpwYXNz' });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).not.toContain('error=');
  });

  it('BEARER-05 BEARER-06 maps failures to 400 / 401 / 403 with the error code', async () => {
    const wrongScope = await as.mint({ scope: 'payments' });
    expect((await get({ authorization: 'Bearer' })).status).toBe(400);
    expect((await get(bearer('abc.def.ghi'))).status).toBe(401);
    const forbidden = await get(bearer(wrongScope));
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers['www-authenticate']).toContain('error="insufficient_scope"');
  });

  it('FAPI-RS-02 never takes a token from the query', async () => {
    const token = await as.mint({ scope: 'accounts' });
    const only = await get({}, `/accounts?access_token=${token}`);
    expect(only.status).toBe(401);
    expect(only.headers['www-authenticate']).not.toContain('error=');
    const both = await get(bearer(token), `/accounts?access_token=${token}`);
    expect(both.status).toBe(400);
    expect(both.json.error).toBe('invalid_request');
  });

  it('FAPI-RS-03 never takes a token from a form body', async () => {
    const token = await as.mint({ scope: 'accounts' });
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const only = await send(`${api.url}/accounts`, { method: 'POST', headers: form, body: `access_token=${token}` });
    expect(only.status).toBe(401);
    expect(only.headers['www-authenticate']).not.toContain('error=');
    const both = await send(`${api.url}/accounts`, {
      method: 'POST',
      headers: { ...form, ...bearer(token) },
      body: `access_token=${token}`,
    });
    expect(both.status).toBe(400);
  });

  it('DPOP-24 never reads Proxy-Authorization', async () => {
    const token = await as.mint({ scope: 'accounts' });
    const res = await get({ 'proxy-authorization': `Bearer ${token}` });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).not.toContain('error=');
  });
});

describe('RFC 9068 JWT access tokens', () => {
  it('JWTAT-01 JWTBCP-09 accepts at+jwt in any case and with application/, refuses other typ', async () => {
    for (const typ of ['at+jwt', 'at+JWT', 'application/at+jwt', 'Application/AT+JWT']) {
      const token = await as.mint({ scope: 'accounts', header: { typ } });
      expect((await get(bearer(token))).status).toBe(200);
    }
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'wrong-typ' }))), 'token_type');
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'no-typ' }))));
  });

  it('JWTAT-03 compares iss exactly (a trailing slash is another issuer)', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', claims: { iss: `${as.issuer}/` } }))), 'token_issuer');
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'wrong-issuer' }))));
  });

  it('JWTAT-04 AUD-01 JWTBCP-07 refuses a token for another resource', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'wrong-audience' }))), 'token_audience');
    const many = await as.mint({ scope: 'accounts', audience: ['https://other.example.com', AUDIENCE] });
    expect((await get(bearer(many))).status).toBe(200);
  });

  it('JWTAT-05 refuses a token signed by a key the issuer does not publish', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'unknown-key' }))), 'token_key_unknown');
  });

  it('JWTAT-06 FAPI-RS-05 refuses expired tokens, with a small leeway only', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'expired' }))), 'token_expired');
    const now = Math.floor(Date.now() / 1000);
    expect((await get(bearer(await as.mint({ scope: 'accounts', claims: { exp: now - 5 } })))).status).toBe(200);
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', claims: { exp: now - 11 } }))), 'token_expired');
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'not-yet-valid' }))), 'token_not_yet_valid');
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'issued-in-future' }))), 'token_issued_in_future');
  });

  it('JWTAT-07 answers every token failure with 401 invalid_token', async () => {
    const faults = ['expired', 'wrong-typ', 'wrong-issuer', 'wrong-audience', 'unknown-key', 'alg-none', 'bad-signature'] as const;
    for (const fault of faults) expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault }))));
  });

  it('JWTAT-09 refuses tokens that lack a required RFC 9068 claim', async () => {
    for (const claim of ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
      const token = await as.mint({ scope: 'accounts', claims: { [claim]: undefined } });
      expectInvalidToken(await get(bearer(token)), claim === 'iss' ? 'token_issuer' : 'token_claim_missing');
    }
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', claims: { client_id: 42 } }))), 'token_claim_invalid');
    expectInvalidToken(await get(bearer(await as.mint({ claims: { scope: ['accounts'] } }))));
  });

  it('FAPI-RS-04 JWTBCP-03 refuses a token with one altered signature byte', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'bad-signature' }))), 'token_signature');
  });

  it('FAPI-RS-07 JWTAT-08 answers 403 insufficient_scope with the scope the route needs', async () => {
    const res = await get(bearer(await as.mint({ scope: 'payments' })));
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toBe(
      'DPoP algs="ES256 PS256 EdDSA", Bearer realm="https://rs.example.com", error="insufficient_scope", ' +
        'error_description="The access token lacks the scope this resource requires", scope="accounts"',
    );
    expect(res.json).toEqual({ error: 'insufficient_scope', error_description: 'The access token lacks the scope this resource requires' });
  });
});

describe('RFC 8725 and FAPI 2.0 cryptography', () => {
  it('FAPI-RS-11 refuses RS256 even when signed by a trusted key', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', alg: 'RS256' }))), 'token_algorithm');
  });

  it('FAPI-RS-11 accepts PS256, ES256 and EdDSA', async () => {
    for (const alg of ['PS256', 'ES256', 'EdDSA'] as const) {
      expect((await get(bearer(await as.mint({ scope: 'accounts', alg })))).status).toBe(200);
    }
  });

  it('FAPI-RS-12 JWTBCP-02 refuses alg none', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'alg-none' }))), 'token_algorithm');
  });

  it('FAPI-RS-13 refuses a token signed with a 1024-bit RSA key, even a published one', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'weak-rsa-key' }))), 'token_key_unknown');
    expect(as.jwks.keys.some((k) => k.kid === 'weak-rsa-1024')).toBe(true);
  });

  it('FAPI-RS-14 chooses the key by kid and kty/use/alg when a kid is shared', async () => {
    // Same kid on an RSA encryption key, listed first: it must not be taken.
    const own = await MockIssuer.start({ audience: AUDIENCE });
    own.extraKeys = [{ ...own.publicJwk('PS256'), kid: own.publicJwk('ES256').kid, use: 'enc', alg: 'RSA-OAEP-256' }];
    const app = await startExpressApp({ issuer: own.issuer, audience: AUDIENCE });
    try {
      const res = await send(`${app.url}/accounts`, { headers: bearer(await own.mint({ scope: 'accounts', alg: 'ES256' })) });
      expect(res.status).toBe(200);
    } finally {
      await app.close();
      await own.stop();
    }
  });

  it('JWTBCP-01 refuses HS256 keyed with the issuer public key', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'hs256-public-key' }))), 'token_algorithm');
  });

  it('FAPI-RS-21 JWTBCP-06 verifies each token only with the keys of the issuer it names', async () => {
    // Signed by the other trusted issuer's key, claiming to come from this one.
    const token = await otherAs.mint({ scope: 'accounts', claims: { iss: as.issuer } });
    expectInvalidToken(await get(bearer(token)));
    // Each issuer's own tokens are accepted.
    expect((await get(bearer(await otherAs.mint({ scope: 'accounts' })))).status).toBe(200);
  });

  it('JWTBCP-08 never follows jku, x5u or an embedded jwk', async () => {
    const attacker = await MockIssuer.start({ audience: AUDIENCE });
    try {
      const headers = [{ jku: attacker.jwksUri }, { x5u: `${attacker.issuer}/cert.pem` }, { jwk: attacker.publicJwk('ES256') }];
      for (const header of headers) {
        const token = await attacker.mint({ scope: 'accounts', claims: { iss: as.issuer }, header });
        expectInvalidToken(await get(bearer(token)));
      }
      expect(attacker.requests).toEqual({ metadata: 0, jwks: 0, token: 0, introspect: 0, other: 0 });
    } finally {
      await attacker.stop();
    }
  });

  it('JWTBCP-10 FAPI-RS-10 never accepts a DPoP proof or an ID token as an access token', async () => {
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', fault: 'dpop-typ' }))), 'token_type');
    expectInvalidToken(await get(bearer(await as.mint({ scope: 'accounts', header: { typ: 'JWT' } }))), 'token_type');
  });

  it('INTRO-06 never puts the token in the decision log', async () => {
    const token = await as.mint({ scope: 'payments' });
    api.decisions.length = 0;
    await get(bearer(token));
    expect(api.decisions).toHaveLength(1);
    expect(JSON.stringify(api.decisions)).not.toContain(token.split('.')[2]);
    expect(api.decisions[0]).toMatchObject({ outcome: 'deny', reason: 'scope_insufficient', clientId: 'client-1' });
  });
});

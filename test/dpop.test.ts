/**
 * RFC 9449 DPoP at the resource server, through real HTTP against an Express app on 127.0.0.1,
 * with tokens from MockIssuer and proofs from DpopClient. The app's public origin is
 * https://rs.example.com (the fixture resource identifier), so proofs carry that `htu`.
 */
import { constants, createHash, generateKeyPairSync, type JsonWebKey, type KeyObject, randomUUID, sign } from 'node:crypto';
import { DpopClient, MockIssuer, type ProofOptions } from '@fapi-guard/testing';
import { type RunningApp, startExpressApp } from './support/express-app';
import { send } from './support/http';
import { rsaPublicJwk, rsaThumbprint } from './support/rsa';

const AUDIENCE = 'https://rs.example.com';
const HTU = 'https://rs.example.com/accounts';
const ALGS = 'DPoP algs="ES256 PS256 EdDSA"';
let as: MockIssuer;
let api: RunningApp;
let client: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await DpopClient.create('ES256');
  api = await startExpressApp(
    { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, dpop: { nonce: { secret: 'n'.repeat(32) } } },
    (app, fapi) => {
      const echo = (req: import('express').Request, res: import('express').Response) => {
        res.json({ binding: req.auth?.binding, clientId: req.auth?.clientId });
      };
      app.all('/accounts', fapi.protect({ scopes: ['accounts'] }), echo);
      app.get('/mixed', fapi.protect({ scopes: ['accounts'], allowBearer: true }), echo);
      app.get('/nonce', fapi.protect({ scopes: ['accounts'], dpopNonce: true }), echo);
      // Another route whose path, with `..` for :id, normalises to /accounts.
      app.get('/statements/:id/accounts', fapi.protect({ scopes: ['accounts'] }), echo);
    },
  );
});
afterAll(async () => {
  await api.close();
  await as.stop();
});

const dpopToken = (c: DpopClient = client, scope = 'accounts') => as.mint({ scope, jkt: c.jkt });
const lastReason = () => api.decisions.at(-1)?.reason;

/** Sends `GET /accounts` (or `path`) with `Authorization: DPoP token` and a proof made from `proof`. */
async function call(
  token: string,
  proof: Partial<ProofOptions> = {},
  { path = '/accounts', method = 'GET', c = client, headers = {} as Record<string, string | string[]> } = {},
) {
  const value = await c.proof({ htm: method, htu: `https://rs.example.com${path.split('?')[0]}`, accessToken: token, ...proof });
  return send(`${api.url}${path}`, { method, headers: { authorization: `DPoP ${token}`, dpop: value, ...headers } });
}

function expectDpopError(res: Awaited<ReturnType<typeof send>>, error: string) {
  expect(res.status).toBe(401);
  expect(res.headers['www-authenticate']).toMatch(new RegExp(`^DPoP algs="ES256 PS256 EdDSA", error="${error}"`));
  expect(res.json.error).toBe(error);
}

describe('DPoP-bound access tokens', () => {
  it('FAPI-RS-08 accepts a DPoP-bound token with a valid proof', async () => {
    const res = await call(await dpopToken());
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ binding: { type: 'dpop', jkt: client.jkt }, clientId: 'client-1' });
  });

  it('DPOP-01 reads the DPoP scheme and header name case-insensitively', async () => {
    const token = await dpopToken();
    const proof = await client.proof({ htm: 'GET', htu: HTU, accessToken: token });
    const res = await send(`${api.url}/accounts`, { headers: { authorization: `dpop ${token}`, DPOP: proof } });
    expect(res.status).toBe(200);
  });

  it('accepts PS256 and EdDSA proof keys', async () => {
    for (const alg of ['PS256', 'EdDSA'] as const) {
      const c = await DpopClient.create(alg);
      expect((await call(await dpopToken(c), {}, { c })).status).toBe(200);
    }
  });

  it('DPOP-02 DEC-01 refuses the DPoP scheme without a proof with invalid_dpop_proof', async () => {
    const res = await send(`${api.url}/accounts`, { headers: { authorization: `DPoP ${await dpopToken()}` } });
    expectDpopError(res, 'invalid_dpop_proof');
    expect(lastReason()).toBe('dpop_proof_missing');
  });

  it('DPOP-03 refuses two DPoP headers', async () => {
    const token = await dpopToken();
    const proofs = [
      await client.proof({ htm: 'GET', htu: HTU, accessToken: token }),
      await client.proof({ htm: 'GET', htu: HTU, accessToken: token }),
    ];
    expectDpopError(await send(`${api.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proofs } }), 'invalid_dpop_proof');
  });

  it('DPOP-04 refuses a proof that is not one compact JWS', async () => {
    const token = await dpopToken();
    for (const dpop of ['abc', 'a.b', 'a.b.c.d.e', `${await client.proof({ htm: 'GET', htu: HTU, accessToken: token })}, x.y.z`]) {
      expectDpopError(await send(`${api.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop } }), 'invalid_dpop_proof');
    }
  });

  it('DPOP-05 requires jti, htm, htu, iat and (at the resource server) ath', async () => {
    const token = await dpopToken();
    expectDpopError(await call(token, { fault: 'no-ath' }), 'invalid_dpop_proof');
    expectDpopError(await call(token, { fault: 'no-jti' }), 'invalid_dpop_proof');
    for (const claim of ['htm', 'htu', 'iat']) {
      expectDpopError(await call(token, { claims: { [claim]: undefined } }), 'invalid_dpop_proof');
    }
  });

  it('DPOP-06 JWTBCP-09 requires typ dpop+jwt', async () => {
    expectDpopError(await call(await dpopToken(), { fault: 'wrong-typ' }), 'invalid_dpop_proof');
  });

  it('DPOP-07 FAPI-RS-11 refuses HS256, none and RS256 proofs, and the challenge lists the algorithms', async () => {
    const token = await dpopToken();
    for (const fault of ['hs256', 'alg-none'] as const) expectDpopError(await call(token, { fault }), 'invalid_dpop_proof');
    const rsa = await DpopClient.create('RS256');
    expectDpopError(await call(await dpopToken(rsa), {}, { c: rsa }), 'invalid_dpop_proof');
  });

  it('DPOP-08 refuses a proof whose signature does not verify with its jwk', async () => {
    expectDpopError(await call(await dpopToken(), { fault: 'bad-signature' }), 'invalid_dpop_proof');
  });

  it('DPOP-09 refuses a proof whose jwk holds the private key', async () => {
    expectDpopError(await call(await dpopToken(), { fault: 'private-jwk' }), 'invalid_dpop_proof');
    expect(api.decisions.at(-1)?.detail).toContain('private');
  });

  it('DPOP-10 refuses a proof whose htm differs', async () => {
    expectDpopError(await call(await dpopToken(), { fault: 'wrong-htm' }), 'invalid_dpop_proof');
    expectDpopError(await call(await dpopToken(), { htm: 'get' }), 'invalid_dpop_proof');
  });

  it('DPOP-11 compares htu after normalisation, without query, against the public origin', async () => {
    const token = await dpopToken();
    expect((await call(token, { htu: 'HTTPS://RS.EXAMPLE.COM:443/accounts' })).status).toBe(200);
    expect((await call(token, {}, { path: '/accounts?page=2' })).status).toBe(200);
    expectDpopError(await call(token, { fault: 'wrong-htu' }), 'invalid_dpop_proof');
    // The address the server listens on is not what clients address.
    expectDpopError(await call(token, { htu: `${api.url}/accounts` }), 'invalid_dpop_proof');
  });

  it('DPOP-13 refuses a proof older than the window', async () => {
    expectDpopError(await call(await dpopToken(), { fault: 'old-iat' }), 'invalid_dpop_proof');
    expectDpopError(await call(await dpopToken(), { iat: Math.floor(Date.now() / 1000) - 75 }), 'invalid_dpop_proof');
  });

  it('FAPI-RS-19 accepts a proof up to 10 s in the future and refuses one 61 s ahead', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await call(await dpopToken(), { iat: now + 9 })).status).toBe(200);
    expectDpopError(await call(await dpopToken(), { iat: now + 61 }), 'invalid_dpop_proof');
  });

  it('DPOP-14 refuses a proof made for another access token', async () => {
    expectDpopError(await call(await dpopToken(), { fault: 'wrong-ath' }), 'invalid_dpop_proof');
  });

  it('DPOP-15 FAPI-RS-08 refuses a proof from another key with DPoP invalid_token', async () => {
    const other = await DpopClient.create('ES256');
    const res = await call(await dpopToken(), {}, { c: other });
    expectDpopError(res, 'invalid_token');
    expect(lastReason()).toBe('binding_mismatch');
  });

  it('DPOP-17 refuses a DPoP-bound token sent with Bearer (downgrade)', async () => {
    const res = await send(`${api.url}/mixed`, { headers: { authorization: `Bearer ${await dpopToken()}` } });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(
      `${ALGS}, Bearer realm="https://rs.example.com", error="invalid_token", error_description="A DPoP-bound access token must be sent with the DPoP scheme"`,
    );
  });

  it('DPOP-19 refuses an unbound token sent with the DPoP scheme and a valid proof', async () => {
    expectDpopError(await call(await as.mint({ scope: 'accounts' })), 'invalid_token');
    expect(lastReason()).toBe('binding_mismatch');
  });

  it('FAPI-RS-09 refuses an unbound token on a FAPI route', async () => {
    const res = await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${await as.mint({ scope: 'accounts' })}` } });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toContain('Bearer realm="https://rs.example.com", error="invalid_token"');
    expect(lastReason()).toBe('binding_missing');
  });

  it('DPOP-20 challenges a request without credentials with DPoP algs and no error', async () => {
    const res = await send(`${api.url}/accounts`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(ALGS);
  });

  it('DPOP-21 returns both challenges where both schemes are accepted, the error only on the one used', async () => {
    const none = await send(`${api.url}/mixed`);
    expect(none.headers['www-authenticate']).toBe(`${ALGS}, Bearer realm="https://rs.example.com"`);
    const invalid = await send(`${api.url}/mixed`, { headers: { authorization: 'Bearer INVALID_TOKEN' } });
    expect(invalid.status).toBe(401);
    expect(invalid.headers['www-authenticate']).toBe(
      `${ALGS}, Bearer realm="https://rs.example.com", error="invalid_token", error_description="The access token is malformed"`,
    );
    const token = await dpopToken();
    const both = await send(`${api.url}/mixed`, { headers: { authorization: [`Bearer ${token}`, `DPoP ${token}`] } });
    expect(both.status).toBe(400);
    expect((both.headers['www-authenticate'] as string).match(/error="invalid_request"/g)).toHaveLength(2);
  });

  it('DPOP-23 FAPI-RS-20 refuses a replayed proof, and a 10 kB jti', async () => {
    const token = await dpopToken();
    const proof = await client.proof({ htm: 'GET', htu: HTU, accessToken: token });
    const headers = { authorization: `DPoP ${token}`, dpop: proof };
    expect((await send(`${api.url}/accounts`, { headers })).status).toBe(200);
    expectDpopError(await send(`${api.url}/accounts`, { headers }), 'invalid_dpop_proof');
    expect(lastReason()).toBe('dpop_proof_replayed');
    // Same jti for another URI is another proof (the key covers htu and jti).
    expect((await call(token, { jti: 'shared-jti' })).status).toBe(200);
    expect((await call(token, { jti: 'shared-jti' }, { path: '/nonce' })).status).toBe(401);
    expectDpopError(await call(token, { fault: 'huge-jti' }), 'invalid_dpop_proof');
  });

  it('DPOP-24 never reads DPoP credentials from Proxy-Authorization', async () => {
    const token = await dpopToken();
    const proof = await client.proof({ htm: 'GET', htu: HTU, accessToken: token });
    const res = await send(`${api.url}/accounts`, { headers: { 'proxy-authorization': `DPoP ${token}`, dpop: proof } });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(ALGS);
  });

  it('DPOP-25 exposes WWW-Authenticate and DPoP-Nonce to browser clients', async () => {
    const res = await send(`${api.url}/accounts`);
    expect(res.headers['access-control-expose-headers']).toBe('WWW-Authenticate, DPoP-Nonce');
  });
});

describe('dot segments', () => {
  it('DPOP-11 a proof for GET /accounts does not pass on /statements/%2e%2e/accounts, which normalises to it but reaches another route', async () => {
    const token = await dpopToken();
    for (const target of ['/statements/%2e%2e/accounts', '/statements/%2E./accounts', '/statements/../accounts']) {
      const proof = await client.proof({ htm: 'GET', htu: HTU, accessToken: token });
      const res = await send(`${api.url}/`, { target, headers: { authorization: `DPoP ${token}`, dpop: proof } });
      expectDpopError(res, 'invalid_dpop_proof');
      expect(lastReason()).toBe('dpop_proof_invalid');
    }
    // The route itself, with a proof for its own path.
    expect((await call(token, {}, { path: '/statements/s-1/accounts' })).status).toBe(200);
  });
});

describe('15.7 costly proof keys', () => {
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = (token: string) => ({
    jti: randomUUID(),
    htm: 'GET',
    htu: HTU,
    iat: Math.floor(Date.now() / 1000),
    ath: createHash('sha256').update(token).digest('base64url'),
  });
  /** A PS256 proof with `jwk` in its header, signed with `privateKey` (or a garbage signature). */
  function rsaProof(token: string, jwk: JsonWebKey, privateKey?: KeyObject): string {
    const input = `${b64({ typ: 'dpop+jwt', alg: 'PS256', jwk })}.${b64(claims(token))}`;
    const signature = privateKey
      ? sign('sha256', Buffer.from(input), { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
      : Buffer.alloc(256, 3);
    return `${input}.${signature.toString('base64url')}`;
  }
  const accounts = (token: string, proof: string) =>
    send(`${api.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
  it('15.7 proof key bounds: RSA proof keys of 1024 and 2047 bits are refused, 2048 bits accepted', async () => {
    for (const bits of [1024, 2047, 2048]) {
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
      const jwk = publicKey.export({ format: 'jwk' });
      const token = await as.mint({ scope: 'accounts', jkt: rsaThumbprint(jwk) });
      const res = await accounts(token, rsaProof(token, jwk, privateKey));
      if (bits < 2048) {
        expectDpopError(res, 'invalid_dpop_proof');
        expect(api.decisions.at(-1)?.detail).toBe('jwk does not fit PS256');
      } else expect(res.status).toBe(200);
    }
  });

  it('15.7 proof key bounds: a 3071-bit public exponent and an 8193-bit modulus are refused before the signature is checked', async () => {
    for (const [jwk, detail] of [
      [rsaPublicJwk(3072, 2n ** 3070n + 1n), 'jwk: RSA public exponent of 3071 bits (odd, 3 to 2^32 - 1)'],
      [rsaPublicJwk(8193, 65537n), 'jwk: RSA modulus of 8193 bits (at most 8192)'],
    ] as const) {
      const token = await as.mint({ scope: 'accounts', jkt: rsaThumbprint(jwk) });
      expectDpopError(await accounts(token, rsaProof(token, jwk)), 'invalid_dpop_proof');
      expect(api.decisions.at(-1)?.detail).toBe(detail);
    }
  });

  it('15.7 binding before signature: a proof with a broken signature and another key than cnf.jkt gets the binding error', async () => {
    const token = await dpopToken();
    const jwk = rsaPublicJwk(3072, 65537n);
    // Were the signature checked first, this would be invalid_dpop_proof.
    expectDpopError(await accounts(token, rsaProof(token, jwk)), 'invalid_token');
    expect(api.decisions.at(-1)).toMatchObject({ reason: 'binding_mismatch', detail: 'proof key thumbprint differs from cnf.jkt' });
  });
});

describe('server nonces', () => {
  it('DPOP-12 DPOP-22 asks for a nonce, then accepts a proof that carries it', async () => {
    const token = await dpopToken();
    const first = await call(token, {}, { path: '/nonce' });
    expectDpopError(first, 'use_dpop_nonce');
    expect(first.headers['www-authenticate']).toContain('error_description="Resource server requires nonce in DPoP proof"');
    const nonce = first.headers['dpop-nonce'] as string;
    expect(nonce).toMatch(/^[\x21\x23-\x5B\x5D-\x7E]+$/);
    expect(first.headers['cache-control']).toBe('no-store');
    const second = await call(token, { nonce }, { path: '/nonce' });
    expect(second.status).toBe(200);
  });

  it('DPOP-12 refuses an unknown nonce with a new one', async () => {
    const res = await call(await dpopToken(), { nonce: 'x'.repeat(32) }, { path: '/nonce' });
    expectDpopError(res, 'use_dpop_nonce');
    expect(res.headers['dpop-nonce']).toBeDefined();
  });

  it('DPOP-22 sends exactly one DPoP-Nonce header, exposed to browsers, and never caches it', async () => {
    const res = await call(await dpopToken(), {}, { path: '/nonce' });
    const lines = res.rawHeaders.filter((_v, i) => i % 2 === 0 && res.rawHeaders[i]?.toLowerCase() === 'dpop-nonce');
    expect(lines).toHaveLength(1);
    expect(res.headers['access-control-expose-headers']).toBe('WWW-Authenticate, DPoP-Nonce');
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('DPOP-12 a client that follows use_dpop_nonce by itself gets through; a stale nonce is refreshed on 200', async () => {
    let now = Date.now();
    const nonceAs = await MockIssuer.start({ audience: AUDIENCE });
    const app = await startExpressApp(
      { issuer: nonceAs.issuer, audience: AUDIENCE, clock: () => now, dpop: { nonce: { required: true, stepSec: 60 } } },
      (a, fapi) => {
        a.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (_req, res) => {
          res.json({ ok: true });
        });
      },
    );
    try {
      const own = await DpopClient.create('ES256', { clock: () => now });
      const token = await nonceAs.mint({ scope: 'accounts', jkt: own.jkt });
      const res = await own.request(`${app.url}/accounts`, { accessToken: token, publicUrl: AUDIENCE });
      expect(res.status).toBe(200);
      const nonce = own.nonces.get(AUDIENCE);
      expect(nonce).toBeDefined();
      expect(res.headers.get('dpop-nonce')).toBeNull();
      // One step later the nonce is still accepted, and the next one rides on the 200.
      now += 60_000;
      const later = await own.request(`${app.url}/accounts`, { accessToken: token, publicUrl: AUDIENCE });
      expect(later.status).toBe(200);
      expect(later.headers.get('dpop-nonce')).toMatch(/^[\x21\x23-\x5B\x5D-\x7E]+$/);
      expect(later.headers.get('dpop-nonce')).not.toBe(nonce);
      expect(later.headers.get('cache-control')).toBe('no-store');
    } finally {
      await app.close();
      await nonceAs.stop();
    }
  });
});

describe('fault handling', () => {
  async function appWith(replayStore: { claim: (key: string, expiresAt: number) => Promise<boolean> }) {
    return startExpressApp({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, dpop: { replayStore } }, (a, fapi) => {
      a.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (_req, res) => {
        res.json({});
      });
    });
  }

  it('DPOP-16 an exception or a wrong answer inside a check never grants access', async () => {
    const stores = [
      {
        claim: (): Promise<boolean> => {
          throw new Error('bug');
        },
      },
      { claim: () => Promise.reject(new Error('ECONNREFUSED')) },
      { claim: () => Promise.resolve('OK' as unknown as boolean) },
    ];
    const statuses: number[] = [];
    for (const store of stores) {
      const app = await appWith(store);
      try {
        const token = await dpopToken();
        const proof = await client.proof({ htm: 'GET', htu: HTU, accessToken: token });
        const res = await send(`${app.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
        statuses.push(res.status);
      } finally {
        await app.close();
      }
    }
    expect(statuses).toEqual([503, 503, 401]);
  });

  it('DPOP-16 a claim predicate that throws refuses the request', async () => {
    const app = await startExpressApp({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE }, (a, fapi) => {
      const boom = () => {
        throw new Error('bug');
      };
      a.get('/accounts', fapi.protect({ scopes: ['accounts'], claims: { sub: boom } }), (_req, res) => {
        res.json({});
      });
    });
    try {
      const token = await dpopToken();
      const proof = await client.proof({ htm: 'GET', htu: HTU, accessToken: token });
      expect((await send(`${app.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } })).status).toBe(403);
    } finally {
      await app.close();
    }
  });
});

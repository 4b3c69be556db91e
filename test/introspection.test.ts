/**
 * Token introspection (RFC 7662) and signed answers (RFC 9701) through real HTTP: the Express
 * app introspects at MockIssuer's endpoint; revocation, caching, faults and bindings.
 */
import { createHash } from 'node:crypto';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { CachedIntrospection, GuardOptions, IntrospectionCache } from '@fapi-guard/core';
import { clientCertHeader, createCertificate, DpopClient, MockIssuer } from '@fapi-guard/testing';
import { exportJWK, generateKeyPair } from 'jose';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const SECRET = 'rs-client-secret-0123456789';
let as: MockIssuer;
let now = Date.now();

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clock: () => now });
  as.introspectionClients.set('rs-client', SECRET);
});
afterAll(() => as.stop());
beforeEach(() => {
  now = Date.now();
  as.introspection = {};
});

type Intro = NonNullable<GuardOptions['introspection']>;
const basic: Intro = { clientId: 'rs-client', clientAuth: { method: 'client_secret_basic', clientSecret: SECRET } };

async function withApi(
  options: Partial<GuardOptions> & { introspection?: Intro },
  run: (api: Awaited<ReturnType<typeof startExpressApp>>, get: (token: string, path?: string) => ReturnType<typeof send>) => Promise<void>,
) {
  const api = await startExpressApp(
    { issuer: as.issuer, audience: AUDIENCE, clock: () => now, introspection: basic, ...options } as GuardOptions,
    (app, fapi) => {
      const echo = (req: import('express').Request, res: import('express').Response) => {
        res.json({ binding: req.auth?.binding, source: req.auth?.token.source, clientId: req.auth?.clientId });
      };
      app.get('/accounts', fapi.protect({ scopes: ['accounts'], allowBearer: true }), echo);
      app.get('/payments', fapi.protect({ scopes: ['payments:read'], allowBearer: true }), echo);
      app.get('/bound', fapi.protect({ scopes: ['accounts'] }), echo);
    },
  );
  try {
    await run(api, (token, path = '/accounts') => send(`${api.url}${path}`, { headers: { authorization: `Bearer ${token}` } }));
  } finally {
    await api.close();
  }
}

describe('RFC 7662 requests', () => {
  it('INTRO-01 POSTs the token form-encoded with token_type_hint, authenticated with client_secret_basic', async () => {
    await withApi({}, async (_api, get) => {
      const token = await as.mintOpaque({ scope: 'accounts' });
      const res = await get(token);
      expect(res.status).toBe(200);
      expect(res.json.source).toBe('introspection');
      expect(as.lastIntrospection).toMatchObject({
        method: 'client_secret_basic',
        clientId: 'rs-client',
        form: { token, token_type_hint: 'access_token' },
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      });
    });
  });

  it('INTRO-01 authenticates with client_secret_post and private_key_jwt', async () => {
    await withApi(
      { introspection: { clientId: 'rs-client', clientAuth: { method: 'client_secret_post', clientSecret: SECRET } } },
      async (_a, get) => {
        expect((await get(await as.mintOpaque({ scope: 'accounts' }))).status).toBe(200);
        expect(as.lastIntrospection?.method).toBe('client_secret_post');
      },
    );
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    as.introspectionClients.set('rs-jwt', { ...(await exportJWK(publicKey)), alg: 'ES256' });
    const clientAuth = { method: 'private_key_jwt' as const, privateKey: await exportJWK(privateKey) };
    await withApi({ introspection: { clientId: 'rs-jwt', clientAuth } }, async (_a, get) => {
      expect((await get(await as.mintOpaque({ scope: 'accounts' }))).status).toBe(200);
      expect(as.lastIntrospection).toMatchObject({ method: 'private_key_jwt', clientId: 'rs-jwt' });
    });
  });

  it('INTRO-01 authenticates with tls_client_auth: the client certificate on the connection', async () => {
    const ca = await createCertificate({ subject: 'CN=CA', ca: true });
    const serverCert = await createCertificate({ hosts: ['127.0.0.1'], issuer: ca });
    const rsCert = await createCertificate({ subject: 'CN=rs-client', issuer: ca });
    let seen: string | undefined;
    const endpoint = createHttpsServer(
      { cert: serverCert.cert, key: serverCert.key, requestCert: true, rejectUnauthorized: false },
      (req, res) => {
        const raw = (req.socket as import('node:tls').TLSSocket).getPeerCertificate().raw;
        seen = raw ? createHash('sha256').update(raw).digest('base64url') : undefined;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ active: true, iss: as.issuer, aud: AUDIENCE, client_id: 'c', scope: 'accounts' }));
      },
    );
    await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `https://127.0.0.1:${(endpoint.address() as AddressInfo).port}/introspect`;
      const intro: Intro = {
        endpoint: url,
        ca: ca.cert,
        clientId: 'rs-client',
        clientAuth: { method: 'tls_client_auth', cert: rsCert.cert, key: rsCert.key },
      };
      await withApi({ introspection: intro }, async (_a, get) => {
        expect((await get('opaque-token-value')).status).toBe(200);
        expect(seen).toBe(rsCert.x5t);
      });
    } finally {
      endpoint.close();
    }
  });

  it('INTRO-05 FAPI-RS-16 refuses a plain-http introspection endpoint at start-up (loopback excepted)', async () => {
    await expect(
      withApi({ introspection: { ...basic, endpoint: 'http://as.example.com/introspect' } }, async () => undefined),
    ).rejects.toThrow(/must use https/);
  });
});

describe('RFC 7662 answers', () => {
  it('INTRO-02 FAPI-RS-06 refuses a revoked (inactive) token, and a non-boolean active', async () => {
    await withApi({ introspection: { ...basic, cache: false } }, async (api, get) => {
      const token = await as.mintOpaque({ scope: 'accounts' });
      expect((await get(token)).status).toBe(200);
      as.revoke(token);
      const res = await get(token);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(api.decisions.at(-1)?.reason).toBe('token_inactive');
      as.introspection = { transform: (a) => ({ ...a, active: 'true' }) };
      expect((await get(await as.mintOpaque({ scope: 'accounts' }))).status).toBe(401);
    });
  });

  it('INTRO-03 still checks aud, exp and scope of an active answer', async () => {
    await withApi({ introspection: { ...basic, cache: false } }, async (api, get) => {
      expect((await get(await as.mintOpaque({ scope: 'accounts', fault: 'wrong-audience' }))).status).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('token_audience');
      as.introspection = { transform: (a) => ({ ...a, exp: Math.floor(now / 1000) - 100 }) };
      expect((await get(await as.mintOpaque({ scope: 'accounts' }))).status).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('token_expired');
      as.introspection = {};
      const res = await get(await as.mintOpaque({ scope: 'accounts' }), '/payments');
      expect(res.status).toBe(403);
      expect(res.headers['www-authenticate']).toContain('scope="payments:read"');
    });
  });

  it('AUD-04 refuses an answer without aud', async () => {
    await withApi({}, async (api, get) => {
      as.introspection = { transform: ({ aud: _aud, ...rest }) => rest };
      expect((await get(await as.mintOpaque({ scope: 'accounts' }))).status).toBe(401);
      expect(api.decisions.at(-1)?.detail).toBe('introspection answer has no aud');
    });
  });

  it('DPOP-18 takes the DPoP binding from top-level cnf.jkt and checks token_type', async () => {
    const client = await DpopClient.create('ES256');
    await withApi({ publicUrl: AUDIENCE, introspection: { ...basic, cache: false } }, async (api) => {
      const call = async (token: string, c = client) =>
        send(`${api.url}/bound`, {
          headers: { authorization: `DPoP ${token}`, dpop: await c.proof({ htm: 'GET', htu: `${AUDIENCE}/bound`, accessToken: token }) },
        });
      const token = await as.mintOpaque({ scope: 'accounts', jkt: client.jkt });
      const ok = await call(token);
      expect(ok.status).toBe(200);
      expect(ok.json.binding).toEqual({ type: 'dpop', jkt: client.jkt });
      const other = await call(token, await DpopClient.create('ES256'));
      expect(other.status).toBe(401);
      expect(other.headers['www-authenticate']).toMatch(/^DPoP algs="[^"]+", error="invalid_token"/);
      as.introspection = { transform: (a) => ({ ...a, token_type: 'Bearer' }) };
      expect((await call(await as.mintOpaque({ scope: 'accounts', jkt: client.jkt }))).status).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('token_claim_invalid');
    });
  });

  it('MTLS-03 takes the certificate binding from top-level cnf.x5t#S256', async () => {
    const cert = await createCertificate();
    const other = await createCertificate();
    await withApi({ mtls: { proxy: { trustedPeers: ['127.0.0.1'] } }, introspection: { ...basic, cache: false } }, async (api) => {
      const token = await as.mintOpaque({ scope: 'accounts', x5t: cert.x5t });
      const call = (der: Uint8Array) =>
        send(`${api.url}/bound`, { headers: { authorization: `Bearer ${token}`, 'client-cert': clientCertHeader(der) } });
      expect((await call(cert.der)).status).toBe(200);
      expect((await call(other.der)).status).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('certificate_mismatch');
    });
  });
});

describe('RFC 9701 signed answers', () => {
  const signed: Intro = { ...basic, signedResponse: true, cache: false };

  it('JIR-01 JIR-02 asks for and verifies a signed answer', async () => {
    await withApi({ introspection: signed }, async (_a, get) => {
      expect((await get(await as.mintOpaque({ scope: 'accounts' }))).status).toBe(200);
      expect(as.lastIntrospection?.headers.accept).toBe('application/token-introspection+jwt');
    });
  });

  it('JIR-02 JWTBCP-09 refuses a signed answer for another audience, of another typ, or not fresh', async () => {
    await withApi({ introspection: signed }, async (api, get) => {
      const cases: [Partial<typeof as.introspection>, string][] = [
        [{ signedAudience: 'other-rs' }, 'aud'],
        [{ signedTyp: 'JWT' }, 'typ'],
      ];
      for (const [behaviour, word] of cases) {
        as.introspection = behaviour;
        const res = await get(await as.mintOpaque({ scope: 'accounts' }));
        expect(res.status).toBe(401);
        expect(res.json.error).toBe('invalid_token');
        expect(api.decisions.at(-1)?.detail).toContain(word);
      }
    });
    // Signed two minutes ago by the issuer's clock.
    as.introspection = {};
    const token = await as.mintOpaque({ scope: 'accounts' });
    await withApi({ introspection: signed, clock: () => now + 120_000 }, async (api, get) => {
      expect((await get(token)).status).toBe(401);
      expect(api.decisions.at(-1)?.detail).toContain('iat');
    });
  });

  it('JIR-03 refuses a signed answer that says active false', async () => {
    await withApi({ introspection: signed }, async (_a, get) => {
      const token = await as.mintOpaque({ scope: 'accounts' });
      as.revoke(token);
      expect((await get(token)).status).toBe(401);
    });
  });

  it('JIR-04 refuses a plain JSON answer once signed answers are configured', async () => {
    await withApi({ introspection: signed }, async (api, get) => {
      as.introspection = { signed: 'never' };
      expect((await get(await as.mintOpaque({ scope: 'accounts' }))).status).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('token_introspection_unsigned');
    });
  });

  it('JIR-05 DEC-04 refuses an answer signed with RS256 (outside FAPI)', async () => {
    await withApi({ introspection: signed }, async (api, get) => {
      as.introspection = { signedAlg: 'RS256' };
      expect((await get(await as.mintOpaque({ scope: 'accounts' }))).status).toBe(401);
      expect(api.decisions.at(-1)?.detail).toContain('alg');
    });
  });
});

describe('cache, revocation window and faults', () => {
  it('INTRO-04 FAPI-RS-06 a revoked token stays usable only for the cache time, never past exp', async () => {
    for (const [cache, usableAfterRevocation] of [
      [false, []],
      [{ maxTtlSec: 30 }, [0, 4, 29]],
      [{ maxTtlSec: 5 }, [0, 4]],
    ] as const) {
      const start = Date.now();
      now = start;
      await withApi({ introspection: { ...basic, cache } }, async (_a, get) => {
        const token = await as.mintOpaque({ scope: 'accounts' });
        expect((await get(token)).status).toBe(200);
        as.revoke(token);
        const usable: number[] = [];
        for (const seconds of [0, 4, 29, 31]) {
          now = start + seconds * 1000;
          if ((await get(token)).status === 200) usable.push(seconds);
        }
        expect(usable).toEqual(usableAfterRevocation);
      });
    }
    // The cache never outlives exp: a 20-second token with a 60-second cache.
    now = Date.now();
    await withApi({ introspection: { ...basic, cache: { maxTtlSec: 60 } } }, async (_a, get) => {
      const token = await as.mintOpaque({ scope: 'accounts', lifetimeSec: 20 });
      expect((await get(token)).status).toBe(200);
      now += 25_000;
      expect((await get(token)).status).toBe(401);
    });
  });

  it('FAPI-RS-06 introspectJwts: a revoked JWT is refused although its signature is valid', async () => {
    await withApi({ introspectJwts: true, introspection: { ...basic, cache: false } }, async (api, get) => {
      const jwt = await as.mint({ scope: 'accounts' });
      expect((await get(jwt)).json.source).toBe('jwt');
      as.revoke(jwt);
      expect((await get(jwt)).status).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('token_inactive');
    });
  });

  it('a cached answer for one route never authorises another', async () => {
    await withApi({}, async (_a, get) => {
      const token = await as.mintOpaque({ scope: 'accounts' });
      expect((await get(token)).status).toBe(200);
      const calls = as.requests.introspect;
      expect((await get(token, '/payments')).status).toBe(403);
      expect(as.requests.introspect).toBe(calls);
    });
  });

  it('concurrent requests with one token share one introspection call', async () => {
    await withApi({}, async (_a, get) => {
      as.introspection = { delayMs: 100 };
      const token = await as.mintOpaque({ scope: 'accounts' });
      const before = as.requests.introspect;
      const results = await Promise.all(Array.from({ length: 20 }, () => get(token)));
      expect(results.every((r) => r.status === 200)).toBe(true);
      expect(as.requests.introspect - before).toBe(1);
    });
  });

  it('INTRO-06 keys the cache by the SHA-256 of the token, and never logs the token', async () => {
    const keys: string[] = [];
    const store: IntrospectionCache = {
      get: async () => undefined,
      set: async (key: string, _v: CachedIntrospection) => {
        keys.push(key);
      },
    };
    await withApi({ introspection: { ...basic, cache: { store } } }, async (api, get) => {
      const token = await as.mintOpaque({ scope: 'payments:read' });
      await get(token);
      expect(keys).toEqual([createHash('sha256').update(token).digest('base64url')]);
      expect(JSON.stringify(api.decisions)).not.toContain(token);
    });
  });

  it('DEC-09 answers 503 when the endpoint fails, times out or drops the connection, and recovers', async () => {
    await withApi({ introspection: { ...basic, timeoutMs: 300, cache: false } }, async (api, get) => {
      const token = await as.mintOpaque({ scope: 'accounts' });
      for (const behaviour of [{ fail: 500 }, { fail: 'close' as const }, { delayMs: 1000 }, { fail: 401 }]) {
        as.introspection = behaviour;
        const res = await get(token);
        expect(res.status).toBe(503);
        expect(res.headers['www-authenticate']).toBeUndefined();
        expect(api.decisions.at(-1)?.reason).toBe('issuer_unavailable');
      }
      as.introspection = {};
      expect((await get(token)).status).toBe(200);
    });
  });

  it('tokenFormat jwt never introspects; opaque never verifies locally', async () => {
    await withApi({ tokenFormat: 'jwt', introspection: undefined }, async (_a, get) => {
      expect((await get(await as.mintOpaque({ scope: 'accounts' }))).status).toBe(401);
    });
    await withApi({ tokenFormat: 'opaque' }, async (_a, get) => {
      const res = await get(await as.mint({ scope: 'accounts' }));
      expect(res.status).toBe(200);
      expect(res.json.source).toBe('introspection');
    });
  });
});

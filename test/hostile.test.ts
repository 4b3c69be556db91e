/**
 * Hostile-input review, one test per concern: prototype keys in claims, huge and deeply nested
 * JSON, very long headers and jti values, non-ASCII bytes in headers, secrets in logs and errors,
 * SSRF through token headers and issuer metadata.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
});
afterAll(() => as.stop());

async function withApi(run: (api: Awaited<ReturnType<typeof startExpressApp>>) => Promise<void>, options = {}) {
  const api = await startExpressApp({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, ...options });
  try {
    await run(api);
  } finally {
    await api.close();
  }
}
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('hostile input', () => {
  it('__proto__ and constructor claims neither pollute prototypes nor change decisions', async () => {
    await withApi(async (api) => {
      const payload = JSON.parse(
        '{"__proto__": {"polluted": true, "scope": "accounts"}, "constructor": {"prototype": {"polluted": true}}}',
      );
      const token = await as.mint({ claims: payload });
      const res = await send(`${api.url}/accounts`, { headers: bearer(token) });
      // The scope hidden in __proto__ is not a granted scope.
      expect(res.status).toBe(403);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    });
  });

  it('a deeply nested claim is handled without exhausting the stack', async () => {
    await withApi(async (api) => {
      const depth = 1000;
      const nested = JSON.parse(`${'['.repeat(depth)}1${']'.repeat(depth)}`);
      const res = await send(`${api.url}/accounts`, { headers: bearer(await as.mint({ scope: 'accounts', claims: { deep: nested } })) });
      expect(res.status).toBe(200);
    });
  });

  it('huge tokens and proofs are refused before any parsing', async () => {
    await withApi(async (api) => {
      // Node's own 16 KiB header limit answers longer headers (431, below); the guard's bound
      // holds for any transport.
      const huge = `${'a'.repeat(17000)}.${'b'.repeat(100)}.c`;
      const refused = await api.fapi.guard.check({
        method: 'GET',
        url: `${AUDIENCE}/accounts`,
        headers: { authorization: [`Bearer ${huge}`] },
      });
      expect(refused).toMatchObject({ ok: false, reason: 'token_malformed', detail: 'token of 17103 characters' });
      const client = await DpopClient.create('ES256');
      const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
      const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token, claims: { pad: 'x'.repeat(9000) } });
      const dpop = await send(`${api.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      expect(dpop.status).toBe(401);
      expect(api.decisions.at(-1)?.detail).toMatch(/proof of \d+ characters/);
    });
  });

  it('JWTBCP-05 duplicate members: the last one wins, consistently; invalid UTF-8 is refused', async () => {
    await withApi(async (api) => {
      const now = Math.floor(Date.now() / 1000);
      const body = (first: string, last: string) =>
        `{"iss":"${as.issuer}","sub":"u","aud":"${AUDIENCE}","client_id":"c","iat":${now},"exp":${now + 300},"jti":"${Math.random()}","scope":"${first}","scope":"${last}"}`;
      const call = async (token: string) => (await send(`${api.url}/accounts`, { headers: bearer(token) })).status;
      expect(await call(await as.signRaw(body('payments', 'accounts')))).toBe(200);
      expect(await call(await as.signRaw(body('accounts', 'payments')))).toBe(403);
      const bytes = Buffer.from(body('accounts', 'accounts').replace('"sub":"u"', '"sub":"u\u00ff"'));
      const invalid = Buffer.concat([bytes.subarray(0, 20), Buffer.from([0xc3, 0x28]), bytes.subarray(20)]);
      expect(await call(await as.signRaw(invalid))).toBe(401);
      expect(api.decisions.at(-1)?.reason).toBe('token_malformed');
    });
  });

  it('headers beyond the server limit get 431 from Node, never a crash', async () => {
    await withApi(async (api) => {
      const res = await send(`${api.url}/accounts`, { headers: bearer('a'.repeat(20000)) });
      expect(res.status).toBe(431);
      expect((await send(`${api.url}/accounts`)).status).toBe(401);
    });
  });

  it('non-ASCII bytes in credentials are a malformed request, not an error', async () => {
    await withApi(async (api) => {
      const res = await send(`${api.url}/accounts`, { headers: { authorization: 'Bearer t\u00e9st\u00ff' } });
      expect(res.status).toBe(400);
      expect(res.headers['www-authenticate']).toMatch(/^[\x20-\x7e]+$/);
    });
  });

  it('secrets never reach the client or the decision log', async () => {
    const secret = 'introspection-secret-do-not-log-0123';
    as.introspectionClients.set('rs', secret);
    await withApi(
      async (api) => {
        as.introspection = { fail: 500 };
        const token = await as.mintOpaque({ scope: 'accounts' });
        const res = await send(`${api.url}/accounts`, { headers: bearer(token) });
        expect(res.status).toBe(503);
        const everything = JSON.stringify({ body: res.text, headers: res.headers, decisions: api.decisions });
        expect(everything).not.toContain(secret);
        expect(everything).not.toContain(token);
        as.introspection = {};
      },
      { introspection: { clientId: 'rs', clientAuth: { method: 'client_secret_basic', clientSecret: secret } } },
    );
  });

  it('SSRF: metadata naming a jwks_uri outside https/loopback is never fetched', async () => {
    let hits = 0;
    const victim = createServer((_req, res) => {
      hits++;
      res.end('{}');
    });
    await new Promise<void>((r) => victim.listen(0, '127.0.0.1', () => r()));
    const evil = await MockIssuer.start({ audience: AUDIENCE });
    Object.defineProperty(evil, 'metadata', {
      get: () => ({ issuer: evil.issuer, jwks_uri: `http://internal.example:${(victim.address() as AddressInfo).port}/admin` }),
    });
    try {
      const api = await startExpressApp({ issuer: evil.issuer, audience: AUDIENCE });
      try {
        const res = await send(`${api.url}/accounts`, { headers: bearer(await evil.mint({ scope: 'accounts' })) });
        expect(res.status).toBe(503);
        expect(hits).toBe(0);
      } finally {
        await api.close();
      }
    } finally {
      await evil.stop();
      victim.close();
    }
  });
});

/**
 * JWKS behaviour, tested rather than assumed: discovery, rotation, a flood of unknown `kid`s,
 * an issuer that is down with and without cached keys, and recovery without a restart.
 */
import { MockIssuer } from '@fapi-guard/testing';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withApi(
  as: MockIssuer,
  keys: { maxAgeMs?: number; cooldownMs?: number; timeoutMs?: number },
  run: (call: (token?: string) => ReturnType<typeof send>) => Promise<void>,
) {
  const api = await startExpressApp({ issuer: as.issuer, audience: AUDIENCE, keys });
  try {
    await run((token) => send(`${api.url}/accounts`, { headers: token ? { authorization: `Bearer ${token}` } : {} }));
  } finally {
    await api.close();
  }
}

describe('issuer keys', () => {
  let as: MockIssuer;
  beforeEach(async () => {
    as = await MockIssuer.start({ audience: AUDIENCE });
  });
  afterEach(async () => {
    await as.stop();
  });

  it('discovers the JWKS through RFC 8414 metadata and fetches it once for many requests', async () => {
    await withApi(as, {}, async (call) => {
      const token = await as.mint({ scope: 'accounts' });
      const results = await Promise.all(Array.from({ length: 20 }, () => call(token)));
      expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
      expect(as.requests.metadata).toBe(1);
      expect(as.requests.jwks).toBe(1);
    });
  });

  it('follows a key rotation: a new kid triggers one refetch', async () => {
    await withApi(as, { cooldownMs: 0 }, async (call) => {
      expect((await call(await as.mint({ scope: 'accounts' }))).status).toBe(200);
      await as.rotate();
      expect((await call(await as.mint({ scope: 'accounts' }))).status).toBe(200);
      expect(as.requests.jwks).toBe(2);
    });
  });

  it('a flood of unknown kids costs the issuer at most one fetch per cool-down (fixed clock, both sides of the edge)', async () => {
    // The guard's clock stands still while the flood runs: a slow machine cannot end the cool-down.
    let now = Date.now();
    const api = await startExpressApp({ issuer: as.issuer, audience: AUDIENCE, keys: { cooldownMs: 300 }, clock: () => now });
    const call = (token: string) => send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } });
    const forged = () => as.mint({ scope: 'accounts', fault: 'unknown-key' });
    try {
      expect((await call(await as.mint({ scope: 'accounts' }))).status).toBe(200);
      now += 300;
      const flood = await Promise.all(Array.from({ length: 50 }, forged));
      for (let round = 0; round < 2; round++) {
        const results = await Promise.all(flood.map((t) => call(t)));
        expect(new Set(results.map((r) => r.status))).toEqual(new Set([401]));
      }
      // The first fetch, plus one for the whole flood (both rounds fall in one cool-down).
      expect(as.requests.jwks).toBe(2);
      now += 299;
      expect((await call(await forged())).status).toBe(401);
      expect(as.requests.jwks).toBe(2);
      now += 1;
      expect((await call(await forged())).status).toBe(401);
      expect(as.requests.jwks).toBe(3);
    } finally {
      await api.close();
    }
  });

  it('keeps accepting tokens with cached keys while the issuer is down', async () => {
    await withApi(as, { maxAgeMs: 0, cooldownMs: 0 }, async (call) => {
      const token = await as.mint({ scope: 'accounts' });
      expect((await call(token)).status).toBe(200);
      as.setAvailable(false);
      for (let i = 0; i < 5; i++) expect((await call(await as.mint({ scope: 'accounts' }))).status).toBe(200);
      await as.stop(); // connection refused now, not just 503
      expect((await call(await as.mint({ scope: 'accounts' }))).status).toBe(200);
    });
  });

  it('DEC-09 answers 503 when no key has ever been fetched, and recovers by itself', async () => {
    as.setAvailable(false);
    await withApi(as, { cooldownMs: 200 }, async (call) => {
      const token = await as.mint({ scope: 'accounts' });
      const down = await call(token);
      expect(down.status).toBe(503);
      expect(down.headers['www-authenticate']).toBeUndefined();
      expect(down.headers['retry-after']).toMatch(/^\d+$/);
      expect(down.json).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
      // Within the cool-down no new fetch is made: still 503, quickly.
      const fetches = as.requests.metadata + as.requests.jwks;
      expect((await call(token)).status).toBe(503);
      expect(as.requests.metadata + as.requests.jwks).toBe(fetches);
      as.setAvailable(true);
      await sleep(250);
      expect((await call(token)).status).toBe(200);
    });
  });

  it('DEC-09 answers 503 when the issuer does not answer in time', async () => {
    // A server that accepts the connection and never responds.
    const { createServer } = await import('node:http');
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    const issuer = `http://127.0.0.1:${port}`;
    const api = await startExpressApp({ issuer, audience: AUDIENCE, keys: { timeoutMs: 200 } });
    try {
      const local = await MockIssuer.create({ issuer, audience: AUDIENCE });
      const res = await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${await local.mint({ scope: 'accounts' })}` } });
      expect(res.status).toBe(503);
    } finally {
      await api.close();
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('refuses metadata that names another issuer (RFC 8414 §3.3)', async () => {
    const impostor = await MockIssuer.start({ audience: AUDIENCE });
    // The guard trusts `impostor`'s URL but its metadata says it is `as`.
    Object.defineProperty(impostor, 'metadata', { get: () => ({ issuer: as.issuer, jwks_uri: as.jwksUri }) });
    try {
      await withApi(impostor, {}, async (call) => {
        expect((await call(await impostor.mint({ scope: 'accounts' }))).status).toBe(503);
      });
      expect(as.requests.jwks).toBe(0);
    } finally {
      await impostor.stop();
    }
  });

  it('uses an explicit jwks_uri without discovery, and a static JWKS without any fetch', async () => {
    const explicit = await startExpressApp({ issuer: { issuer: as.issuer, jwksUri: as.jwksUri }, audience: AUDIENCE });
    const fixed = await startExpressApp({ issuer: { issuer: as.issuer, jwks: as.jwks }, audience: AUDIENCE });
    try {
      const token = await as.mint({ scope: 'accounts' });
      expect((await send(`${explicit.url}/accounts`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      expect(as.requests).toMatchObject({ metadata: 0, jwks: 1 });
      expect((await send(`${fixed.url}/accounts`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      expect(as.requests).toMatchObject({ metadata: 0, jwks: 1 });
    } finally {
      await explicit.close();
      await fixed.close();
    }
  });

  it('re-verifies cached tokens after the key set changes (a removed key stops working)', async () => {
    await withApi(as, { maxAgeMs: 0, cooldownMs: 0 }, async (call) => {
      const token = await as.mint({ scope: 'accounts' });
      expect((await call(token)).status).toBe(200);
      await as.rotate({ keepPrevious: false });
      // This request starts the background refresh; the next ones see the new set.
      await call(token);
      await sleep(50);
      expect((await call(token)).status).toBe(401);
    });
  });
});

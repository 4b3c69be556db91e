/**
 * `guard.ready()` and the example's `GET /ready`: ready once every issuer's keys are loaded,
 * not ready (with the reason, within the fetch timeouts) while the issuer cannot be reached,
 * ready again when it comes back — without restarting the API.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createGuard } from '@fapi-guard/core';
import { MockIssuer } from '@fapi-guard/testing';
import { readConfig } from '../examples/payments-api/src/config';
import { type RunningExample, startExample } from '../examples/payments-api/src/server';
import { FRAMEWORKS } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const KEYS = { cooldownMs: 100, timeoutMs: 300 };

async function until(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

describe('guard.ready()', () => {
  let as: MockIssuer;
  beforeAll(async () => {
    as = await MockIssuer.start({ audience: AUDIENCE });
  });
  afterAll(() => as.stop());

  it('resolves once the issuer keys are loaded (discovery and JWK set); then at once, without fetching', async () => {
    const guard = createGuard({ issuer: as.issuer, audience: AUDIENCE, keys: KEYS, logger: false });
    const keys = guard.issuers.get(as.issuer);
    expect(keys?.fetches).toBe(0);
    await expect(guard.ready()).resolves.toBeUndefined();
    const fetches = keys?.fetches ?? 0;
    expect(fetches).toBeGreaterThanOrEqual(2);
    await guard.ready();
    expect(keys?.fetches).toBe(fetches);
  });

  it('resolves at once for a static key set', async () => {
    const guard = createGuard({ issuer: { issuer: 'https://as.example.com', jwks: as.jwks }, audience: AUDIENCE, logger: false });
    await expect(guard.ready()).resolves.toBeUndefined();
  });

  it('rejects with the reason while the issuer is down, and resolves once it is back', async () => {
    const guard = createGuard({ issuer: as.issuer, audience: AUDIENCE, keys: KEYS, logger: false });
    as.setAvailable(false);
    try {
      await expect(guard.ready()).rejects.toThrow(/not ready: issuer http:\/\/127\.0\.0\.1:\d+: .*answered 503/);
      // Within the cool-down the last failure is the answer: a probe does not hammer the issuer.
      const fetches = guard.issuers.get(as.issuer)?.fetches;
      await expect(guard.ready()).rejects.toThrow(/answered 503/);
      expect(guard.issuers.get(as.issuer)?.fetches).toBe(fetches);
    } finally {
      as.setAvailable(true);
    }
    expect(
      await until(
        () =>
          guard.ready().then(
            () => true,
            () => false,
          ),
        2000,
      ),
    ).toBe(true);
  });

  it('never waits past the fetch timeouts: an issuer that accepts connections and never answers', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    try {
      const guard = createGuard({ issuer, audience: AUDIENCE, keys: KEYS, logger: false });
      const started = Date.now();
      // Two discovery locations, 300 ms each; no JWK set to fetch without metadata.
      await expect(guard.ready()).rejects.toThrow(/no answer in 300 ms/);
      expect(Date.now() - started).toBeLessThan(3 * KEYS.timeoutMs + 500);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

describe.each(FRAMEWORKS)('example GET /ready on %s', (framework) => {
  let api: RunningExample;
  beforeAll(async () => {
    api = await startExample(
      { ...readConfig({ FAPI_FRAMEWORK: framework }), port: 0, audience: AUDIENCE, publicUrl: AUDIENCE },
      undefined,
      { keys: KEYS },
    );
  });
  afterAll(() => api.close());

  it('503 with the reason while the issuer is down, 200 once it is back', async () => {
    const mock = api.mock as MockIssuer;
    mock.setAvailable(false);
    try {
      const down = await send(`${api.url}/ready`);
      expect(down.status).toBe(503);
      expect(down.json.status).toBe('not ready');
      expect(down.json.reason).toMatch(new RegExp(`issuer ${api.issuer}: .*answered 503`));
    } finally {
      mock.setAvailable(true);
    }
    expect(await until(async () => (await send(`${api.url}/ready`)).status === 200, 2000)).toBe(true);
    expect((await send(`${api.url}/ready`)).json).toEqual({ status: 'ready' });
  });
});

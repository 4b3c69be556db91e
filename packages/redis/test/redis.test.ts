/** The Redis stores against a real redis-server, through both ioredis and node-redis. */
import { RedisIntrospectionCache, RedisReplayStore, RedisUnavailableError, sharedSecret } from '@fapi-guard/redis';
import { Redis as IORedis } from 'ioredis';
import { createClient } from 'redis';
import { TestRedis } from '../../../test/support/redis';

let server: TestRedis;
let ioredis: IORedis;
let nodeRedis: ReturnType<typeof createClient>;

beforeAll(async () => {
  server = await TestRedis.start();
  ioredis = new IORedis(server.url, { lazyConnect: false });
  nodeRedis = createClient({ url: server.url });
  await nodeRedis.connect();
});
afterAll(async () => {
  ioredis.disconnect();
  await nodeRedis.quit();
  await server.stop();
});

describe.each([
  ['ioredis', () => ioredis],
  ['node-redis', () => nodeRedis],
] as const)('with %s', (name, client) => {
  it('DPOP-23 claims a key once, atomically; a replay is refused until the key expires', async () => {
    const store = new RedisReplayStore({ client: client(), prefix: `t-${name}:` });
    const expiresAt = Date.now() + 300;
    const claims = await Promise.all(Array.from({ length: 20 }, () => store.claim('jti-hash-1', expiresAt)));
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await store.claim('jti-hash-1', expiresAt)).toBe(false);
    expect(await store.claim('jti-hash-2', expiresAt)).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    expect(await store.claim('jti-hash-1', Date.now() + 300)).toBe(true);
    expect(await ioredis.exists(`t-${name}:replay:jti-hash-2`)).toBe(0);
  });

  it('keeps introspection answers until they expire', async () => {
    const cache = new RedisIntrospectionCache({ client: client(), prefix: `t-${name}:` });
    const claims = { iss: 'https://as', aud: 'https://rs', client_id: 'c', sub: 's', exp: 1, iat: 1, jti: 'j' };
    await cache.set('h1', { active: true, claims }, Date.now() + 300);
    await cache.set('h2', { active: false }, Date.now() + 300);
    expect(await cache.get('h1')).toEqual({ active: true, claims });
    expect(await cache.get('h2')).toEqual({ active: false });
    expect(await cache.get('h3')).toBeUndefined();
    await new Promise((r) => setTimeout(r, 400));
    expect(await cache.get('h1')).toBeUndefined();
  });

  it('agrees on one shared secret, whoever asks first', async () => {
    const [a, b] = await Promise.all([
      sharedSecret({ client: client(), prefix: `t-${name}:`, name: 'nonce' }),
      sharedSecret({ client: ioredis, prefix: `t-${name}:`, name: 'nonce' }),
    ]);
    expect(a).toBe(b);
    expect(a.length).toBeGreaterThanOrEqual(32);
  });
});

describe('faults', () => {
  it('a command that takes too long fails within the bound', async () => {
    const slow = () => new Promise<unknown>((resolve) => setTimeout(() => resolve('OK'), 2000));
    const store = new RedisReplayStore({ client: slow, timeoutMs: 100 });
    const started = Date.now();
    await expect(store.claim('k', Date.now() + 1000)).rejects.toBeInstanceOf(RedisUnavailableError);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('an unexpected answer is never taken as a first use', async () => {
    const store = new RedisReplayStore({ client: async () => 'QUEUED' });
    await expect(store.claim('k', Date.now() + 1000)).rejects.toThrow(/unexpected/);
  });

  it('refuses a client it does not know at construction', () => {
    expect(() => new RedisReplayStore({ client: {} as never })).toThrow(/ioredis/);
  });
});

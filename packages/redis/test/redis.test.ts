/** The Redis stores against a real redis-server, through both ioredis and node-redis. */
import type { GuardLogger } from '@fapi-guard/core';
import { RedisIntrospectionCache, RedisReplayStore, RedisUnavailableError, redisReady, sharedSecret } from '@fapi-guard/redis';
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

describe('redisReady', () => {
  const capture = () => {
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const logger: GuardLogger = { warn: (obj, msg) => lines.push({ obj, msg }), error: (obj, msg) => lines.push({ obj, msg }) };
    return { lines, logger };
  };

  it('the README setup: without it a fresh fail-fast ioredis client makes sharedSecret reject; with it, it works', async () => {
    const early = new IORedis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    early.on('error', () => undefined);
    await expect(sharedSecret({ client: early, name: 'ready-test' })).rejects.toThrow(/enableOfflineQueue/);
    early.disconnect();

    const redis = new IORedis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    await redisReady(redis, { logger: false });
    expect(await sharedSecret({ client: redis, name: 'ready-test' })).toHaveLength(43);
    await redisReady(redis); // already ready: at once
    redis.disconnect();
  });

  it('connects a node-redis client and an ioredis lazyConnect client itself', async () => {
    const node = createClient({ url: server.url, disableOfflineQueue: true });
    await redisReady(node, { logger: false });
    expect(node.isReady).toBe(true);
    expect(await sharedSecret({ client: node, name: 'ready-test' })).toHaveLength(43);
    await node.quit();
    const lazy = new IORedis(server.url, { lazyConnect: true, enableOfflineQueue: false });
    await redisReady(lazy, { logger: false });
    expect(lazy.status).toBe('ready');
    lazy.disconnect();
  });

  it('an unreachable Redis: rejects within the bound with the reason, logs the error once, never crashes the process', async () => {
    const { lines, logger } = capture();
    const down = await TestRedis.start();
    await down.stop();
    const redis = new IORedis(down.url, { enableOfflineQueue: false, retryStrategy: () => 50 });
    const started = Date.now();
    await expect(redisReady(redis, { logger, timeoutMs: 600 })).rejects.toThrow(/not ready after 600 ms: .*ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(1500);
    // ioredis retried every 50 ms and emitted an error each time: one line (rate-limited).
    await new Promise((r) => setTimeout(r, 200));
    expect(lines).toHaveLength(1);
    expect(lines[0]?.obj.reason).toMatch(/ECONNREFUSED/);
    redis.disconnect();

    const node = createClient({ url: down.url, disableOfflineQueue: true, socket: { reconnectStrategy: () => 50 } });
    await expect(redisReady(node, { logger: false, timeoutMs: 600 })).rejects.toThrow(/ECONNREFUSED/);
    await node.destroy();
  });
});

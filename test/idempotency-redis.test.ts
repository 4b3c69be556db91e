/**
 * Idempotency keys shared through Redis: two API instances on one redis-server, on every adapter,
 * and on a Redis Cluster through ioredis and node-redis, process twenty concurrent requests with one
 * key exactly once; a Redis that is down makes requests 503 and processes nothing; a process killed
 * mid-request leaves its key claimed (409) until its lease ends, then the retry is processed once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { type GuardOptions, idempotencyStoreKey, type RoutePolicy } from '@fapi-guard/core';
import { RedisIdempotencyStore, redisReady } from '@fapi-guard/redis';
import { MockIssuer } from '@fapi-guard/testing';
import { Cluster, Redis } from 'ioredis';
import { createCluster } from 'redis';
import { FRAMEWORKS, type Framework, type StartedApp } from './support/apps';
import { type Ledger, newLedger, type Party, type Payment, party, sendPayment, startIdempotentApp } from './support/idempotency-apps';
import { redisCli, TestRedis, TestRedisCluster } from './support/redis';

const PUBLIC = 'https://api.bank.example';
const POLICY: RoutePolicy = { scopes: ['payments'], idempotency: 'required' };
const quiet = { warn: () => undefined, error: () => undefined };
let as: MockIssuer;
let alice: Party;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: PUBLIC });
  alice = await party(as, PUBLIC, 'client-alice');
});
afterAll(() => as?.stop());

const pay = (url: string, p: Omit<Payment, 'who'> = {}) => sendPayment(url, PUBLIC, { who: alice, ...p });
let keyCounter = 0;
const freshKey = () => `"redis-${process.pid}-${Date.now()}-${++keyCounter}"`;
const guardOn = (store: RedisIdempotencyStore): GuardOptions => ({
  issuer: as.issuer,
  audience: PUBLIC,
  publicUrl: PUBLIC,
  logger: quiet,
  idempotency: { store },
});

/** Twenty concurrent requests with one key, alternating between the instances; what came back. */
async function twentyAtOnce(apps: StartedApp[], ledger: Ledger) {
  const key = freshKey();
  const before = ledger.processed;
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => pay((apps[i % apps.length] as StartedApp).url, { key })));
  const created = answers.filter((a) => a.status === 201);
  expect(ledger.processed - before).toBe(1);
  // Every other answer is 409 (in flight); anything else is shown with its body.
  expect(answers.filter((a) => a.status !== 201 && a.status !== 409).map((a) => `${a.status} ${a.text}`)).toEqual([]);
  expect(new Set(created.map((a) => a.text)).size).toBe(1);
  // A retry at either instance, once the first finished, is the stored response.
  for (const app of apps) expect((await pay(app.url, { key })).text).toBe(created[0]?.text);
  expect(ledger.processed - before).toBe(1);
  return key;
}

describe('two instances sharing one redis-server', () => {
  let redis: TestRedis;
  const clients: Redis[] = [];
  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await redis?.stop();
  });

  /** A client as docs/packages/redis.md configures it: no offline queue. */
  async function store(timeoutMs = 500): Promise<RedisIdempotencyStore> {
    const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    clients.push(client);
    await redisReady(client, { logger: quiet, timeoutMs: 5000 });
    return new RedisIdempotencyStore({ client, timeoutMs });
  }

  describe.each(FRAMEWORKS)('%s', (framework: Framework) => {
    const apps: StartedApp[] = [];
    const ledger = newLedger(250);
    beforeAll(async () => {
      // Two instances, each with its own Redis connection, as two processes would have.
      // A generous command timeout: what is tested is one processing under concurrency, not a slow
      // Redis (a loaded machine answered 503 here; the timeouts have tests of their own below).
      for (let i = 0; i < 2; i++) apps.push(await startIdempotentApp(framework, guardOn(await store(5000)), POLICY, ledger));
    });
    afterAll(async () => {
      for (const app of apps) await app.close();
    });

    it('IDEM-05 IDEM-04 twenty concurrent requests with one key over two instances are processed once', async () => {
      await twentyAtOnce(apps, ledger);
    });
  });

  it('IDEM-16 IDEM-15 a stored response keeps the layers that checked the first request, and its bytes and header lines', async () => {
    const shared = await store();
    const claim = await shared.claim('layers-key', 'fp', 5000);
    if (!claim.claimed) throw new Error('the key was taken');
    const response = { status: 201, headers: [['x-a', '1'] as const, ['x-a', '2'] as const], body: Buffer.from([0, 255, 10]), layers: 2 };
    await shared.complete('layers-key', claim.token, { state: 'done', fingerprint: 'fp', response }, 5000);
    const again = await (await store()).claim('layers-key', 'fp', 5000);
    expect(again).toEqual({
      claimed: false,
      record: { state: 'done', fingerprint: 'fp', response: { ...response, body: expect.anything() } },
    });
    expect(again.claimed || again.record.state !== 'done' ? undefined : [...again.record.response.body]).toEqual([0, 255, 10]);
    // A response not kept keeps its layers too (a retry learns that only as late as the first request was answered).
    const unkept = await shared.claim('unkept-key', 'fp', 5000);
    if (!unkept.claimed) throw new Error('the key was taken');
    await shared.complete('unkept-key', unkept.token, { state: 'unkept', fingerprint: 'fp', layers: 3 }, 5000);
    expect(await shared.claim('unkept-key', 'fp', 5000)).toEqual({
      claimed: false,
      record: { state: 'unkept', fingerprint: 'fp', layers: 3 },
    });
    // One layer (the response of a route with one protect()) is kept as it was: no `layers`.
    const one = await shared.claim('one-layer', 'fp', 5000);
    if (!one.claimed) throw new Error('the key was taken');
    await shared.complete(
      'one-layer',
      one.token,
      { state: 'done', fingerprint: 'fp', response: { status: 200, headers: [], body: Buffer.alloc(0) } },
      5000,
    );
    expect(await shared.claim('one-layer', 'fp', 5000)).toMatchObject({ record: { response: { status: 200 } } });
    expect(await shared.claim('one-layer', 'fp', 5000)).not.toHaveProperty('record.response.layers');
  });

  it('IDEM-13 Redis down: 503 with Retry-After on every adapter and nothing processed; back up: processed', async () => {
    const apps: StartedApp[] = [];
    const ledger = newLedger(0);
    try {
      for (const framework of FRAMEWORKS) apps.push(await startIdempotentApp(framework, guardOn(await store(300)), POLICY, ledger));
      await redis.stop();
      for (const app of apps) {
        const answer = await pay(app.url, { key: freshKey() });
        expect([app.framework, answer.status]).toEqual([app.framework, 503]);
        expect(answer.headers['retry-after']).toBe('1');
        expect(answer.json).toEqual({
          error: 'temporarily_unavailable',
          error_description: 'A required service is unavailable; try again later',
        });
      }
      expect(ledger.started).toBe(0);
      await redis.start();
      for (const app of apps) {
        const key = freshKey();
        let answer = await pay(app.url, { key });
        // ioredis reconnects on its own; until it has, the answer is still 503.
        for (let i = 0; answer.status === 503 && i < 50; i++) {
          await new Promise((r) => setTimeout(r, 100));
          answer = await pay(app.url, { key });
        }
        expect([app.framework, answer.status]).toEqual([app.framework, 201]);
      }
      expect(ledger.processed).toBe(FRAMEWORKS.length);
    } finally {
      if (!redis.running) await redis.start();
      for (const app of apps) await app.close();
    }
  }, 60_000);

  it('IDEM-12 IDEM-13 Redis lost while the handler ran: the answer is sent but not recorded; retries get 409, never a second processing', async () => {
    const ledger = newLedger(1500);
    const app = await startIdempotentApp('express', guardOn(await store(300)), POLICY, ledger);
    try {
      const key = freshKey();
      const first = pay(app.url, { key });
      for (let i = 0; ledger.started === 0; i++) {
        if (i > 100) throw new Error('the payment never started');
        await new Promise((r) => setTimeout(r, 20));
      }
      // A persistent Redis (snapshot on shutdown) keeps the claim across the outage.
      await redis.stop({ save: true });
      expect((await first).status).toBe(201);
      await redis.start();
      let retry = await pay(app.url, { key });
      for (let i = 0; retry.status === 503 && i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        retry = await pay(app.url, { key });
      }
      expect(retry.status).toBe(409);
      expect(ledger.processed).toBe(1);
      expect(ledger.started).toBe(1);
    } finally {
      if (!redis.running) await redis.start();
      await app.close();
    }
  }, 30_000);

  it('IDEM-14 a key expires ttlSec after the first request: the same request is then processed again', async () => {
    const ledger = newLedger(0);
    const app = await startIdempotentApp(
      'express',
      guardOn(await store()),
      { scopes: ['payments'], idempotency: { mode: 'required', ttlSec: 1 } },
      ledger,
    );
    try {
      const key = freshKey();
      const first = await pay(app.url, { key });
      expect((await pay(app.url, { key })).text).toBe(first.text);
      expect(ledger.processed).toBe(1);
      await new Promise((r) => setTimeout(r, 1100));
      const later = await pay(app.url, { key });
      expect(later.status).toBe(201);
      expect(later.text).not.toBe(first.text);
      expect(ledger.processed).toBe(2);
    } finally {
      await app.close();
    }
  });

  it('IDEM-12 IDEM-05 a handler slower than leaseSec keeps its claim renewed on Redis: a retry at another instance gets 409, never a second processing', async () => {
    const ledger = newLedger(1800);
    const policy: RoutePolicy = { scopes: ['payments'], idempotency: { mode: 'required', leaseSec: 1 } };
    const [one, two] = [
      await startIdempotentApp('express', guardOn(await store()), policy, ledger),
      await startIdempotentApp('express', guardOn(await store()), policy, ledger),
    ];
    try {
      const key = freshKey();
      const first = pay(one.url, { key });
      await new Promise((r) => setTimeout(r, 1400));
      expect((await pay(two.url, { key })).status).toBe(409);
      expect((await first).status).toBe(201);
      expect((await pay(two.url, { key })).text).toBe((await first).text);
      expect(ledger.started).toBe(1);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('IDEM-12 a process killed mid-request leaves its key claimed: 409 at another instance until leaseSec, then processed once', async () => {
    const policy: RoutePolicy = { scopes: ['payments'], idempotency: { mode: 'required', ttlSec: 60, leaseSec: 3 } };
    redisCli(redis.port, 'del', 'test:started', 'test:finished');
    const child: ChildProcess = spawn(
      process.execPath,
      [
        join(__dirname, 'support', 'idempotency-child.mjs'),
        JSON.stringify({ issuer: as.issuer, audience: PUBLIC, redisUrl: redis.url, policy }),
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const other: StartedApp[] = [];
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`the child did not start: ${out}`)), 15_000);
        const onData = (d: Buffer) => {
          out += d.toString();
          const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (match) {
            clearTimeout(timer);
            resolve(match[1] as string);
          }
        };
        child.stdout?.on('data', onData);
        child.stderr?.on('data', onData);
      });
      const key = freshKey();
      const first = pay(url, { key }).then(
        (a) => a.status,
        () => 'no answer',
      );
      for (let i = 0; redisCli(redis.port, 'get', 'test:started').trim() !== '1'; i++) {
        if (i > 100) throw new Error('the child never started the payment');
        await new Promise((r) => setTimeout(r, 50));
      }
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await exited;
      expect(await first).toBe('no answer');
      const ledger = newLedger(0);
      other.push(await startIdempotentApp('express', guardOn(await store()), policy, ledger));
      const during = await pay(other[0]?.url as string, { key });
      expect(during.status).toBe(409);
      expect(during.json.error_description).toBe('A request with this idempotency key is still being processed; retry later');
      expect(ledger.started).toBe(0);
      // The claim was made before the kill: 3 s after it, it has expired.
      await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 3100 - Date.now())));
      const after = await pay(other[0]?.url as string, { key });
      expect(after.status).toBe(201);
      expect((await pay(other[0]?.url as string, { key })).text).toBe(after.text);
      expect(ledger.processed).toBe(1);
      expect(ledger.started).toBe(1);
      expect(redisCli(redis.port, 'get', 'test:finished').trim()).toBe('');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      for (const app of other) await app.close();
    }
  }, 40_000);
});

describe('a Redis Cluster (three masters)', () => {
  let cluster: TestRedisCluster;
  beforeAll(async () => {
    cluster = await TestRedisCluster.start();
  }, 30_000);
  afterAll(() => cluster?.stop());

  const CLIENTS: [
    string,
    () => { client: Parameters<typeof redisReady>[0] & ConstructorParameters<typeof RedisIdempotencyStore>[0]['client']; close(): void },
  ][] = [
    [
      'ioredis Cluster',
      () => {
        const client = new Cluster(cluster.nodes, { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 1 } });
        return { client, close: () => client.disconnect() };
      },
    ],
    [
      'node-redis createCluster',
      () => {
        const client = createCluster({
          rootNodes: cluster.nodes.map(({ port }) => ({ url: `redis://127.0.0.1:${port}` })),
          defaults: { disableOfflineQueue: true, socket: { connectTimeout: 1000, reconnectStrategy: () => 200 } },
        });
        return { client, close: () => void client.destroy() };
      },
    ],
  ];

  describe.each(CLIENTS)('%s', (_name, connect) => {
    const apps: StartedApp[] = [];
    const closers: (() => void)[] = [];
    const ledger = newLedger(250);
    beforeAll(async () => {
      // Two instances on two frameworks (Node and Fetch glue), each with its own cluster client.
      for (const framework of ['express', 'hono'] as const) {
        const { client, close } = connect();
        closers.push(close);
        await redisReady(client, { logger: quiet, timeoutMs: 5000 });
        // A generous command timeout, as above: concurrency is tested here, not a slow Redis.
        apps.push(await startIdempotentApp(framework, guardOn(new RedisIdempotencyStore({ client, timeoutMs: 5000 })), POLICY, ledger));
      }
    }, 20_000);
    afterAll(async () => {
      for (const app of apps) await app.close();
      for (const close of closers) close();
    });

    it('IDEM-05 twenty concurrent requests with one key over two instances are processed once', async () => {
      await twentyAtOnce(apps, ledger);
    });

    it('IDEM-05 IDEM-07 each (client, key) entry is one key on the master that owns its slot; entries spread over the masters', async () => {
      const used = new Set<number>();
      for (let i = 0; i < 12; i++) {
        const key = freshKey();
        expect((await pay((apps[i % 2] as StartedApp).url, { key })).status).toBe(201);
        const redisKey = `fapi-guard:idempotency:${idempotencyStoreKey({ issuer: as.issuer, clientId: 'client-alice' }, key.slice(1, -1))}`;
        const master = cluster.masterOf(redisKey);
        used.add(master.port);
        expect(redisCli(master.port, 'exists', redisKey).trim()).toBe('1');
      }
      expect(used.size).toBeGreaterThan(1);
    });
  });
});

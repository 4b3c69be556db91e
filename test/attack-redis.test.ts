/**
 * Issue 24, "not yet attacked": @fapi-guard/redis under a slow server and under a cluster slot
 * migration (ASK while the slot migrates, MOVED after), with traffic: never an accepted replay,
 * 503 + Retry-After while a command cannot finish in time, normal service afterwards.
 *
 * Slow: `CLIENT PAUSE … WRITE` holds every write (the replay store's `SET NX`) on a real
 * redis-server; the held command still runs when the pause ends, after the guard gave up on it.
 * Migration: the store's prefix carries a hash tag, so every replay key lives in one slot, which
 * is moved by hand from its master to another (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE,
 * SETSLOT NODE) between and during requests.
 */
import { RedisReplayStore, redisReady } from '@fapi-guard/redis';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { Cluster, Redis } from 'ioredis';
import { type RunningApp, startExpressApp } from './support/express-app';
import { type Received, send } from './support/http';
import { redisCli, TestRedis, TestRedisCluster } from './support/redis';

const AUDIENCE = 'https://rs.example.com';

let as: MockIssuer;
let dpop: DpopClient;
let token: string;
beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  dpop = await DpopClient.create('ES256');
  token = await as.mint({ scope: 'accounts', jkt: dpop.jkt, lifetimeSec: 600 });
});
afterAll(() => as.stop());

const proof = async () => ({
  authorization: `DPoP ${token}`,
  dpop: await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token }),
});

const startApi = (client: Redis | Cluster, prefix?: string) =>
  startExpressApp({
    issuer: as.issuer,
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    dpop: { replayStore: new RedisReplayStore({ client, timeoutMs: 300, ...(prefix ? { prefix } : {}) }) },
  });

const call = (api: RunningApp, headers: Record<string, string>) => send(`${api.url}/accounts`, { headers });

function expectUnavailable(res: Received): void {
  expect(res.status).toBe(503);
  expect(res.headers['retry-after']).toBe('1');
  expect(res.headers['www-authenticate']).toBeUndefined();
}

describe('III.attack redis: a slow server (writes held by CLIENT PAUSE)', () => {
  let redis: TestRedis;
  let client: Redis;
  let api: RunningApp;
  beforeAll(async () => {
    redis = await TestRedis.start();
    client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    api = await startApi(client);
  });
  afterAll(async () => {
    await api?.close();
    client?.disconnect();
    await redis?.stop();
  });

  it('III.attack redis DEC-09 DPOP-16 a write slower than the timeout is 503 + Retry-After; the late write still makes a retry a replay; then service resumes', async () => {
    const used = await proof();
    expect((await call(api, used)).status).toBe(200);
    redisCli(redis.port, 'client', 'pause', '1500', 'write');
    const late = await proof();
    const started = Date.now();
    const answers = await Promise.all([call(api, late), call(api, used), call(api, late)]);
    // Answered at the command timeout, not when Redis gets round to it.
    expect(Date.now() - started).toBeLessThan(1200);
    for (const res of answers) expectUnavailable(res);
    // The pause ends: the held SET NX of `late` runs. The proof never got a 2xx, and never will.
    await new Promise((r) => setTimeout(r, 1600));
    expect((await call(api, late)).status).toBe(401);
    expect((await call(api, used)).status).toBe(401);
    expect((await call(api, await proof())).status).toBe(200);
  }, 15_000);
});

describe('III.attack redis: a cluster slot migrated under traffic (ASK, then MOVED)', () => {
  const PREFIX = '{fapi-guard}:';
  let cluster: TestRedisCluster;
  let client: Cluster;
  let apis: RunningApp[];
  beforeAll(async () => {
    cluster = await TestRedisCluster.start();
    client = new Cluster(cluster.nodes, { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 1 } });
    client.on('error', () => undefined);
    await redisReady(client, { logger: false, timeoutMs: 10_000 });
    // A connection to every master before traffic: without an offline queue, a command for a
    // node not connected yet fails (503) instead of waiting.
    await Promise.all(client.nodes('master').map((node) => node.ping()));
    // Two API instances on one client each would be as good; one client keeps the test small.
    apis = [await startApi(client, PREFIX), await startApi(client, PREFIX)];
  }, 30_000);
  afterAll(async () => {
    for (const api of apis ?? []) await api.close();
    client?.disconnect();
    await cluster?.stop();
  });

  const nodeId = (master: TestRedis) => redisCli(master.port, 'cluster', 'myid').trim();

  it('III.attack redis DPOP-23 a proof is used once across the slot’s move: ASK while migrating, MOVED after', async () => {
    const source = cluster.masterOf(`${PREFIX}replay:x`);
    const target = cluster.masters.find((m) => m !== source) as TestRedis;
    const slot = redisCli(source.port, 'cluster', 'keyslot', PREFIX).trim();
    const [a, b] = apis as [RunningApp, RunningApp];

    // Background traffic on both instances for the whole move (bounded: 150 calls at most): new
    // proofs, and one proof sent again and again, which may pass once at most.
    const fresh: number[] = [];
    const reusedAnswers: number[] = [];
    let traffic = true;
    const background = (async () => {
      const reused = await proof();
      for (let i = 0; i < 150 && traffic; i++) {
        const again = i % 3 === 0;
        const res = await call(i % 2 ? a : b, again ? reused : await proof());
        (again ? reusedAnswers : fresh).push(res.status);
      }
    })();

    const before = await proof();
    expect((await call(a, before)).status).toBe(200);

    // MIGRATING at the source, IMPORTING at the target: keys still at the source answer there,
    // absent ones are redirected with ASK.
    redisCli(target.port, 'cluster', 'setslot', slot, 'importing', nodeId(source));
    redisCli(source.port, 'cluster', 'setslot', slot, 'migrating', nodeId(target));
    expect((await call(b, before)).status).toBe(401);
    const during = await proof();
    expect((await call(b, during)).status).toBe(200);
    expect((await call(a, during)).status).toBe(401);
    // `during` was absent at the source: its key was written at the target, through ASK.
    expect(Number(redisCli(target.port, 'cluster', 'countkeysinslot', slot).trim())).toBeGreaterThan(0);

    // Keys move with their TTL; then the slot belongs to the target (MOVED from the others).
    const keys = redisCli(source.port, 'cluster', 'getkeysinslot', slot, '1000').trim().split('\n').filter(Boolean);
    expect(keys.length).toBeGreaterThan(0);
    redisCli(source.port, 'migrate', '127.0.0.1', String(target.port), '', '0', '5000', 'keys', ...keys);
    for (const master of cluster.masters) redisCli(master.port, 'cluster', 'setslot', slot, 'node', nodeId(target));
    expect(redisCli(target.port, 'pttl', keys[0] as string).trim()).not.toBe('-1');

    for (const used of [before, during]) {
      expect((await call(a, used)).status).toBe(401);
      expect((await call(b, used)).status).toBe(401);
    }
    const after = await proof();
    expect((await call(a, after)).status).toBe(200);
    expect((await call(b, after)).status).toBe(401);

    traffic = false;
    await background;
    expect(fresh.length).toBeGreaterThan(0);
    expect(fresh).toEqual(fresh.map((s) => (s === 503 ? 503 : 200)));
    expect(reusedAnswers.length).toBeGreaterThan(1);
    expect(reusedAnswers.filter((s) => s === 200).length).toBeLessThanOrEqual(1);
    expect(reusedAnswers.every((s) => s === 200 || s === 401 || s === 503)).toBe(true);
  }, 30_000);
});

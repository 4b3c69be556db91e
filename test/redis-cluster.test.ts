/**
 * `@fapi-guard/redis` on a real Redis Cluster (three masters on loopback ports), through both
 * ioredis `Cluster` and node-redis `createCluster`, set up as docs/packages/redis.md says
 * (`redisReady`, then `sharedSecret`): two API instances share used proofs and the nonce secret,
 * the keys land on all three masters, and a master stopped under traffic costs exactly its keys
 * (503 with Retry-After, within the command timeout) until it is back — no restart of the API.
 */
import { createHash } from 'node:crypto';
import type { GuardLogger } from '@fapi-guard/core';
import { RedisReplayStore, redisReady, sharedSecret } from '@fapi-guard/redis';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { Cluster } from 'ioredis';
import { createCluster } from 'redis';
import { type RunningApp, startExpressApp } from './support/express-app';
import { send } from './support/http';
import { redisCli, type TestRedis, TestRedisCluster } from './support/redis';

const AUDIENCE = 'https://rs.example.com';
const PREFIX = 'fapi-guard:';
let cluster: TestRedisCluster;
let as: MockIssuer;

beforeAll(async () => {
  [cluster, as] = await Promise.all([TestRedisCluster.start(), MockIssuer.start({ audience: AUDIENCE })]);
}, 30_000);
afterAll(async () => {
  await Promise.all([cluster?.stop(), as?.stop()]);
});

interface Connection {
  client: Parameters<typeof redisReady>[0] & Parameters<typeof sharedSecret>[0]['client'];
  close(): void;
}

/** The clients as the README configures them: no offline queue, quick reconnection. */
const CLIENTS: [string, () => Connection][] = [
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

/** The key the replay store writes for a proof of `GET /accounts` with this `jti` (packages/redis README). */
function replayKey(jti: string): string {
  return `${PREFIX}replay:${createHash('sha256').update(`${AUDIENCE}/accounts\n${jti}`).digest('base64url')}`;
}

/** `count` jtis whose replay keys live on `master` (or, with `not`, on any other master); bounded search. */
function jtisOn(master: TestRedis, count: number, not = false): string[] {
  const found: string[] = [];
  for (let i = 0; i < 2000 && found.length < count; i++) {
    const jti = `jti-${process.hrtime.bigint()}-${i}`;
    if ((cluster.masterOf(replayKey(jti)) === master) !== not) found.push(jti);
  }
  if (found.length < count) throw new Error('no jti found for the master');
  return found;
}

describe.each(CLIENTS)('%s', (_name, connect) => {
  const connections: Connection[] = [];
  const apps: RunningApp[] = [];
  const logged: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const logger: GuardLogger = {
    warn: (obj, msg) => logged.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => logged.push({ level: 'error', obj, msg }),
  };
  let client: DpopClient;
  let token: string;

  beforeAll(async () => {
    // Two API instances, each with its own client, as two processes would have.
    for (let i = 0; i < 2; i++) {
      const connection = connect();
      connections.push(connection);
      await redisReady(connection.client, { logger, timeoutMs: 5000 });
      const secret = await sharedSecret({ client: connection.client, name: 'dpop-nonce' });
      apps.push(
        await startExpressApp(
          {
            issuer: as.issuer,
            audience: AUDIENCE,
            publicUrl: AUDIENCE,
            logger,
            dpop: { replayStore: new RedisReplayStore({ client: connection.client, timeoutMs: 500 }), nonce: { secret } },
          },
          (app, fapi) => {
            app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (_req, res) => void res.json({ ok: true }));
            app.get('/statements', fapi.protect({ scopes: ['accounts'], dpopNonce: true }), (_req, res) => void res.json({ ok: true }));
          },
        ),
      );
    }
    client = await DpopClient.create('ES256');
    token = await as.mint({ scope: 'accounts', jkt: client.jkt });
  }, 20_000);
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    for (const c of connections) c.close();
  });

  const [a, b] = [() => apps[0] as RunningApp, () => apps[1] as RunningApp];
  const headers = async (jti?: string, path = '/accounts', nonce?: string) => ({
    authorization: `DPoP ${token}`,
    dpop: await client.proof({ htm: 'GET', htu: `${AUDIENCE}${path}`, accessToken: token, jti, nonce }),
  });

  it('DPOP-23 a proof accepted by one instance is refused as a replay by the other', async () => {
    const used = await headers();
    expect((await send(`${a().url}/accounts`, { headers: used })).status).toBe(200);
    const replay = await send(`${b().url}/accounts`, { headers: used });
    expect(replay.status).toBe(401);
    expect(replay.json.error_description).toBe('The DPoP proof has already been used');
    expect((await send(`${a().url}/accounts`, { headers: used })).status).toBe(401);
  });

  it('DPOP-22 a nonce handed out by one instance is accepted by the other', async () => {
    const challenge = await send(`${a().url}/statements`, { headers: await headers(undefined, '/statements') });
    expect(challenge.status).toBe(401);
    const nonce = challenge.headers['dpop-nonce'] as string;
    expect(nonce).toBeTruthy();
    expect((await send(`${b().url}/statements`, { headers: await headers(undefined, '/statements', nonce) })).status).toBe(200);
  });

  it('DPOP-23 replay keys are spread over the three masters, each on the master that owns its slot', async () => {
    for (const master of cluster.masters) {
      for (const jti of jtisOn(master, 2)) {
        expect((await send(`${a().url}/accounts`, { headers: await headers(jti) })).status).toBe(200);
        // Asked of the owner without cluster redirection: the key is there, not on another node.
        expect(master.running && cluster.masterOf(replayKey(jti))).toBe(master);
        expect(redisCliExists(master, replayKey(jti))).toBe(true);
        expect((await send(`${b().url}/accounts`, { headers: await headers(jti) })).status).toBe(401);
      }
    }
  });

  it('DEC-09 DPOP-16 a master stopped under traffic: 503 with Retry-After for its keys only, recovery without restart', async () => {
    const victim = cluster.masters[1] as TestRedis;
    const [usedOnVictim] = jtisOn(victim, 1) as [string];
    const usedHeaders = await headers(usedOnVictim);
    expect((await send(`${a().url}/accounts`, { headers: usedHeaders })).status).toBe(200);

    // Traffic on both instances while the master goes away and comes back (bounded: 200 calls at most).
    const statuses: number[] = [];
    const replays: number[] = [];
    let traffic = true;
    const background = (async () => {
      for (let i = 0; i < 200 && traffic; i++) {
        const app = i % 2 ? a() : b();
        const replay = i % 5 === 0;
        const { status } = await send(`${app.url}/accounts`, { headers: replay ? usedHeaders : await headers() });
        (replay ? replays : statuses).push(status);
      }
    })();

    await victim.stop({ save: true });
    const logsBefore = logged.length;
    const onVictim = jtisOn(victim, 3);
    const elsewhere = jtisOn(victim, 3, true);
    for (const jti of onVictim) {
      const started = Date.now();
      const res = await send(`${a().url}/accounts`, { headers: await headers(jti) });
      expect(Date.now() - started).toBeLessThan(2000);
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.json.error).toBe('temporarily_unavailable');
    }
    for (const jti of elsewhere) expect((await send(`${b().url}/accounts`, { headers: await headers(jti) })).status).toBe(200);
    // A used proof whose key cannot be read is refused, never accepted.
    expect((await send(`${b().url}/accounts`, { headers: usedHeaders })).status).toBe(503);
    // The operator sees why, without onDecision.
    expect(logged.slice(logsBefore).some((e) => e.obj.reason === 'store_unavailable' && /replay store/.test(String(e.obj.detail)))).toBe(
      true,
    );

    const stoppedAt = Date.now();
    await victim.start();
    let status = 0;
    let [jti] = jtisOn(victim, 1) as [string];
    while (Date.now() - stoppedAt < 15_000 && status !== 200) {
      status = (await send(`${a().url}/accounts`, { headers: await headers(jti) })).status;
      if (status !== 200) {
        [jti] = jtisOn(victim, 1) as [string];
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect(status).toBe(200);
    // Both instances are back for the master's keys, and its saved keys still refuse the replay.
    expect((await send(`${b().url}/accounts`, { headers: await headers(jtisOn(victim, 1)[0]) })).status).toBe(200);
    expect((await send(`${b().url}/accounts`, { headers: usedHeaders })).status).toBe(401);

    traffic = false;
    await background;
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
    expect(replays.length).toBeGreaterThan(0);
    expect(replays.every((s) => s === 401 || s === 503)).toBe(true);
  }, 30_000);
});

function redisCliExists(master: TestRedis, key: string): boolean {
  return redisCli(master.port, 'exists', key).trim() === '1';
}

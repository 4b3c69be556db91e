/**
 * Redis stopped mid-traffic and started again: 503s while it is down (each answered within the
 * bounded wait), never an accepted replay, normal service afterwards without restarting the API.
 */
import { RedisReplayStore } from '@fapi-guard/redis';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { Redis } from 'ioredis';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';
import { TestRedis } from './support/redis';

const AUDIENCE = 'https://rs.example.com';

it('DEC-09 DPOP-16 fails closed while Redis is down and recovers by itself', async () => {
  const redis = await TestRedis.start();
  const as = await MockIssuer.start({ audience: AUDIENCE });
  const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  client.on('error', () => undefined);
  const api = await startExpressApp({
    issuer: as.issuer,
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    dpop: { replayStore: new RedisReplayStore({ client, timeoutMs: 300 }) },
  });
  try {
    const dpop = await DpopClient.create('ES256');
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt });
    const request = async () => ({
      authorization: `DPoP ${token}`,
      dpop: await dpop.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token }),
    });
    const used = await request();
    expect((await send(`${api.url}/accounts`, { headers: used })).status).toBe(200);

    await redis.stop({ save: true });
    const during: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = Date.now();
      const res = await send(`${api.url}/accounts`, { headers: i % 2 ? used : await request() });
      expect(Date.now() - started).toBeLessThan(2000);
      during.push(res.status);
    }
    expect(new Set(during)).toEqual(new Set([503]));

    await redis.start();
    // The client reconnects by itself; bounded wait for it.
    const until = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < until && status !== 200) {
      status = (await send(`${api.url}/accounts`, { headers: await request() })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
    // The proof used before the outage is still a replay: the keys survived the restart.
    expect((await send(`${api.url}/accounts`, { headers: used })).status).toBe(401);
  } finally {
    await api.close();
    client.disconnect();
    await as.stop();
    await redis.stop();
  }
});

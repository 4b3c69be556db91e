// An API instance in its own process, for the test that kills one mid-request
// (test/idempotency-redis.test.ts): Express with @fapi-guard/express and the idempotency store on
// Redis (the built packages in dist/, as `npm test` builds them first). Its payments handler counts in Redis that it started, then waits far longer than any test
// (the process is killed first), then would count that it finished.
import { once } from 'node:events';
import { fapiGuard } from '@fapi-guard/express';
import { RedisIdempotencyStore } from '@fapi-guard/redis';
import express from 'express';
import { Redis } from 'ioredis';

const { issuer, audience, redisUrl, policy } = JSON.parse(process.argv[2] ?? '{}');
const client = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
await once(client, 'ready');
const fapi = fapiGuard({ issuer, audience, publicUrl: audience, idempotency: { store: new RedisIdempotencyStore({ client }) } });
const app = express();
app.use(fapi.rawBody());
app.use(express.json());
app.post('/payments', fapi.protect(policy), async (_req, res) => {
  await client.incr('test:started');
  await new Promise((resolve) => setTimeout(resolve, 120_000));
  await client.incr('test:finished');
  res.status(201).json({ payment: 'from-the-killed-process' });
});
const server = app.listen(0, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));

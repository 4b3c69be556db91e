/**
 * Replay-store throughput: the same claim loop against the in-memory store and the Redis store
 * (a private redis-server on a free loopback port). Prints claims/s and the ratio.
 * Run: npm run bench:replay   (bounded: 20 000 claims per store, 100 in flight)
 */
import { MemoryReplayStore, type ReplayStore } from '@fapi-guard/core';
import { RedisReplayStore } from '@fapi-guard/redis';
import { Redis } from 'ioredis';
import { TestRedis } from '../test/support/redis';

const CLAIMS = 20_000;
const IN_FLIGHT = 100;

async function measure(store: ReplayStore): Promise<number> {
  const expiresAt = Date.now() + 70_000;
  const started = performance.now();
  for (let i = 0; i < CLAIMS / IN_FLIGHT; i++) {
    await Promise.all(Array.from({ length: IN_FLIGHT }, (_v, j) => store.claim(`k-${i}-${j}-${started}`, expiresAt)));
  }
  return CLAIMS / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  const server = await TestRedis.start();
  const client = new Redis(server.url);
  try {
    const redis = new RedisReplayStore({ client, prefix: 'bench:' });
    const memory = new MemoryReplayStore();
    await measure(memory); // warm-up
    await measure(redis);
    const m = await measure(memory);
    const r = await measure(redis);
    console.log(`replay store, ${CLAIMS} claims, ${IN_FLIGHT} in flight`);
    console.log(`  memory  ${Math.round(m).toLocaleString('en')} claims/s`);
    console.log(`  redis   ${Math.round(r).toLocaleString('en')} claims/s   (${(r / m).toFixed(3)} × memory)`);
  } finally {
    client.disconnect();
    await server.stop();
  }
}

void main();

/**
 * Shared state for fapi-guard on Redis (or Valkey), for APIs that run as several instances:
 * the DPoP replay store (RFC 9449 §11.1), the introspection cache (RFC 7662 §4), the DPoP
 * nonce secret (RFC 9449 §9), and idempotency keys with their stored responses. Each key is
 * independent and every command touches one key, so the design works unchanged on Redis Cluster (ioredis `Cluster`, node-redis `createCluster`).
 */
import { randomBytes } from 'node:crypto';
import type { CachedIntrospection, IdempotencyStore, IntrospectionCache, ReplayStore } from '@fapi-guard/core';
import { commandFor, type RedisClientLike, type RedisCommand } from './command.js';
import { RedisIdempotencyStoreCore } from './idempotency.js';

export { type NodeRedisClusterLike, type RedisClientLike, type RedisCommand, RedisUnavailableError } from './command.js';
export { type RedisConnectionLike, type RedisReadyOptions, redisReady } from './ready.js';

export interface RedisStoreOptions {
  /** The application's client: ioredis, node-redis, or `(args) => Promise`. */
  client: RedisClientLike;
  /** Prefix of every key, to share one Redis between APIs. @default 'fapi-guard:' */
  prefix?: string;
  /**
   * Longest wait for one command. Past it the request is refused with 503 (replay store) or
   * treated as a cache miss (introspection cache): never an accepted replay.
   * @default 500
   */
  timeoutMs?: number;
  /** Current time in ms (for TTLs). @default Date.now */
  clock?: () => number;
}

function settings(options: RedisStoreOptions): { command: RedisCommand; prefix: string; now: () => number } {
  const timeoutMs = options.timeoutMs ?? 500;
  if (!(timeoutMs > 0 && timeoutMs <= 30_000)) throw new TypeError('fapi-guard: redis timeoutMs must be between 1 and 30000');
  return { command: commandFor(options.client, timeoutMs), prefix: options.prefix ?? 'fapi-guard:', now: options.clock ?? Date.now };
}

/**
 * {@link ReplayStore} on Redis: `SET key 1 PX ttl NX`, atomic and one round trip. A proof
 * claimed on one instance is a replay on every other.
 */
export class RedisReplayStore implements ReplayStore {
  private readonly s: ReturnType<typeof settings>;

  constructor(options: RedisStoreOptions) {
    this.s = settings(options);
  }

  async claim(key: string, expiresAt: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(expiresAt - this.s.now()));
    const answer = await this.s.command(['SET', `${this.s.prefix}replay:${key}`, '1', 'PX', String(ttl), 'NX']);
    // 'OK': first use; null: the key existed. Anything else is not a proof of first use.
    if (answer === 'OK') return true;
    if (answer === null) return false;
    throw new Error(`unexpected SET answer ${JSON.stringify(answer)}`);
  }
}

/**
 * {@link IntrospectionCache} on Redis, so one instance's answer (and a revocation it saw)
 * serves all. Values are JSON; keys are the token hashes the core hands over.
 */
export class RedisIntrospectionCache implements IntrospectionCache {
  private readonly s: ReturnType<typeof settings>;

  constructor(options: RedisStoreOptions) {
    this.s = settings(options);
  }

  async get(key: string): Promise<CachedIntrospection | undefined> {
    const value = await this.s.command(['GET', `${this.s.prefix}introspection:${key}`]);
    if (typeof value !== 'string') return undefined;
    try {
      const parsed = JSON.parse(value) as CachedIntrospection;
      return typeof parsed === 'object' && parsed !== null && typeof parsed.active === 'boolean' ? parsed : undefined;
    } catch {
      return undefined;
    }
  }

  async set(key: string, value: CachedIntrospection, expiresAt: number): Promise<void> {
    const ttl = Math.ceil(expiresAt - this.s.now());
    if (ttl <= 0) return;
    await this.s.command(['SET', `${this.s.prefix}introspection:${key}`, JSON.stringify(value), 'PX', String(ttl)]);
  }
}

/**
 * {@link IdempotencyStore} on Redis (idempotency keys of routes whose policy sets `idempotency`):
 * pass it as the guard's `idempotency.store`. Each operation is one Lua script on one key, so the
 * claim is atomic on a single node and on Redis Cluster; a Redis that cannot answer within
 * `timeoutMs` makes the request 503 (with `Retry-After`), never a second processing.
 */
export class RedisIdempotencyStore extends RedisIdempotencyStoreCore implements IdempotencyStore {
  constructor(options: Omit<RedisStoreOptions, 'clock'>) {
    super(settings(options));
  }
}

/**
 * A secret every instance agrees on, created by whichever instance comes first
 * (`SET NX`, then `GET`): e.g. the DPoP nonce secret, so a nonce from one instance is valid
 * at all. Call it at start-up, after {@link redisReady}; it rejects when Redis cannot be reached.
 */
export async function sharedSecret(options: Omit<RedisStoreOptions, 'clock'> & { name: string; bytes?: number }): Promise<string> {
  const { command, prefix } = settings(options);
  const key = `${prefix}secret:${options.name}`;
  await command(['SET', key, randomBytes(options.bytes ?? 32).toString('base64url'), 'NX']);
  const value = await command(['GET', key]);
  if (typeof value !== 'string' || value.length < 32) throw new Error(`shared secret ${key} is missing or too short`);
  return value;
}

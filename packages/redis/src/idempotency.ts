/**
 * {@link IdempotencyStore} on Redis (or Valkey), single node or Cluster: every API instance that
 * shares it sees the same claims and stored responses, so of twenty concurrent retries spread over
 * several instances exactly one is processed. One Redis key per (client, idempotency key) — the
 * core's hashed store key — so all of an entry lives in one Cluster slot, and each operation is
 * one Lua script on that key: atomic on the master that owns it.
 */
import { randomUUID } from 'node:crypto';
import type { IdempotencyClaim, IdempotencyOutcome, IdempotencyRecord, IdempotencyStore } from '@fapi-guard/core';
import { type RedisCommand, RedisUnavailableError } from './command.js';

/** Claims the key when it is free (SET … PX lease); otherwise answers what it holds. */
const CLAIM = `local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

/** Replaces the claim by the outcome, only while the key still holds this very claim. */
const COMPLETE = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

/** Frees the key, only while it still holds this very claim. */
/** Renews the claim's lease while its request is still running (same value: still this claim). */
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** The stored form: JSON, the body in base64. */
type Stored =
  | { s: 'in_flight'; f: string; t: string }
  | { s: 'unkept'; f: string; l?: number }
  | { s: 'done'; f: string; status: number; headers: [string, string][]; body: string; l?: number };

function encode(outcome: IdempotencyOutcome): string {
  if (outcome.state === 'unkept') {
    const layers = outcome.layers === undefined ? {} : { l: outcome.layers };
    return JSON.stringify({ s: 'unkept', f: outcome.fingerprint, ...layers } satisfies Stored);
  }
  const { status, headers, body, layers } = outcome.response;
  return JSON.stringify({
    s: 'done',
    f: outcome.fingerprint,
    status,
    headers: headers.map(([name, value]) => [name, value]),
    body: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64'),
    // The layers that authorized the first request: a retry is answered after as many.
    ...(layers === undefined ? {} : { l: layers }),
  } satisfies Stored);
}

/** What a key holds; anything unreadable is an error (503), never "free". */
function decode(value: unknown): IdempotencyRecord {
  if (typeof value !== 'string') throw new Error(`unexpected idempotency record ${typeof value}`);
  const stored = JSON.parse(value) as Stored;
  if (stored.s === 'in_flight') return { state: stored.s, fingerprint: stored.f };
  if (stored.s === 'unkept') return { state: stored.s, fingerprint: stored.f, ...(stored.l === undefined ? {} : { layers: stored.l }) };
  if (stored.s === 'done') {
    const body = Buffer.from(stored.body, 'base64');
    const response = { status: stored.status, headers: stored.headers, body, ...(stored.l === undefined ? {} : { layers: stored.l }) };
    return { state: 'done', fingerprint: stored.f, response };
  }
  throw new Error('unknown idempotency record');
}

export interface RedisIdempotencyStoreSettings {
  command: RedisCommand;
  prefix: string;
}

export class RedisIdempotencyStoreCore implements IdempotencyStore {
  constructor(private readonly s: RedisIdempotencyStoreSettings) {}

  private key(key: string): string {
    return `${this.s.prefix}idempotency:${key}`;
  }

  async claim(key: string, fingerprint: string, leaseMs: number): Promise<IdempotencyClaim> {
    // The claim's own value is its token: complete and release compare the whole value.
    const token = JSON.stringify({ s: 'in_flight', f: fingerprint, t: randomUUID() } satisfies Stored);
    let held: unknown;
    try {
      held = await this.s.command(['EVAL', CLAIM, '1', this.key(key), token, String(Math.max(1, Math.ceil(leaseMs)))]);
    } catch (e) {
      // A claim that timed out may still have been written: taken back, so that the key is not
      // blocked for the whole lease by a request that was refused (503) and never processed.
      if (e instanceof RedisUnavailableError) this.release(key, token).catch(() => undefined);
      throw e;
    }
    if (held === null || held === undefined) return { claimed: true, token };
    return { claimed: false, record: decode(held) };
  }

  async complete(key: string, token: string, outcome: IdempotencyOutcome, ttlMs: number): Promise<void> {
    await this.s.command(['EVAL', COMPLETE, '1', this.key(key), token, encode(outcome), String(Math.max(1, Math.ceil(ttlMs)))]);
  }

  async extend(key: string, token: string, leaseMs: number): Promise<void> {
    await this.s.command(['EVAL', EXTEND, '1', this.key(key), token, String(Math.max(1, Math.ceil(leaseMs)))]);
  }

  async release(key: string, token: string): Promise<void> {
    await this.s.command(['EVAL', RELEASE, '1', this.key(key), token]);
  }
}

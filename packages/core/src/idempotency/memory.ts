/**
 * A per-process {@link IdempotencyStore} on `lru-cache` (per-entry TTLs, sizes in bytes). It is
 * bounded in entries and in bytes, and it never evicts a live entry to make room: an evicted
 * claim or response would let a retry be processed a second time. When it is full of unexpired
 * entries a new claim is refused (503, nothing processed), and a response that does not fit is
 * kept as "processed, response not kept" (409 to retries) instead.
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  type IdempotencyClaim,
  type IdempotencyOutcome,
  type IdempotencyRecord,
  type IdempotencyStore,
  IdempotencyStoreFullError,
} from './store.js';

export interface MemoryIdempotencyStoreOptions {
  /** Most keys held (claims and outcomes). @default 100000 */
  max?: number;
  /**
   * Most bytes of stored responses (bodies and headers) held. The default holds 16 384 responses
   * of 4 KiB; size it to peak payments per `ttlSec` × typical response size.
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number;
}

interface Entry {
  record: IdempotencyRecord;
  /** The claim's token while in flight. */
  token: string | undefined;
}

/** Bytes an entry is counted as: its response, plus a fixed share for the key and bookkeeping. */
function sizeOf(record: IdempotencyRecord): number {
  if (record.state !== 'done') return 256;
  let size = 256 + record.response.body.byteLength;
  for (const [name, value] of record.response.headers) size += name.length + value.length;
  return size;
}

export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly cache: LRUCache<string, Entry>;
  private readonly max: number;
  private readonly maxBytes: number;
  private lastPurge = Number.NEGATIVE_INFINITY;

  constructor(options: MemoryIdempotencyStoreOptions = {}) {
    this.max = options.max ?? 100_000;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    if (!Number.isInteger(this.max) || this.max < 1)
      throw new TypeError('fapi-guard: MemoryIdempotencyStore max must be a positive integer');
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1024)
      throw new TypeError('fapi-guard: MemoryIdempotencyStore maxBytes must be an integer of at least 1024');
    this.cache = new LRUCache<string, Entry>({ max: this.max, maxSize: this.maxBytes });
  }

  /** True when `size` more bytes (and, unless replacing, one more key) fit without evicting anything live. */
  private fits(size: number, replacing: number | undefined): boolean {
    const room = () =>
      (replacing !== undefined || this.cache.size < this.max) && this.cache.calculatedSize - (replacing ?? 0) + size <= this.maxBytes;
    if (room()) return true;
    // Expired entries are dropped on access; a full sweep runs at most once a second.
    const now = Date.now();
    if (now - this.lastPurge < 1000) return false;
    this.lastPurge = now;
    this.cache.purgeStale();
    return room();
  }

  async claim(key: string, fingerprint: string, leaseMs: number): Promise<IdempotencyClaim> {
    const held = this.cache.get(key);
    if (held) return { claimed: false, record: held.record };
    const record: IdempotencyRecord = { state: 'in_flight', fingerprint };
    const size = sizeOf(record);
    if (!this.fits(size, undefined)) throw new IdempotencyStoreFullError(`${this.cache.size} keys, ${this.cache.calculatedSize} bytes`);
    const token = randomUUID();
    this.cache.set(key, { record, token }, { ttl: leaseMs, size });
    return { claimed: true, token };
  }

  async complete(key: string, token: string, outcome: IdempotencyOutcome, ttlMs: number): Promise<void> {
    const held = this.cache.get(key);
    if (!held || held.token !== token) return;
    const replacing = this.cache.getRemainingTTL(key) > 0 ? sizeOf(held.record) : 0;
    let record: IdempotencyRecord = outcome;
    if (!this.fits(sizeOf(record), replacing)) record = { state: 'unkept', fingerprint: outcome.fingerprint };
    this.cache.set(key, { record, token: undefined }, { ttl: ttlMs, size: sizeOf(record) });
  }

  async release(key: string, token: string): Promise<void> {
    if (this.cache.get(key)?.token === token) this.cache.delete(key);
  }

  /** Keys currently held (for metrics and tests). */
  get size(): number {
    return this.cache.size;
  }
}

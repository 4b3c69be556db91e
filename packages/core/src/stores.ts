/**
 * State that several API instances may have to share, behind small interfaces, with bounded
 * in-memory implementations on `lru-cache`. `@fapi-guard/redis` implements the same interfaces.
 */
import { LRUCache } from 'lru-cache';

/**
 * Remembers one-time values (DPoP `jti`s, RFC 9449 §11.1) until they expire.
 * The single operation is atomic, so it maps onto Redis `SET key 1 NX PXAT expiresAt`.
 */
export interface ReplayStore {
  /**
   * Claims `key` until `expiresAt` (ms since the epoch). Resolves `true` when the key was
   * free (first use), `false` when it was already claimed (a replay). Rejects when the store
   * cannot answer; the request is then refused with 503, never accepted.
   */
  claim(key: string, expiresAt: number): Promise<boolean>;
}

/** Thrown when the in-memory store is full of unexpired keys: refuse rather than forget one. */
export class ReplayStoreFullError extends Error {
  constructor(max: number) {
    super(`replay store holds ${max} unexpired keys`);
    this.name = 'ReplayStoreFullError';
  }
}

export interface MemoryReplayStoreOptions {
  /**
   * Most keys held. Evicting an unexpired key would let its proof be replayed, so when the
   * store is full of unexpired keys, new claims fail (503) instead.
   * Size it as peak proofs per second × the acceptance window (DPoP: 70 s by default); the
   * default covers about 7 000 proofs per second per process, at roughly 360 bytes per key
   * (about 180 MiB when full).
   * @default 500000
   */
  max?: number;
  /** Current time in ms. @default Date.now */
  clock?: () => number;
}

/** A per-process {@link ReplayStore}. With several API instances, use a shared store. */
export class MemoryReplayStore implements ReplayStore {
  private readonly cache: LRUCache<string, true>;
  private readonly max: number;
  private readonly now: () => number;
  private lastPurge = Number.NEGATIVE_INFINITY;

  constructor(options: MemoryReplayStoreOptions = {}) {
    this.max = options.max ?? 500_000;
    this.now = options.clock ?? Date.now;
    // lru-cache's own clock is performance.now(); expiry is checked against ours instead.
    // ttlResolution 0: staleness is judged by the clock at each call, not a timer-refreshed copy.
    this.cache = new LRUCache<string, true>({
      max: this.max,
      ttl: 1,
      ttlResolution: 0,
      ttlAutopurge: false,
      perf: { now: () => this.now() },
    });
  }

  async claim(key: string, expiresAt: number): Promise<boolean> {
    if (this.cache.has(key)) return false;
    // Expired keys are dropped in one sweep every few seconds, so memory follows the live
    // window instead of creeping up to the bound; a full store sweeps at most once a second,
    // so a flood cannot make each claim O(n).
    const now = this.now();
    const full = this.cache.size >= this.max;
    if (now - this.lastPurge >= (full ? 1000 : 5000)) {
      this.lastPurge = now;
      this.cache.purgeStale();
    }
    if (this.cache.size >= this.max) throw new ReplayStoreFullError(this.max);
    this.cache.set(key, true, { ttl: Math.max(1, expiresAt - this.now()) });
    return true;
  }

  /** Keys currently held (for metrics). */
  get size(): number {
    return this.cache.size;
  }
}

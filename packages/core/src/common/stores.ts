/**
 * State that several API instances may have to share, behind small interfaces, with bounded
 * in-memory implementations. `@fapi-guard/redis` implements the same interfaces.
 */

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
  /**
   * The same, answered at once, for stores that hold their keys in this process: the guard
   * uses it when present and saves a promise per request.
   */
  claimNow?(key: string, expiresAt: number): boolean;
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
   * store is full of unexpired keys, new claims fail (503) instead. Memory follows the live
   * keys (expired ones are dropped), about 155 bytes of heap each for the guard's keys: 1.5
   * million keys, the default, is about 230 MiB (`npm run bench:memory`) and covers about
   * 21 000 proofs per second per process with the default 70-second window (peak proofs per
   * second × window). Only proofs that passed every
   * other check are claimed, so filling it takes valid tokens and keys.
   * @default 1500000
   */
  max?: number;
  /** Current time in ms. @default Date.now */
  clock?: () => number;
}

/**
 * A per-process {@link ReplayStore}. With several API instances, use a shared store.
 *
 * A `Map` from key to expiry. Keys arrive in nearly the order they expire (every proof gets the
 * same window after its `iat`), so expired keys are dropped from the oldest end as new ones come
 * in — every key deleted once, no timers; a full sweep runs only when the store is full (at
 * most once a second), so a flood cannot make each claim O(n).
 */
export class MemoryReplayStore implements ReplayStore {
  private readonly keys = new Map<string, number>();
  private readonly max: number;
  private readonly now: () => number;
  private lastSweep = Number.NEGATIVE_INFINITY;
  private nextDrop = Number.NEGATIVE_INFINITY;

  constructor(options: MemoryReplayStoreOptions = {}) {
    this.max = options.max ?? 1_500_000;
    if (!Number.isInteger(this.max) || this.max < 1) throw new TypeError('fapi-guard: MemoryReplayStore max must be a positive integer');
    this.now = options.clock ?? Date.now;
  }

  async claim(key: string, expiresAt: number): Promise<boolean> {
    return this.claimNow(key, expiresAt);
  }

  claimNow(key: string, expiresAt: number): boolean {
    const now = this.now();
    const held = this.keys.get(key);
    if (held !== undefined && held > now) return false;
    this.dropExpired(now);
    if (this.keys.size >= this.max) {
      if (now - this.lastSweep >= 1000) {
        this.lastSweep = now;
        for (const [k, expiry] of this.keys) if (expiry <= now) this.keys.delete(k);
      }
      if (this.keys.size >= this.max) throw new ReplayStoreFullError(this.max);
    }
    // delete first: a re-claimed expired key moves to the young end of the insertion order.
    this.keys.delete(key);
    this.keys.set(key, expiresAt);
    return true;
  }

  /**
   * Drops expired keys from the oldest end, at most every 100 ms: each key is deleted once, so
   * the cost per claim stays constant on average.
   */
  private dropExpired(now: number): void {
    if (now < this.nextDrop) return;
    this.nextDrop = now + 100;
    for (const [k, expiry] of this.keys) {
      if (expiry > now) return;
      this.keys.delete(k);
    }
  }

  /** Keys currently held (for metrics). */
  get size(): number {
    return this.keys.size;
  }
}

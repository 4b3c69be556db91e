/**
 * A per-process {@link IdempotencyStore} on `lru-cache` (per-entry TTLs, sizes in bytes). It is
 * bounded in entries and in bytes, and it never evicts a live entry to make room: an evicted
 * claim or response would let a retry be processed a second time. When it is full of unexpired
 * entries a new claim is refused (503, nothing processed), and a response that does not fit is
 * kept as "processed, response not kept" (409 to retries) instead.
 *
 * Each client holds at most its share (`maxPerClient` keys, `maxBytesPerClient` bytes): a client
 * that sends new keys as fast as it can fills its own share and gets 503, while every other
 * client's payments go on.
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  type IdempotencyClaim,
  type IdempotencyOutcome,
  type IdempotencyRecord,
  type IdempotencyStore,
  IdempotencyStoreFullError,
  type StoredResponse,
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
  /**
   * Most keys one client (issuer and `client_id`) holds; past it that client's new keys get 503
   * until its own keys expire. Size it to one client's peak payments per `ttlSec`.
   * @default max / 10 (10000)
   */
  maxPerClient?: number;
  /** Most bytes of stored responses one client holds; past it its responses are not kept (409 to retries). @default maxBytes / 10, at least 256 */
  maxBytesPerClient?: number;
}

interface Entry {
  record: IdempotencyRecord;
  /** The claim's token while in flight. */
  token: string | undefined;
  client: string;
  size: number;
}

/** What one client holds: its keys (to find its expired ones) and their bytes. */
interface Share {
  keys: Set<string>;
  bytes: number;
}

/** The layers that checked the first request, kept when its response is not (layers.ts). */
function layersOf({ layers }: StoredResponse): { layers?: number } {
  return layers === undefined ? {} : { layers };
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
  private readonly maxPerClient: number;
  private readonly maxBytesPerClient: number;
  private readonly shares = new Map<string, Share>();
  private lastPurge = Number.NEGATIVE_INFINITY;

  constructor(options: MemoryIdempotencyStoreOptions = {}) {
    for (const name of Object.keys(options))
      if (!['max', 'maxBytes', 'maxPerClient', 'maxBytesPerClient'].includes(name))
        throw new TypeError(`fapi-guard: MemoryIdempotencyStore has no option ${JSON.stringify(name)}`);
    this.max = options.max ?? 100_000;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    if (!Number.isInteger(this.max) || this.max < 1)
      throw new TypeError('fapi-guard: MemoryIdempotencyStore max must be a positive integer');
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1024)
      throw new TypeError('fapi-guard: MemoryIdempotencyStore maxBytes must be an integer of at least 1024');
    this.maxPerClient = options.maxPerClient ?? Math.max(1, Math.floor(this.max / 10));
    // A tenth of maxBytes, and never less than one claim (256 bytes): maxBytes alone is enough to set.
    this.maxBytesPerClient = options.maxBytesPerClient ?? Math.max(256, Math.floor(this.maxBytes / 10));
    if (!Number.isInteger(this.maxPerClient) || this.maxPerClient < 1 || this.maxPerClient > this.max)
      throw new TypeError('fapi-guard: MemoryIdempotencyStore maxPerClient must be an integer between 1 and max');
    if (!Number.isInteger(this.maxBytesPerClient) || this.maxBytesPerClient < 256 || this.maxBytesPerClient > this.maxBytes)
      throw new TypeError('fapi-guard: MemoryIdempotencyStore maxBytesPerClient must be an integer between 256 and maxBytes');
    // Every way an entry leaves (expiry seen, delete, replacement) gives its client's share back.
    this.cache = new LRUCache<string, Entry>({
      max: this.max,
      maxSize: this.maxBytes,
      dispose: (entry, key) => this.unshare(entry, key),
    });
  }

  private unshare(entry: Entry, key: string): void {
    const share = this.shares.get(entry.client);
    // Stryker disable next-line ConditionalExpression: equivalent, every entry is put with its client's share, which is dropped only with its last key
    if (!share) return;
    share.bytes -= entry.size;
    share.keys.delete(key);
    // Stryker disable next-line ConditionalExpression: equivalent in answers (a client without keys has room either way); it keeps the map from growing with every client ever seen
    if (share.keys.size === 0) this.shares.delete(entry.client);
  }

  private put(key: string, entry: Entry, ttl: number): void {
    this.cache.set(key, entry, { ttl, size: entry.size });
    let share = this.shares.get(entry.client);
    if (!share) {
      share = { keys: new Set(), bytes: 0 };
      this.shares.set(entry.client, share);
    }
    share.keys.add(key);
    share.bytes += entry.size;
  }

  /** True when the client's share has room for `size` more bytes (and one more key unless `replacing`). */
  private clientFits(client: string, size: number, replacing: number | undefined): boolean {
    const room = () => {
      const share = this.shares.get(client);
      const keys = share?.keys.size ?? 0;
      const bytes = share?.bytes ?? 0;
      return (replacing !== undefined || keys < this.maxPerClient) && bytes - (replacing ?? 0) + size <= this.maxBytesPerClient;
    };
    // Stryker disable next-line ConditionalExpression: equivalent, a fast path (the sweep below finds the same room)
    if (room()) return true;
    // Its expired entries are dropped (get() of a stale entry deletes it): at most its own share.
    // Stryker disable next-line OptionalChaining,ArrayDeclaration: equivalent, a client without a share always has room (one claim is 256 bytes, maxBytesPerClient at least 256); complete() asks for a held key, whose client has one
    for (const key of [...(this.shares.get(client)?.keys ?? [])]) this.cache.get(key);
    return room();
  }

  /** True when `size` more bytes (and, unless replacing, one more key) fit without evicting anything live. */
  private fits(size: number, replacing: number | undefined): boolean {
    const room = () =>
      (replacing !== undefined || this.cache.size < this.max) && this.cache.calculatedSize - (replacing ?? 0) + size <= this.maxBytes;
    // Stryker disable next-line ConditionalExpression: equivalent, a fast path (the sweep below finds the same room)
    if (room()) return true;
    // Expired entries are dropped on access; a full sweep runs at most once a second.
    const now = Date.now();
    if (now - this.lastPurge < 1000) return false;
    this.lastPurge = now;
    this.cache.purgeStale();
    return room();
  }

  async claim(key: string, fingerprint: string, leaseMs: number, client: string): Promise<IdempotencyClaim> {
    const held = this.cache.get(key);
    if (held) return { claimed: false, record: held.record };
    const record: IdempotencyRecord = { state: 'in_flight', fingerprint };
    const size = sizeOf(record);
    if (!this.clientFits(client, size, undefined))
      throw new IdempotencyStoreFullError(`this client's share: ${this.maxPerClient} keys, ${this.maxBytesPerClient} bytes`);
    if (!this.fits(size, undefined)) throw new IdempotencyStoreFullError(`${this.cache.size} keys, ${this.cache.calculatedSize} bytes`);
    const token = randomUUID();
    this.put(key, { record, token, client, size }, leaseMs);
    return { claimed: true, token };
  }

  async complete(key: string, token: string, outcome: IdempotencyOutcome, ttlMs: number): Promise<void> {
    const held = this.cache.get(key);
    if (!held || held.token !== token) return;
    // `get` answers live entries only: the claim's bytes are replaced by the outcome's.
    const replacing = held.size;
    let record: IdempotencyRecord = outcome;
    // Only a response can outgrow its claim (every other record is counted as 256 bytes, as the claim is).
    // Stryker disable next-line ConditionalExpression: equivalent (→ true), any other outcome replaces its 256-byte claim with 256 bytes, which always fits; `!==` still runs
    if (outcome.state === 'done') {
      const size = sizeOf(record);
      if (!this.clientFits(held.client, size, replacing) || !this.fits(size, replacing))
        record = { state: 'unkept', fingerprint: outcome.fingerprint, ...layersOf(outcome.response) };
    }
    this.put(key, { record, token: undefined, client: held.client, size: sizeOf(record) }, ttlMs);
  }

  async extend(key: string, token: string, leaseMs: number): Promise<void> {
    const held = this.cache.get(key);
    // The same entry set again: a new TTL, no change to its size or its client's share.
    if (held?.token === token) this.cache.set(key, held, { ttl: leaseMs, size: held.size });
  }

  async release(key: string, token: string): Promise<void> {
    if (this.cache.get(key)?.token === token) this.cache.delete(key);
  }

  /** Keys currently held (for metrics and tests). */
  get size(): number {
    return this.cache.size;
  }
}

import { IdempotencyStoreFullError, MemoryIdempotencyStore, MemoryReplayStore, ReplayStoreFullError } from '@fapi-guard/core';

describe('MemoryReplayStore', () => {
  it('DPOP-23 claims a key once until it expires', async () => {
    let now = 1_000_000;
    const store = new MemoryReplayStore({ clock: () => now });
    expect(await store.claim('a', now + 70_000)).toBe(true);
    expect(await store.claim('a', now + 70_000)).toBe(false);
    now += 70_001;
    expect(await store.claim('a', now + 70_000)).toBe(true);
  });

  it('stays bounded: when full of live keys it refuses instead of forgetting one, and recovers as they expire', async () => {
    let now = 1_000_000;
    const store = new MemoryReplayStore({ max: 3, clock: () => now });
    for (const k of ['a', 'b', 'c']) expect(await store.claim(k, now + 10_000)).toBe(true);
    await expect(store.claim('d', now + 10_000)).rejects.toBeInstanceOf(ReplayStoreFullError);
    expect(await store.claim('a', now + 10_000)).toBe(false);
    now += 10_001;
    expect(await store.claim('d', now + 10_000)).toBe(true);
    expect(store.size).toBeLessThanOrEqual(3);
  });
});

describe('MemoryIdempotencyStore', () => {
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** A stored response of exactly `size` counted bytes (256 for the key and bookkeeping, the body, header names and values). */
  const response = (size: number, layers?: number) => ({
    status: 201,
    headers: [['ab', 'cd']] as const,
    body: new Uint8Array(size - 256 - 4),
    ...(layers === undefined ? {} : { layers }),
  });
  const done = (size: number, layers?: number) => ({ state: 'done' as const, fingerprint: 'f', response: response(size, layers) });
  async function claimed(store: MemoryIdempotencyStore, key: string, client = 'a', leaseMs = 60_000): Promise<string> {
    const claim = await store.claim(key, 'f', leaseMs, client);
    if (!claim.claimed) throw new Error(`${key} was not claimed`);
    return claim.token;
  }

  it('IDEM-12 refuses options it does not know and bounds that cannot hold, each at its edge', () => {
    const refused = (options: object) => () => new MemoryIdempotencyStore(options as never);
    expect(refused({ maxKeys: 1 })).toThrow('fapi-guard: MemoryIdempotencyStore has no option "maxKeys"');
    for (const max of [0, 1.5]) expect(refused({ max })).toThrow('fapi-guard: MemoryIdempotencyStore max must be a positive integer');
    for (const maxBytes of [1023, 2048.5])
      expect(refused({ maxBytes })).toThrow('fapi-guard: MemoryIdempotencyStore maxBytes must be an integer of at least 1024');
    for (const maxPerClient of [0, 1.5, 11])
      expect(refused({ max: 10, maxPerClient })).toThrow(
        'fapi-guard: MemoryIdempotencyStore maxPerClient must be an integer between 1 and max',
      );
    for (const maxBytesPerClient of [255, 300.5, 1025])
      expect(refused({ maxBytes: 1024, maxBytesPerClient })).toThrow(
        'fapi-guard: MemoryIdempotencyStore maxBytesPerClient must be an integer between 256 and maxBytes',
      );
    for (const options of [
      { max: 1 },
      { maxBytes: 1024 },
      { max: 10, maxPerClient: 10 },
      { maxBytes: 1024, maxBytesPerClient: 256 },
      { maxBytes: 1024, maxBytesPerClient: 1024 },
    ])
      expect(() => new MemoryIdempotencyStore(options)).not.toThrow();
  });

  it('IDEM-04 a key is claimed once; its outcome is kept for the claim’s token only; a release frees it', async () => {
    const store = new MemoryIdempotencyStore();
    const token = await claimed(store, 'k');
    expect(store.size).toBe(1);
    expect(await store.claim('k', 'f', 60_000, 'a')).toEqual({ claimed: false, record: { state: 'in_flight', fingerprint: 'f' } });
    await store.complete('k', 'another token', done(300), 60_000);
    await store.release('k', 'another token');
    await store.release('never claimed', token);
    expect(await store.claim('k', 'f', 60_000, 'a')).toEqual({ claimed: false, record: { state: 'in_flight', fingerprint: 'f' } });
    await store.complete('k', token, done(300, 2), 60_000);
    expect(await store.claim('k', 'f', 60_000, 'a')).toEqual({ claimed: false, record: done(300, 2) });
    // A completed key holds no claim any more: its old token frees nothing.
    await store.release('k', token);
    expect(await store.claim('k', 'f', 60_000, 'a')).toMatchObject({ claimed: false, record: { state: 'done' } });
    const second = await claimed(store, 'k2');
    await store.release('k2', second);
    expect(store.size).toBe(1);
    expect((await store.claim('k2', 'f', 60_000, 'a')).claimed).toBe(true);
  });

  it('IDEM-12 a claim lives for its lease, renewed by extend with its token only', async () => {
    // The store's clock is lru-cache's real one: a lease of a second leaves a loaded machine time to
    // extend 'renewed' before it lapses (a 30 ms lease once lapsed first on a busy CI run).
    const store = new MemoryIdempotencyStore();
    const token = await claimed(store, 'renewed', 'a', 1000);
    await claimed(store, 'lapsed', 'a', 1000);
    await store.extend('renewed', token, 60_000);
    await store.extend('lapsed', token, 60_000);
    await store.extend('never claimed', token, 60_000);
    await pause(1100);
    expect(await store.claim('renewed', 'f', 60_000, 'a')).toMatchObject({ claimed: false });
    expect(await store.claim('lapsed', 'f', 60_000, 'a')).toMatchObject({ claimed: true });
  });

  it('IDEM-12 each client holds at most maxPerClient keys; others go on; a key given back is room again', async () => {
    const store = new MemoryIdempotencyStore({ max: 10, maxPerClient: 2 });
    const first = await claimed(store, 'a1');
    const second = await claimed(store, 'a2');
    await expect(store.claim('a3', 'f', 60_000, 'a')).rejects.toThrow(
      "idempotency store is full (this client's share: 2 keys, 6710886 bytes)",
    );
    await expect(store.claim('a3', 'f', 60_000, 'a')).rejects.toMatchObject({ name: 'IdempotencyStoreFullError' });
    await expect(store.claim('a3', 'f', 60_000, 'a')).rejects.toBeInstanceOf(IdempotencyStoreFullError);
    // A client at its key limit still completes the keys it holds (a response replaces its claim).
    await store.complete('a1', first, done(300), 60_000);
    expect(await store.claim('a1', 'f', 60_000, 'a')).toMatchObject({ claimed: false, record: { state: 'done' } });
    await claimed(store, 'b1', 'b');
    await claimed(store, 'b2', 'b');
    await store.release('a2', second);
    await claimed(store, 'a3');
  });

  it('IDEM-12 each client holds at most maxBytesPerClient bytes: claims and responses count, at the edge', async () => {
    const store = new MemoryIdempotencyStore({ maxBytes: 4096, maxBytesPerClient: 600 });
    const first = await claimed(store, 'a1');
    await claimed(store, 'a2');
    await expect(store.claim('a3', 'f', 60_000, 'a')).rejects.toThrow("this client's share: 10000 keys, 600 bytes");
    await store.release('a1', first);
    const third = await claimed(store, 'a3');
    // A response replaces its claim's 256 bytes: 256 + 344 fits exactly; one byte more is not kept.
    await store.complete('a3', third, done(344), 60_000);
    expect(await store.claim('a3', 'f', 60_000, 'a')).toMatchObject({ claimed: false, record: { state: 'done' } });
    const other = new MemoryIdempotencyStore({ maxBytes: 4096, maxBytesPerClient: 600 });
    await claimed(other, 'x1');
    const over = await claimed(other, 'x2');
    await other.complete('x2', over, done(345, 3), 60_000);
    expect(await other.claim('x2', 'f', 60_000, 'a')).toEqual({ claimed: false, record: { state: 'unkept', fingerprint: 'f', layers: 3 } });
    const plain = await claimed(other, 'x3', 'c');
    await other.complete('x3', plain, { state: 'unkept', fingerprint: 'g' }, 60_000);
    expect(await other.claim('x3', 'g', 60_000, 'c')).toEqual({ claimed: false, record: { state: 'unkept', fingerprint: 'g' } });
  });

  it('IDEM-12 the whole store holds at most max keys and maxBytes bytes, never evicting a live one', async () => {
    const keys = new MemoryIdempotencyStore({ max: 2, maxPerClient: 2 });
    await claimed(keys, 'k1', 'a');
    await claimed(keys, 'k2', 'b');
    await expect(keys.claim('k3', 'f', 60_000, 'c')).rejects.toThrow('idempotency store is full (2 keys, 512 bytes)');
    expect(await keys.claim('k1', 'f', 60_000, 'a')).toMatchObject({ claimed: false });
    // A full store still completes the keys it holds.
    const full = new MemoryIdempotencyStore({ max: 2, maxPerClient: 2 });
    const held = await claimed(full, 'h1', 'a');
    await claimed(full, 'h2', 'b');
    await full.complete('h1', held, done(300), 60_000);
    expect(await full.claim('h1', 'f', 60_000, 'a')).toMatchObject({ claimed: false, record: { state: 'done' } });
    const bytes = new MemoryIdempotencyStore({ maxBytes: 1100, maxBytesPerClient: 1100 });
    const tokens: string[] = [];
    for (const k of ['b1', 'b2', 'b3', 'b4']) tokens.push(await claimed(bytes, k, k));
    await expect(bytes.claim('b5', 'f', 60_000, 'b5')).rejects.toThrow('idempotency store is full (4 keys, 1024 bytes)');
    // 1024 - 256 (the claim replaced) + 332 fits exactly; 333 does not and is kept as not kept.
    await bytes.complete('b1', tokens[0] as string, done(332), 60_000);
    expect(await bytes.claim('b1', 'f', 60_000, 'b1')).toMatchObject({ claimed: false, record: { state: 'done' } });
    const again = new MemoryIdempotencyStore({ maxBytes: 1100, maxBytesPerClient: 1100 });
    const others: string[] = [];
    for (const k of ['c1', 'c2', 'c3', 'c4']) others.push(await claimed(again, k, k));
    await again.complete('c1', others[0] as string, done(333), 60_000);
    // Not kept, and no `layers` member where the response had none.
    expect(await again.claim('c1', 'f', 60_000, 'c1')).toStrictEqual({ claimed: false, record: { state: 'unkept', fingerprint: 'f' } });
  });

  it('IDEM-12 expired keys make room again: a client’s own, and the store’s on a sweep', async () => {
    const share = new MemoryIdempotencyStore({ max: 10, maxPerClient: 1 });
    await claimed(share, 'old', 'a', 20);
    await pause(50);
    await claimed(share, 'new', 'a');
    const whole = new MemoryIdempotencyStore({ max: 1, maxPerClient: 1 });
    await claimed(whole, 'old', 'a', 20);
    await pause(50);
    await claimed(whole, 'new', 'b');
  });

  it('IDEM-12 the store-wide sweep of expired keys runs at most once a second (each is a pass over every key)', async () => {
    // lru-cache times entries on performance.now(); the sweep's pace is on Date.now(), set here.
    let now = 5_000_000;
    const clock = jest.spyOn(Date, 'now').mockImplementation(() => now);
    try {
      const store = new MemoryIdempotencyStore({ max: 1, maxPerClient: 1 });
      await claimed(store, 'k1', 'a', 20);
      await pause(50);
      await claimed(store, 'k2', 'b', 20); // the first sweep: k1 had expired
      await pause(50);
      now += 999;
      await expect(store.claim('k3', 'f', 60_000, 'c')).rejects.toThrow('idempotency store is full (1 keys, 256 bytes)');
      now += 1;
      await claimed(store, 'k3', 'c');
    } finally {
      clock.mockRestore();
    }
  });
});

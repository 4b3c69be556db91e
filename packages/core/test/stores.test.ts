import { MemoryReplayStore, ReplayStoreFullError } from '@fapi-guard/core';

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

/**
 * Memory of the in-memory replay store under 4 million distinct proofs arriving at 40 000 per
 * simulated second with the default 70-second window: about 2.8 million would be live at once,
 * more than the default bound (1 500 000), so the store must stay bounded and refuse (503)
 * rather than forget a live key. Prints RSS and heap before and after, and how many were refused.
 * Run: npm run bench:memory
 */
import { createHash } from 'node:crypto';
import { MemoryReplayStore } from '@fapi-guard/core';

async function main(): Promise<void> {
  let now = Date.now();
  const store = new MemoryReplayStore({ clock: () => now });
  const mb = () => Math.round(process.memoryUsage().rss / 2 ** 20);
  const start = mb();
  let accepted = 0;
  let refused = 0;
  const heap = () => Math.round(process.memoryUsage().heapUsed / 2 ** 20);
  global.gc?.();
  const startHeap = heap();
  for (let i = 0; i < 4_000_000; i++) {
    if (i % 40 === 0) now += 1; // 40 000 claims per simulated second
    try {
      // Keys shaped like the guard's: a base64url SHA-256 (43 characters).
      if (await store.claim(createHash('sha256').update(`proof-${i}`).digest('base64url'), now + 70_000)) accepted++;
    } catch {
      refused++;
    }
  }
  global.gc?.();
  console.log(`4,000,000 distinct proofs: ${accepted} accepted, ${refused} refused (store full), ${store.size} keys held`);
  console.log(`RSS ${start} MiB → ${mb()} MiB, heap used ${startHeap} MiB → ${heap()} MiB`);
}

void main();

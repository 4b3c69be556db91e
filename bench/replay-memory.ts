/**
 * Memory of the in-memory replay store under 2 million distinct proofs arriving at 20 000 per
 * simulated second with the default 70-second window: about 1.4 million would be live at once,
 * more than the default bound (500 000), so the store must stay bounded and refuse (503)
 * rather than forget a live key. Prints RSS before and after, and how many were refused.
 * Run: npm run bench:memory
 */
import { MemoryReplayStore } from '@fapi-guard/core';

async function main(): Promise<void> {
  let now = Date.now();
  const store = new MemoryReplayStore({ clock: () => now });
  const mb = () => Math.round(process.memoryUsage().rss / 2 ** 20);
  const start = mb();
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 2_000_000; i++) {
    if (i % 20 === 0) now += 1; // 20 000 claims per simulated second
    try {
      if (await store.claim(`proof-${i}`.padEnd(22, 'x'), now + 70_000)) accepted++;
    } catch {
      refused++;
    }
  }
  global.gc?.();
  console.log(`2,000,000 distinct proofs: ${accepted} accepted, ${refused} refused (store full), ${store.size} keys held`);
  console.log(`RSS ${start} MiB → ${mb()} MiB`);
}

void main();

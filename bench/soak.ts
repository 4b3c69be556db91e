/**
 * Soak: a bounded load of mixed valid and invalid traffic against fapi-guard on Express (DPoP),
 * reporting errors, RSS over time and open handles of the server. Memory must stay flat.
 *   npm run soak                 (60 s)
 *   SOAK_SECONDS=600 npm run soak
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { MockIssuer } from '@fapi-guard/testing';
import autocannon from 'autocannon';
import { proofFactory } from './proofs';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const AUDIENCE = 'https://api.bench.example';

async function main(): Promise<void> {
  const as = await MockIssuer.start({ audience: AUDIENCE });
  const client = proofFactory();
  const token = await as.mint({ scope: 'accounts', jkt: client.jkt, lifetimeSec: SECONDS + 600 });
  const proof = () => client.one(`${AUDIENCE}/accounts`, token);
  const child = spawn(process.execPath, [join(__dirname, 'server.js'), 'fapi-express-dpop'], {
    env: {
      ...process.env,
      BENCH_STATS: '1',
      BENCH_CONFIG: JSON.stringify({ issuer: as.issuer, jwksUri: as.jwksUri, audience: AUDIENCE, publicUrl: AUDIENCE }),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const samples: { t: number; rss: number; handles: number; heap: number }[] = [];
  const started = Date.now();
  const port = await new Promise<number>((resolve) => {
    child.stdout?.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        const ready = /READY (\d+)/.exec(line);
        if (ready) resolve(Number(ready[1]));
        const stats = /STATS (\d+) (\d+) (\d+)/.exec(line);
        if (stats) {
          samples.push({
            t: Math.round((Date.now() - started) / 1000),
            rss: Number(stats[1]),
            handles: Number(stats[2]),
            heap: Number(stats[3]),
          });
        }
      }
    });
  });
  let n = 0;
  let replay = proof();
  // Mixed traffic: 70 % valid, then replays, garbage tokens and missing credentials.
  const headersFor = (): Record<string, string> => {
    n++;
    const kind = n % 10;
    if (kind < 7) {
      replay = proof();
      return { authorization: `DPoP ${token}`, dpop: replay };
    }
    if (kind === 7) return { authorization: `DPoP ${token}`, dpop: replay };
    if (kind === 8) return { authorization: `DPoP ${token.slice(0, -4)}AAAA`, dpop: proof() };
    return {};
  };
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: 10,
    duration: SECONDS,
    requests: [{ method: 'GET', path: '/accounts', setupRequest: (req) => ({ ...req, headers: headersFor() }) }],
  });
  await new Promise((r) => setTimeout(r, 1500));
  child.kill('SIGTERM');
  await as.stop();
  const mb = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;
  const first = samples[1] ?? samples[0];
  const last = samples.at(-1);
  console.log(`soak: ${SECONDS} s, ${result.requests.total} requests (${Math.round(result.requests.average)}/s)`);
  console.log(
    `  2xx ${result['2xx']}, 4xx ${result['4xx']} (expected: ~30 % invalid traffic), 5xx ${result['5xx']}, errors ${result.errors}, timeouts ${result.timeouts}`,
  );
  console.log(
    `  server RSS ${first ? mb(first.rss) : '?'} → ${last ? mb(last.rss) : '?'} (max ${mb(Math.max(...samples.map((s) => s.rss)))})`,
  );
  console.log(`  open handles ${first?.handles ?? '?'} → ${last?.handles ?? '?'}`);
  const every = Math.max(10, Math.round(SECONDS / 15 / 10) * 10);
  const series = samples.filter((s) => s.t % every === 0).map((s) => `${s.t}s=${mb(s.rss)}/${mb(s.heap)}`);
  console.log(`  RSS / heap used every ${every} s: ${series.join(' ')}`);
  if (result['5xx'] > 0 || result.errors > 0) process.exitCode = 1;
}

void main();

/**
 * The side-by-side benchmark: each server in its own process on 127.0.0.1, loaded with
 * autocannon from this process, one after the other in one run. Prints a table and writes
 * bench/results.json. Bounded: every load lasts DURATION seconds with CONNECTIONS connections,
 * ROUNDS times over the list.
 *
 * Beside throughput it reports the server process's CPU time per request (user + system, all
 * threads, read by the server itself before and after the load) and the guard's added cost:
 * the CPU time per request of the guarded route minus that of the bare route of the same
 * framework under the same load, in the same round, divided by the CPU time of one ES256
 * verification measured just before — in "verifications", robust to neighbours on the machine.
 *
 *   npm run bench                          (all scenarios)
 *   BENCH_DURATION=10 npm run bench        (longer runs)
 *   npm run bench -- fapi-express-dpop ... (some scenarios)
 *   npm run bench -- fapi-express-post fapi-express-post-idem fapi-express-post-idem-replay fapi-express-post-idem-redis
 *                                          (idempotency keys: the cost per request)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { beginIdempotency, createGuard, headersFromRaw, MemoryIdempotencyStore } from '@fapi-guard/core';
import { clientCertHeader, createCertificate, MockIssuer } from '@fapi-guard/testing';
import autocannon from 'autocannon';
import { TestRedis } from '../test/support/redis';
import { countedInstructions, startCounting, underCallgrind, verifyInstructions } from './callgrind';
import { proofFactory } from './proofs';
import { parseScenario } from './scenario';

const DURATION = Number(process.env.BENCH_DURATION ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const PIPELINING = Number(process.env.BENCH_PIPELINING ?? 1);
/**
 * `BENCH_RATE=<req/s>`: every server gets the same offered load (autocannon's `overallRate`)
 * instead of as many requests as it can take, so that a slower route is not also measured at a
 * lower rate (fewer requests per wake-up of the process, each paying the fixed costs alone).
 */
const RATE = process.env.BENCH_RATE ? Number(process.env.BENCH_RATE) : undefined;
/**
 * `BENCH_CALLGRIND=1`: servers run under valgrind's callgrind, and the cost per request is
 * counted in instructions during a load of CALLGRIND_REQUESTS requests (after as many
 * uncounted ones), the verification's likewise: repeatable where CPU time is not.
 */
const CALLGRIND = process.env.BENCH_CALLGRIND === '1';
const CALLGRIND_REQUESTS = Number(process.env.BENCH_CALLGRIND_REQUESTS ?? 3000);
/**
 * Rounds over the whole scenario list (interleaved: every scenario once per round); each row is
 * the run with the median req/s, and the CPU figures are medians over the rounds.
 */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const AUDIENCE = 'https://api.bench.example';
/** Enough unique proofs for the fastest DPoP route (~16k req/s here); replays would show as non-2xx. */
const PROOFS = Math.ceil(25_000 * DURATION);
/** Per-request cost goals, in ES256 verifications of CPU time added to the bare route (issue 27). */
const GOAL = { dpop: 1.15, cached: 0.15, redis: 0.25 } as const;
/** What the cost column counts. */
const UNIT = CALLGRIND ? 'instructions' : 'µs CPU';

type Workload = 'none' | 'dpop-es256' | 'dpop-ps256' | 'dpop-peer' | 'mtls' | 'bearer' | 'post' | 'post-idem' | 'post-replay';
/** The bare rows of every framework: the plain route, and loaded with DPoP and mTLS requests. */
const BARE_LOADS: [string, Workload][] = [
  ['', 'none'],
  ['-dpopload', 'dpop-es256'],
  ['-mtlsload', 'mtls'],
];
const SCENARIOS: [string, Workload][] = [
  ['bare-express', 'none'],
  ['bare-koa', 'none'],
  ['bare-fastify', 'none'],
  ['bare-hono', 'none'],
  // The same bare routes loaded with DPoP requests (big headers, one new proof per request):
  // the baseline the DPoP rows are compared with, since the client's work is the same.
  ['bare-express-dpopload', 'dpop-es256'],
  ['bare-koa-dpopload', 'dpop-es256'],
  ['bare-fastify-dpopload', 'dpop-es256'],
  ['bare-hono-dpopload', 'dpop-es256'],
  // And with the mTLS requests (token plus a forwarded certificate: about 2 kB of headers).
  ['bare-express-mtlsload', 'mtls'],
  ['bare-koa-mtlsload', 'mtls'],
  ['bare-fastify-mtlsload', 'mtls'],
  ['bare-hono-mtlsload', 'mtls'],
  // Hono with a pass-through async middleware, loaded with the mTLS requests: the framework's
  // own cost of any middleware on a route (async compose, @hono/node-server's promise path).
  ['bare-hono-middleware', 'mtls'],
  ...(['nestjs', 'nestjs-fastify'] as const).flatMap((f) => BARE_LOADS.map(([v, w]): [string, Workload] => [`bare-${f}${v}`, w])),
  // The same bare routes doing only what a DPoP route cannot avoid: one proof signature check,
  // on the event loop or on the thread pool. The faster is the limit as measured here.
  ['bare-express-verify', 'dpop-es256'],
  ['bare-koa-verify', 'dpop-es256'],
  ['bare-fastify-verify', 'dpop-es256'],
  ['bare-express-verifypool', 'dpop-es256'],
  ['bare-koa-verifypool', 'dpop-es256'],
  ['bare-fastify-verifypool', 'dpop-es256'],
  ['fapi-express-dpop', 'dpop-es256'],
  ['fapi-koa-dpop', 'dpop-es256'],
  ['fapi-fastify-dpop', 'dpop-es256'],
  ['fapi-express-dpop-log', 'dpop-es256'],
  // dpop.verifyOn: 'main' — the proof's signature checked on the event loop (no thread-pool hand-over).
  ...(['express', 'koa', 'fastify', 'hono', 'nestjs', 'nestjs-fastify'] as const).map((f): [string, Workload] => [
    `fapi-${f}-dpop-main`,
    'dpop-es256',
  ]),
  ['fapi-hono-dpop', 'dpop-es256'],
  // Two layers (app-wide protect() + the route's requireScopes()) beside the one-layer routes:
  // the proof is verified once, so the ratio printed under the table should stay near 1.
  ['fapi-express-dpop-layered', 'dpop-es256'],
  ['fapi-hono-dpop-layered', 'dpop-es256'],
  ['fapi-express-dpop-ps256', 'dpop-ps256'],
  ['fapi-express-dpop-redis', 'dpop-es256'],
  ['fapi-express-mtls', 'mtls'],
  ['fapi-koa-mtls', 'mtls'],
  ['fapi-fastify-mtls', 'mtls'],
  ['fapi-hono-mtls', 'mtls'],
  ['fapi-express-bearer', 'bearer'],
  ['fapi-koa-bearer', 'bearer'],
  ['fapi-fastify-bearer', 'bearer'],
  ['fapi-hono-bearer', 'bearer'],
  // NestJS (@fapi-guard/nestjs) on its Express and Fastify platforms.
  ['fapi-nestjs-dpop', 'dpop-es256'],
  ['fapi-nestjs-mtls', 'mtls'],
  ['fapi-nestjs-bearer', 'bearer'],
  ['fapi-nestjs-fastify-dpop', 'dpop-es256'],
  ['fapi-nestjs-fastify-mtls', 'mtls'],
  ['fapi-nestjs-fastify-bearer', 'bearer'],
  ['peer-express-auth0-bearer', 'bearer'],
  ['peer-express-auth0-dpop', 'dpop-peer'],
  ['peer-express-jwt', 'bearer'],
  ['peer-fastify-jwt', 'bearer'],
  // NestJS on Express: @nestjs/passport + passport-jwt (Bearer).
  ['peer-nestjs-passport', 'bearer'],
  ['peer-hono-jwt', 'bearer'],
  // Idempotency keys: POST /payments (bearer) without them, with a new key per request (claim,
  // record, store), with one key for every request (each a replay of the first), and on Redis.
  ['fapi-express-post', 'post'],
  ['fapi-express-post-idem', 'post-idem'],
  ['fapi-express-post-idem-replay', 'post-replay'],
  ['fapi-express-post-idem-redis', 'post-idem'],
];

interface Row {
  scenario: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /**
   * CPU time of the server process per completed request (µs, user + system, all threads), or
   * with BENCH_CALLGRIND its instructions per request.
   */
  cpuUs: number;
  /** CPU time of one ES256 `crypto.verify` in this process, measured just before this run (µs), or its instructions. */
  verifyUs: number;
}

/** CPU time (µs, user + system) of one ES256 `crypto.verify` of a proof-sized input, key imported once. */
function verifyCpuUs(count = 600): number {
  const { privateKey, publicKey } = verifyKeys;
  const data = Buffer.from('x'.repeat(400));
  const signature = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const before = process.cpuUsage();
  for (let i = 0; i < count; i++) verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  const { user, system } = process.cpuUsage(before);
  return (user + system) / count;
}
const verifyKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });

/** The server's own CPU time so far (µs, user + system of all its threads), over the IPC channel. */
function serverCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { cpu?: NodeJS.CpuUsage }) => {
      if (!m.cpu) return;
      child.off('message', onMessage);
      resolve(m.cpu.user + m.cpu.system);
    };
    child.on('message', onMessage);
    if (!child.send('cpu')) reject(new Error('the server has no IPC channel'));
  });
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** ES256 `crypto.verify` operations per second: the per-request cost no cache can remove. */
function verifyOpsPerSecond(): number {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.from('x'.repeat(400));
  const signature = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const until = performance.now() + 1500;
  let n = 0;
  while (performance.now() < until) {
    verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
    n++;
  }
  return n / 1.5;
}

function startServer(scenario: string, config: object): Promise<{ child: ChildProcess; port: number }> {
  const nodeArgs = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : [];
  const node = [...nodeArgs, join(__dirname, 'server.js'), scenario];
  const [command, args] = CALLGRIND ? underCallgrind(node) : [process.execPath, node];
  const child = spawn(command, args, {
    env: { ...process.env, BENCH_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`${scenario} exited with ${code}`)));
  });
}

const PAYMENT = JSON.stringify({ amount: { amount: '10.00', currency: 'EUR' }, creditorAccount: 'DE89370400440532013000' });

async function load(port: number, headersFor: () => Record<string, string>, post: boolean, amount?: number): Promise<autocannon.Result> {
  const request = post ? { method: 'POST' as const, path: '/payments', body: PAYMENT } : { method: 'GET' as const, path: '/accounts' };
  return autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: CONNECTIONS,
    pipelining: PIPELINING,
    ...(RATE ? { overallRate: RATE } : {}),
    ...(amount ? { amount } : { duration: DURATION }),
    requests: [{ ...request, setupRequest: (req) => ({ ...req, headers: headersFor() }) }],
  });
}

/** guard.check in-process, DPoP ES256 (no HTTP): the guard's own cost beside crypto.verify. */
async function coreChecksPerSecond(as: MockIssuer, client: ReturnType<typeof proofFactory>): Promise<number> {
  // On the event loop: one check at a time measures the guard's own cost, not the pool's hand-over.
  const guard = createGuard({
    issuer: as.issuer,
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    interactionId: false,
    dpop: { verifyOn: 'main' },
  });
  const policy = guard.policy({ scopes: ['accounts'] });
  const token = await as.mint({ scope: 'accounts', jkt: client.jkt, lifetimeSec: 600 });
  const proofs = client.make(30_000, `${AUDIENCE}/accounts`, token);
  const request = (proof: string) => ({
    method: 'GET',
    url: `${AUDIENCE}/accounts`,
    headers: headersFromRaw(['Host', 'api.bench.example', 'Authorization', `DPoP ${token}`, 'DPoP', proof]),
  });
  await guard.check(request(proofs[0] as string), policy);
  const started = performance.now();
  for (let i = 1; i < proofs.length; i++) {
    const result = await guard.check(request(proofs[i] as string), policy);
    if (!result.ok) throw new Error(`core check refused: ${result.reason}`);
  }
  return (proofs.length - 1) / ((performance.now() - started) / 1000);
}

/**
 * The core's idempotency work alone, in-process and without HTTP: read the key, fingerprint the
 * body, claim the key in the in-memory store, record the response. Microseconds per request.
 */
async function idempotencyCoreMicros(): Promise<number> {
  // One client sends every key: its share of the memory store is the whole store.
  const store = new MemoryIdempotencyStore({ maxPerClient: 100_000 });
  const guard = createGuard({ issuer: 'https://as.bench.example', audience: AUDIENCE, idempotency: { store } });
  const policy = guard.policy({ idempotency: 'required' });
  const auth = { issuer: 'https://as.bench.example', clientId: 'bench', headers: {} } as unknown as Parameters<typeof beginIdempotency>[2];
  const body = Buffer.from(PAYMENT);
  const sent = {
    status: 201,
    headers: [['content-type', 'application/json; charset=utf-8']] as [string, string][],
    body: Buffer.from('{"ok":true}'),
  };
  const n = 20_000;
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const request = { method: 'POST', url: `${AUDIENCE}/payments`, headers: { 'idempotency-key': [`"bench-${i}"`] } };
    const start = await beginIdempotency(guard, policy, auth, request, async () => ({ ok: true, body }));
    if (start.kind !== 'claimed') throw new Error(`idempotency: ${start.kind}`);
    await start.ticket.finish(sent);
  }
  return ((performance.now() - started) / n) * 1000;
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const scenarios = only.length ? SCENARIOS.filter(([s]) => only.includes(s)) : SCENARIOS;
  const as = await MockIssuer.start({ audience: AUDIENCE });
  const redis = scenarios.some(([s]) => s.endsWith('-redis')) ? await TestRedis.start() : undefined;
  const client = proofFactory();
  const cert = await createCertificate();
  const config = {
    issuer: as.issuer,
    jwksUri: as.jwksUri,
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    publicKeyPem: createPublicKey({ key: as.publicJwk('ES256') as never, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString(),
    redisUrl: redis?.url,
  };
  process.stderr.write(
    `${scenarios.length} scenarios × ${ROUNDS} rounds × ${DURATION} s of load (about ${Math.ceil((scenarios.length * ROUNDS * (DURATION + 2.5)) / 60)} min)\n`,
  );
  const verifyOps = verifyOpsPerSecond();
  const coreOps = await coreChecksPerSecond(as, client);
  const idempotencyMicros = scenarios.some(([s]) => s.includes('-idem')) ? await idempotencyCoreMicros() : undefined;
  const runs = new Map<string, Row[]>();
  const verifyCounted = CALLGRIND ? await verifyInstructions() : undefined;
  try {
    for (let round = 0; round < ROUNDS; round++)
      for (const [scenario, workload] of scenarios) {
        const verifyUs = verifyCounted ?? verifyCpuUs();
        const { child, port } = await startServer(scenario, config);
        try {
          let headersFor: () => Record<string, string> = () => ({});
          if (workload.startsWith('dpop')) {
            const token = await as.mint({
              scope: 'accounts',
              jkt: client.jkt,
              alg: workload === 'dpop-ps256' ? 'PS256' : 'ES256',
              lifetimeSec: 600,
            });
            // Our servers see the public origin; the peer builds htu from the connection.
            const htu = workload === 'dpop-peer' ? `http://127.0.0.1:${port}/accounts` : `${AUDIENCE}/accounts`;
            const proofs = client.make(PROOFS, htu, token);
            let i = 0;
            headersFor = () => ({ authorization: `DPoP ${token}`, dpop: proofs[i++ % proofs.length] as string });
          } else if (workload === 'mtls') {
            const token = await as.mint({ scope: 'accounts', x5t: cert.x5t, lifetimeSec: 600 });
            const headers = { authorization: `Bearer ${token}`, 'client-cert': clientCertHeader(cert.der) };
            headersFor = () => headers;
          } else if (workload.startsWith('post')) {
            const token = await as.mint({ scope: 'accounts', lifetimeSec: 600 });
            const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
            let i = 0;
            const run = `${Date.now()}`;
            if (workload === 'post') headersFor = () => headers;
            else if (workload === 'post-replay') headersFor = () => ({ ...headers, 'idempotency-key': `"bench-${run}"` });
            else headersFor = () => ({ ...headers, 'idempotency-key': `"bench-${run}-${i++}"` });
          } else if (workload === 'bearer') {
            const token = await as.mint({ scope: 'accounts', lifetimeSec: 600 });
            const headers = { authorization: `Bearer ${token}` };
            headersFor = () => headers;
          }
          // One request first: JWKS fetched and caches warm before the clock starts.
          await fetch(`http://127.0.0.1:${port}/accounts`, { headers: workload.startsWith('dpop') ? {} : headersFor() });
          const post = workload.startsWith('post');
          let result: autocannon.Result;
          let cpuUs: number;
          if (CALLGRIND && child.pid) {
            // Warm-up as long as the counted load: V8 tiers code up by calls, not by time.
            await load(port, headersFor, post, CALLGRIND_REQUESTS);
            await startCounting(child.pid);
            result = await load(port, headersFor, post, CALLGRIND_REQUESTS);
            cpuUs = (await countedInstructions(child.pid)) / result.requests.total;
          } else {
            const cpuBefore = await serverCpu(child);
            result = await load(port, headersFor, post);
            cpuUs = ((await serverCpu(child)) - cpuBefore) / result.requests.total;
          }
          runs.set(scenario, [
            ...(runs.get(scenario) ?? []),
            {
              scenario,
              rps: result.requests.average,
              p50: result.latency.p50,
              p99: result.latency.p99,
              non2xx: result.non2xx,
              errors: result.errors,
              cpuUs,
              verifyUs,
            },
          ]);
          process.stderr.write(
            `${scenario}: ${Math.round(result.requests.average)} req/s (${result.requests.total}), ${cpuUs.toFixed(1)} ${UNIT}/request (verify ${verifyUs.toFixed(1)})\n`,
          );
        } finally {
          child.kill('SIGTERM');
        }
      }
  } finally {
    await as.stop();
    await redis?.stop();
  }
  report(runs, verifyOps, coreOps, idempotencyMicros);
}

/**
 * What a scenario's CPU time is compared with, and the goal (issue 27): DPoP against the bare
 * route loaded with DPoP requests, mTLS against it loaded with mTLS requests, Bearer against the
 * plain bare route; the Redis store against the same route with the in-memory store. Bare rows
 * and the decision-log row have no goal (the log is the example's, not the guard's).
 */
function baselineOf(scenario: string, workload: Workload): { baseline: string; goal?: number } | undefined {
  const { kind, framework, variant } = parseScenario(scenario);
  if (!framework) return undefined;
  const bare = `bare-${framework}`;
  if (kind === 'bare') {
    if (variant === 'middleware') return { baseline: `${bare}-mtlsload` };
    return variant === 'verify' || variant === 'verifypool' ? { baseline: `${bare}-dpopload` } : undefined;
  }
  const goal = kind === 'fapi' ? (workload.startsWith('dpop') ? GOAL.dpop : GOAL.cached) : undefined;
  if (variant.endsWith('-redis')) return { baseline: `fapi-${framework}-dpop`, goal: GOAL.redis };
  if (variant.endsWith('-log')) return { baseline: `${bare}-dpopload` };
  if (workload.startsWith('dpop')) return { baseline: `${bare}-dpopload`, goal };
  if (workload === 'mtls') return { baseline: `${bare}-mtlsload`, goal };
  return { baseline: bare, goal };
}

/**
 * The guard's added cost of `scenario` in verifications: per round, its CPU time per request
 * minus its baseline's of the same round, over the ES256 verification measured before its run;
 * the median over the rounds where both ran.
 */
function addedCost(runs: Map<string, Row[]>, scenario: string, baseline: string): number | undefined {
  const mine = runs.get(scenario) ?? [];
  const base = runs.get(baseline) ?? [];
  const costs = mine.flatMap((r, round) => {
    const b = base[round];
    return b ? [(r.cpuUs - b.cpuUs) / r.verifyUs] : [];
  });
  return costs.length ? median(costs) : undefined;
}

function report(runs: Map<string, Row[]>, verifyOps: number, coreOps: number, idempotencyMicros: number | undefined): void {
  // Per scenario the median run by req/s; failures of every run are counted; CPU figures are medians.
  const rows = [...runs.values()].map((list) => {
    const sorted = [...list].sort((a, b) => a.rps - b.rps);
    const middle = sorted[Math.floor(sorted.length / 2)] as Row;
    return {
      ...middle,
      non2xx: list.reduce((n, r) => n + r.non2xx, 0),
      errors: list.reduce((n, r) => n + r.errors, 0),
      cpuUs: median(list.map((r) => r.cpuUs)),
    };
  });
  const verifyUs = median([...runs.values()].flatMap((list) => list.map((r) => r.verifyUs)));
  const byName = new Map(rows.map((r) => [r.scenario, r]));
  const workloadOf = new Map(SCENARIOS);
  // Each row against the bare route of its framework loaded with the same requests when that
  // run exists (the same bytes to receive and parse), else against the plain bare route.
  const bareOf = (scenario: string) => {
    const { framework, variant } = parseScenario(scenario);
    const plain = byName.get(`bare-${framework}`)?.rps;
    const verifyOnly = variant === 'verify' || variant === 'verifypool';
    if (scenario.startsWith('bare') && !verifyOnly) return plain;
    const load = scenario.includes('dpop') || verifyOnly ? 'dpopload' : scenario.endsWith('-mtls') ? 'mtlsload' : undefined;
    return (load && byName.get(`bare-${framework}-${load}`)?.rps) || plain;
  };
  const lines = [
    `node ${process.version} · ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'} · ${Math.round(totalmem() / 2 ** 30)} GiB · ${CONNECTIONS} connections · ${DURATION} s each${ROUNDS > 1 ? ` · median of ${ROUNDS} interleaved rounds` : ''}`,
    `ES256 crypto.verify: ${Math.round(verifyOps)} ops/s (the per-request floor of a DPoP route); ${CALLGRIND ? `instructions of one (callgrind): ${Math.round(verifyUs)}` : `CPU time of one: ${verifyUs.toFixed(1)} µs (median of the runs)`}`,
    `guard.check in-process (DPoP, ES256 proof, cached ES256 token): ${Math.round(coreOps)} checks/s = ${(coreOps / verifyOps).toFixed(2)} × crypto.verify`,
    '',
    `| scenario | req/s | p50 ms | p99 ms | non-2xx | × bare | × limit | × measured limit | ${CALLGRIND ? 'k instr/req' : 'CPU µs/req'} | + verifications | goal |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  const missed: string[] = [];
  const json: Record<string, unknown>[] = [];
  for (const r of rows) {
    const bare = bareOf(r.scenario);
    const ratio = bare ? r.rps / bare : undefined;
    // limit = 1 / (1/bare + 1/verify): the bare route plus one unavoidable signature check.
    const signed = (r.scenario.includes('dpop') && !r.scenario.startsWith('bare')) || /-verify(pool)?$/.test(r.scenario);
    const limit = bare && signed ? 1 / (1 / bare + 1 / verifyOps) : undefined;
    const toLimit = limit ? r.rps / limit : undefined;
    // The measured limit: the same framework's bare route that only verifies the proof (the
    // faster of the event-loop and the thread-pool variant).
    const { framework } = parseScenario(r.scenario);
    const verifyRows = [`bare-${framework}-verify`, `bare-${framework}-verifypool`].map((n) => byName.get(n)?.rps ?? 0);
    const measured = limit && !r.scenario.startsWith('bare') && Math.max(...verifyRows) > 0 ? Math.max(...verifyRows) : undefined;
    const toMeasured = measured ? r.rps / measured : undefined;
    const against = baselineOf(r.scenario, workloadOf.get(r.scenario) ?? 'none');
    const added = against && addedCost(runs, r.scenario, against.baseline);
    let verdict = '';
    if (added !== undefined && against?.goal !== undefined) {
      verdict = added <= against.goal ? `≤ ${against.goal} met` : `≤ ${against.goal} **missed**`;
      if (added > against.goal) missed.push(`${r.scenario} +${added.toFixed(2)} (goal ${against.goal})`);
    }
    lines.push(
      `| ${r.scenario} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.non2xx + r.errors} | ${ratio?.toFixed(2) ?? ''} | ${toLimit?.toFixed(2) ?? ''} | ${toMeasured?.toFixed(2) ?? ''} | ${CALLGRIND ? (r.cpuUs / 1000).toFixed(0) : r.cpuUs.toFixed(1)} | ${added === undefined ? '' : `${added >= 0 ? '+' : ''}${added.toFixed(2)}`} | ${verdict} |`,
    );
    json.push({
      ...r,
      ratioToBare: ratio,
      limit,
      ratioToLimit: toLimit,
      measuredLimit: measured,
      ratioToMeasuredLimit: toMeasured,
      cpuBaseline: against?.baseline,
      addedVerifications: added,
      goal: against?.goal,
    });
  }
  lines.push(
    '',
    `\`+ verifications\`: (${UNIT} per request of the row − of its bare route under the same load, same round) / ${UNIT} of one`,
    'ES256 verification; median over the rounds. Baselines: DPoP rows `bare-*-dpopload`, mTLS rows `bare-*-mtlsload`, Bearer and',
    'peer Bearer rows the plain bare route, `*-redis` the same route with the in-memory store.',
  );
  if (missed.length) {
    lines.push(
      `Goals missed: ${missed.join('; ')}.`,
      'What the remaining cost is (profiles): bench/README.md, "Where the CPU goes"; profile a row with',
      '`BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=bench/profiles" node bench/dist/bench/run.js <bare row> <row>`.',
    );
  }
  // Idempotency keys: what each request pays for them, against the same route without them.
  if (idempotencyMicros !== undefined) {
    lines.push(
      `idempotency keys, core alone (key, fingerprint, claim, record; memory store; no HTTP): ${idempotencyMicros.toFixed(1)} µs per request`,
    );
  }
  for (const r of rows.filter((row) => row.scenario.includes('-post-idem'))) {
    const base = byName.get(r.scenario.replace(/-idem.*$/, ''));
    if (!base) continue;
    const costUs = 1e6 / r.rps - 1e6 / base.rps;
    lines.push(
      `idempotency keys, ${r.scenario}: ${costUs.toFixed(0)} µs more per request than ${base.scenario} (${(r.rps / base.rps).toFixed(2)} × its req/s)`,
    );
  }
  // Two-layer routes against the one-layer route of the same framework, as measured in this run.
  for (const r of rows.filter((row) => row.scenario.endsWith('-layered'))) {
    const one = byName.get(r.scenario.replace(/-layered$/, ''));
    if (one) lines.push('', `${r.scenario} / ${one.scenario}: ${(r.rps / one.rps).toFixed(2)} (two layers, one authentication)`);
  }
  const text = lines.join('\n');
  console.log(text);
  writeFileSync(
    join(__dirname, '..', '..', 'results.json'),
    `${JSON.stringify({ date: new Date().toISOString(), verifyOps, verifyCpuUs: verifyUs, coreOps, rows: json }, null, 2)}\n`,
  );
}

void main();

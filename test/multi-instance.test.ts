/**
 * Several instances, one API: two processes of the example API (dist/main.js) behind one public
 * URL, sharing one real redis-server. A proof used at one is a replay at the other, a nonce from
 * one is good at the other, and a revocation seen by one is seen by both within the cache time.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { send } from './support/http';
import { TestRedis } from './support/redis';

const PUBLIC = 'https://api.bank.example';
const main = join(__dirname, '..', 'examples', 'payments-api', 'dist', 'main.js');
let redis: TestRedis;
let as: MockIssuer;
const instances: { process: ChildProcess; url: string }[] = [];

async function startInstance(): Promise<{ process: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [main], {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      FAPI_ISSUER: as.issuer,
      FAPI_AUDIENCE: PUBLIC,
      FAPI_PUBLIC_URL: PUBLIC,
      REDIS_URL: redis.url,
      FAPI_INTROSPECTION_CLIENT_ID: 'rs',
      FAPI_INTROSPECTION_CLIENT_SECRET: 'rs-secret-0123456789',
      FAPI_INTROSPECTION_CACHE_TTL_SEC: '2',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`instance did not start: ${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const match = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`instance exited with ${code}: ${out}`)));
  });
  return { process: child, url };
}

beforeAll(async () => {
  redis = await TestRedis.start();
  as = await MockIssuer.start({ audience: PUBLIC });
  as.introspectionClients.set('rs', 'rs-secret-0123456789');
  instances.push(await startInstance(), await startInstance());
});
afterAll(async () => {
  for (const { process: child } of instances) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  await as.stop();
  await redis.stop();
});

const [a, b] = [() => instances[0] as { url: string }, () => instances[1] as { url: string }];

describe('two instances sharing one Redis', () => {
  it('DPOP-23 a proof accepted by one instance is refused as a replay by the other', async () => {
    const client = await DpopClient.create('ES256');
    const token = await as.mint({ scope: 'accounts', jkt: client.jkt, audience: PUBLIC });
    const headers = {
      authorization: `DPoP ${token}`,
      dpop: await client.proof({ htm: 'GET', htu: `${PUBLIC}/accounts`, accessToken: token }),
    };
    expect((await send(`${a().url}/accounts`, { headers })).status).toBe(200);
    const replay = await send(`${b().url}/accounts`, { headers });
    expect(replay.status).toBe(401);
    expect(replay.headers['www-authenticate']).toContain('error="invalid_dpop_proof"');
    expect(replay.json.error_description).toBe('The DPoP proof has already been used');
  });

  it('DPOP-22 a nonce handed out by one instance is accepted by the other (shared secret)', async () => {
    const client = await DpopClient.create('ES256');
    const token = await as.mint({ scope: 'payments:write', jkt: client.jkt, audience: PUBLIC });
    const body = JSON.stringify({ amount: { amount: '1.00', currency: 'EUR' }, creditorAccount: 'X1' });
    const post = async (url: string, nonce?: string) =>
      send(`${url}/payments`, {
        method: 'POST',
        headers: {
          authorization: `DPoP ${token}`,
          'content-type': 'application/json',
          dpop: await client.proof({ htm: 'POST', htu: `${PUBLIC}/payments`, accessToken: token, nonce }),
        },
        body,
      });
    const challenge = await post(a().url);
    expect(challenge.status).toBe(401);
    const nonce = challenge.headers['dpop-nonce'] as string;
    expect((await post(b().url, nonce)).status).toBe(201);
  });

  it('FAPI-RS-06 a revocation is seen by both instances within the cache time, from one introspection', async () => {
    const client = await DpopClient.create('ES256');
    const bound = await as.mintOpaque({ scope: 'accounts', jkt: client.jkt, audience: PUBLIC });
    const call = async (url: string) =>
      send(`${url}/accounts`, {
        headers: {
          authorization: `DPoP ${bound}`,
          dpop: await client.proof({ htm: 'GET', htu: `${PUBLIC}/accounts`, accessToken: bound }),
        },
      });
    const before = as.requests.introspect;
    expect((await call(a().url)).status).toBe(200);
    expect((await call(b().url)).status).toBe(200);
    expect(as.requests.introspect - before).toBe(1);
    as.revoke(bound);
    const revokedAt = Date.now();
    // Within the 2-second cache time the answer may still be the cached one; after it, never.
    await new Promise((r) => setTimeout(r, 2200 - (Date.now() - revokedAt)));
    expect((await call(a().url)).status).toBe(401);
    expect((await call(b().url)).status).toBe(401);
  });
});

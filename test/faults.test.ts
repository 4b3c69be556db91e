/**
 * Fault injection: the issuer's key set down, slow, garbage, 5xx or rotating mid-traffic; the
 * introspection endpoint down, slow or answering garbage. Expected: 503 while a needed
 * dependency is unavailable, cached keys used where safe, nothing accepted that should not be,
 * automatic recovery.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { startExpressApp } from './support/express-app';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A key server in front of a MockIssuer that can be told to misbehave. */
async function faultyKeys(as: MockIssuer) {
  let mode: 'ok' | 'garbage' | 'slow' | '500' | 'html' | 'huge' = 'ok';
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (mode === 'slow') return void setTimeout(() => res.end(JSON.stringify(as.jwks)), 3000);
    if (mode === '500') return void res.writeHead(500).end('oops');
    if (mode === 'garbage') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": [1, 2');
    if (mode === 'html') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>');
    if (mode === 'huge') return void res.writeHead(200).end(JSON.stringify({ keys: [], pad: 'x'.repeat(600_000) }));
    void req;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(as.jwks));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    set: (m: typeof mode) => {
      mode = m;
    },
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

let faults = 0;
afterAll(() => {
  // Reported with TEST_REPORT=1; a normal run stays quiet.
  if (process.env.TEST_REPORT) process.stdout.write(`faults injected: ${faults}\n`);
});

describe('issuer key set faults', () => {
  it('DEC-09 no keys yet: every kind of failure is 503, and the first good answer recovers', async () => {
    const as = await MockIssuer.start({ audience: AUDIENCE });
    const keys = await faultyKeys(as);
    const api = await startExpressApp({
      issuer: { issuer: as.issuer, jwksUri: keys.url },
      audience: AUDIENCE,
      keys: { cooldownMs: 0, timeoutMs: 300 },
    });
    try {
      const token = await as.mint({ scope: 'accounts' });
      for (const mode of ['garbage', 'slow', '500', 'html', 'huge'] as const) {
        keys.set(mode);
        faults++;
        const started = Date.now();
        const res = await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } });
        expect(res.status).toBe(503);
        expect(Date.now() - started).toBeLessThan(2000);
      }
      keys.set('ok');
      expect((await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    } finally {
      await api.close();
      keys.close();
      await as.stop();
    }
  });

  it('with keys cached: failures while refreshing keep the old keys, unknown keys stay refused', async () => {
    const as = await MockIssuer.start({ audience: AUDIENCE });
    const keys = await faultyKeys(as);
    const api = await startExpressApp({
      issuer: { issuer: as.issuer, jwksUri: keys.url },
      audience: AUDIENCE,
      keys: { maxAgeMs: 0, cooldownMs: 0, timeoutMs: 300 },
    });
    try {
      expect(
        (await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${await as.mint({ scope: 'accounts' })}` } })).status,
      ).toBe(200);
      for (const mode of ['garbage', '500', 'html', 'slow'] as const) {
        keys.set(mode);
        faults++;
        const fresh = await as.mint({ scope: 'accounts' });
        expect((await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(200);
        const forged = await as.mint({ scope: 'accounts', fault: 'unknown-key' });
        expect([401, 503]).toContain((await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${forged}` } })).status);
      }
    } finally {
      await api.close();
      keys.close();
      await as.stop();
    }
  });

  it('rotation mid-traffic: requests with old and new keys keep working, nothing forged passes', async () => {
    const as = await MockIssuer.start({ audience: AUDIENCE });
    const client = await DpopClient.create('ES256');
    const api = await startExpressApp({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, keys: { cooldownMs: 0 } });
    try {
      const statuses: number[] = [];
      const forged: number[] = [];
      for (let round = 0; round < 5; round++) {
        if (round > 0) {
          await as.rotate();
          faults++;
        }
        const batch = await Promise.all(
          Array.from({ length: 10 }, async () => {
            const token = await as.mint({ scope: 'accounts', jkt: client.jkt });
            const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: token });
            return (await send(`${api.url}/accounts`, { headers: { authorization: `DPoP ${token}`, dpop: proof } })).status;
          }),
        );
        statuses.push(...batch);
        const bad = await as.mint({ scope: 'accounts', jkt: client.jkt, fault: 'bad-signature' });
        const proof = await client.proof({ htm: 'GET', htu: `${AUDIENCE}/accounts`, accessToken: bad });
        forged.push((await send(`${api.url}/accounts`, { headers: { authorization: `DPoP ${bad}`, dpop: proof } })).status);
      }
      expect(new Set(statuses)).toEqual(new Set([200]));
      expect(new Set(forged)).toEqual(new Set([401]));
    } finally {
      await api.close();
      await as.stop();
    }
  });
});

describe('introspection faults', () => {
  it('DEC-09 garbage, HTML, 5xx, slow or dropped answers are 503; recovery is automatic', async () => {
    const as = await MockIssuer.start({ audience: AUDIENCE });
    as.introspectionClients.set('rs', 'rs-secret-0123456789');
    const api = await startExpressApp({
      issuer: as.issuer,
      audience: AUDIENCE,
      introspection: {
        clientId: 'rs',
        clientAuth: { method: 'client_secret_basic', clientSecret: 'rs-secret-0123456789' },
        timeoutMs: 300,
        cache: false,
      },
    });
    try {
      const token = await as.mintOpaque({ scope: 'accounts' });
      const behaviours = [
        { transform: () => 'not an object' as unknown as Record<string, unknown> },
        { fail: 502 },
        { fail: 'close' as const },
        { delayMs: 1000 },
      ];
      for (const behaviour of behaviours) {
        as.introspection = behaviour;
        faults++;
        const res = await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } });
        expect(res.status).toBe(503);
      }
      // An answer that is JSON but says nothing useful is refused, never accepted.
      as.introspection = { transform: () => ({ active: true }) };
      faults++;
      expect((await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
      as.introspection = {};
      await sleep(10);
      expect((await send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    } finally {
      await api.close();
      await as.stop();
    }
  });
});

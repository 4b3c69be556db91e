/**
 * Idempotency keys under attack, over real HTTP: the combinations and inputs a hostile or unlucky
 * client can send to get a payment processed twice, a 2xx that must not be, a 5xx, a stall or a
 * leak. Each case names what it tries; the assertions are what must hold.
 */
import type { GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { MockIssuer } from '@fapi-guard/testing';
import { newLedger, type Party, type Payment, party, sendPayment, startFastifyProtectApp } from './support/idempotency-apps';

const PUBLIC = 'https://api.bank.example';
let as: MockIssuer;
let alice: Party;
let options: GuardOptions;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: PUBLIC });
  alice = await party(as, PUBLIC, 'client-alice');
  options = { issuer: as.issuer, audience: PUBLIC, publicUrl: PUBLIC };
});
afterAll(() => as?.stop());

const pay = (url: string, p: Omit<Payment, 'who'> & { who?: Party } = {}) => sendPayment(url, PUBLIC, { who: alice, ...p });
let keyCounter = 0;
const freshKey = () => `"a-${process.pid}-${Date.now()}-${++keyCounter}"`;
const POLICY: RoutePolicy = { scopes: ['payments'], idempotency: 'required' };

describe('fastify protect() preHandler with idempotency', () => {
  it('IDEM-04 as the route preHandler option, without messageSigning: the body is fingerprinted, retried payments are answered once (no 500)', async () => {
    const ledger = newLedger(0);
    const app = await startFastifyProtectApp(options, POLICY, ledger, 'route');
    try {
      const key = freshKey();
      const first = await pay(app.url, { key });
      expect([first.status, first.text]).toEqual([201, expect.stringContaining('"payment":"pay-1"')]);
      const retry = await pay(app.url, { key });
      expect(retry.text).toBe(first.text);
      expect((await pay(app.url, { key, body: '{"amount":"99.00"}' })).status).toBe(422);
      expect(ledger.started).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('idempotency attack: protect({ idempotency }) added with addHook fails at start-up, naming the fix, instead of 500 per request', async () => {
    await expect(startFastifyProtectApp(options, POLICY, newLedger(0), 'hook')).rejects.toThrow(
      /protect\(\) with an 'idempotency' policy must be given as a route's preHandler option/,
    );
  });
});

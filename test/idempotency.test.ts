/**
 * Idempotency keys over real HTTP on every adapter (Express, Koa, Fastify, NestJS on Express and
 * on Fastify, Hono): twenty concurrent requests with one key move money once, a retry gets the
 * first response byte for byte, and a key reused with another request, by another client, twice
 * in one request, or for an oversized or failed response never leads to a second processing.
 */
import type { GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { MessageSigningClient, MockIssuer, verifySignedResponse } from '@fapi-guard/testing';
import { FRAMEWORKS, type Framework, type StartedApp } from './support/apps';
import {
  type Ledger,
  newLedger,
  ownHeaderLines,
  type Party,
  type Payment,
  party,
  sendPayment,
  startIdempotentApp,
} from './support/idempotency-apps';

const PUBLIC = 'https://api.bank.example';
let as: MockIssuer;
let alice: Party;
let bob: Party;
let options: GuardOptions;

beforeAll(async () => {
  as = await MockIssuer.start({ audience: PUBLIC });
  [alice, bob] = await Promise.all([party(as, PUBLIC, 'client-alice'), party(as, PUBLIC, 'client-bob')]);
  options = { issuer: as.issuer, audience: PUBLIC, publicUrl: PUBLIC };
});
afterAll(() => as?.stop());

/** A payment by `alice` unless the test names another party. */
const pay = (url: string, p: Omit<Payment, 'who'> & { who?: Party } = {}) => sendPayment(url, PUBLIC, { who: alice, ...p });

let keyCounter = 0;
const freshKey = () => `"k-${process.pid}-${Date.now()}-${++keyCounter}"`;

const POLICY: RoutePolicy = { scopes: ['payments'], idempotency: { mode: 'required', maxResponseBytes: 4096 } };

describe.each(FRAMEWORKS)('%s', (framework: Framework) => {
  let app: StartedApp;
  let ledger: Ledger;

  beforeAll(async () => {
    ledger = newLedger(250);
    app = await startIdempotentApp(framework, options, POLICY, ledger);
  });
  afterAll(() => app?.close());

  it('IDEM-05 IDEM-04 twenty concurrent requests with one key are processed once; each gets the first response or 409', async () => {
    const key = freshKey();
    const before = ledger.processed;
    const answers = await Promise.all(Array.from({ length: 20 }, () => pay(app.url, { key })));
    expect(ledger.processed - before).toBe(1);
    const created = answers.filter((a) => a.status === 201);
    const conflicts = answers.filter((a) => a.status === 409);
    expect(created.length + conflicts.length).toBe(20);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map((a) => a.text)).size).toBe(1);
    for (const c of conflicts) {
      expect(c.json).toEqual({ error_description: 'A request with this idempotency key is still being processed; retry later' });
      expect(c.headers['www-authenticate']).toBeUndefined();
    }
    // Once the first has finished, a retry is the stored answer, and still nothing is processed.
    const retry = await pay(app.url, { key });
    expect(retry.status).toBe(201);
    expect(retry.text).toBe(created[0]?.text);
    expect(ledger.processed - before).toBe(1);
  });

  it('IDEM-04 IDEM-15 a retry gets the stored response: status, header lines and body bytes, with its own x-fapi-interaction-id', async () => {
    const key = freshKey();
    const first = await pay(app.url, { key });
    expect(first.status).toBe(201);
    const before = ledger.started;
    const retry = await pay(app.url, { key });
    expect(ledger.started).toBe(before);
    expect(retry.status).toBe(first.status);
    // x-fapi-interaction-id is each exchange's own (the client sent none: the guard made one each time).
    const exchange = /^x-fapi-interaction-id:/i;
    expect(ownHeaderLines(retry.rawHeaders).filter((l) => !exchange.test(l))).toEqual(
      ownHeaderLines(first.rawHeaders).filter((l) => !exchange.test(l)),
    );
    expect(retry.headers['x-fapi-interaction-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(retry.headers['x-fapi-interaction-id']).not.toBe(first.headers['x-fapi-interaction-id']);
    expect(retry.text).toBe(first.text);
    expect(retry.headers['x-payment']).toBe(JSON.parse(first.text).payment);
  });

  it('IDEM-03 a request without the key is refused with 400 in the guard error format and not processed', async () => {
    const before = ledger.started;
    const answer = await pay(app.url);
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({ error: 'invalid_request', error_description: 'This request requires an idempotency key header' });
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(answer.headers['www-authenticate']).toBeUndefined();
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(ledger.started).toBe(before);
  });

  it('IDEM-06 the same key with another body, method, path or query is refused with 422 and not processed', async () => {
    const key = freshKey();
    expect((await pay(app.url, { key })).status).toBe(201);
    const before = ledger.started;
    const variants: Omit<Payment, 'who'>[] = [
      { key, body: '{"amount":"10.01"}' },
      // The same JSON value in other bytes is another request: the fingerprint is over the bytes.
      { key, body: '{"amount": "10.00"}' },
      { key, method: 'PUT' },
      { key, path: '/transfers' },
      { key, path: '/payments?to=mallory' },
    ];
    for (const variant of variants) {
      const answer = await pay(app.url, variant);
      expect([variant, answer.status]).toEqual([variant, 422]);
      expect(answer.json).toEqual({ error_description: 'This idempotency key was already used for a different request' });
    }
    expect(ledger.started).toBe(before);
  });

  it("IDEM-07 another client's identical key is another request: processed for that client, never answered with the first client's response", async () => {
    const key = freshKey();
    const first = await pay(app.url, { key });
    const other = await pay(app.url, { key, who: bob });
    expect(other.status).toBe(201);
    expect(JSON.parse(other.text).client).toBe('client-bob');
    expect(JSON.parse(other.text).payment).not.toBe(JSON.parse(first.text).payment);
    // Each client's retry gets its own stored response.
    expect((await pay(app.url, { key, who: bob })).text).toBe(other.text);
    expect((await pay(app.url, { key })).text).toBe(first.text);
  });

  it('IDEM-02 IDEM-01 two key header lines, a list, a token or parameters are refused with 400 and not processed', async () => {
    const before = ledger.started;
    for (const key of [['"k-dup"', '"k-dup"'], ['"k-a"', '"k-b"'], '"k-a", "k-b"', 'k-token', '"k";p=1', '""', `"${'k'.repeat(256)}"`]) {
      const answer = await pay(app.url, { key });
      expect([key, answer.status]).toEqual([key, 400]);
      expect(answer.json).toEqual({
        error: 'invalid_request',
        error_description: 'The idempotency key header is malformed or sent more than once',
      });
    }
    expect(ledger.started).toBe(before);
    expect((await pay(app.url, { key: `"${'k'.repeat(255)}"` })).status).toBe(201);
  });

  it('IDEM-10 a server error is not stored: the key is freed and the retry is processed again', async () => {
    const key = freshKey();
    const body = '{"fail":true}';
    const before = ledger.started;
    expect((await pay(app.url, { key, body })).status).toBe(500);
    expect((await pay(app.url, { key, body })).status).toBe(500);
    expect(ledger.started - before).toBe(2);
  });

  it('IDEM-11 a response over maxResponseBytes is sent whole but not kept; retries get 409 and nothing is processed again', async () => {
    const key = freshKey();
    const body = '{"big":5000}';
    const first = await pay(app.url, { key, body });
    expect(first.status).toBe(201);
    expect(JSON.parse(first.text).pad).toHaveLength(5000);
    const before = ledger.started;
    const retry = await pay(app.url, { key, body });
    expect(retry.status).toBe(409);
    expect(retry.json.error_description).toMatch(/processed but its response was not kept/);
    expect(ledger.started).toBe(before);
  });
});

describe.each(FRAMEWORKS)('%s, signed responses', (framework: Framework) => {
  let app: StartedApp;
  const responseKey = MessageSigningClient.generate('ed25519', 'rs-response');
  const aliceKey = MessageSigningClient.generate('ed25519', 'alice-key');
  beforeAll(async () => {
    const signing: GuardOptions = {
      ...options,
      messageSigning: { clients: { 'client-alice': { jwks: aliceKey.jwks } }, responseKey: responseKey.privateJwk },
    };
    const policy: RoutePolicy = { scopes: ['payments'], idempotency: 'required', signResponse: true, signedRequest: 'required' };
    app = await startIdempotentApp(framework, signing, policy, newLedger(0));
  });
  afterAll(() => app?.close());

  it('IDEM-15 a retry gets the first status and bytes, its own x-fapi-interaction-id, and a response signature made for the retry (RFC 9421 §2.4 ;req)', async () => {
    const key = freshKey();
    const signed = (id: string) => ({ key, signer: aliceKey, headers: { 'x-fapi-interaction-id': id } });
    const first = await pay(app.url, signed('6f1d1a5e-0000-4000-8000-000000000001'));
    expect(first.status).toBe(201);
    expect(first.headers['x-fapi-interaction-id']).toBe('6f1d1a5e-0000-4000-8000-000000000001');
    expect(first.headers['signature-input']).toContain('tag="fapi-2-response"');
    const retry = await pay(app.url, signed('6f1d1a5e-0000-4000-8000-000000000002'));
    expect([retry.status, retry.text]).toEqual([201, first.text]);
    expect(retry.headers['x-payment']).toBe(first.headers['x-payment']);
    expect(retry.headers['content-digest']).toBe(first.headers['content-digest']);
    // FAPI: the resource server echoes the id the client sent with this request.
    expect(retry.headers['x-fapi-interaction-id']).toBe('6f1d1a5e-0000-4000-8000-000000000002');
    // Every header line but the exchange's own is the first one's.
    const own = /^(signature|signature-input|x-fapi-interaction-id):/i;
    expect(ownHeaderLines(retry.rawHeaders).filter((l) => !own.test(l))).toEqual(
      ownHeaderLines(first.rawHeaders).filter((l) => !own.test(l)),
    );
    const verify = (answer: typeof first, request: typeof first.request) =>
      verifySignedResponse({
        request,
        response: { status: answer.status, headers: answer.headers as Record<string, string>, body: answer.text },
        jwks: responseKey.jwks,
      }).ok;
    // The retry's signature covers the retry's request signature; the first one's would not verify for it.
    expect(verify(retry, retry.request)).toBe(true);
    expect(verify(first, retry.request)).toBe(false);
    expect(verify(first, first.request)).toBe(true);
  });
});

describe.each(['express', 'hono'] as const)('%s, optional UK Open Banking keys', (framework: Framework) => {
  let app: StartedApp;
  const ledger = newLedger(0);
  beforeAll(async () => {
    app = await startIdempotentApp(
      framework,
      options,
      { scopes: ['payments'], idempotency: { mode: 'optional', syntax: 'uk-ob' } },
      ledger,
    );
  });
  afterAll(() => app?.close());
  const header = 'x-idempotency-key';

  it('IDEM-08 x-idempotency-key of 40 characters is a key; 41 is refused with 400; without one the payment is made unguarded', async () => {
    const key = `${Date.now()}`.padEnd(40, 'k');
    const first = await pay(app.url, { key, header });
    expect(first.status).toBe(201);
    expect((await pay(app.url, { key, header })).text).toBe(first.text);
    expect((await pay(app.url, { key: `${key}k`, header })).status).toBe(400);
    const before = ledger.processed;
    expect((await pay(app.url)).status).toBe(201);
    expect((await pay(app.url)).status).toBe(201);
    expect(ledger.processed - before).toBe(2);
  });
});

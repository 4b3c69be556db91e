/**
 * Idempotency keys under attack, over real HTTP: the combinations and inputs a hostile or unlucky
 * client can send to get a payment processed twice, a 2xx that must not be, a 5xx, a stall or a
 * leak. Each case names what it tries; the assertions are what must hold.
 */

import { connect } from 'node:net';
import {
  type DecisionEvent,
  DecisionMetrics,
  type GuardOptions,
  type IdempotencyStore,
  idempotencyStoreKey,
  MemoryIdempotencyStore,
  type RoutePolicy,
} from '@fapi-guard/core';
import { MockIssuer } from '@fapi-guard/testing';
import type { Framework, StartedApp } from './support/apps';
import { FRAMEWORKS } from './support/apps';
import { trickle } from './support/http';
import {
  newLedger,
  type Party,
  type Payment,
  party,
  sendPayment,
  startFastifyProtectApp,
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

describe.each(['express', 'hono'] as Framework[])('%s, idempotency decisions reported', (framework) => {
  let app: StartedApp;
  const events: DecisionEvent[] = [];
  const metrics = new DecisionMetrics();
  const logged: unknown[] = [];
  let storeDown = false;
  const memory = new MemoryIdempotencyStore();
  // The memory store, or a store that cannot answer.
  const store: IdempotencyStore = {
    claim: (...args) => (storeDown ? Promise.reject(new Error('store down')) : memory.claim(...args)),
    complete: (...args) => memory.complete(...args),
    release: (...args) => memory.release(...args),
  };
  const ledger = newLedger(300);
  beforeAll(async () => {
    const reporting: GuardOptions = {
      ...options,
      idempotency: { store },
      onDecision: (event) => {
        events.push(event);
        metrics.record(event);
      },
      logger: { warn: () => undefined, error: (obj) => logged.push(obj) },
    };
    app = await startIdempotentApp(framework, reporting, POLICY, ledger);
  });
  afterAll(() => app?.close());

  /** The idempotency event of the last request (after its access decision). */
  const last = () => events.at(-1) as DecisionEvent;

  it('idempotency attack: refusals (400, 409, 422, 503) and replays reach onDecision, the metrics and the logger, each with its reason', async () => {
    const id = (n: number) => ({ 'x-fapi-interaction-id': `6f1d1a5e-0000-4000-8000-00000000000${n}` });
    expect((await pay(app.url, { headers: id(1) })).status).toBe(400);
    expect(last()).toMatchObject({
      outcome: 'deny',
      status: 400,
      reason: 'idempotency_key_missing',
      error: 'invalid_request',
      idempotency: 'refused',
      clientId: 'client-alice',
      interactionId: '6f1d1a5e-0000-4000-8000-000000000001',
      method: 'POST',
      url: `${PUBLIC}/payments`,
    });
    const key = freshKey();
    const [first, second] = await Promise.all([
      pay(app.url, { key }),
      new Promise((r) => setTimeout(r, 100)).then(() => pay(app.url, { key, headers: id(2) })),
    ]);
    expect([first.status, second.status]).toEqual([201, 409]);
    expect(events.find((e) => e.interactionId === '6f1d1a5e-0000-4000-8000-000000000002' && e.idempotency)).toMatchObject({
      outcome: 'deny',
      status: 409,
      reason: 'idempotency_key_in_flight',
      idempotency: 'refused',
    });
    expect((await pay(app.url, { key, body: '{"amount":"1.00"}' })).status).toBe(422);
    expect(last()).toMatchObject({ outcome: 'deny', status: 422, reason: 'idempotency_key_reused', idempotency: 'refused' });
    expect((await pay(app.url, { key, headers: id(3) })).status).toBe(201);
    expect(last()).toMatchObject({
      outcome: 'allow',
      status: 201,
      reason: 'idempotency_replayed',
      idempotency: 'replayed',
      binding: 'dpop',
      interactionId: '6f1d1a5e-0000-4000-8000-000000000003',
    });
    // A first request goes on to the handler with its access decision alone.
    const before = events.length;
    expect((await pay(app.url, { key: freshKey() })).status).toBe(201);
    expect(events.slice(before).map((e) => [e.outcome, e.idempotency])).toEqual([['allow', undefined]]);
    storeDown = true;
    try {
      expect((await pay(app.url, { key: freshKey() })).status).toBe(503);
    } finally {
      storeDown = false;
    }
    expect(last()).toMatchObject({ outcome: 'deny', status: 503, reason: 'store_unavailable', idempotency: 'refused' });
    expect(logged).toContainEqual(expect.objectContaining({ reason: 'store_unavailable', status: 503 }));
    const reasons = metrics.snapshot().decisions.map((d) => `${d.labels.outcome} ${d.labels.status} ${d.labels.reason}`);
    for (const r of [
      'deny 400 idempotency_key_missing',
      'deny 409 idempotency_key_in_flight',
      'deny 422 idempotency_key_reused',
      'allow 201 idempotency_replayed',
      'deny 503 store_unavailable',
    ])
      expect(reasons).toContain(r);
  });
});

describe('one client filling the memory store', () => {
  it('idempotency attack: a client sending new keys as fast as it can exhausts only its own share (503 for it, 201 for another client)', async () => {
    const ledger = newLedger(0);
    const store = new MemoryIdempotencyStore({ max: 20, maxPerClient: 3 });
    const app = await startIdempotentApp('express', { ...options, idempotency: { store } }, POLICY, ledger);
    try {
      for (let i = 0; i < 3; i++) expect((await pay(app.url, { key: freshKey() })).status).toBe(201);
      const flood = await pay(app.url, { key: freshKey() });
      expect(flood.status).toBe(503);
      expect(flood.headers['retry-after']).toBeDefined();
      expect(ledger.started).toBe(3);
      expect((await pay(app.url, { key: freshKey(), who: bob })).status).toBe(201);
      expect(ledger.started).toBe(4);
    } finally {
      await app.close();
    }
  });
});

/** Request headers of a payment by `alice` with a fresh DPoP proof for `path` (no query). */
async function paymentHeaders(method: string, path: string, key: string): Promise<Record<string, string>> {
  const { client, token } = alice;
  const dpop = await client.proof({ htm: method, htu: `${PUBLIC}${path.split('?')[0]}`, accessToken: token });
  return { authorization: `DPoP ${token}`, dpop, 'content-type': 'application/json', 'idempotency-key': key };
}

/** Sends a whole request over a raw socket and closes the connection after `closeAfterMs`, unanswered. */
function sendAndHangUp(url: string, head: string, body: string, closeAfterMs: number): Promise<void> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => socket.write(`${head}\r\n\r\n${body}`));
    socket.on('error', () => undefined);
    setTimeout(() => {
      socket.destroy();
      resolve();
    }, closeAfterMs);
  });
}

describe.each(FRAMEWORKS)('%s under attack', (framework) => {
  let app: StartedApp;
  const ledger = newLedger(0);
  beforeAll(async () => {
    app = await startIdempotentApp(framework, { ...options, idempotency: { maxRequestBytes: 2048 } }, POLICY, ledger);
  });
  afterAll(() => app?.close());

  it('idempotency attack: a client that hangs up mid-request and retries is answered at once (the first response, or 409 not kept when the framework ended it without its body); the payment is processed once', async () => {
    const key = freshKey();
    const body = '{"amount":"10.00"}';
    const headers = await paymentHeaders('POST', '/payments', key);
    const lines = Object.entries({ host: new URL(app.url).host, ...headers, 'content-length': String(body.length) })
      .map(([n, v]) => `${n}: ${v}`)
      .join('\r\n');
    ledger.delayMs = 300;
    const before = ledger.processed;
    try {
      await sendAndHangUp(app.url, `POST /payments HTTP/1.1\r\n${lines}`, body, 100);
      // The payment runs on without its client (bounded wait: a loaded machine is slow).
      for (let i = 0; i < 100 && ledger.processed === before; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      ledger.delayMs = 0;
    }
    const retry = await pay(app.url, { key, body });
    expect(ledger.processed - before).toBe(1);
    // Koa ends the response of a client that went away without its body: that response is not kept.
    if (framework === 'koa') expect([retry.status, retry.json.error_description]).toEqual([409, expect.stringMatching(/not kept/)]);
    else expect([retry.status, JSON.parse(retry.text).payment]).toEqual([201, `pay-${before + 1}`]);
  });

  it('IDEM-02 idempotency attack: the key header twice in two letter cases (Idempotency-Key, IDEMPOTENCY-KEY) is refused 400, not processed', async () => {
    const started = ledger.started;
    const body = '{"amount":"10.00"}';
    const { 'idempotency-key': key, ...headers } = await paymentHeaders('POST', '/payments', freshKey());
    const answer = await trickle(app.url, {
      path: '/payments',
      headers: { ...headers, 'Idempotency-Key': key as string, 'IDEMPOTENCY-KEY': freshKey(), 'content-length': String(body.length) },
      head: body,
    });
    expect(answer.status).toBe(400);
    expect(ledger.started).toBe(started);
  });

  it('idempotency attack: the same key with the query reordered, or the target in absolute form, is never processed a second time', async () => {
    const key = freshKey();
    const started = ledger.started;
    expect((await pay(app.url, { key, path: '/payments?a=1&b=2' })).status).toBe(201);
    expect((await pay(app.url, { key, path: '/payments?b=2&a=1' })).status).toBe(422);
    const key2 = freshKey();
    const first = await pay(app.url, { key: key2 });
    expect(first.status).toBe(201);
    const body = '{"amount":"10.00"}';
    const absolute = await trickle(app.url, {
      path: `${app.url}/payments`,
      headers: { ...(await paymentHeaders('POST', '/payments', key2)), 'content-length': String(body.length) },
      head: body,
    });
    // The absolute form names the same resource: the stored answer, or a refusal — never a second payment.
    expect([201, 400, 401, 422]).toContain(absolute.status);
    if (absolute.status === 201) expect(absolute.text).toBe(first.text);
    expect(ledger.started - started).toBe(2);
  });
});

describe('store keys', () => {
  it('idempotency attack: the same client_id at two issuers, or a key that spells another client, never shares an entry (IDEM-07 composite key)', () => {
    const a = idempotencyStoreKey({ issuer: 'https://as1.example', clientId: 'c' }, 'k');
    expect(idempotencyStoreKey({ issuer: 'https://as2.example', clientId: 'c' }, 'k')).not.toBe(a);
    // Separators cannot be moved between the parts.
    expect(idempotencyStoreKey({ issuer: 'https://as1.example', clientId: 'c","k' }, '')).not.toBe(a);
    expect(idempotencyStoreKey({ issuer: 'https://as1.example", "c', clientId: '' }, 'k')).not.toBe(a);
  });
});

/** Starts the payments API with a 2 KiB request bound; `refused` checks a 413 that processed nothing and claimed no key. */
function oversizedBodyApp(framework: Framework) {
  const ledger = newLedger(0);
  const running: { app?: StartedApp } = {};
  beforeAll(async () => {
    running.app = await startIdempotentApp(framework, { ...options, idempotency: { maxRequestBytes: 2048 } }, POLICY, ledger);
  });
  afterAll(() => running.app?.close());
  const url = () => (running.app as StartedApp).url;
  /** Refused 413 in the guard's format (as Hono's), not processed, and the key left free: the same key with a small body is processed. */
  const refused = async (answer: { status: number; text: string }, key: string, started: number) => {
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.text)).toEqual({ error_description: 'The request body is too large to be checked' });
    expect(ledger.started).toBe(started);
    expect((await pay(url(), { key })).status).toBe(201);
  };
  return { ledger, url, refused };
}

// The whole chunked body over the bound, its second half sent slowly, then its end: every adapter
// answers 413 as soon as the body has ended (the body parsers mounted before the guard read it
// whole, within their own limits; the rawBody() tap keeps at most maxRequestBytes of it).
describe.each(FRAMEWORKS)('%s, a slow oversized chunked body', (framework) => {
  const { ledger, url, refused } = oversizedBodyApp(framework);

  it('idempotency attack: a chunked body over maxRequestBytes sent slowly to its end is refused 413 at its end (no stall); nothing is processed, no key is claimed', async () => {
    const started = ledger.started;
    const key = freshKey();
    const answer = await trickle(
      url(),
      {
        path: '/payments',
        headers: { ...(await paymentHeaders('POST', '/payments', key)), 'transfer-encoding': 'chunked' },
        // A JSON body the parsers accept: only the guard's bound refuses it.
        head: `400\r\n{"amount":"10.00","pad":"${'x'.repeat(1024 - 25)}\r\n`,
        rest: `802\r\n${'x'.repeat(2048)}"}\r\n0\r\n\r\n`,
        restAfterMs: 200,
      },
      3000,
    );
    await refused(answer, key, started);
  });
});

// Hono only: its guard runs before anything reads the body, so it refuses while the body is still
// coming. On the Node adapters the body parsers mounted before the guard (rawBody(), then
// express.json(), Koa's bodyParser, Fastify's and Nest's parsers) wait for the end of a body that
// is under their own limits: an open finding of issue 30, bounded by Node's requestTimeout.
describe('hono, a slow oversized body', () => {
  const { ledger, url, refused } = oversizedBodyApp('hono');

  it('idempotency attack: a body over maxRequestBytes sent slowly in chunks is refused 413 before its end; nothing is processed, no key is claimed', async () => {
    const started = ledger.started;
    const key = freshKey();
    const answer = await trickle(
      url(),
      {
        path: '/payments',
        headers: { ...(await paymentHeaders('POST', '/payments', key)), 'transfer-encoding': 'chunked' },
        head: `400\r\n${'x'.repeat(1024)}\r\n`,
        // Over the bound, and the end of the body never comes.
        rest: `800\r\n${'x'.repeat(2048)}\r\n`,
        restAfterMs: 200,
      },
      3000,
    );
    await refused(answer, key, started);
  });

  it('idempotency attack: a Content-Length over maxRequestBytes is refused 413 before the body is sent; nothing is processed, no key is claimed', async () => {
    const started = ledger.started;
    const key = freshKey();
    const answer = await trickle(
      url(),
      {
        path: '/payments',
        headers: { ...(await paymentHeaders('POST', '/payments', key)), 'content-length': '4096' },
        head: 'x'.repeat(1024),
      },
      3000,
    );
    await refused(answer, key, started);
  });
});

describe.each(['express', 'hono'] as Framework[])('%s, a handler slower than leaseSec', (framework) => {
  let app: StartedApp;
  const ledger = newLedger(1800);
  beforeAll(async () => {
    app = await startIdempotentApp(framework, options, { scopes: ['payments'], idempotency: { mode: 'required', leaseSec: 1 } }, ledger);
  });
  afterAll(() => app?.close());

  it('IDEM-12 IDEM-05 the claim is renewed while the first request still runs: a retry after leaseSec gets 409, never a second processing', async () => {
    const key = freshKey();
    const first = pay(app.url, { key });
    await new Promise((r) => setTimeout(r, 1400));
    const retry = await pay(app.url, { key });
    expect(retry.status).toBe(409);
    expect((await first).status).toBe(201);
    expect((await pay(app.url, { key })).text).toBe((await first).text);
    expect(ledger.started).toBe(1);
  });
});

describe('two layers both carrying idempotency', () => {
  // An app-wide protect() and the route's protect() with `idempotency` both: the key is taken up
  // by the first layer, once per request (a second claim by the route's layer would answer 409).
  it.each(['express', 'koa'] as const)(
    'IDEM-05 %s: the first layer claims the key, the second passes; a retry is answered from the store',
    async (name) => {
      const ledger = newLedger(0);
      const http = await import('node:http');
      let server: import('node:http').Server;
      if (name === 'express') {
        const express = (await import('express')).default;
        const { fapiGuard } = await import('@fapi-guard/express');
        const fapi = fapiGuard(options);
        const app = express();
        app.use(fapi.protect(POLICY));
        app.post('/payments', fapi.protect(POLICY), (_req, res) => {
          ledger.started++;
          ledger.processed++;
          res.status(201).json({ payment: `pay-${ledger.processed}` });
        });
        server = http.createServer(app);
      } else {
        const Koa = (await import('koa')).default;
        const Router = (await import('@koa/router')).default;
        const { fapiGuard } = await import('@fapi-guard/koa');
        const fapi = fapiGuard(options);
        const app = new Koa();
        app.use(fapi.protect(POLICY));
        const router = new Router();
        router.post('/payments', fapi.protect(POLICY), (ctx) => {
          ledger.started++;
          ledger.processed++;
          ctx.status = 201;
          ctx.body = { payment: `pay-${ledger.processed}` };
        });
        app.use(router.routes());
        server = http.createServer(app.callback());
      }
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
      try {
        const key = freshKey();
        const first = await pay(url, { key });
        expect([first.status, first.text]).toEqual([201, '{"payment":"pay-1"}']);
        const retry = await pay(url, { key });
        expect([retry.status, retry.text]).toEqual([201, first.text]);
        expect(ledger.processed).toBe(1);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    },
  );
});

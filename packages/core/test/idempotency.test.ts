/**
 * Idempotency keys in the core: key syntax per regime and its bounds, the request fingerprint, the
 * route policy's checks at start-up, the bounded in-memory store, and the response-size bound of
 * the Node recorder over a real HTTP server.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Authorized,
  compileIdempotency,
  compilePolicy,
  createGuard,
  type GuardHeaders,
  IdempotencyStoreFullError,
  MemoryIdempotencyStore,
  readIdempotencyKey,
  requestFingerprint,
  startFetchIdempotency,
  startNodeIdempotency,
  writeIdempotencyAnswer,
} from '@fapi-guard/core';
import { canonicalJson, payloadFingerprint, sameRequest, sameTarget } from '../src/idempotency/fingerprint';
import { idempotencyRequestLimit } from '../src/idempotency/policy';

const h = (...values: string[]): GuardHeaders => ({ 'idempotency-key': values, 'x-idempotency-key': values });

describe('readIdempotencyKey', () => {
  it('IDEM-01 Idempotency-Key is an sf-string of 1 to 255 characters, without parameters', () => {
    expect(readIdempotencyKey(h('"8e03978e-40d5-43e8-bc93-6894a57f9324"'), 'idempotency-key', 'ietf')).toEqual({
      ok: true,
      key: '8e03978e-40d5-43e8-bc93-6894a57f9324',
    });
    expect(readIdempotencyKey(h(`"${'a'.repeat(255)}"`), 'idempotency-key', 'ietf')).toEqual({ ok: true, key: 'a'.repeat(255) });
    // sf-string escapes: \" and \\ are one character each.
    expect(readIdempotencyKey(h('"a\\"b\\\\c"'), 'idempotency-key', 'ietf')).toEqual({ ok: true, key: 'a"b\\c' });
    for (const bad of [`"${'a'.repeat(256)}"`, '""', 'token', ':Ynl0ZXM=:', '"a";p=1', '"a", "b"', '"unterminated', '1', '"a"x']) {
      expect([bad, readIdempotencyKey(h(bad), 'idempotency-key', 'ietf').ok]).toEqual([bad, false]);
    }
  });

  it('IDEM-02 two header lines are refused, even with the same value', () => {
    expect(readIdempotencyKey(h('"a"', '"a"'), 'idempotency-key', 'ietf')).toMatchObject({
      ok: false,
      reason: 'idempotency_key_malformed',
    });
    expect(readIdempotencyKey(h('k', 'k'), 'x-idempotency-key', 'uk-ob').ok).toBe(false);
  });

  it('no header is no key (the route decides whether that is allowed)', () => {
    expect(readIdempotencyKey({}, 'idempotency-key', 'ietf')).toEqual({ ok: true, key: undefined });
  });

  it('IDEM-08 UK Open Banking x-idempotency-key: 1 to 40 characters, no leading or trailing white space', () => {
    expect(readIdempotencyKey(h('a'.repeat(40)), 'x-idempotency-key', 'uk-ob')).toEqual({ ok: true, key: 'a'.repeat(40) });
    expect(readIdempotencyKey(h('a'.repeat(41)), 'x-idempotency-key', 'uk-ob').ok).toBe(false);
    expect(readIdempotencyKey(h('pay 2024/01'), 'x-idempotency-key', 'uk-ob')).toEqual({ ok: true, key: 'pay 2024/01' });
    // A value is trimmed as HTTP does (RFC 9110 §5.5); white space inside the key's ends is not.
    for (const bad of ['a\tb', '', 'a,b', 'caf\u00e9', 'a\u0000b']) {
      expect([bad, readIdempotencyKey(h(bad), 'x-idempotency-key', 'uk-ob').ok]).toEqual([bad, false]);
    }
  });

  it('IDEM-09 Brazil Open Finance x-idempotency-key: 1 to 100 characters', () => {
    expect(readIdempotencyKey(h('b'.repeat(100)), 'x-idempotency-key', 'br-of')).toEqual({ ok: true, key: 'b'.repeat(100) });
    expect(readIdempotencyKey(h('b'.repeat(101)), 'x-idempotency-key', 'br-of').ok).toBe(false);
  });

  it('refuses a huge value before parsing it', () => {
    expect(readIdempotencyKey(h(`"${'a'.repeat(100_000)}"`), 'idempotency-key', 'ietf')).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/characters long/),
    });
  });
});

describe('requestFingerprint', () => {
  const base = requestFingerprint('POST', 'https://api.example/payments', Buffer.from('{"a":1}'));
  it('IDEM-06 differs with the method, the target URI (path or query) and any body byte', () => {
    expect(requestFingerprint('POST', 'https://api.example/payments', Buffer.from('{"a":1}'))).toBe(base);
    for (const other of [
      requestFingerprint('PUT', 'https://api.example/payments', Buffer.from('{"a":1}')),
      requestFingerprint('POST', 'https://api.example/payments?x', Buffer.from('{"a":1}')),
      requestFingerprint('POST', 'https://api.example/payment', Buffer.from('{"a":1}')),
      requestFingerprint('POST', 'https://api.example/payments', Buffer.from('{"a": 1}')),
      requestFingerprint('POST', 'https://api.example/payments', Buffer.alloc(0)),
      // Length prefixes: moving bytes from one part to the next is another input.
      requestFingerprint('POSThttps://api.example/payments', '', Buffer.from('{"a":1}')),
    ]) {
      expect(other).not.toBe(base);
    }
  });
});

describe('sameTarget', () => {
  const url = 'https://api.example/payments';
  it('IDEM-16 tells a request to the same method and target URI from one to another route, whatever the body', () => {
    const first = requestFingerprint('POST', url, Buffer.from('{"a":1}'));
    expect(sameTarget(first, requestFingerprint('POST', url, Buffer.from('{"a":2}')))).toBe(true);
    expect(sameTarget(first, payloadFingerprint('POST', url, { a: 1 }))).toBe(true);
    for (const other of [
      requestFingerprint('PUT', url, Buffer.from('{"a":1}')),
      requestFingerprint('POST', `${url}?x`, Buffer.from('{"a":1}')),
      requestFingerprint('POSThttps://api.example/payments', '', Buffer.from('{"a":1}')),
    ]) {
      expect(sameTarget(first, other)).toBe(false);
    }
    // A fingerprint stored by an earlier release (no target part) is never the same target.
    expect(sameTarget(first.slice(first.indexOf('.') + 1), first)).toBe(false);
    expect(sameTarget(`.${first}`, `.${first}`)).toBe(false);
  });

  it('IDEM-06 a fingerprint stored by an earlier release (the request part alone) still names the same request', () => {
    const body = Buffer.from('{"a":1}');
    const sha = (...parts: (string | Buffer)[]) => parts.reduce((h, p) => h.update(p), createHash('sha256'));
    // The earlier release's fingerprint: length-prefixed method and target URI, then the body's SHA-256.
    const earlier = sha('4:POST', `${url.length}:${url}`, sha(body).digest()).digest('base64url');
    const now = requestFingerprint('POST', url, body);
    expect(now).toBe(`${sha('4:POST', `${url.length}:${url}`).digest('base64url')}.${earlier}`);
    expect([sameRequest(now, now), sameRequest(earlier, now)]).toEqual([true, true]);
    const other = requestFingerprint('POST', url, Buffer.from('{"a":2}'));
    expect([sameRequest(other, now), sameRequest(other.slice(other.indexOf('.') + 1), now), sameRequest(`x${now}`, now)]).toEqual([
      false,
      false,
      false,
    ]);
  });
});

describe('payloadFingerprint (Open Finance Brasil signed bodies)', () => {
  const url = 'https://api.example/payments';
  it('IDEM-17 is the same for the same data in any member order, and differs with any value, the method or the URI', () => {
    const base = payloadFingerprint('POST', url, { payment: { amount: '1.00', currency: 'BRL' }, list: [1, 'x', null, true] });
    expect(payloadFingerprint('POST', url, { list: [1, 'x', null, true], payment: { currency: 'BRL', amount: '1.00' } })).toBe(base);
    for (const other of [
      payloadFingerprint('POST', url, { payment: { amount: '1.00', currency: 'BRL' }, list: [1, 'x', null, false] }),
      payloadFingerprint('POST', url, { payment: { amount: '1.00', currency: 'BRL' }, list: ['x', 1, null, true] }),
      payloadFingerprint('POST', url, { payment: { amount: '1.0', currency: 'BRL' }, list: [1, 'x', null, true] }),
      payloadFingerprint('POST', url, { payment: { amount: '1.00' }, list: [1, 'x', null, true] }),
      payloadFingerprint('PUT', url, { payment: { amount: '1.00', currency: 'BRL' }, list: [1, 'x', null, true] }),
      payloadFingerprint('POST', `${url}?x`, { payment: { amount: '1.00', currency: 'BRL' }, list: [1, 'x', null, true] }),
    ]) {
      expect(other).not.toBe(base);
    }
  });

  it('IDEM-17 keeps a number beyond a double (parsed as Infinity) apart from null', () => {
    const parsed = (text: string) => payloadFingerprint('POST', url, JSON.parse(text));
    expect(new Set([parsed('{"a":1e400}'), parsed('{"a":null}'), parsed('{"a":-1e400}')]).size).toBe(3);
    expect(canonicalJson(JSON.parse('[1e400,-1e400,null]'))).toBe('[Infinity,-Infinity,null]');
  });

  it('IDEM-17 never equals the fingerprint of body bytes, not even the canonical text of the same data', () => {
    const data = { a: 1 };
    expect(payloadFingerprint('POST', url, data)).not.toBe(requestFingerprint('POST', url, Buffer.from(canonicalJson(data))));
  });

  it('IDEM-17 writes JSON canonically (RFC 8785 §3.2): members sorted by code unit, no white space, ES number and string forms', () => {
    // U+FF61 sorts after U+1F600 by UTF-16 code units (0xFF61 > 0xD83D), before it by code points.
    const value = JSON.parse('{"b":[1,"x",null,true,{}],"a":{"d":1e21,"c":-0,"｡":1,"€":"\\u000f","😀":0.5,"e\\"":[]},"A":"z"}');
    expect(canonicalJson(value)).toBe('{"A":"z","a":{"c":0,"d":1e+21,"e\\"":[],"€":"\\u000f","😀":0.5,"｡":1},"b":[1,"x",null,true,{}]}');
  });

  it('IDEM-17 takes data nested deeper than the call stack without throwing (linear time, no recursion)', () => {
    const depth = 200_000;
    const deep = JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`);
    expect(canonicalJson(deep)).toHaveLength(2 * depth);
    expect(typeof payloadFingerprint('POST', url, deep)).toBe('string');
  });
});

describe('the idempotency route policy', () => {
  it('has the documented defaults', () => {
    expect(compileIdempotency('required')).toEqual({
      mode: 'required',
      syntax: 'ietf',
      header: 'idempotency-key',
      ttlMs: 86_400_000,
      leaseMs: 86_400_000,
      maxResponseBytes: 1_048_576,
    });
    expect(compileIdempotency({ mode: 'optional', syntax: 'uk-ob' }).header).toBe('x-idempotency-key');
    expect(compileIdempotency({ mode: 'optional', header: 'X-Request-Key', ttlSec: 60, leaseSec: 5 })).toMatchObject({
      header: 'x-request-key',
      ttlMs: 60_000,
      leaseMs: 5_000,
    });
  });

  it('fails at start-up on an unknown key, a wrong type or a value out of range', () => {
    expect(() => compilePolicy({ idempotency: { mode: 'required', ttl: 60 } as never })).toThrow(
      /unknown route policy key "idempotency.ttl"; did you mean "idempotency.ttlSec"/,
    );
    expect(() => compilePolicy({ idempotency: 'always' as never })).toThrow(/idempotency/);
    expect(() => compilePolicy({ idempotency: { mode: 'sometimes' } as never })).toThrow(/idempotency.mode/);
    expect(() => compileIdempotency({ mode: 'required', header: 'bad header' })).toThrow(/header name/);
    expect(() => compileIdempotency({ mode: 'required', header: 'Authorization' })).toThrow(/of its own/);
    expect(() => compileIdempotency({ mode: 'required', ttlSec: 0 })).toThrow(/ttlSec/);
    expect(() => compileIdempotency({ mode: 'required', ttlSec: 7 * 86_400 + 1 })).toThrow(/ttlSec/);
    expect(() => compileIdempotency({ mode: 'required', ttlSec: 60, leaseSec: 61 })).toThrow(/leaseSec/);
    expect(() => compileIdempotency({ mode: 'required', maxResponseBytes: 16 * 1024 * 1024 + 1 })).toThrow(/maxResponseBytes/);
    expect(() =>
      createGuard({ issuer: 'https://as.example.com', audience: 'https://rs.example.com', idempotency: { stor: {} } as never }),
    ).toThrow(/unknown option "idempotency.stor"/);
  });

  it('takes each byte bound up to its edge and not one byte past it', () => {
    const MiB = 1024 * 1024;
    expect(compileIdempotency({ mode: 'required', maxResponseBytes: 0 }).maxResponseBytes).toBe(0);
    expect(compileIdempotency({ mode: 'required', maxResponseBytes: 16 * MiB }).maxResponseBytes).toBe(16 * MiB);
    expect(() => compileIdempotency({ mode: 'required', maxResponseBytes: -1 })).toThrow(/maxResponseBytes/);
    expect(() => compileIdempotency({ mode: 'required', maxResponseBytes: 1.5 })).toThrow(/maxResponseBytes/);
    // The guard-wide request bound: 1 MiB unless set, 0 to 64 MiB.
    expect(idempotencyRequestLimit(undefined)).toBe(MiB);
    expect(idempotencyRequestLimit({})).toBe(MiB);
    expect(idempotencyRequestLimit({ maxRequestBytes: 0 })).toBe(0);
    expect(idempotencyRequestLimit({ maxRequestBytes: 64 * MiB })).toBe(64 * MiB);
    for (const maxRequestBytes of [-1, 64 * MiB + 1, 0.5, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => idempotencyRequestLimit({ maxRequestBytes })).toThrow(
        'fapi-guard: idempotency.maxRequestBytes must be a whole number of bytes between 0 and 67108864',
      );
    expect(() => idempotencyRequestLimit({ store: {} as never })).toThrow(/must implement claim, complete and release/);
    expect(() =>
      createGuard({ issuer: 'https://as.example.com', audience: 'https://rs.example.com', idempotency: { maxRequestBytes: -1 } }),
    ).toThrow(/maxRequestBytes/);
  });
});

describe('MemoryIdempotencyStore', () => {
  const done = (fingerprint: string, bytes: number) =>
    ({
      state: 'done',
      fingerprint,
      response: { status: 201, headers: [['content-type', 'text/plain']], body: Buffer.alloc(bytes) },
    }) as const;

  it('IDEM-05 of twenty concurrent claims of one key exactly one is granted', async () => {
    const store = new MemoryIdempotencyStore();
    const claims = await Promise.all(Array.from({ length: 20 }, () => store.claim('k', 'f', 10_000, 'c')));
    expect(claims.filter((c) => c.claimed)).toHaveLength(1);
    expect(claims.filter((c) => !c.claimed).every((c) => !c.claimed && c.record.state === 'in_flight')).toBe(true);
  });

  it('completes and releases only with the claim token', async () => {
    const store = new MemoryIdempotencyStore();
    const claim = await store.claim('k', 'f', 10_000, 'c');
    if (!claim.claimed) throw new Error('not claimed');
    await store.complete('k', 'another token', done('f', 1), 10_000);
    await store.release('k', 'another token');
    expect(await store.claim('k', 'f', 10_000, 'c')).toMatchObject({ claimed: false, record: { state: 'in_flight' } });
    await store.complete('k', claim.token, done('f', 1), 10_000);
    expect(await store.claim('k', 'f', 10_000, 'c')).toMatchObject({ claimed: false, record: { state: 'done' } });
    // A finished entry is not released by its old token.
    await store.release('k', claim.token);
    expect(await store.claim('k', 'f', 10_000, 'c')).toMatchObject({ claimed: false });
  });

  it('IDEM-12 IDEM-14 a claim expires after its lease, an outcome after its TTL', async () => {
    const store = new MemoryIdempotencyStore();
    expect((await store.claim('k', 'f', 60, 'c')).claimed).toBe(true);
    expect((await store.claim('k', 'f', 60, 'c')).claimed).toBe(false);
    await new Promise((r) => setTimeout(r, 90));
    const again = await store.claim('k', 'f', 10_000, 'c');
    expect(again.claimed).toBe(true);
    if (again.claimed) await store.complete('k', again.token, done('f', 1), 60);
    expect((await store.claim('k', 'f', 10_000, 'c')).claimed).toBe(false);
    await new Promise((r) => setTimeout(r, 90));
    expect((await store.claim('k', 'f', 10_000, 'c')).claimed).toBe(true);
  });

  it('when full of live keys, refuses a new claim instead of forgetting one', async () => {
    const store = new MemoryIdempotencyStore({ max: 2 });
    await store.claim('a', 'f', 10_000, 'c1');
    await store.claim('b', 'f', 10_000, 'c2');
    await expect(store.claim('c', 'f', 10_000, 'c3')).rejects.toThrow(IdempotencyStoreFullError);
    expect(await store.claim('a', 'f', 10_000, 'c1')).toMatchObject({ claimed: false });
  });

  it('idempotency attack: one client holds at most maxPerClient keys; its expired keys give its share back; others are unaffected', async () => {
    const store = new MemoryIdempotencyStore({ max: 100, maxPerClient: 2 });
    expect((await store.claim('a1', 'f', 60, 'alice')).claimed).toBe(true);
    expect((await store.claim('a2', 'f', 10_000, 'alice')).claimed).toBe(true);
    await expect(store.claim('a3', 'f', 10_000, 'alice')).rejects.toThrow(/this client's share/);
    expect((await store.claim('b1', 'f', 10_000, 'bob')).claimed).toBe(true);
    await new Promise((r) => setTimeout(r, 90));
    expect((await store.claim('a3', 'f', 10_000, 'alice')).claimed).toBe(true);
    await expect(store.claim('a4', 'f', 10_000, 'alice')).rejects.toThrow(/this client's share/);
    // A released claim gives its place back at once.
    const b2 = await store.claim('b2', 'f', 10_000, 'bob');
    if (!b2.claimed) throw new Error('not claimed');
    await expect(store.claim('b3', 'f', 10_000, 'bob')).rejects.toThrow(IdempotencyStoreFullError);
    await store.release('b2', b2.token);
    expect((await store.claim('b3', 'f', 10_000, 'bob')).claimed).toBe(true);
  });

  it("idempotency attack: one client's large responses fill only its maxBytesPerClient; past it they are kept as not kept", async () => {
    const store = new MemoryIdempotencyStore({ maxBytes: 100_000, maxBytesPerClient: 5000 });
    const finish = async (key: string, client: string, bytes: number) => {
      const claim = await store.claim(key, 'f', 10_000, client);
      if (!claim.claimed) throw new Error('not claimed');
      await store.complete(key, claim.token, done('f', bytes), 10_000);
      return store.claim(key, 'f', 10_000, client);
    };
    expect(await finish('a1', 'alice', 4000)).toMatchObject({ record: { state: 'done' } });
    expect(await finish('a2', 'alice', 4000)).toMatchObject({ record: { state: 'unkept' } });
    expect(await finish('b1', 'bob', 4000)).toMatchObject({ record: { state: 'done' } });
  });

  it('refuses unknown or out-of-range options at start-up', () => {
    expect(() => new MemoryIdempotencyStore({ maxPerClinet: 5 } as never)).toThrow(/no option "maxPerClinet"/);
    expect(() => new MemoryIdempotencyStore({ max: 10, maxPerClient: 11 })).toThrow(/maxPerClient/);
    expect(() => new MemoryIdempotencyStore({ maxBytesPerClient: 10 })).toThrow(/maxBytesPerClient/);
  });

  it('IDEM-11 a response that does not fit in maxBytes is kept as processed, response not kept', async () => {
    const store = new MemoryIdempotencyStore({ maxBytes: 4096 });
    const claim = await store.claim('k', 'f', 10_000, 'c');
    if (!claim.claimed) throw new Error('not claimed');
    await store.complete('k', claim.token, done('f', 8192), 10_000);
    expect(await store.claim('k', 'f', 10_000, 'c')).toEqual({ claimed: false, record: { state: 'unkept', fingerprint: 'f' } });
    // IDEM-16: the layers that checked the first request stay with it (layers.ts answers after as many).
    const layered = await store.claim('k2', 'f', 10_000, 'c2');
    if (!layered.claimed) throw new Error('not claimed');
    const big = done('f', 8192);
    await store.complete('k2', layered.token, { ...big, response: { ...big.response, layers: 2 } }, 10_000);
    expect(await store.claim('k2', 'f', 10_000, 'c2')).toEqual({
      claimed: false,
      record: { state: 'unkept', fingerprint: 'f', layers: 2 },
    });
  });
});

describe('the Node recorder over HTTP', () => {
  const guard = createGuard({ issuer: 'https://as.example.com', audience: 'https://rs.example.com', publicUrl: 'https://rs.example.com' });
  const policy = guard.policy({ idempotency: { mode: 'required', maxResponseBytes: 100 } });
  const auth = { issuer: 'https://as.example.com', clientId: 'c', headers: {} } as unknown as Authorized;
  let server: Server;
  let url: string;
  let processed = 0;

  beforeAll(async () => {
    // The handler answers with as many bytes as the path says, in two writes.
    server = createServer((req, res) => {
      startNodeIdempotency(guard, policy, auth, req, res, req.url ?? '/').then((start) => {
        if (start.kind !== 'pass') return writeIdempotencyAnswer(res, start);
        processed++;
        const size = Number(req.url?.slice(1));
        res.writeHead(201, { 'content-type': 'text/plain', 'x-run': String(processed) });
        res.write('a'.repeat(size - 1));
        res.end('z');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  const post = (path: string, key: string) => fetch(`${url}${path}`, { method: 'POST', headers: { 'idempotency-key': key } });

  it('IDEM-11 IDEM-15 keeps a response of exactly maxResponseBytes (replayed as sent), not one byte more', async () => {
    const first = await post('/100', '"fits"');
    const firstBody = await first.text();
    const retry = await post('/100', '"fits"');
    expect([retry.status, retry.headers.get('x-run'), await retry.text()]).toEqual([201, first.headers.get('x-run'), firstBody]);
    const before = processed;
    expect((await post('/101', '"too-big"')).status).toBe(201);
    const refused = await post('/101', '"too-big"');
    expect(refused.status).toBe(409);
    expect(processed).toBe(before + 1);
  });
});

describe('request bodies and folded header lines', () => {
  const guard = createGuard({
    issuer: 'https://as.example.com',
    audience: 'https://rs.example.com',
    publicUrl: 'https://rs.example.com',
    idempotency: { maxRequestBytes: 10 },
  });
  const policy = guard.policy({ idempotency: 'required' });
  const auth = { issuer: 'https://as.example.com', clientId: 'c', headers: {} } as unknown as Authorized;
  const request = (key: string, body: string) =>
    new Request('https://rs.example.com/payments', { method: 'POST', headers: { 'idempotency-key': key }, body });

  it('fingerprints a body of maxRequestBytes; one byte more is 413 and nothing is claimed', async () => {
    expect((await startFetchIdempotency(guard, policy, auth, request('"b1"', '0123456789'), {}, undefined)).kind).toBe('claimed');
    const refused = await startFetchIdempotency(guard, policy, auth, request('"b2"', '0123456789a'), {}, undefined);
    expect(refused.kind === 'answer' && refused.response.status).toBe(413);
    expect((await startFetchIdempotency(guard, policy, auth, request('"b2"', '0123456789'), {}, undefined)).kind).toBe('claimed');
  });

  it('IDEM-02 two lines folded into one by a Fetch runtime are refused, not read as one key', async () => {
    const folded = new Request('https://rs.example.com/payments', {
      method: 'POST',
      headers: [
        ['idempotency-key', '"a"'],
        ['idempotency-key', '"b"'],
      ],
    });
    expect(folded.headers.get('idempotency-key')).toBe('"a", "b"');
    const answer = await startFetchIdempotency(guard, policy, auth, folded, {}, undefined);
    expect(answer.kind === 'answer' && answer.response.status).toBe(400);
  });
});

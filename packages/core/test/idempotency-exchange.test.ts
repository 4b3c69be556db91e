/**
 * The idempotency-key exchange in process (idempotency/exchange.ts): the key read per route, the
 * fingerprint the claim is made with, what a key already holds (in flight, another request, a
 * kept or unkept response, an earlier release's record), the replayed response and its own
 * exchange headers, the renewal of a claim, and what `finish` and `release` leave in the store.
 * docs/packages/core.md, "Idempotency keys".
 */
import { createHash } from 'node:crypto';
import { type BodyBytes, idempotencyKeyOf, openExchange, type SentResponse } from '../src/idempotency/exchange';
import { canonicalJson } from '../src/idempotency/fingerprint';
import {
  type Authorized,
  beginIdempotency,
  compileIdempotency,
  createGuard,
  type DecisionEvent,
  type GuardOptions,
  type IdempotencyClaim,
  type IdempotencyOutcome,
  type IdempotencyPolicy,
  type IdempotencyRecord,
  type IdempotencyStore,
  idempotencyStoreKey,
  idempotencyStoreOf,
  MemoryIdempotencyStore,
  readIdempotencyKey,
} from '../src/index';

const ISSUER = 'https://as.example.com';
const ORIGIN = 'https://rs.example.com';
const URL_ = `${ORIGIN}/payments`;
const T0 = 1_900_000_000_000;
let now = T0;

const sha = (...parts: (string | Buffer)[]) => parts.reduce((h, p) => h.update(p), createHash('sha256'));
const prefixed = (...parts: string[]) => parts.flatMap((p) => [`${Buffer.byteLength(p)}:`, p]);
/** The fingerprint written out by hand: `<target>.<request>` (fingerprint.ts). */
const expectedFingerprint = (method: string, url: string, marks: string[], bodyDigest: Buffer) =>
  `${sha(...prefixed(method, url)).digest('base64url')}.${sha(...prefixed(method, url, ...marks), bodyDigest).digest('base64url')}`;
const bytesFingerprint = (method: string, url: string, body: string) => expectedFingerprint(method, url, [], sha(body).digest());
/** The part a release before the target part stored. */
const requestPart = (fp: string) => fp.slice(fp.indexOf('.') + 1);

type SpyStore = IdempotencyStore & {
  claim: jest.Mock;
  complete: jest.Mock;
  release: jest.Mock;
  inner: MemoryIdempotencyStore;
};

/** The in-memory store, each call recorded; no `extend` unless asked. */
function spyStore(withExtend = false): SpyStore {
  const inner = new MemoryIdempotencyStore();
  const store: SpyStore = {
    inner,
    claim: jest.fn((k: string, f: string, l: number, c: string) => inner.claim(k, f, l, c)),
    complete: jest.fn((k: string, t: string, o: IdempotencyOutcome, ttl: number) => inner.complete(k, t, o, ttl)),
    release: jest.fn((k: string, t: string) => inner.release(k, t)),
  };
  if (withExtend) store.extend = jest.fn(async () => undefined);
  return store;
}

/** A store whose key already holds `record`. */
const holding = (record: IdempotencyRecord): IdempotencyStore => ({
  claim: async (): Promise<IdempotencyClaim> => ({ claimed: false, record }),
  complete: async () => undefined,
  release: async () => undefined,
});

function setup(
  route: IdempotencyPolicy | 'required' | 'optional' = 'required',
  store: IdempotencyStore = spyStore(),
  extra: Partial<GuardOptions> = {},
) {
  const events: DecisionEvent[] = [];
  const logger = { warn: jest.fn(), error: jest.fn() };
  const guard = createGuard({
    issuer: ISSUER,
    audience: ORIGIN,
    publicUrl: ORIGIN,
    clock: () => now,
    logger,
    onDecision: (e) => events.push(e),
    idempotency: { store },
    ...extra,
  });
  const policy = guard.policy({ idempotency: route });
  return { guard, policy, store, events, logger };
}

const auth = (headers: Record<string, string> = {}, more: Record<string, unknown> = {}) =>
  ({ issuer: ISSUER, clientId: 'c', headers, ...more }) as unknown as Authorized;
const request = (key: string | undefined, method = 'POST', url = URL_, more: Record<string, string[]> = {}) => ({
  method,
  url,
  headers: { ...(key === undefined ? {} : { 'idempotency-key': [key] }), ...more },
});
const bytes = (text: string) => async (): Promise<BodyBytes> => ({ ok: true, body: Buffer.from(text) });

const stored = (layers?: number) => ({
  status: 201,
  headers: [
    ['content-type', 'application/json'],
    ['X-FAPI-Interaction-ID', 'first-id'],
    ['DPoP-Nonce', 'first-nonce'],
    ['location', '/payments/1'],
  ] as [string, string][],
  body: Buffer.from('{"id":1}'),
  ...(layers === undefined ? {} : { layers }),
});

beforeEach(() => {
  now = T0;
});

describe('the key a route reads', () => {
  it('IDEM-03 a required key left out is 400 idempotency_key_missing, naming the header; nothing is claimed', async () => {
    const { guard, policy, store, events } = setup('required');
    const start = await beginIdempotency(guard, policy, auth(), request(undefined), bytes('{}'));
    expect(start.kind).toBe('refused');
    const error = start.kind === 'refused' ? start.error : undefined;
    expect([error?.reason, error?.detail, error?.status]).toEqual(['idempotency_key_missing', 'no idempotency-key header', 400]);
    expect(Object.keys(start)).toEqual(['kind', 'error']);
    expect(events.map((e) => [e.idempotency, e.reason])).toEqual([['refused', 'idempotency_key_missing']]);
    expect((store as SpyStore).claim).not.toHaveBeenCalled();
  });

  it('IDEM-03 an optional key left out passes; a malformed one is refused as malformed, not as missing', async () => {
    const { guard, policy, store, events } = setup('optional');
    expect(await beginIdempotency(guard, policy, auth(), request(undefined), bytes('{}'))).toEqual({ kind: 'pass' });
    expect(idempotencyKeyOf(guard, policy, auth(), request(undefined))).toBeUndefined();
    expect(events).toEqual([]);
    expect((store as SpyStore).claim).not.toHaveBeenCalled();
    const refused = idempotencyKeyOf(guard, policy, auth(), request('token'));
    expect(refused).toEqual({ kind: 'refused', error: expect.objectContaining({ reason: 'idempotency_key_malformed' }) });
    expect(refused?.kind === 'refused' && refused.error.detail).toBe('idempotency-key is not an sf-string');
    const required = setup('required');
    expect(idempotencyKeyOf(required.guard, required.policy, auth(), request('token'))).toMatchObject({
      kind: 'refused',
      error: { reason: 'idempotency_key_malformed' },
    });
    expect(idempotencyKeyOf(guard, policy, auth(), request('"k"'))).toEqual({ kind: 'key', key: 'k' });
  });

  it('IDEM-04 safe methods (in any case) and routes without idempotency read no key, not even a malformed one', async () => {
    const { guard, policy } = setup('required');
    for (const method of ['GET', 'get', 'HEAD', 'options', 'TRACE']) {
      expect([method, idempotencyKeyOf(guard, policy, auth(), request('token', method))]).toEqual([method, undefined]);
    }
    const plain = guard.policy({});
    expect(idempotencyKeyOf(guard, plain, auth(), request('token'))).toBeUndefined();
    expect(await beginIdempotency(guard, plain, auth(), request('"k"'), bytes('{}'))).toEqual({ kind: 'pass' });
    expect(await openExchange(guard, plain, auth(), request('"k"'), bytes('{}'))).toEqual({ kind: 'pass' });
  });
});

describe('the claim', () => {
  it('IDEM-05 claims the key in the configured store, scoped to the client, with the fingerprint of method, URI and body', async () => {
    const { guard, policy, store } = setup({ mode: 'required', ttlSec: 60, leaseSec: 30 });
    expect(idempotencyStoreOf(guard)).toBe(store);
    const start = await beginIdempotency(guard, policy, auth(), request('"k1"', 'post'), bytes('{"a":1}'));
    expect(start.kind).toBe('claimed');
    expect((store as SpyStore).claim.mock.calls).toEqual([
      [
        sha(JSON.stringify([ISSUER, 'c', 'k1'])).digest('base64url'),
        bytesFingerprint('POST', URL_, '{"a":1}'),
        30_000,
        sha(JSON.stringify([ISSUER, 'c'])).digest('base64url'),
      ],
    ]);
  });

  it('IDEM-13 a guard without a store keeps one in-memory store of its own', () => {
    const guard = createGuard({ issuer: ISSUER, audience: ORIGIN, publicUrl: ORIGIN });
    const store = idempotencyStoreOf(guard);
    expect(store).toBeInstanceOf(MemoryIdempotencyStore);
    expect(idempotencyStoreOf(guard)).toBe(store);
  });

  it('IDEM-07 a body too large is 413 body_too_large, one read before fingerprinting is body_unavailable', async () => {
    const { guard, policy, store } = setup();
    const tooLarge = await beginIdempotency(guard, policy, auth(), request('"k"'), async () => ({ ok: false, reason: 'too_large' }));
    expect(tooLarge.kind === 'refused' && [tooLarge.error.reason, tooLarge.error.detail]).toEqual([
      'body_too_large',
      'request body exceeds idempotency.maxRequestBytes',
    ]);
    const unavailable = await beginIdempotency(guard, policy, auth(), request('"k"'), async () => ({ ok: false, reason: 'unavailable' }));
    expect(unavailable.kind === 'refused' && [unavailable.error.reason, unavailable.error.detail]).toEqual([
      'body_unavailable',
      'the body was read before fapi-guard could fingerprint it: mount rawBody() before the body parsers',
    ]);
    const opened = await openExchange(guard, policy, auth(), request('"k"'), async () => ({ ok: false, reason: 'too_large' }));
    expect(opened.kind).toBe('refused');
    expect((store as SpyStore).claim).not.toHaveBeenCalled();
  });

  it('IDEM-13 a store that cannot answer is 503 store_unavailable with its message; nothing is processed', async () => {
    for (const [thrown, detail] of [
      [new Error('connection lost'), 'idempotency store: connection lost'],
      ['plain text', 'idempotency store: plain text'],
      [null, 'idempotency store: null'],
    ] as const) {
      const failing: IdempotencyStore = { ...holding({ state: 'in_flight', fingerprint: 'f' }), claim: () => Promise.reject(thrown) };
      const { guard, policy } = setup('required', failing);
      const start = await beginIdempotency(guard, policy, auth(), request('"k"'), bytes('{}'));
      expect(start.kind === 'refused' && [start.error.reason, start.error.status, start.error.detail]).toEqual([
        'store_unavailable',
        503,
        detail,
      ]);
    }
  });

  it('IDEM-16 a store key another layer of this request holds is left to that claim; a claim made is held until it ends', async () => {
    const { guard, policy, store } = setup();
    const key = idempotencyStoreKey(auth(), 'k');
    expect(await openExchange(guard, policy, auth(), request('"k"'), bytes('{}'), new Set([key]))).toEqual({ kind: 'pass' });
    expect((store as SpyStore).claim).not.toHaveBeenCalled();
    const held = new Set<string>();
    const opened = await openExchange(guard, policy, auth(), request('"k"'), bytes('{}'), held);
    expect([opened.kind, [...held]]).toEqual(['claimed', [key]]);
    if (opened.kind === 'claimed') await opened.ticket.finish({ status: 201, headers: [], body: Buffer.alloc(0) });
    expect(held.size).toBe(0);
    const other = new Set<string>();
    const second = await openExchange(guard, policy, auth(), request('"k2"'), bytes('{}'), other);
    if (second.kind === 'claimed') await second.ticket.release();
    expect([second.kind, other.size]).toEqual(['claimed', 0]);
  });
});

describe('Open Finance Brasil bodies', () => {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const jwt = (claims: Record<string, unknown>) => `${b64({ alg: 'PS256' })}.${b64(claims)}.c2ln`;
  const claims = { data: { amount: '1.00' }, aud: 'bank', iss: 'org' };
  const signed = jwt({ ...claims, jti: 'j1', iat: 1, exp: 2, nbf: 0 });
  const ofb = {
    messageSigning: {
      openFinanceBrasil: { organisationId: 'bank', clients: { c: { organisationId: 'org', jwksUri: 'https://keys.example/c.jwks' } } },
    },
  } as Partial<GuardOptions>;
  const jwtHeaders = { 'content-type': ['application/jwt; charset=utf-8'] };
  const claimsFingerprint = (c: Record<string, unknown>) =>
    expectedFingerprint('POST', URL_, ['br-of:claims'], sha(Buffer.from(canonicalJson(c), 'utf8')).digest());
  const fingerprintOf = async (options: Partial<GuardOptions>, body: string, headers: Record<string, string[]>, more = {}) => {
    const { guard, policy, store } = setup('required', spyStore(), options);
    await beginIdempotency(guard, policy, auth({}, more), request('"k"', 'POST', URL_, headers), bytes(body));
    return (store as SpyStore).claim.mock.calls[0]?.[1];
  };

  it('IDEM-17 a layer that has not verified the signed body fingerprints its claims less jti, iat, exp and nbf', async () => {
    expect(await fingerprintOf(ofb, signed, jwtHeaders)).toBe(claimsFingerprint(claims));
    // Surrounding white space is not part of the JWS.
    expect(await fingerprintOf(ofb, ` ${signed}\n`, jwtHeaders)).toBe(claimsFingerprint(claims));
  });

  it('IDEM-17 the verified data claim, where verified; body bytes without Open Finance Brasil, another media type or no JWS', async () => {
    expect(await fingerprintOf(ofb, signed, jwtHeaders, { jwtBody: { data: { amount: '1.00' } } })).toBe(
      expectedFingerprint('POST', URL_, ['br-of:data'], sha(Buffer.from('{"amount":"1.00"}', 'utf8')).digest()),
    );
    expect(await fingerprintOf({}, signed, jwtHeaders)).toBe(bytesFingerprint('POST', URL_, signed));
    expect(await fingerprintOf(ofb, signed, { 'content-type': ['application/json'] })).toBe(bytesFingerprint('POST', URL_, signed));
    expect(await fingerprintOf(ofb, signed, {})).toBe(bytesFingerprint('POST', URL_, signed));
    expect(await fingerprintOf(ofb, 'not.a jws', jwtHeaders)).toBe(bytesFingerprint('POST', URL_, 'not.a jws'));
  });

  it('IDEM-17 reads claims from a body of at most 256 KiB; a larger one is fingerprinted by its bytes', async () => {
    const max = 256 * 1024;
    const padded = (length: number) => {
      const base = jwt({ ...claims, pad: '' });
      const pad = 'x'.repeat(Math.floor(((length - base.length) * 3) / 4));
      let text = jwt({ ...claims, pad });
      while (text.length < length) text = jwt({ ...claims, pad: `${pad}${'x'.repeat(length - text.length)}` });
      return text;
    };
    const atMax = padded(max);
    const over = `${atMax} `.padEnd(max + 1, ' ');
    expect(atMax.length).toBe(max);
    expect(over.length).toBe(max + 1);
    const fp = await fingerprintOf(ofb, atMax, jwtHeaders);
    expect(fp).not.toBe(bytesFingerprint('POST', URL_, atMax));
    expect(fp?.startsWith(claimsFingerprint(claims).split('.')[0] as string)).toBe(true);
    expect(await fingerprintOf(ofb, over, jwtHeaders)).toBe(bytesFingerprint('POST', URL_, over));
  });
});

describe('what the key holds', () => {
  const body = '{"amount":"1.00"}';
  const fp = bytesFingerprint('POST', URL_, body);
  const otherBody = bytesFingerprint('POST', URL_, '{"amount":"2.00"}');
  const otherRoute = bytesFingerprint('POST', `${ORIGIN}/other`, body);

  const open = async (record: IdempotencyRecord, headers: Record<string, string> = {}) => {
    const { guard, policy, events } = setup('required', holding(record));
    const opened = await openExchange(guard, policy, auth(headers), request('"k"'), bytes(body));
    const begun = await beginIdempotency(guard, policy, auth(headers), request('"k"'), bytes(body));
    return { opened, begun, events, guard, policy };
  };
  const refusal = (o: Awaited<ReturnType<typeof open>>['opened']) =>
    o.kind === 'refused' ? [o.error.reason, o.error.status, o.error.detail, o.layers, o.countedFromOpening] : o.kind;

  it('IDEM-10 a retry of the same request is answered with the stored response, with this exchange’s own headers', async () => {
    const { opened, begun, events } = await open(
      { state: 'done', fingerprint: fp, response: stored(2) },
      { 'x-fapi-interaction-id': 'second-id', 'dpop-nonce': 'second-nonce' },
    );
    const expected = {
      ...stored(2),
      headers: [
        ['content-type', 'application/json'],
        ['location', '/payments/1'],
        ['x-fapi-interaction-id', 'second-id'],
        ['dpop-nonce', 'second-nonce'],
      ],
    };
    expect(opened.kind).toBe('replay');
    expect(opened.kind === 'replay' && [opened.response, opened.layers]).toEqual([expected, 2]);
    expect(begun).toEqual({ kind: 'replay', response: expected });
    expect(events.map((e) => [e.idempotency, e.reason, e.status])).toEqual([['replayed', 'idempotency_replayed', 201]]);
    // Without headers of its own, none of the first exchange's are sent.
    const bare = await open({ state: 'done', fingerprint: fp, response: stored() });
    expect(bare.begun.kind === 'replay' && bare.begun.response.headers).toEqual([
      ['content-type', 'application/json'],
      ['location', '/payments/1'],
    ]);
  });

  it('IDEM-15 a key in flight on the same route is 409, even with another body; the layers are not known', async () => {
    const same = await open({ state: 'in_flight', fingerprint: fp, layers: 4 } as IdempotencyRecord);
    const expected = ['idempotency_key_in_flight', 409, 'the first request has not finished', undefined, false];
    expect(refusal(same.opened)).toEqual(expected);
    expect(refusal((await open({ state: 'in_flight', fingerprint: otherBody })).opened)).toEqual(expected);
    // An earlier release's claim (no target part) of the same request.
    expect(refusal((await open({ state: 'in_flight', fingerprint: requestPart(fp) })).opened)).toEqual([
      'idempotency_key_in_flight',
      409,
      'the first request has not finished',
      undefined,
      true,
    ]);
    expect(same.begun).toEqual({ kind: 'refused', error: expect.objectContaining({ reason: 'idempotency_key_in_flight' }) });
    expect(Object.keys(same.begun)).toEqual(['kind', 'error']);
    expect(same.events.map((e) => [e.idempotency, e.reason, e.detail])).toEqual([
      ['refused', 'idempotency_key_in_flight', 'the first request has not finished'],
    ]);
    // The same refusal as a deeper layer renders it.
    const rendered = same.opened.kind === 'refused' ? same.opened.renderAt?.(same.policy, auth()) : undefined;
    expect([rendered?.reason, rendered?.detail]).toEqual(['idempotency_key_in_flight', 'the first request has not finished']);
  });

  it('IDEM-06 the same key with another request is 422, in flight on another route or finished', async () => {
    const reused = ['idempotency_key_reused', 422, 'fingerprint differs from the first request'];
    expect(refusal((await open({ state: 'in_flight', fingerprint: otherRoute })).opened)).toEqual([...reused, undefined, false]);
    expect(refusal((await open({ state: 'done', fingerprint: otherBody, response: stored(2) })).opened)).toEqual([...reused, 2, false]);
    expect(refusal((await open({ state: 'done', fingerprint: otherRoute, response: stored(2) })).opened)).toEqual([
      ...reused,
      undefined,
      false,
    ]);
    expect(refusal((await open({ state: 'unkept', fingerprint: otherRoute, layers: 3 })).opened)).toEqual([...reused, undefined, false]);
  });

  it('IDEM-11 a processed request whose response was not kept is 409, after as many layers as the first', async () => {
    const unkept = ['idempotency_response_unkept', 409, 'the response exceeded maxResponseBytes'];
    expect(refusal((await open({ state: 'unkept', fingerprint: fp, layers: 3 })).opened)).toEqual([...unkept, 3, false]);
    expect(refusal((await open({ state: 'unkept', fingerprint: fp })).opened)).toEqual([...unkept, undefined, false]);
    expect(refusal((await open({ state: 'unkept', fingerprint: otherBody, layers: 3 })).opened)).toEqual([
      'idempotency_key_reused',
      422,
      'fingerprint differs from the first request',
      3,
      false,
    ]);
  });

  it('IDEM-16 a response an earlier release recorded is never replayed (409), its layers counted from the opening one', async () => {
    const { opened, begun, events } = await open({ state: 'done', fingerprint: requestPart(fp), response: stored(2) });
    expect(refusal(opened)).toEqual([
      'idempotency_response_unkept',
      409,
      'the response was recorded by an earlier release of fapi-guard',
      2,
      true,
    ]);
    expect(begun.kind).toBe('refused');
    expect(events.map((e) => [e.idempotency, e.reason])).toEqual([['refused', 'idempotency_response_unkept']]);
  });
});

describe('the ticket', () => {
  const body = '{"amount":"1.00"}';
  const fp = bytesFingerprint('POST', URL_, body);
  const claim = async (route: IdempotencyPolicy | 'required' = 'required', store = spyStore()) => {
    const s = setup(route, store);
    const start = await beginIdempotency(s.guard, s.policy, auth(), request('"k"'), bytes(body));
    if (start.kind !== 'claimed') throw new Error(`not claimed: ${start.kind}`);
    return { ...s, ticket: start.ticket, spy: store };
  };
  const again = (s: Awaited<ReturnType<typeof claim>>) => s.spy.inner.claim(idempotencyStoreKey(auth(), 'k'), fp, 1000, 'c');
  const response = (status: number) => ({
    status,
    headers: [['content-type', 'text/plain']] as [string, string][],
    body: Buffer.from('ok'),
  });

  it('IDEM-10 keeps a finished response for the rest of the key’s lifetime, once', async () => {
    const s = await claim({ mode: 'required', ttlSec: 60, maxResponseBytes: 500 });
    expect(s.ticket.maxResponseBytes).toBe(500);
    now = T0 + 1500;
    await s.ticket.finish(response(499));
    await s.ticket.finish(response(201));
    await s.ticket.release();
    expect(s.spy.complete.mock.calls).toEqual([
      [idempotencyStoreKey(auth(), 'k'), expect.any(String), { state: 'done', fingerprint: fp, response: response(499) }, 58_500],
    ]);
    expect(s.spy.release).not.toHaveBeenCalled();
    expect(await again(s)).toEqual({ claimed: false, record: { state: 'done', fingerprint: fp, response: response(499) } });
  });

  it('IDEM-12 a 5xx frees the key (500 included): a retry is processed', async () => {
    const s = await claim();
    await s.ticket.finish(response(500));
    expect(s.spy.complete).not.toHaveBeenCalled();
    expect(s.spy.release).toHaveBeenCalledTimes(1);
    expect((await again(s)).claimed).toBe(true);
    // Too large to keep, but a 5xx all the same.
    const large = await claim();
    await large.ticket.finish({ status: 503, tooLarge: true });
    expect([large.spy.release.mock.calls.length, large.spy.complete.mock.calls.length]).toEqual([1, 0]);
  });

  it('IDEM-11 a response too large, or another middleware’s answer, is kept as processed with its layers', async () => {
    const outcomes: [SentResponse, IdempotencyOutcome][] = [
      [
        { status: 201, tooLarge: true, layers: 2 },
        { state: 'unkept', fingerprint: fp, layers: 2 },
      ],
      [
        { status: 201, tooLarge: true },
        { state: 'unkept', fingerprint: fp },
      ],
      [
        { handled: true, layers: 3 },
        { state: 'unkept', fingerprint: fp, layers: 3 },
      ],
      // A timeout's 504 went out in the handler's place: processed all the same, never freed.
      [{ handled: true, status: 504 } as SentResponse, { state: 'unkept', fingerprint: fp }],
    ];
    for (const [sent, outcome] of outcomes) {
      const s = await claim();
      await s.ticket.finish(sent);
      expect(s.spy.release).not.toHaveBeenCalled();
      expect(s.spy.complete).toHaveBeenCalledTimes(1);
      expect(s.spy.complete.mock.calls[0]?.[2]).toStrictEqual(outcome);
    }
  });

  it('IDEM-12 release frees the key once; nothing is recorded after it', async () => {
    const s = await claim();
    await s.ticket.release();
    await s.ticket.release();
    await s.ticket.finish(response(201));
    expect(s.spy.release).toHaveBeenCalledTimes(1);
    expect(s.spy.complete).not.toHaveBeenCalled();
    expect((await again(s)).claimed).toBe(true);
  });

  it('IDEM-13 store failures on finish and release are logged, never thrown; the claim stays', async () => {
    for (const [thrown, err] of [
      [new Error('gone'), 'gone'],
      ['plain', 'plain'],
      [null, 'null'],
    ] as const) {
      const failing = () => {
        const store = spyStore();
        store.complete.mockImplementation(() => Promise.reject(thrown));
        store.release.mockImplementation(() => Promise.reject(thrown));
        return store;
      };
      const s = await claim('required', failing());
      await expect(s.ticket.finish(response(201))).resolves.toBeUndefined();
      const r = await claim('required', failing());
      await expect(r.ticket.release()).resolves.toBeUndefined();
      expect(s.logger.error.mock.calls).toEqual([[{ err }, 'fapi-guard: the idempotency store could not record a finished request']]);
      expect(r.logger.error.mock.calls).toEqual([[{ err }, 'fapi-guard: the idempotency store could not free a key']]);
    }
  });
});

describe('the renewal of a claim', () => {
  afterEach(() => jest.useRealTimers());

  it('IDEM-14 renews every half lease while the lease stays within the key’s lifetime, then stops', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    const store = spyStore(true);
    const { guard, policy } = setup({ mode: 'required', ttlSec: 2, leaseSec: 1 }, store);
    const start = await beginIdempotency(guard, policy, auth(), request('"k"'), bytes('{}'));
    expect(start.kind).toBe('claimed');
    const extend = store.extend as jest.Mock;
    now = T0 + 999;
    jest.advanceTimersByTime(499);
    expect(extend).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(extend.mock.calls).toEqual([[idempotencyStoreKey(auth(), 'k'), expect.any(String), 1000]]);
    now = T0 + 1000;
    jest.advanceTimersByTime(500);
    expect(extend).toHaveBeenCalledTimes(2);
    now = T0 + 1001;
    jest.advanceTimersByTime(500);
    now = T0;
    jest.advanceTimersByTime(2000);
    expect(extend).toHaveBeenCalledTimes(2);
  });

  it('IDEM-14 a renewal the store refuses is logged; a finished claim is no longer renewed', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    for (const [thrown, err] of [
      [new Error('lost'), 'lost'],
      [null, 'null'],
    ] as const) {
      const store = spyStore(true);
      (store.extend as jest.Mock).mockImplementation(() => Promise.reject(thrown));
      const { guard, policy, logger } = setup({ mode: 'required', ttlSec: 60, leaseSec: 10 }, store);
      const start = await beginIdempotency(guard, policy, auth(), request('"k"'), bytes('{}'));
      jest.advanceTimersByTime(5000);
      await new Promise((r) => setImmediate(r));
      expect(logger.error.mock.calls).toEqual([[{ err }, 'fapi-guard: the idempotency store could not renew a claim']]);
      if (start.kind === 'claimed') await start.ticket.finish({ handled: true });
      jest.advanceTimersByTime(20_000);
      expect(store.extend).toHaveBeenCalledTimes(1);
    }
  });
});

describe('key syntax details', () => {
  const h = (...values: string[]) => ({ 'idempotency-key': values, 'x-idempotency-key': values });
  it('IDEM-01 each malformed key is told apart in the detail', () => {
    const detail = (value: string[], syntax: 'ietf' | 'uk-ob' = 'ietf') => {
      const read = readIdempotencyKey(h(...value), syntax === 'ietf' ? 'idempotency-key' : 'x-idempotency-key', syntax);
      return read.ok ? read : read.detail;
    };
    expect(detail(['"a"', '"a"'])).toBe('2 idempotency-key header lines');
    expect(detail(['"unterminated'])).toBe('idempotency-key is not an RFC 9651 Item');
    expect(detail(['token'])).toBe('idempotency-key is not an sf-string');
    expect(detail(['"a";p=1'])).toBe('idempotency-key carries parameters');
    expect(detail(['""'])).toBe('idempotency-key must hold 1 to 255 characters');
    expect(detail(['a'.repeat(41)], 'uk-ob')).toBe('x-idempotency-key is longer than 40 characters');
    expect(detail(['a,b'], 'uk-ob')).toBe('x-idempotency-key has characters outside the key syntax');
    expect(detail(['  pay-1 '], 'uk-ob')).toEqual({ ok: true, key: 'pay-1' });
    expect(readIdempotencyKey({ 'idempotency-key': [] }, 'idempotency-key', 'ietf')).toEqual({ ok: true, key: undefined });
  });

  it('IDEM-01 a value of exactly twice the longest key plus its quotes is parsed (255 escaped characters)', () => {
    const value = `"${'\\"'.repeat(255)}"`;
    expect(value.length).toBe(512);
    expect(readIdempotencyKey(h(value), 'idempotency-key', 'ietf')).toEqual({ ok: true, key: '"'.repeat(255) });
    expect(readIdempotencyKey(h(`${value} `.padStart(514, ' ')), 'idempotency-key', 'ietf')).toEqual({ ok: true, key: '"'.repeat(255) });
  });
});

describe('route policy bounds at start-up', () => {
  it('takes the edges (1 s, 0 and 16 MiB bytes) and refuses one past them, or a fraction', () => {
    expect(compileIdempotency({ mode: 'required', ttlSec: 1, leaseSec: 1 })).toMatchObject({ ttlMs: 1000, leaseMs: 1000 });
    expect(compileIdempotency({ mode: 'required', maxResponseBytes: 0 }).maxResponseBytes).toBe(0);
    expect(compileIdempotency({ mode: 'required', maxResponseBytes: 16 * 1024 * 1024 }).maxResponseBytes).toBe(16 * 1024 * 1024);
    const bytesMessage = 'fapi-guard: idempotency.maxResponseBytes must be a whole number of bytes between 0 and 16777216';
    expect(() => compileIdempotency({ mode: 'required', maxResponseBytes: -1 })).toThrow(bytesMessage);
    expect(() => compileIdempotency({ mode: 'required', maxResponseBytes: 1.5 })).toThrow(bytesMessage);
    expect(() => compileIdempotency({ mode: 'sometimes' } as never)).toThrow(
      "fapi-guard: idempotency.mode must be 'required' or 'optional'",
    );
  });

  it('refuses a store without claim, or a request bound out of range, by name', () => {
    const guardWith = (idempotency: GuardOptions['idempotency']) => () =>
      createGuard({ issuer: ISSUER, audience: ORIGIN, publicUrl: ORIGIN, idempotency });
    expect(guardWith({ store: {} as never })).toThrow('fapi-guard: idempotency.store must implement claim, complete and release');
    expect(guardWith({ store: new MemoryIdempotencyStore() })).not.toThrow();
    expect(guardWith({ maxRequestBytes: -1 })).toThrow(
      'fapi-guard: idempotency.maxRequestBytes must be a whole number of bytes between 0 and 67108864',
    );
  });
});

/**
 * Idempotency keys on Web-standard runtimes, in process (idempotency/fetch.ts, what the Hono
 * adapter calls): startFetchIdempotency's answer for each decision (pass, refusal, replay, claim)
 * and the request body it hands on; the recorder of a claimed request's Fetch `Response` — the
 * response returned to the client (status, status text, header lines, bytes, streamed as
 * produced), what the store is left with (the response kept, kept as processed but not kept, or
 * the key freed) for a body within maxResponseBytes, past it, failing midway, read elsewhere,
 * answered elsewhere, or left by a client that went away; and storedFetchResponse, the replay.
 * docs/packages/core.md, "Idempotency keys".
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  type Authorized,
  createGuard,
  type IdempotencyOutcome,
  type IdempotencyStore,
  MemoryIdempotencyStore,
  requestFingerprint,
  startFetchIdempotency,
  storedFetchResponse,
} from '../src/index';

const ISSUER = 'https://as.example.com';
const ORIGIN = 'https://rs.example.com';
const URL_ = `${ORIGIN}/payments`;
/** maxResponseBytes of the route in most tests. */
const MAX = 10;

type SpyStore = IdempotencyStore & { claim: jest.Mock; complete: jest.Mock; release: jest.Mock };

/** The in-memory store, each call recorded. */
function spyStore(): SpyStore {
  const inner = new MemoryIdempotencyStore();
  return {
    claim: jest.fn((k: string, f: string, l: number, c: string) => inner.claim(k, f, l, c)),
    complete: jest.fn((k: string, t: string, o: IdempotencyOutcome, ttl: number) => inner.complete(k, t, o, ttl)),
    release: jest.fn((k: string, t: string) => inner.release(k, t)),
  };
}

function setup(maxResponseBytes = MAX, mode: 'required' | 'optional' = 'required') {
  const store = spyStore();
  const guard = createGuard({ issuer: ISSUER, audience: ORIGIN, publicUrl: ORIGIN, idempotency: { store } });
  const policy = guard.policy({ idempotency: { mode, maxResponseBytes } });
  return { guard, policy, store };
}
type Setup = ReturnType<typeof setup>;

const auth = { issuer: ISSUER, clientId: 'c', headers: {} } as unknown as Authorized;

/** A payment request; `key` null: without the key header. */
const payment = (key: string | null = '"k1"', body: string | null = '{"amount":1}') =>
  new Request(URL_, { method: 'POST', headers: key === null ? {} : { 'idempotency-key': key }, body });

const bytes = (text: string) => Buffer.from(text);
const text = (buffer: ArrayBuffer | Uint8Array) => Buffer.from(buffer as ArrayBuffer).toString();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `promise`, or a rejection when it has not settled within `ms` (a bound, no timing assertion). */
async function within<T>(promise: Promise<T>, ms = 2000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits (at most `ms`) until the store was told how the request ended: completed or freed. */
async function ended(store: SpyStore, ms = 2000): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(2)) {
    if (store.complete.mock.calls.length + store.release.mock.calls.length > 0) return;
  }
}

/** The outcomes the store was handed, and how often it freed a key. */
const storeCalls = (store: SpyStore) => ({
  complete: store.complete.mock.calls.map((call) => call[2] as IdempotencyOutcome),
  release: store.release.mock.calls.length,
});

/** A claim of the key `key` for a first request. */
async function claim(s: Setup, key = '"k1"') {
  const start = await startFetchIdempotency(s.guard, s.policy, auth, payment(key), {}, undefined);
  if (start.kind !== 'claimed') throw new Error(`expected a claim, got ${start.kind}`);
  return start;
}

/** The answer to a retry of the first request under `key`. */
async function retry(s: Setup, key = '"k1"') {
  return startFetchIdempotency(s.guard, s.policy, auth, payment(key), {}, undefined);
}

/** A handler's stream: `chunks` enqueued at once, then closed (or left open with `open`). */
function streamOf(chunks: string[], options: { open?: boolean; cancelled?: unknown[] } = {}) {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(bytes(chunk));
      if (!options.open) controller.close();
    },
    cancel(reason) {
      options.cancelled?.push(reason);
    },
  });
}

/** Every chunk the client reads, and how the stream ended (at most `ms`). */
async function readAll(response: Response, ms = 2000): Promise<{ chunks: string[]; error?: unknown }> {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const chunks: string[] = [];
  try {
    for (let next = await within(reader.read(), ms); !next.done; next = await within(reader.read(), ms)) chunks.push(text(next.value));
  } catch (error) {
    return { chunks, error };
  }
  return { chunks };
}

const fingerprint = expect.any(String);

describe('storedFetchResponse', () => {
  it('IDEM-15 makes a Response of the stored status, header lines (each Set-Cookie apart) and body bytes', async () => {
    const response = storedFetchResponse({
      status: 201,
      headers: [
        ['content-type', 'application/json'],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
        ['location', '/payments/1'],
      ],
      body: bytes('{"id":1}'),
      layers: 2,
    });
    expect(response).toBeInstanceOf(Response);
    expect(response.status).toBe(201);
    expect([...response.headers]).toEqual([
      ['content-type', 'application/json'],
      ['location', '/payments/1'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
    ]);
    expect(text(await response.arrayBuffer())).toBe('{"id":1}');
  });

  it('gives a null-body status no body, whatever bytes are stored', async () => {
    const response = storedFetchResponse({ status: 204, headers: [['x-a', '1']], body: bytes('') });
    expect([response.status, response.body, response.headers.get('x-a')]).toEqual([204, null, '1']);
  });
});

describe('startFetchIdempotency: the decision and the body handed on', () => {
  it('a route without idempotency passes the body it was given on, reading and claiming nothing', async () => {
    const s = setup();
    const plain = s.guard.policy({});
    const request = payment();
    const given = bytes('{"amount":1}');
    expect(await startFetchIdempotency(s.guard, plain, auth, request, {}, given)).toEqual({ kind: 'pass', body: given });
    expect(await startFetchIdempotency(s.guard, plain, auth, payment(), {}, undefined)).toEqual({ kind: 'pass', body: undefined });
    expect(request.bodyUsed).toBe(false);
    expect(s.store.claim).not.toHaveBeenCalled();
  });

  it('IDEM-03 an optional key left out passes, the body it was given handed on; nothing is claimed', async () => {
    const s = setup(MAX, 'optional');
    const given = bytes('{"amount":1}');
    const start = await startFetchIdempotency(s.guard, s.policy, auth, payment(null), {}, given);
    expect(start).toEqual({ kind: 'pass', body: given });
    expect(await startFetchIdempotency(s.guard, s.policy, auth, payment(null), {}, undefined)).toEqual({
      kind: 'pass',
      body: undefined,
    });
    expect(s.store.claim).not.toHaveBeenCalled();
  });

  it('IDEM-05 fingerprints the bytes the guard already read (the stream consumed), and hands them on', async () => {
    const s = setup();
    const request = payment();
    await request.arrayBuffer();
    const given = bytes('{"amount":2}');
    const start = await startFetchIdempotency(s.guard, s.policy, auth, request, {}, given);
    expect(start.kind).toBe('claimed');
    expect(start.kind === 'claimed' && start.body).toBe(given);
    expect(s.store.claim.mock.calls.map((call) => call[1])).toEqual([requestFingerprint('POST', URL_, given)]);
  });

  it('IDEM-05 reads the body itself when it was not read, fingerprints it and hands its bytes on', async () => {
    const s = setup();
    const request = payment('"k1"', '{"amount":3}');
    const start = await startFetchIdempotency(s.guard, s.policy, auth, request, {}, undefined);
    expect(request.bodyUsed).toBe(true);
    expect(start.kind === 'claimed' && text(start.body as Uint8Array)).toBe('{"amount":3}');
    expect(s.store.claim.mock.calls.map((call) => call[1])).toEqual([requestFingerprint('POST', URL_, bytes('{"amount":3}'))]);
  });

  it('IDEM-07 a body read elsewhere, or one that fails, is 500 body_unavailable (not 413); nothing is claimed', async () => {
    const s = setup();
    const used = payment();
    await used.arrayBuffer();
    const fails = new Request(URL_, {
      method: 'POST',
      headers: { 'idempotency-key': '"k2"' },
      body: new ReadableStream({
        pull(controller) {
          controller.error(new Error('connection reset'));
        },
      }),
      duplex: 'half',
    } as RequestInit);
    for (const request of [used, fails]) {
      const start = await startFetchIdempotency(s.guard, s.policy, auth, request, {}, undefined);
      expect(start.kind === 'answer' && [start.response.status, start.error?.reason]).toEqual([500, 'body_unavailable']);
    }
    expect(s.store.claim).not.toHaveBeenCalled();
  });

  it('IDEM-04 IDEM-15 a retry is answered with the stored response, no error with it', async () => {
    const s = setup();
    const first = await claim(s);
    first.record(new Response('{"id":1}', { status: 201, headers: { 'content-type': 'application/json' } }));
    await ended(s.store);
    const again = await retry(s);
    expect(again.kind).toBe('answer');
    expect('error' in again).toBe(false);
    if (again.kind !== 'answer') return;
    expect([again.response.status, again.response.headers.get('content-type'), text(await again.response.arrayBuffer())]).toEqual([
      201,
      'application/json',
      '{"id":1}',
    ]);
  });

  it('IDEM-16 the claim counts a layer without idempotency ahead of it: the response keeps both layers', async () => {
    const s = setup();
    const request = payment();
    const appWide = s.guard.policy({});
    const context = {};
    expect((await startFetchIdempotency(s.guard, appWide, auth, request, {}, undefined, context)).kind).toBe('pass');
    const start = await startFetchIdempotency(s.guard, s.policy, auth, request, {}, undefined, context);
    if (start.kind !== 'claimed') throw new Error(start.kind);
    start.record(new Response(null, { status: 201 }));
    await ended(s.store);
    expect(storeCalls(s.store).complete).toEqual([
      { state: 'done', fingerprint, response: { status: 201, headers: [], body: Buffer.alloc(0), layers: 2 } },
    ]);
  });
});

describe('the recorder: a response the client reads whole', () => {
  it('IDEM-15 a response without a body goes out as it is; kept with its status, header lines and no bytes', async () => {
    const s = setup();
    const { record } = await claim(s);
    const response = new Response(null, { status: 201, headers: { location: '/payments/1' } });
    expect(record(response)).toBe(response);
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({
      complete: [
        { state: 'done', fingerprint, response: { status: 201, headers: [['location', '/payments/1']], body: Buffer.alloc(0), layers: 1 } },
      ],
      release: 0,
    });
    const again = await retry(s);
    if (again.kind !== 'answer') throw new Error(again.kind);
    expect([again.response.status, again.response.headers.get('location'), text(await again.response.arrayBuffer())]).toEqual([
      201,
      '/payments/1',
      '',
    ]);
  });

  it('IDEM-11 IDEM-15 a streamed body of exactly maxResponseBytes reaches the client chunk by chunk and is kept as sent', async () => {
    const s = setup();
    const { record } = await claim(s);
    const response = new Response(streamOf(['01234', '56789']), {
      status: 201,
      statusText: 'Created',
      headers: { 'content-type': 'text/plain', 'x-run': '1' },
    });
    const sent = record(response);
    expect([sent.status, sent.statusText, [...sent.headers]]).toEqual([
      201,
      'Created',
      [
        ['content-type', 'text/plain'],
        ['x-run', '1'],
      ],
    ]);
    expect(await readAll(sent)).toEqual({ chunks: ['01234', '56789'] });
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({
      complete: [
        {
          state: 'done',
          fingerprint,
          response: {
            status: 201,
            headers: [
              ['content-type', 'text/plain'],
              ['x-run', '1'],
            ],
            body: bytes('0123456789'),
            layers: 1,
          },
        },
      ],
      release: 0,
    });
    const again = await retry(s);
    if (again.kind !== 'answer') throw new Error(again.kind);
    expect([again.response.status, again.response.headers.get('x-run'), text(await again.response.arrayBuffer())]).toEqual([
      201,
      '1',
      '0123456789',
    ]);
  });

  it('a body within the bound is read ahead and kept before the client reads it', async () => {
    const s = setup();
    const { record } = await claim(s);
    record(new Response(streamOf(['0123', '4567', '8']), { status: 200, headers: { 'x-a': '1' } }));
    await ended(s.store);
    expect(storeCalls(s.store).complete).toEqual([
      { state: 'done', fingerprint, response: { status: 200, headers: [['x-a', '1']], body: bytes('012345678'), layers: 1 } },
    ]);
  });

  it('IDEM-11 a body of exactly maxResponseBytes that nobody reads is read ahead to its end and kept', async () => {
    // The read-ahead holds one byte more than the bound: a queue of exactly the bound would be
    // full before the stream's end was read, leaving the key in flight (409) until its lease ended.
    const s = setup();
    const { record } = await claim(s);
    record(new Response(streamOf(['01234', '56789']), { status: 201 }));
    await ended(s.store);
    expect(storeCalls(s.store).complete).toEqual([
      { state: 'done', fingerprint, response: { status: 201, headers: [], body: bytes('0123456789'), layers: 1 } },
    ]);
    // The same with a bound of 0 and an empty streamed body.
    const none = setup(0);
    (await claim(none)).record(new Response(streamOf([]), { status: 201 }));
    await ended(none.store);
    expect(storeCalls(none.store).complete).toEqual([
      { state: 'done', fingerprint, response: { status: 201, headers: [], body: bytes(''), layers: 1 } },
    ]);
  });

  it('IDEM-11 a body one byte over maxResponseBytes is sent whole, kept as processed but not kept: retries get 409', async () => {
    const s = setup();
    const { record } = await claim(s);
    const sent = record(new Response(streamOf(['01234', '56789', 'x']), { status: 201 }));
    expect(await readAll(sent)).toEqual({ chunks: ['01234', '56789', 'x'] });
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
    const again = await retry(s);
    expect(again.kind === 'answer' && [again.response.status, again.error?.reason]).toEqual([409, 'idempotency_response_unkept']);
  });

  it('IDEM-11 a body far over the bound, in one chunk, is sent whole and not kept', async () => {
    const s = setup();
    const { record } = await claim(s);
    const sent = record(new Response(streamOf(['a'.repeat(50)]), { status: 201 }));
    expect(await readAll(sent)).toEqual({ chunks: ['a'.repeat(50)] });
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
  });

  it('IDEM-10 a 5xx with a body frees the key: the retry is processed', async () => {
    const s = setup();
    const { record } = await claim(s);
    expect(await readAll(record(new Response(streamOf(['down']), { status: 503 })))).toEqual({ chunks: ['down'] });
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [], release: 1 });
    expect((await retry(s)).kind).toBe('claimed');
  });
});

describe('the recorder: a body that fails, was read elsewhere, or was answered elsewhere', () => {
  it('IDEM-11 a stream that fails midway: the client sees its error after the bytes that went out; not kept', async () => {
    const s = setup();
    const { record } = await claim(s);
    const failure = new Error('the handler failed');
    let turn = 0;
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (turn++ === 0) controller.enqueue(bytes('012'));
        else controller.error(failure);
      },
    });
    const sent = record(new Response(failing, { status: 201 }));
    expect(await readAll(sent)).toEqual({ chunks: ['012'], error: failure });
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
  });

  it('IDEM-11 a body some other code holds already goes out as it is and is not kept', async () => {
    const s = setup();
    const { record } = await claim(s);
    const response = new Response(streamOf(['{"id":1}']), { status: 201 });
    (response.body as ReadableStream).getReader();
    expect(record(response)).toBe(response);
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
  });

  it('IDEM-11 answered elsewhere (a 504 sent in its place): processed, not kept, never freed; the response is not read', async () => {
    const s = setup();
    const { record } = await claim(s);
    const response = new Response(null, { status: 504 });
    expect(record(response, true)).toBe(response);
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
    // A response the server took: any field of it may throw; none is read.
    const s2 = setup();
    const taken = new Proxy({} as Response, {
      get() {
        throw new Error('the body was taken');
      },
    });
    expect((await claim(s2)).record(taken, true)).toBe(taken);
    await ended(s2.store);
    expect(storeCalls(s2.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
  });
});

describe('the recorder: a client that goes away', () => {
  it('a body of exactly maxResponseBytes already made is read to its end and kept', async () => {
    const s = setup();
    const { record } = await claim(s);
    const cancelled: unknown[] = [];
    const sent = record(
      new Response(streamOf(['01234', '56789'], { cancelled }), { status: 201, headers: { 'content-type': 'text/plain' } }),
    );
    await sleep(10);
    await within((sent.body as ReadableStream).cancel('client gone'));
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({
      complete: [
        {
          state: 'done',
          fingerprint,
          response: { status: 201, headers: [['content-type', 'text/plain']], body: bytes('0123456789'), layers: 1 },
        },
      ],
      release: 0,
    });
    expect(cancelled).toEqual([]);
  });

  it('a body made through promise callbacks only (no I/O) is read to its end and kept', async () => {
    const s = setup();
    const { record } = await claim(s);
    const chunks = ['012', '345', '678'];
    const produced = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await Promise.resolve();
        await Promise.resolve();
        const chunk = chunks.shift();
        if (chunk === undefined) controller.close();
        else controller.enqueue(bytes(chunk));
      },
    });
    const sent = record(new Response(produced, { status: 201 }));
    // Gone before a byte was read.
    await within((sent.body as ReadableStream).cancel('client gone'));
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({
      complete: [{ state: 'done', fingerprint, response: { status: 201, headers: [], body: bytes('012345678'), layers: 1 } }],
      release: 0,
    });
  });

  it('IDEM-11 a body already made that goes past the bound after the read-ahead is not kept; the stream is told', async () => {
    const s = setup();
    const { record } = await claim(s);
    const cancelled: unknown[] = [];
    const sent = record(new Response(streamOf(['0123456789', 'x'], { open: true, cancelled }), { status: 201 }));
    await sleep(10);
    await within((sent.body as ReadableStream).cancel('client gone'));
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
    expect(cancelled).toEqual(['client gone']);
  });

  it('IDEM-11 a body past the bound that ends after the read-ahead is not kept', async () => {
    const s = setup();
    const { record } = await claim(s);
    const sent = record(new Response(streamOf(['0123456789', 'x']), { status: 201 }));
    await sleep(10);
    await within((sent.body as ReadableStream).cancel('client gone'));
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
  });

  it('IDEM-11 a stream that waits for more is told the client went away, and the response is not kept', async () => {
    const s = setup();
    const { record } = await claim(s);
    const cancelled: unknown[] = [];
    const sent = record(new Response(streamOf(['012'], { open: true, cancelled }), { status: 201 }));
    const reader = (sent.body as ReadableStream<Uint8Array>).getReader();
    expect(text((await within(reader.read())).value as Uint8Array)).toBe('012');
    await within(reader.cancel('client gone'));
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
    expect(cancelled).toEqual(['client gone']);
    const again = await retry(s);
    expect(again.kind === 'answer' && again.response.status).toBe(409);
  });

  it('IDEM-11 a stream that fails once the client went away is not kept', async () => {
    const s = setup();
    const { record } = await claim(s);
    const failing = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await Promise.resolve();
        controller.error(new Error('the handler failed'));
      },
    });
    const sent = record(new Response(failing, { status: 201 }));
    // The cancel is told the stream's failure (the runtime ignores it).
    await within((sent.body as ReadableStream).cancel('client gone').catch(() => undefined));
    await ended(s.store);
    expect(storeCalls(s.store)).toEqual({ complete: [{ state: 'unkept', fingerprint, layers: 1 }], release: 0 });
  });
});

describe('the recorder: memory', () => {
  it('the copy of a body is dropped once it passes maxResponseBytes: chunks streamed after are not held', async () => {
    // Node's own collector, asked for by name (vm: the flag only takes effect in a new context).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const s = setup();
    const { record } = await claim(s);
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
    });
    const sent = record(new Response(stream, { status: 201 }));
    const reader = (sent.body as ReadableStream<Uint8Array>).getReader();
    // Four chunks of 8 bytes, each read by the client before the next (the bound is 10).
    const refs: WeakRef<Uint8Array>[] = [];
    for (let i = 0; i < 4; i++) {
      const chunk = new Uint8Array(8);
      refs.push(new WeakRef(chunk));
      controller.enqueue(chunk);
      await within(reader.read());
    }
    await sleep(5);
    gc();
    await sleep(5);
    // The last chunk may still be referenced by the streams' own bookkeeping: the three before it are not.
    expect(refs.slice(0, 3).map((r) => r.deref() === undefined)).toEqual([true, true, true]);
    controller.close();
    await within(reader.read());
    await ended(s.store);
    expect(storeCalls(s.store).complete).toEqual([{ state: 'unkept', fingerprint, layers: 1 }]);
  });
});

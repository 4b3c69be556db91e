/**
 * The idempotency recorder on Node's `ServerResponse` (idempotency/node.ts), driven directly from a
 * plain node:http server (and node:http2 where its compatibility response differs) on 127.0.0.1:
 * the request body read for the fingerprint (read here, kept by a `rawBody()` tap, too large,
 * already consumed), what is recorded once the handler ends the response (status as sent, header
 * lines in order and case, body bytes in any encoding, not kept when too large, misframed or
 * unreadable), what is settled for a client gone before or after the head (the adapters'
 * `answered()` and `settled(failed)` hooks, a write or a pipe, a response never ended), and what a
 * retry receives: the stored status, header lines and bytes, or the refusal, the handler not run
 * again. docs/packages/core.md, "Idempotency keys".
 */
import { createServer, request as h1Request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type Http2Server, connect as h2Connect, createServer as h2CreateServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { REASONS } from '../src/errors';
import {
  type Authorized,
  createGuard,
  type Guard,
  type IdempotencyOutcome,
  type IdempotencyStore,
  MemoryIdempotencyStore,
  type NodeClaim,
  rememberRawBody,
  startNodeIdempotency,
  writeIdempotencyAnswer,
} from '../src/index';

const ISSUER = 'https://as.example.com';
const ORIGIN = 'https://rs.example.com';
const auth = { issuer: ISSUER, clientId: 'c', headers: {} } as unknown as Authorized;

/** A promise that fails the test instead of waiting for ever. */
function within<T>(promise: Promise<T>, what: string, ms = 1500): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** The response's 'close' (the client went away, or the response was destroyed). */
const closed = (res: { once(event: 'close', fn: () => void): unknown }) =>
  within(new Promise<void>((r) => res.once('close', () => r())), 'the response to close');

/** What the store was told, in order: the response kept (status, header lines, body text), not kept, or the key freed. */
type Op = { done: { status: number; headers: [string, string][]; body: string; layers?: number } } | 'unkept' | 'release';

/** The in-memory store, each outcome noted once the store holds it. */
function spyStore() {
  const inner = new MemoryIdempotencyStore();
  const ops: Op[] = [];
  let waiting: (() => void)[] = [];
  const note = (op: Op) => {
    ops.push(op);
    for (const w of waiting) w();
    waiting = [];
  };
  const store: IdempotencyStore = {
    claim: (key, fingerprint, leaseMs, client) => inner.claim(key, fingerprint, leaseMs, client),
    async complete(key, token, outcome: IdempotencyOutcome, ttlMs) {
      await inner.complete(key, token, outcome, ttlMs);
      if (outcome.state === 'unkept') return note('unkept');
      const { status, headers, body, layers } = outcome.response;
      note({ done: { status, headers: headers.map(([n, v]) => [n, v]), body: Buffer.from(body).toString('latin1'), layers } });
    },
    async release(key, token) {
      await inner.release(key, token);
      note('release');
    },
  };
  /** The first outcome (bounded), then one more turn for any second one. */
  const outcome = async (): Promise<Op[]> => {
    if (ops.length === 0) await within(new Promise<void>((r) => waiting.push(r)), 'the store to be told an outcome');
    await new Promise((r) => setTimeout(r, 20));
    return ops;
  };
  return { store, ops, outcome };
}

type Handler = (req: IncomingMessage, res: ServerResponse, claim: NodeClaim | undefined) => void | Promise<void>;

interface Ctx {
  guard: Guard;
  policy: ReturnType<Guard['policy']>;
  spy: ReturnType<typeof spyStore>;
  handler: Handler;
  /** Runs before startNodeIdempotency (a body parser or tap ahead of the guard, a wrapper an adapter installs). */
  before?: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;
  runs: number;
  /** The handler began (a claimed request). */
  arrived: Deferred;
  /** The handler returned, or what startNodeIdempotency or the handler threw. */
  done: Deferred;
  errors: string[];
  /** Header values on the server's response after a replay was written. */
  replayed?: Record<string, unknown>;
}

let ctx: Ctx;

function setup(handler: Handler, options: { maxRequestBytes?: number; maxResponseBytes?: number } = {}): Ctx {
  const spy = spyStore();
  const guard = createGuard({
    issuer: ISSUER,
    audience: ORIGIN,
    publicUrl: ORIGIN,
    idempotency: { store: spy.store, maxRequestBytes: options.maxRequestBytes ?? 10 },
  });
  const policy = guard.policy({ idempotency: { mode: 'required', maxResponseBytes: options.maxResponseBytes ?? 100 } });
  ctx = { guard, policy, spy, handler, runs: 0, arrived: deferred(), done: deferred(), errors: [] };
  return ctx;
}

async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const c = ctx;
  try {
    await c.before?.(req, res);
    const start = await startNodeIdempotency(c.guard, c.policy, auth, req, res, req.url ?? '/');
    if (start.kind !== 'pass') {
      writeIdempotencyAnswer(res, start);
      if (start.kind === 'replay') c.replayed = res.getHeaders();
      return;
    }
    c.runs++;
    c.arrived.resolve();
    await c.handler(req, res, start.claim);
  } catch (e) {
    c.errors.push(String((e as Error)?.message ?? e));
    if (!res.headersSent && !res.destroyed) {
      res.statusCode = 599;
      res.end();
    }
  } finally {
    c.done.resolve();
  }
}

let server: Server;
let port = 0;

beforeAll(async () => {
  server = createServer((req, res) => void serve(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise((r) => server.close(r));
});

interface Answer {
  status: number;
  /** Header lines as received, less the ones Node adds per connection and per framing. */
  headers: [string, string][];
  body: string;
}

const PER_CONNECTION = ['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'];
const pairs = (raw: string[]): [string, string][] => {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string]);
  return out;
};

interface Send {
  key?: string;
  body?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
}

function open(o: Send) {
  const headers: Record<string, string> = { ...o.headers };
  if (o.key !== undefined) headers['idempotency-key'] = o.key;
  if (o.body !== undefined) headers['content-length'] = String(Buffer.byteLength(o.body));
  const req = h1Request({ host: '127.0.0.1', port, method: o.method ?? 'POST', path: o.path ?? '/payments', headers, agent: false });
  return req;
}

/** A request whose client waits for the whole answer. */
function send(o: Send): Promise<Answer & { rawHeaders: [string, string][] }> {
  return within(
    new Promise((resolve, reject) => {
      const req = open(o);
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            rawHeaders: pairs(res.rawHeaders),
            headers: pairs(res.rawHeaders).filter(([n]) => !PER_CONNECTION.includes(n.toLowerCase())),
            body: Buffer.concat(chunks).toString('latin1'),
          }),
        );
      });
      req.end(o.body);
    }),
    'an answer',
  );
}

/** A request whose client goes away once its handler runs; resolves when the handler has returned. */
async function sendAndLeave(o: Send): Promise<void> {
  const req = open(o);
  req.on('error', () => undefined);
  req.end(o.body);
  await within(ctx.arrived.promise, 'the handler to run');
  req.destroy();
  await within(ctx.done.promise, 'the handler to return');
}

/** What a refusal says: status and error code. */
const refusal = (a: Answer) => {
  const description = (JSON.parse(a.body) as { error_description?: string }).error_description;
  return [a.status, Object.entries(REASONS).find(([, info]) => info.description === description)?.[0] ?? description];
};

const KEY = '"k-1"';

describe('the request body the fingerprint is made of', () => {
  const echo: Handler = (req, res) =>
    new Promise<void>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.statusCode = 201;
        res.setHeader('content-type', 'text/plain');
        res.end(`got ${Buffer.concat(chunks).toString()}`);
        resolve();
      });
    });

  it('IDEM-06 reads the body for the fingerprint and puts it back for the handler: the same body is replayed, another is 422', async () => {
    const c = setup(echo);
    const first = await send({ key: KEY, body: 'abc' });
    expect([first.status, first.body]).toEqual([201, 'got abc']);
    expect(await c.spy.outcome()).toEqual([
      { done: { status: 201, headers: [['content-type', 'text/plain']], body: 'got abc', layers: 1 } },
    ]);
    const retry = await send({ key: KEY, body: 'abc' });
    expect([retry.status, retry.headers, retry.body]).toEqual([201, [['content-type', 'text/plain']], 'got abc']);
    expect(refusal(await send({ key: KEY, body: 'abd' }))).toEqual([422, 'idempotency_key_reused']);
    expect(c.runs).toBe(1);
  });

  it('IDEM-07 a body of exactly maxRequestBytes is fingerprinted; one byte more is 413 and nothing runs', async () => {
    const c = setup(echo, { maxRequestBytes: 10 });
    expect((await send({ key: '"edge"', body: '0123456789' })).body).toBe('got 0123456789');
    expect(refusal(await send({ key: '"over"', body: '0123456789a' }))).toEqual([413, 'body_too_large']);
    expect([c.runs, c.errors]).toEqual([1, []]);
  });

  it('IDEM-07 a body a rawBody() tap kept is used as kept; one over maxRequestBytes is 413', async () => {
    // The tap ahead of the guard read the stream and kept what it read.
    const tapped = (kept: string) => async (req: IncomingMessage) => {
      for await (const _ of req);
      rememberRawBody(req, { ok: true, body: Buffer.from(kept) });
    };
    const c = setup((_req, res) => {
      res.statusCode = 201;
      res.end('paid');
    });
    c.before = tapped('0123456789');
    expect((await send({ key: '"t1"', body: 'x' })).body).toBe('paid');
    // The fingerprint is of the kept bytes: a retry with other bytes on the wire but the same kept ones is the same request.
    expect((await send({ key: '"t1"', body: 'y' })).body).toBe('paid');
    c.before = tapped('0123456789a');
    expect(refusal(await send({ key: '"t2"', body: 'x' }))).toEqual([413, 'body_too_large']);
    expect([c.runs, c.errors]).toEqual([1, []]);
  });

  it('IDEM-07 a body a tap saw cut off, or read before the guard by a parser, is 400 body_unavailable', async () => {
    const c = setup((_req, res) => {
      res.end('paid');
    });
    c.before = (req) => rememberRawBody(req, { ok: false, reason: 'aborted' });
    expect(refusal(await send({ key: '"a1"', body: 'x' }))).toEqual([500, 'body_unavailable']);
    c.before = async (req) => {
      for await (const _ of req);
    };
    expect(refusal(await send({ key: '"a2"', body: 'x' }))).toEqual([500, 'body_unavailable']);
    expect([c.runs, c.errors]).toEqual([0, []]);
  });

  it('a request that announces no body is fingerprinted without reading the stream, even one already read', async () => {
    const c = setup((_req, res) => {
      res.statusCode = 201;
      res.end('paid');
    });
    c.before = async (req) => {
      for await (const _ of req);
    };
    expect((await send({ key: '"nb"' })).status).toBe(201);
    expect((await send({ key: '"nb"' })).status).toBe(201);
    expect([c.runs, c.errors]).toEqual([1, []]);
  });
});

describe('what the recorder keeps of a response sent whole', () => {
  it('IDEM-15 keeps the status, the header lines in order and case (a name listed twice twice), and the bytes in their encoding', async () => {
    const c = setup((_req, res) => {
      res.setHeader('X-First', 'one');
      res.writeHead(201, { 'Content-Type': 'text/plain', 'X-Multi': ['a', 'b'] });
      res.write('68656c', 'hex');
      res.write(new Uint8Array([0x6c, 0x6f]));
      res.write(' ', () => undefined);
      res.end('w\u00f6rld', 'latin1');
    });
    const lines: [string, string][] = [
      ['X-First', 'one'],
      ['Content-Type', 'text/plain'],
      ['X-Multi', 'a'],
      ['X-Multi', 'b'],
    ];
    const first = await send({ key: KEY });
    expect([first.status, first.headers, first.body]).toEqual([201, lines, 'hello w\u00f6rld']);
    expect(await c.spy.outcome()).toEqual([{ done: { status: 201, headers: lines, body: 'hello w\u00f6rld', layers: 1 } }]);
    const retry = await send({ key: KEY });
    expect([retry.status, retry.headers, retry.body]).toEqual([201, lines, 'hello w\u00f6rld']);
    // Written with Node's own header values: one line a string, repeated lines a list.
    expect(c.replayed).toEqual({ 'x-first': 'one', 'content-type': 'text/plain', 'x-multi': ['a', 'b'] });
    expect(c.runs).toBe(1);
  });

  it('records an end() with nothing, with null or with only a callback, after the bytes written', async () => {
    for (const [key, finish] of [
      ['"e1"', (res: ServerResponse) => res.end()],
      ['"e2"', (res: ServerResponse) => res.end(null)],
      ['"e3"', (res: ServerResponse) => res.end(() => undefined)],
    ] as const) {
      const c = setup((_req, res) => {
        res.statusCode = 202;
        res.write('queued');
        finish(res);
      });
      const first = await send({ key });
      expect([first.status, first.body, c.errors]).toEqual([202, 'queued', []]);
      expect(await c.spy.outcome()).toEqual([{ done: { status: 202, headers: [], body: 'queued', layers: 1 } }]);
      expect((await send({ key })).body).toBe('queued');
      expect(c.runs).toBe(1);
    }
  });

  it('records the status the head went out with, not one set after it', async () => {
    const c = setup((_req, res) => {
      res.writeHead(201);
      res.write('a');
      res.statusCode = 500;
      res.end('b');
    });
    expect((await send({ key: KEY })).status).toBe(201);
    expect(await c.spy.outcome()).toEqual([{ done: { status: 201, headers: [], body: 'ab', layers: 1 } }]);
    expect((await send({ key: KEY })).status).toBe(201);
    expect(c.runs).toBe(1);
  });

  it('a handler still writing after a turn is recorded when it ends, not before', async () => {
    const c = setup(async (_req, res) => {
      res.statusCode = 201;
      res.write('part ');
      await new Promise((r) => setTimeout(r, 20));
      res.end('two');
    });
    expect((await send({ key: KEY })).body).toBe('part two');
    expect(await c.spy.outcome()).toEqual([{ done: { status: 201, headers: [], body: 'part two', layers: 1 } }]);
    expect((await send({ key: KEY })).body).toBe('part two');
    expect(c.runs).toBe(1);
  });

  it('IDEM-11 a response over maxResponseBytes is sent whole but not kept; retries get 409 and nothing is processed again', async () => {
    const c = setup(
      (_req, res) => {
        res.statusCode = 201;
        res.write('x'.repeat(8));
        res.end('yy');
      },
      { maxResponseBytes: 9 },
    );
    expect((await send({ key: KEY })).body).toBe('xxxxxxxxyy');
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(refusal(await send({ key: KEY }))).toEqual([409, 'idempotency_response_unkept']);
    expect(c.runs).toBe(1);
  });

  it('IDEM-11 keeps no copy of a body past maxResponseBytes: the chunks written after the bound are not held', async () => {
    // Node's collector by name (vm: the flag takes effect in a new context).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const written: WeakRef<ArrayBufferLike>[] = [];
    let collected: boolean[] = [];
    const c = setup(
      async (_req, res) => {
        res.statusCode = 200;
        // 16 chunks of 64 KiB, each sent before the next is made: only a copy would keep them.
        for (let i = 0; i < 16; i++) {
          const chunk = Buffer.alloc(64 * 1024, 0x61);
          // The memory itself: a copy may be a new view on it.
          written.push(new WeakRef(chunk.buffer));
          if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
        }
        await new Promise((r) => setImmediate(r));
        gc();
        // The last chunks may still be held by the socket's own bookkeeping; the first twelve are not.
        collected = written.slice(0, 12).map((ref) => ref.deref() === undefined);
        res.end();
      },
      { maxResponseBytes: 100 },
    );
    // The client counts the bytes and keeps none.
    const received = await within(
      new Promise<[number, number]>((resolve, reject) => {
        const req = open({ key: KEY });
        req.on('error', reject);
        req.on('response', (res) => {
          let length = 0;
          res.on('data', (chunk: Buffer) => {
            length += chunk.length;
          });
          res.on('end', () => resolve([res.statusCode ?? 0, length]));
        });
        req.end();
      }),
      'the answer',
      10_000,
    );
    expect(received).toEqual([200, 16 * 64 * 1024]);
    expect(collected).toEqual(Array(12).fill(true));
    expect(await c.spy.outcome()).toEqual(['unkept']);
  });

  it('a header that cannot be read back once sent leaves the response not kept (409), never the key in flight', async () => {
    const c = setup((_req, res) => {
      // Readable while the head is written, not after.
      const odd = { toString: () => (res.headersSent ? (undefined as unknown as string).trim() : 'v') };
      res.setHeader('x-odd', odd as unknown as string);
      res.statusCode = 201;
      res.end('paid');
    });
    const first = await send({ key: KEY });
    expect([first.status, first.headers, first.body]).toEqual([201, [['x-odd', 'v']], 'paid']);
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(refusal(await send({ key: KEY }))).toEqual([409, 'idempotency_response_unkept']);
    expect(c.runs).toBe(1);
  });

  it('a write of something not a chunk is refused by Node, as without the recorder', async () => {
    const thrown: string[] = [];
    const c = setup((_req, res) => {
      try {
        res.write((() => undefined) as unknown as string);
      } catch (e) {
        thrown.push((e as Error).message);
      }
      res.statusCode = 201;
      res.end('paid');
    });
    expect((await send({ key: KEY })).body).toBe('paid');
    expect(thrown).toEqual([expect.stringMatching(/^The "chunk" argument must be of type string/)]);
    expect(await c.spy.outcome()).toEqual([{ done: { status: 201, headers: [], body: 'paid', layers: 1 } }]);
  });
});

describe('a client gone before the answer', () => {
  /** `first` for the request whose client goes away; a retry processed again answers 201 "again". */
  const firstOnly =
    (first: Handler): Handler =>
    (req, res, claim) => {
      if (ctx.runs === 1) return first(req, res, claim);
      res.statusCode = 201;
      res.end('again');
    };
  /** The retry, from a client that stays: what it gets, and how many times the handler ran in all. */
  const retried = async (c: Ctx) => {
    const retry = await send({ key: KEY });
    return [retry.status, retry.status === 201 ? retry.body : refusal(retry)[1], c.runs];
  };

  it('a body framed by its Content-Length, ended after the client went away, is kept whole and replayed', async () => {
    const c = setup(async (_req, res) => {
      await closed(res);
      // Nothing is known of the answer when the client goes: it is ended turns later, and recorded then.
      await new Promise((r) => setTimeout(r, 20));
      res.statusCode = 201;
      res.setHeader('content-length', '4');
      res.end('paid');
    });
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual([{ done: { status: 201, headers: [['content-length', '4']], body: 'paid', layers: 1 } }]);
    expect(await retried(c)).toEqual([201, 'paid', 1]);
  });

  it('IDEM-11 a body without a length, ended after the client went away, is not known whole: processed, not kept', async () => {
    const c = setup(async (_req, res) => {
      await closed(res);
      res.statusCode = 201;
      res.end('paid');
    });
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(await retried(c)).toEqual([409, 'idempotency_response_unkept', 1]);
  });

  it('IDEM-11 an answer on its way (answered) to a client gone is processed, even with a server error after it and no end', async () => {
    const c = setup(async (_req, res, claim) => {
      res.statusCode = 201;
      claim?.answered();
      await closed(res);
      // The framework's failure to send it: a 500 that never goes out.
      res.statusCode = 500;
    });
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(await retried(c)).toEqual([409, 'idempotency_response_unkept', 1]);
  });

  it('IDEM-10 a server error on its way (answered) to a client gone frees the key: the retry is processed', async () => {
    const c = setup(
      firstOnly(async (_req, res, claim) => {
        res.statusCode = 500;
        claim?.answered();
        await closed(res);
      }),
    );
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['release']);
    expect(await retried(c)).toEqual([201, 'again', 2]);
  });

  it('the first answer known stands: a write after answered() with a server error status is still the answer on its way', async () => {
    const c = setup(async (_req, res, claim) => {
      res.statusCode = 201;
      claim?.answered();
      await closed(res);
      res.statusCode = 500;
      res.write('error');
    });
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(await retried(c)).toEqual([409, 'idempotency_response_unkept', 1]);
  });

  it('a second write with a server error status does not replace the first one written', async () => {
    const c = setup(async (_req, res) => {
      await closed(res);
      res.statusCode = 201;
      res.write('paid');
      res.statusCode = 500;
      res.write('error');
    });
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(await retried(c)).toEqual([409, 'idempotency_response_unkept', 1]);
  });

  it('IDEM-11 bytes written to a client gone, never ended, are settled as processed, not kept, whatever status follows', async () => {
    const c = setup(async (_req, res) => {
      await closed(res);
      res.statusCode = 201;
      res.write('paid');
      res.statusCode = 500;
    });
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(await retried(c)).toEqual([409, 'idempotency_response_unkept', 1]);
  });

  it('IDEM-11 a stream piped to a client gone that never writes is settled as processed, not kept', async () => {
    const source = new Readable({ read() {} });
    const c = setup(async (_req, res) => {
      await closed(res);
      res.statusCode = 201;
      source.pipe(res);
      res.statusCode = 500;
    });
    await sendAndLeave({ key: KEY });
    source.destroy();
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(await retried(c)).toEqual([409, 'idempotency_response_unkept', 1]);
  });

  it('IDEM-11 a handler chain that completed (settled) for a client gone, never ended, is processed, not kept', async () => {
    const c = setup(async (_req, res, claim) => {
      await closed(res);
      res.statusCode = 201;
      claim?.settled(false);
    });
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(await retried(c)).toEqual([409, 'idempotency_response_unkept', 1]);
  });

  it('IDEM-10 a handler chain that completed with a server error for a client gone frees the key', async () => {
    const c = setup(
      firstOnly(async (_req, res, claim) => {
        await closed(res);
        res.statusCode = 500;
        claim?.settled(false);
      }),
    );
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['release']);
    expect(await retried(c)).toEqual([201, 'again', 2]);
  });

  it('a handler chain that failed for a client gone frees the key: nothing to repeat, the retry is processed', async () => {
    const c = setup(
      firstOnly(async (_req, res, claim) => {
        await closed(res);
        res.statusCode = 201;
        claim?.settled(true);
      }),
    );
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['release']);
    expect(await retried(c)).toEqual([201, 'again', 2]);
  });

  it('a throw after the answer was written reports its sending, not the payment: processed, not kept', async () => {
    const c = setup(async (_req, res, claim) => {
      await closed(res);
      res.statusCode = 201;
      res.write('paid');
      claim?.settled(true);
    });
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(await retried(c)).toEqual([409, 'idempotency_response_unkept', 1]);
  });

  it('a failure to send, a 500 ended at once after the answer on its way to a client gone, is processed, not kept', async () => {
    const c = setup(async (_req, res, claim) => {
      res.statusCode = 201;
      claim?.answered();
      await closed(res);
      res.statusCode = 500;
      res.end('{"error":"send failed"}');
    });
    await sendAndLeave({ key: KEY });
    expect(await c.spy.outcome()).toEqual(['unkept']);
    expect(await retried(c)).toEqual([409, 'idempotency_response_unkept', 1]);
  });
});

describe('a client gone after the head', () => {
  it('IDEM-11 a response whose head went out and that never ends is settled when the connection closes: processed, not kept', async () => {
    for (const [key, body] of [
      ['"h1"', undefined],
      ['"h2"', 'part'],
    ] as const) {
      const c = setup(async (_req, res) => {
        res.writeHead(201, { 'content-type': 'text/plain' });
        if (body) res.write(body);
        res.flushHeaders();
        // Express's final handler after a handler failed: the socket destroyed, no end.
        res.destroy();
      });
      const first = await within(
        new Promise<string>((resolve) => {
          const req = open({ key });
          req.on('response', (r) => {
            r.on('error', () => resolve('cut'));
            r.on('end', () => resolve(r.complete ? 'whole' : 'cut'));
            r.on('close', () => resolve('cut'));
            r.resume();
          });
          req.on('error', () => resolve('error'));
          req.end();
        }),
        'the cut response',
      );
      expect(first).not.toBe('whole');
      expect(await c.spy.outcome()).toEqual(['unkept']);
      expect(refusal(await send({ key }))).toEqual([409, 'idempotency_response_unkept']);
      expect(c.runs).toBe(1);
    }
  });
});

describe('writeIdempotencyAnswer', () => {
  it('IDEM-03 a refusal is written past the wrappers an adapter installed on the response', async () => {
    const c = setup((_req, res) => {
      res.end('paid');
    });
    const wrapped: string[] = [];
    c.before = (_req, res) => {
      const { writeHead, write, end } = res;
      res.writeHead = function (this: ServerResponse, ...a: unknown[]) {
        wrapped.push('writeHead');
        this.setHeader('x-wrapped', 'yes');
        return (writeHead as (...x: unknown[]) => ServerResponse).apply(this, a);
      } as typeof res.writeHead;
      res.write = function (this: ServerResponse, ...a: unknown[]) {
        wrapped.push('write');
        return (write as (...x: unknown[]) => boolean).apply(this, a);
      } as typeof res.write;
      res.end = function (this: ServerResponse, ...a: unknown[]) {
        wrapped.push('end');
        this.setHeader('x-wrapped', 'yes');
        return (end as (...x: unknown[]) => ServerResponse).apply(this, a);
      } as typeof res.end;
    };
    const refused = await send({});
    expect(refusal(refused)).toEqual([400, 'idempotency_key_missing']);
    expect(refused.headers.find(([n]) => n === 'x-wrapped')).toBeUndefined();
    expect([wrapped, c.runs]).toEqual([[], 0]);
  });
});

describe("over HTTP/2's compatibility response", () => {
  let h2: Http2Server;
  let h2Url = '';
  beforeAll(async () => {
    h2 = h2CreateServer((req, res) => void serve(req as unknown as IncomingMessage, res as unknown as ServerResponse));
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    h2Url = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((r) => h2.close(r)));

  /** One request on its own connection: the answer, or (leave) the stream cancelled once the handler runs. */
  async function h2Send(leave = false): Promise<Answer> {
    const session = h2Connect(h2Url);
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/payments', 'idempotency-key': KEY });
      stream.on('error', () => undefined);
      stream.end();
      if (leave) {
        await within(ctx.arrived.promise, 'the handler to run');
        stream.close();
        await within(ctx.done.promise, 'the handler to return');
        return { status: 0, headers: [], body: '' };
      }
      return await within(
        new Promise<Answer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          let status = 0;
          let headers: [string, string][] = [];
          stream.on('response', (h) => {
            status = Number(h[':status']);
            headers = Object.entries(h)
              .filter(([n]) => !n.startsWith(':') && !PER_CONNECTION.includes(n))
              .map(([n, v]) => [n, String(v)]);
          });
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks).toString('latin1') }));
          stream.on('error', reject);
        }),
        'an HTTP/2 answer',
      );
    } finally {
      session.close();
    }
  }

  it('IDEM-15 keeps the header lines without the stream’s pseudo-headers, and end(chunk)’s bytes once', async () => {
    const c = setup((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.statusCode = 201;
      res.end('hello');
    });
    const first = await h2Send();
    expect([first.status, first.headers, first.body]).toEqual([201, [['content-type', 'text/plain']], 'hello']);
    expect(await c.spy.outcome()).toEqual([{ done: { status: 201, headers: [['content-type', 'text/plain']], body: 'hello', layers: 1 } }]);
    const retry = await h2Send();
    expect([retry.status, retry.headers, retry.body, c.runs]).toEqual([201, [['content-type', 'text/plain']], 'hello', 1]);
  });

  it('IDEM-11 a stream the client cancelled before the answer: the body ended after it is not known whole, not kept', async () => {
    const c = setup(async (_req, res) => {
      await closed(res);
      res.statusCode = 201;
      res.end('late');
    });
    await h2Send(true);
    expect(await c.spy.outcome()).toEqual(['unkept']);
    const retry = await h2Send();
    expect([refusal(retry), c.runs]).toEqual([[409, 'idempotency_response_unkept'], 1]);
  });
});

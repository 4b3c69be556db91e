/**
 * What the guard fetches (issuer metadata, JWK sets, introspection answers, client key sets), from
 * servers on 127.0.0.1 that misbehave: answers that never end or declare a huge size, URLs learned
 * from discovery or a client resolver that are not https, a flood of opaque tokens against a slow
 * introspection endpoint. Security review, issue 15 items 4, 9 and 13.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GuardOptions } from '@fapi-guard/core';
import { MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import { type RunningApp, startExpressApp } from './support/express-app';
import { type Received, send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const DOCUMENT_LIMIT = 512 * 1024;
const ANSWER_LIMIT = 256 * 1024;
/** Bytes written to a client that stopped reading at the limit: the limit plus what sockets buffer. */
const WRITTEN_BOUND = 16 * 1024 * 1024;
/** A reader without a limit would take all of this: the fault server's own bound. */
const ENDLESS_CAP = 256 * 1024 * 1024;
const METADATA = '/.well-known/oauth-authorization-server';

type Shape = { fault: 'endless' | 'declared' } | { padTo: number; chunked: boolean };

/**
 * Plays an authorization server and a client's key host on 127.0.0.1: JSON documents by path
 * (GET or POST), any of which can be made to never end, to declare a Content-Length far over
 * any limit, or to be padded to an exact size. Counts what it serves.
 */
class DocumentHost {
  url = '';
  readonly documents = new Map<string, () => unknown>();
  readonly shapes = new Map<string, Shape>();
  readonly hits = new Map<string, number>();
  /** Milliseconds to wait before answering, by path. */
  readonly delays = new Map<string, number>();
  /** Body bytes written in answers that never end or declared a huge size. */
  written = 0;
  /** Such answers whose client hung up. */
  dropped = 0;
  active = 0;
  peak = 0;
  private readonly server = createServer((req, res) => void this.handle(req, res));

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0] as string;
    this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
    for await (const _ of req) {
      // drain the request body
    }
    this.active++;
    this.peak = Math.max(this.peak, this.active);
    await new Promise((r) => setTimeout(r, this.delays.get(path) ?? 0));
    this.active--;
    const document = this.documents.get(path);
    if (!document) {
      res.writeHead(404).end();
      return;
    }
    const shape = this.shapes.get(path);
    if (shape && 'fault' in shape) return this.fault(res, shape.fault);
    let body = JSON.stringify(document());
    if (shape) body = body.padEnd(shape.padTo, ' ');
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (!shape?.chunked) headers['content-length'] = String(Buffer.byteLength(body));
    res.writeHead(200, headers);
    res.end(body);
  }

  private fault(res: ServerResponse, fault: 'endless' | 'declared'): void {
    let closed = false;
    res.on('close', () => {
      closed = true;
      this.dropped++;
    });
    const chunk = Buffer.alloc(64 * 1024, ' ');
    const write = () => {
      this.written += chunk.length;
      return res.write(chunk);
    };
    if (fault === 'declared') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(100 * 1024 * 1024) });
      res.flushHeaders();
      // A client that reads on after the declared size gets body bytes; one that refused gets none.
      setTimeout(() => {
        if (!closed) write();
        res.destroy();
      }, 300);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    let served = 0;
    const pump = () => {
      while (!closed && served < ENDLESS_CAP) {
        served += chunk.length;
        if (!write()) {
          res.once('drain', pump);
          return;
        }
      }
      res.destroy();
    };
    pump();
  }
}

async function waitFor(check: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

let host: DocumentHost;
let issuer: MockIssuer;
const client = MessageSigningClient.generate('ed25519', 'client-key');

beforeEach(async () => {
  host = await new DocumentHost().start();
  issuer = await MockIssuer.create({ issuer: host.url, audience: AUDIENCE });
  host.documents.set(METADATA, () => ({
    issuer: host.url,
    jwks_uri: `${host.url}/jwks`,
    introspection_endpoint: `${host.url}/introspect`,
  }));
  host.documents.set('/jwks', () => issuer.jwks);
  host.documents.set('/client-jwks', () => client.jwks);
  host.documents.set('/introspect', () => ({ active: true, iss: host.url, aud: AUDIENCE, client_id: 'client-1', scope: 'accounts' }));
});
afterEach(() => host.stop());

const SIGNED = { allowBearer: true, signedRequest: 'required' } as const;

async function withApi(options: Partial<GuardOptions>, run: (api: RunningApp) => Promise<void>): Promise<void> {
  const api = await startExpressApp(
    { issuer: host.url, audience: AUDIENCE, publicUrl: AUDIENCE, keys: { cooldownMs: 200 }, ...options } as GuardOptions,
    (app, fapi) => {
      app.get('/accounts', fapi.protect({ scopes: ['accounts'], allowBearer: true }), (_req, res) => void res.json({ ok: true }));
      if (options.messageSigning) app.post('/signed', fapi.protect(SIGNED), (_req, res) => void res.status(201).json({ ok: true }));
    },
  );
  try {
    await run(api);
  } finally {
    await api.close();
  }
}

const basic = { clientId: 'rs-client', clientAuth: { method: 'client_secret_basic', clientSecret: 'rs-secret' } } as const;

/** Calls for each kind of fetched document, with the guard options that make the guard fetch it. */
const SOURCES = {
  'issuer metadata (discovery)': {
    path: METADATA,
    limit: DOCUMENT_LIMIT,
    options: {},
    call: async (api: RunningApp) => get(api, await issuer.mint({ scope: 'accounts' })),
  },
  'JWK set': {
    path: '/jwks',
    limit: DOCUMENT_LIMIT,
    options: {},
    call: async (api: RunningApp) => get(api, await issuer.mint({ scope: 'accounts' })),
  },
  'introspection answer': {
    path: '/introspect',
    limit: ANSWER_LIMIT,
    options: { introspection: { ...basic, cache: false as const } },
    call: (api: RunningApp) => get(api, 'an-opaque-access-token'),
  },
  'client key set': {
    path: '/client-jwks',
    limit: DOCUMENT_LIMIT,
    options: { messageSigning: { clients: { 'client-1': { jwksUri: '' } }, cooldownMs: 200 } },
    call: async (api: RunningApp) => signedPost(api, await issuer.mint({ scope: 'accounts' })),
  },
} as const;

function get(api: RunningApp, token: string): Promise<Received> {
  return send(`${api.url}/accounts`, { headers: { authorization: `Bearer ${token}` } });
}

function signedPost(api: RunningApp, token: string, signer = client): Promise<Received> {
  const body = '{"amount":"1.00"}';
  const request = {
    method: 'POST',
    url: `${AUDIENCE}/signed`,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body,
  };
  return send(`${api.url}/signed`, { method: 'POST', headers: { ...request.headers, ...signer.sign(request) }, body });
}

/** The guard options of a source, with the client key URL pointing at this test's host. */
function optionsOf(source: (typeof SOURCES)[keyof typeof SOURCES]): Partial<GuardOptions> {
  if (!('messageSigning' in source.options)) return source.options as Partial<GuardOptions>;
  return { messageSigning: { clients: { 'client-1': { jwksUri: `${host.url}/client-jwks` } }, cooldownMs: 200 } };
}

describe('15.4 unbounded reads of remote documents', () => {
  describe.each(Object.entries(SOURCES))('%s', (_name, source) => {
    it('15.4 unbounded reads: an answer that never ends is dropped at the limit; 503 with Retry-After; recovers', async () => {
      await withApi(optionsOf(source), async (api) => {
        const ok = source.path === '/client-jwks' ? 201 : 200;
        host.shapes.set(source.path, { fault: 'endless' });
        const started = Date.now();
        const res = await source.call(api);
        expect(res.status).toBe(503);
        expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
        expect(api.decisions.at(-1)?.detail).toContain(`exceeds ${source.limit} bytes`);
        await waitFor(() => host.dropped === 1);
        // The guard's deadline is seconds away: it stopped because of the size, not the clock.
        expect(Date.now() - started).toBeLessThan(4000);
        expect(host.written).toBeGreaterThan(source.limit);
        expect(host.written).toBeLessThan(WRITTEN_BOUND);
        host.shapes.delete(source.path);
        await new Promise((r) => setTimeout(r, 250));
        expect((await source.call(api)).status).toBe(ok);
      });
    });

    it('15.4 unbounded reads: a Content-Length over the limit is refused before any body byte is read', async () => {
      await withApi(optionsOf(source), async (api) => {
        host.shapes.set(source.path, { fault: 'declared' });
        const res = await source.call(api);
        expect(res.status).toBe(503);
        expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
        expect(api.decisions.at(-1)?.detail).toContain(`Content-Length ${100 * 1024 * 1024} exceeds ${source.limit} bytes`);
        await waitFor(() => host.dropped === 1);
        expect(host.written).toBe(0);
      });
    });

    it.each([
      ['Content-Length', false],
      ['chunked', true],
    ])('15.4 unbounded reads: a %s answer of exactly the limit is read, one byte more is not', async (_how, chunked) => {
      await withApi(optionsOf(source), async (api) => {
        const ok = source.path === '/client-jwks' ? 201 : 200;
        host.shapes.set(source.path, { padTo: source.limit, chunked });
        expect((await source.call(api)).status).toBe(ok);
      });
      await withApi(optionsOf(source), async (api) => {
        host.shapes.set(source.path, { padTo: source.limit + 1, chunked });
        const res = await source.call(api);
        expect(res.status).toBe(503);
        expect(api.decisions.at(-1)?.detail).toContain(`exceeds ${source.limit} bytes`);
      });
    });
  });
});

describe('15.9 every outbound URL passes the same check, however it was learned', () => {
  const refusedHttp = (detail: string | undefined, what: string) => {
    expect(detail).toContain(what);
    expect(detail).toContain('must use https');
  };

  it('15.9 discovered URLs: a plain-http introspection_endpoint from metadata is refused, the token and secret never sent', async () => {
    host.documents.set(METADATA, () => ({
      issuer: host.url,
      jwks_uri: `${host.url}/jwks`,
      introspection_endpoint: 'http://as.invalid/introspect',
    }));
    await withApi({ introspection: basic }, async (api) => {
      const res = await get(api, 'an-opaque-access-token');
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(api.decisions.at(-1)?.reason).toBe('issuer_unavailable');
      refusedHttp(api.decisions.at(-1)?.detail, 'introspection_endpoint \\"http://as.invalid/introspect\\"');
    });
  });

  it('15.9 discovered URLs: a loopback http introspection_endpoint from metadata is used (development)', async () => {
    await withApi({ introspection: basic }, async (api) => {
      expect((await get(api, 'an-opaque-access-token')).status).toBe(200);
      expect(host.hits.get('/introspect')).toBe(1);
    });
  });

  it('15.9 discovered URLs: a plain-http jwks_uri from metadata is refused with the reason, never fetched', async () => {
    host.documents.set(METADATA, () => ({ issuer: host.url, jwks_uri: 'http://as.invalid/jwks' }));
    await withApi({}, async (api) => {
      const res = await get(api, await issuer.mint({ scope: 'accounts' }));
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      refusedHttp(api.decisions.at(-1)?.detail, 'jwks_uri \\"http://as.invalid/jwks\\"');
      expect(host.hits.get('/jwks')).toBeUndefined();
    });
  });

  it('15.9 resolved client keys: a plain-http jwksUri from resolveClient is refused with the reason; loopback http is used', async () => {
    const resolved = new Map([
      ['client-1', { jwksUri: 'http://keys.invalid/jwks' }],
      ['client-2', { jwksUri: `${host.url}/client-jwks` }],
    ]);
    await withApi({ messageSigning: { resolveClient: (id) => resolved.get(id), cooldownMs: 200 } }, async (api) => {
      const res = await signedPost(api, await issuer.mint({ scope: 'accounts' }));
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(api.decisions.at(-1)?.reason).toBe('signature_keys_unavailable');
      refusedHttp(api.decisions.at(-1)?.detail, 'jwksUri of client client-1 \\"http://keys.invalid/jwks\\"');
      const other = await signedPost(api, await issuer.mint({ scope: 'accounts', claims: { client_id: 'client-2' } }));
      expect(other.status).toBe(201);
      expect(host.hits.get('/client-jwks')).toBe(1);
    });
  });
});

describe('15.13 prototype keys and introspection floods', () => {
  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])(
    '15.13 prototype keys: client_id %s is not a registered client; resolveClient is asked',
    async (clientId) => {
      const asked: string[] = [];
      const resolveClient = (id: string) => {
        asked.push(id);
        return id === clientId ? { jwks: client.jwks } : undefined;
      };
      await withApi({ messageSigning: { clients: { 'client-1': { jwks: client.jwks } }, resolveClient } }, async (api) => {
        const token = await issuer.mint({ scope: 'accounts', claims: { client_id: clientId } });
        expect((await signedPost(api, token)).status).toBe(201);
        expect(asked).toEqual([clientId]);
      });
      // Without a resolver the client is unknown: its signature cannot verify (401), nothing is unavailable.
      await withApi({ messageSigning: { clients: { 'client-1': { jwks: client.jwks } } } }, async (api) => {
        const token = await issuer.mint({ scope: 'accounts', claims: { client_id: clientId } });
        const res = await signedPost(api, token);
        expect(res.status).toBe(401);
        expect(api.decisions.at(-1)?.reason).toBe('signature_invalid');
      });
    },
  );

  /** Sends `count` requests at once, each with its own made-up opaque token. */
  const flood = (api: RunningApp, count: number) =>
    Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const started = Date.now();
        const res = await get(api, `made-up-opaque-token-${i}-${Math.random()}`);
        return { res, ms: Date.now() - started };
      }),
    );

  it('15.13 introspection floods: at most maxConcurrent calls at once, maxQueued wait, the rest get 503 + Retry-After at once', async () => {
    host.delays.set('/introspect', 400);
    const introspection = { ...basic, cache: false as const, maxConcurrent: 4, maxQueued: 3, timeoutMs: 3000 };
    await withApi({ introspection }, async (api) => {
      const results = await flood(api, 12);
      expect(host.peak).toBe(4);
      expect(host.hits.get('/introspect')).toBe(7);
      const passed = results.filter((r) => r.res.status === 200);
      const refused = results.filter((r) => r.res.status === 503);
      expect(passed).toHaveLength(7);
      expect(refused).toHaveLength(5);
      for (const r of refused) {
        expect(r.res.headers['retry-after']).toBe('1');
        expect(r.ms).toBeLessThan(400);
      }
      expect(api.decisions.filter((d) => d.detail?.includes('more than 4 (+3 waiting) calls at once'))).toHaveLength(5);
    });
  });

  it('15.13 introspection floods: a call waits for a slot at most timeoutMs', async () => {
    host.delays.set('/introspect', 700);
    const introspection = { ...basic, cache: false as const, maxConcurrent: 1, maxQueued: 10, timeoutMs: 1000 };
    await withApi({ introspection }, async (api) => {
      const results = await flood(api, 5);
      // The first call ends at ~700 ms and lets the second in; the others have waited 1000 ms by then.
      expect(results.filter((r) => r.res.status === 200)).toHaveLength(2);
      expect(results.filter((r) => r.res.status === 503)).toHaveLength(3);
      expect(host.hits.get('/introspect')).toBe(2);
      expect(host.peak).toBe(1);
    });
  });

  it('15.13 introspection floods: by default 16 calls at once, and 64 more wait', async () => {
    host.delays.set('/introspect', 300);
    await withApi({ introspection: { ...basic, cache: false } }, async (api) => {
      const results = await flood(api, 90);
      expect(host.peak).toBe(16);
      expect(host.hits.get('/introspect')).toBe(80);
      expect(results.filter((r) => r.res.status === 503)).toHaveLength(10);
    });
  });

  it('15.13 introspection floods: maxConcurrent and maxQueued must be whole numbers (start-up error)', async () => {
    for (const bad of [{ maxConcurrent: 0 }, { maxConcurrent: 1.5 }, { maxQueued: -1 }, { maxQueued: Number.NaN }]) {
      await expect(withApi({ introspection: { ...basic, ...bad } }, async () => undefined)).rejects.toThrow(
        /introspection\.max(Concurrent|Queued) must be (an integer|a number)/,
      );
    }
  });
});

/**
 * The introspection client in-process (RFC 7662, RFC 9701 signed answers): what it sends, every
 * refusal of an answer with its reason and detail, the cache of answers, the bound on calls in
 * flight. The endpoint is a real HTTP server on 127.0.0.1; the issuer's key set a stand-in.
 * test/introspection.test.ts proves the same through the adapters.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { type IntrospectionOptions, Introspector, MemoryIntrospectionCache } from '../src/tokens/introspection';
import type { IssuerKeys, KeyLookup } from '../src/tokens/issuer';
import type { TokenResult } from '../src/tokens/jwt';

const ISS = 'https://as.example.com';
const AUD = 'https://rs.example.com';
const NOW = 1_800_000_000;

interface Seen {
  headers: IncomingMessage['headers'];
  form: URLSearchParams;
}

/** The introspection endpoint: records each request, answers with `answer`. */
let server: Server;
let endpoint: string;
let seen: Seen[] = [];
let answer: (seen: Seen) => { status?: number; type?: string; body: string } | Promise<{ status?: number; type?: string; body: string }>;

const json =
  (value: unknown, status = 200) =>
  () => ({ status, type: 'application/json', body: JSON.stringify(value) });

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', async () => {
      const request = { headers: req.headers, form: new URLSearchParams(body) };
      seen.push(request);
      const { status = 200, type, body: text } = await answer(request);
      res.writeHead(status, type ? { 'content-type': type } : {});
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));
beforeEach(() => {
  seen = [];
  answer = json(active());
});

/** The issuer as the introspector sees it: its identifier, metadata and key set. */
class StandInIssuer {
  readonly issuer = ISS;
  readonly outbound = undefined;
  lookup: KeyLookup | undefined;
  asked: Array<[string, string | undefined]> = [];
  metadataAnswer: () => Promise<Record<string, unknown>> = async () => ({ introspection_endpoint: endpoint });
  constructor(public keys: CryptoKey[]) {}
  async keysFor(alg: string, kid: string | undefined): Promise<KeyLookup> {
    this.asked.push([alg, kid]);
    return this.lookup ?? { ok: true, keys: this.keys, generation: 0 };
  }
  metadata(): Promise<Record<string, unknown>> {
    return this.metadataAnswer();
  }
}

let signer: CryptoKey;
let verifierKey: CryptoKey;
let otherKey: CryptoKey;
let clientJwk: JWK;
let clientPublic: CryptoKey;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  signer = pair.privateKey;
  verifierKey = pair.publicKey;
  otherKey = (await generateKeyPair('ES256')).publicKey;
  const client = await generateKeyPair('ES256', { extractable: true });
  clientJwk = { ...(await exportJWK(client.privateKey)), kid: 'rs-key' };
  clientPublic = client.publicKey;
});

function active(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { active: true, aud: AUD, client_id: 'c1', sub: 'alice', scope: 'accounts', exp: NOW + 300, iat: NOW - 10, ...extra };
}

interface Setup {
  introspector: Introspector;
  issuer: StandInIssuer;
  clock: { now: number };
}

function setup(options: Partial<IntrospectionOptions> = {}): Setup {
  const issuer = new StandInIssuer([verifierKey]);
  const clock = { now: NOW * 1000 };
  const introspector = new Introspector(
    { endpoint, clientId: 'rs-client', clientAuth: { method: 'client_secret_basic', clientSecret: 's3cret' }, ...options },
    {
      issuer: issuer as unknown as IssuerKeys,
      audiences: [AUD, 'https://rs2.example.com'],
      algorithms: ['ES256', 'PS256'],
      clockToleranceSec: 5,
      now: () => clock.now,
    },
  );
  return { introspector, issuer, clock };
}

const failure = (result: TokenResult) => (result.ok ? { ok: true } : { reason: result.reason, detail: result.detail });
let tokens = 0;
/** A fresh opaque token and its (stand-in) hash. */
const token = () => {
  tokens++;
  return [`opaque-${tokens}`, `hash-${tokens}`] as const;
};

async function introspect(s: Setup = setup()) {
  const [t, h] = token();
  return failure(await s.introspector.introspect(t, h));
}

describe('Introspector: configuration', () => {
  it('refuses maxConcurrent below 1 or not an integer, and maxQueued below 0 or not an integer', () => {
    expect(() => setup({ maxConcurrent: 0 })).toThrow('fapi-guard: introspection.maxConcurrent must be an integer ≥ 1');
    expect(() => setup({ maxConcurrent: 1.5 })).toThrow('fapi-guard: introspection.maxConcurrent must be an integer ≥ 1');
    expect(() => setup({ maxQueued: -1 })).toThrow('fapi-guard: introspection.maxQueued must be an integer ≥ 0');
    expect(() => setup({ maxQueued: 0.5 })).toThrow('fapi-guard: introspection.maxQueued must be an integer ≥ 0');
    expect(() => setup({ maxConcurrent: 1, maxQueued: 0 })).not.toThrow();
  });

  it('answers for its issuer', () => {
    expect(setup().introspector.issuer).toBe(ISS);
  });
});

describe('Introspector: the request (RFC 7662 §2.1)', () => {
  it('INTRO-01 POSTs the token form-encoded with token_type_hint, asking for JSON, with client_secret_basic of the form-encoded id and secret', async () => {
    await introspect(setup({ clientId: 'rs:client', clientAuth: { method: 'client_secret_basic', clientSecret: 'p@ss word' } }));
    const [request] = seen;
    expect(request?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(request?.headers.accept).toBe('application/json');
    expect(request?.form.get('token')).toBe(`opaque-${tokens}`);
    expect(request?.form.get('token_type_hint')).toBe('access_token');
    expect(request?.form.has('client_id')).toBe(false);
    expect(request?.headers.authorization).toBe(`Basic ${Buffer.from('rs%3Aclient:p%40ss%20word').toString('base64')}`);
  });

  it('INTRO-01 client_secret_post puts the id and secret in the form', async () => {
    await introspect(setup({ clientAuth: { method: 'client_secret_post', clientSecret: 's3cret' } }));
    expect(seen[0]?.headers.authorization).toBeUndefined();
    expect([seen[0]?.form.get('client_id'), seen[0]?.form.get('client_secret')]).toEqual(['rs-client', 's3cret']);
  });

  it('INTRO-01 private_key_jwt sends a 60-second assertion: iss and sub the client id, aud the issuer alone, kid of the key', async () => {
    await introspect(setup({ clientAuth: { method: 'private_key_jwt', privateKey: clientJwk } }));
    const form = seen[0]?.form as URLSearchParams;
    expect(form.get('client_id')).toBe('rs-client');
    expect(form.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    const assertion = form.get('client_assertion') as string;
    expect(decodeProtectedHeader(assertion)).toEqual({ alg: 'ES256', kid: 'rs-key' });
    const claims = decodeJwt(assertion);
    expect(claims).toEqual({
      iss: 'rs-client',
      sub: 'rs-client',
      aud: ISS,
      iat: NOW,
      exp: NOW + 60,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    const { jwtVerify } = await import('jose');
    await expect(jwtVerify(assertion, clientPublic, { currentDate: new Date(NOW * 1000) })).resolves.toBeTruthy();
  });

  it('private_key_jwt without a kid sends no kid, and a new jti each call', async () => {
    const { kid: _, ...withoutKid } = clientJwk;
    const s = setup({ clientAuth: { method: 'private_key_jwt', privateKey: withoutKid }, cache: false });
    await introspect(s);
    await introspect(s);
    const [a, b] = seen.map((r) => r.form.get('client_assertion') as string);
    expect(decodeProtectedHeader(a as string)).toEqual({ alg: 'ES256' });
    expect(decodeJwt(a as string).jti).not.toBe(decodeJwt(b as string).jti);
  });

  it('tls_client_auth names the client in the form and sends no secret', async () => {
    await introspect(setup({ clientAuth: { method: 'tls_client_auth', cert: 'unused over http', key: 'unused' } }));
    expect(seen[0]?.form.get('client_id')).toBe('rs-client');
    expect(seen[0]?.headers.authorization).toBeUndefined();
    expect(seen[0]?.form.has('client_secret')).toBe(false);
  });

  it('takes the endpoint from the issuer metadata when none is configured; 503 when the metadata fails or has none', async () => {
    const s = setup({ endpoint: undefined });
    expect(await introspect(s)).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
    s.issuer.metadataAnswer = async () => {
      throw new Error('metadata down');
    };
    expect(await introspect(s)).toEqual({ reason: 'issuer_unavailable', detail: 'introspection: metadata: metadata down' });
    s.issuer.metadataAnswer = async () => ({ introspection_endpoint: 7 });
    expect(await introspect(s)).toEqual({
      reason: 'issuer_unavailable',
      detail: `introspection: ${ISS} metadata has no introspection_endpoint`,
    });
  });
});

describe('Introspector: plain answers (RFC 7662 §2.2)', () => {
  it('DEC-09 an endpoint that does not answer 200, or answers something other than a JSON object, is a 503', async () => {
    answer = json({ active: true }, 500);
    expect(await introspect()).toEqual({ reason: 'issuer_unavailable', detail: 'introspection endpoint answered 500' });
    answer = () => ({ type: 'application/json', body: 'not json' });
    expect(await introspect()).toEqual({ reason: 'issuer_unavailable', detail: 'introspection answer is not JSON' });
    for (const value of [[active()], null, 'active']) {
      answer = json(value);
      expect(await introspect()).toEqual({ reason: 'issuer_unavailable', detail: 'introspection answer is not an object' });
    }
  });

  it('DEC-09 an endpoint that cannot be reached is a 503 saying why', async () => {
    const s = setup({ endpoint: 'http://127.0.0.1:1/introspect' });
    expect(await introspect(s)).toEqual({
      reason: 'issuer_unavailable',
      detail: expect.stringMatching(/^introspection: POST introspection_endpoint /),
    });
  });

  it('INTRO-02 only a boolean true is active', async () => {
    for (const value of [false, 'true', 1, undefined]) {
      answer = json(active({ active: value }));
      expect(await introspect()).toEqual({ reason: 'token_inactive', detail: 'introspection: not active' });
    }
  });

  it('INTRO-03 an active answer: iss defaults to the issuer, and another iss is refused', async () => {
    const s = setup();
    const [t, h] = token();
    const result = await s.introspector.introspect(t, h);
    expect(result.ok && result.token.claims.iss).toBe(ISS);
    expect(result.ok && result.token.source).toBe('introspection');
    expect(result.ok && result.token.hash).toBe(h);
    expect(result.ok && Object.isFrozen(result.token.claims)).toBe(true);
    answer = json(active({ iss: 'https://other.example' }));
    expect(await introspect()).toEqual({ reason: 'token_issuer', detail: 'introspection iss "https://other.example"' });
  });

  it('JWTBCP-10 a token_type that is not an access token type is refused', async () => {
    answer = json(active({ token_type: 'refresh_token' }));
    expect(await introspect()).toEqual({
      reason: 'token_type',
      detail: 'introspection token_type "refresh_token" is not an access token type',
    });
  });

  it('AUD-04 INTRO-03 aud: absent or not a string or array is refused; one of ours passes; none of ours is refused', async () => {
    for (const aud of [undefined, 5, { AUD }]) {
      answer = json(active({ aud }));
      expect(await introspect()).toEqual({ reason: 'token_audience', detail: 'introspection answer has no aud' });
    }
    answer = json(active({ aud: ['https://x.example', 'https://rs2.example.com'] }));
    expect(await introspect()).toEqual({ ok: true });
    answer = json(active({ aud: ['https://x.example'] }));
    expect(await introspect()).toEqual({ reason: 'token_audience', detail: 'aud ["https://x.example"]' });
  });

  it('an answer without a string client_id is refused', async () => {
    for (const client_id of [undefined, 5]) {
      answer = json(active({ client_id }));
      expect(await introspect()).toEqual({ reason: 'token_claim_missing', detail: 'introspection answer has no client_id' });
    }
  });

  it.each(['exp', 'nbf', 'iat', 'auth_time'])('%s, when given, is a number', async (name) => {
    answer = json(active({ [name]: String(NOW) }));
    expect(await introspect()).toEqual({ reason: 'token_claim_invalid', detail: `${name} is not a number` });
  });

  it('scope, when given, is a string; cnf an object', async () => {
    answer = json(active({ scope: ['accounts'] }));
    expect(await introspect()).toEqual({ reason: 'token_claim_invalid', detail: 'scope is not a string' });
    for (const cnf of [null, ['x'], 'jkt']) {
      answer = json(active({ cnf }));
      expect(await introspect()).toEqual({ reason: 'token_claim_invalid', detail: 'cnf is not an object' });
    }
    answer = json(active({ scope: undefined, cnf: { 'x5t#S256': 'abc' } }));
    expect(await introspect()).toEqual({ ok: true });
  });

  it('DPOP-18 a given token_type matches cnf: DPoP exactly for a DPoP-bound token', async () => {
    const cases: Array<[Record<string, unknown>, unknown]> = [
      [{ token_type: 'DPoP', cnf: { jkt: 'k' } }, { ok: true }],
      [{ token_type: 'Bearer' }, { ok: true }],
      [{ cnf: { jkt: 'k' } }, { ok: true }],
      [{ token_type: 'DPoP' }, { reason: 'token_claim_invalid', detail: 'token_type dpop does not match cnf' }],
      [
        { token_type: 'Bearer', cnf: { jkt: 'k' } },
        { reason: 'token_claim_invalid', detail: 'token_type bearer does not match cnf' },
      ],
      [
        { token_type: 'access_token', cnf: { jkt: 'k' } },
        { reason: 'token_claim_invalid', detail: 'token_type of the access-token kind does not match cnf' },
      ],
    ];
    for (const [extra, expected] of cases) {
      answer = json(active(extra));
      expect(await introspect()).toEqual(expected);
    }
  });

  it('time: exp until exp + tolerance, nbf and iat up to now + tolerance', async () => {
    const cases: Array<[Record<string, unknown>, unknown]> = [
      [{ exp: NOW - 4 }, { ok: true }],
      [{ exp: NOW - 5 }, { reason: 'token_expired', detail: `exp ${NOW - 5} is past` }],
      [{ nbf: NOW + 5 }, { ok: true }],
      [{ nbf: NOW + 6 }, { reason: 'token_not_yet_valid', detail: `nbf ${NOW + 6} is in the future` }],
      [{ iat: NOW + 5 }, { ok: true }],
      [{ iat: NOW + 6 }, { reason: 'token_issued_in_future', detail: `iat ${NOW + 6} is in the future` }],
      [{ exp: undefined, iat: undefined }, { ok: true }],
    ];
    for (const [extra, expected] of cases) {
      answer = json(active(extra));
      expect(await introspect()).toEqual(expected);
    }
  });
});

describe('Introspector: the cache of answers', () => {
  it('INTRO-04 keeps an active answer for maxTtlSec (30 s by default), then asks again', async () => {
    const s = setup();
    const [t, h] = token();
    await s.introspector.introspect(t, h);
    s.clock.now += 29_999;
    expect(failure(await s.introspector.introspect(t, h))).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
    s.clock.now += 1;
    await s.introspector.introspect(t, h);
    expect(seen).toHaveLength(2);
  });

  it('INTRO-04 never past the token exp, and not at all for an answer already past exp', async () => {
    const s = setup({ cache: { maxTtlSec: 60 } });
    answer = json(active({ exp: NOW + 10 }));
    const [t, h] = token();
    await s.introspector.introspect(t, h);
    s.clock.now += 9_999;
    await s.introspector.introspect(t, h);
    expect(seen).toHaveLength(1);
    s.clock.now += 1;
    await s.introspector.introspect(t, h);
    expect(seen).toHaveLength(2);

    // Past exp but within the tolerance: accepted, not kept.
    answer = json(active({ exp: NOW - 2 }));
    const late = setup();
    const [t2, h2] = token();
    await late.introspector.introspect(t2, h2);
    await late.introspector.introspect(t2, h2);
    expect(seen).toHaveLength(4);
  });

  it('an answer without exp is kept maxTtlSec', async () => {
    const s = setup({ cache: { maxTtlSec: 2 } });
    answer = json(active({ exp: undefined }));
    const [t, h] = token();
    await s.introspector.introspect(t, h);
    s.clock.now += 1_999;
    await s.introspector.introspect(t, h);
    expect(seen).toHaveLength(1);
    s.clock.now += 1;
    await s.introspector.introspect(t, h);
    expect(seen).toHaveLength(2);
  });

  it('a cached answer is checked again on every request: it expires with its token', async () => {
    const s = setup({ cache: { maxTtlSec: 60 } });
    answer = json(active({ exp: NOW + 30 }));
    const [t, h] = token();
    await s.introspector.introspect(t, h);
    s.clock.now += 29_000;
    expect(failure(await s.introspector.introspect(t, h))).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
  });

  it('keeps an inactive answer negativeTtlSec (5 s by default), then asks again', async () => {
    answer = json({ active: false });
    const s = setup();
    const [t, h] = token();
    await s.introspector.introspect(t, h);
    s.clock.now += 4_999;
    expect(failure(await s.introspector.introspect(t, h))).toEqual({ reason: 'token_inactive', detail: 'cached: not active' });
    expect(seen).toHaveLength(1);
    s.clock.now += 1;
    expect(failure(await s.introspector.introspect(t, h))).toEqual({ reason: 'token_inactive', detail: 'introspection: not active' });
    expect(seen).toHaveLength(2);
  });

  it('keeps a refused answer not at all', async () => {
    answer = json(active({ aud: 'https://x.example' }));
    const s = setup();
    const [t, h] = token();
    await s.introspector.introspect(t, h);
    await s.introspector.introspect(t, h);
    expect(seen).toHaveLength(2);
  });

  it('cache false asks every time', async () => {
    const s = setup({ cache: false });
    const [t, h] = token();
    await s.introspector.introspect(t, h);
    await s.introspector.introspect(t, h);
    expect(seen).toHaveLength(2);
  });

  it('a store that fails is a miss, reported; the answer is still given', async () => {
    const errors: unknown[] = [];
    const store = {
      get: () => Promise.reject(new Error('get down')),
      set: () => Promise.reject(new Error('set down')),
    };
    const issuer = new StandInIssuer([verifierKey]);
    const introspector = new Introspector(
      { endpoint, clientId: 'rs-client', clientAuth: { method: 'client_secret_post', clientSecret: 's' }, cache: { store } },
      {
        issuer: issuer as unknown as IssuerKeys,
        audiences: [AUD],
        algorithms: ['ES256'],
        clockToleranceSec: 0,
        now: () => NOW * 1000,
        onCacheError: (e) => errors.push((e as Error).message),
      },
    );
    expect(failure(await introspector.introspect('t', 'h'))).toEqual({ ok: true });
    expect(errors).toEqual(['get down', 'set down']);
    answer = json({ active: false });
    expect(failure(await introspector.introspect('t2', 'h2'))).toEqual({ reason: 'token_inactive', detail: 'introspection: not active' });
    expect(errors).toEqual(['get down', 'set down', 'get down', 'set down']);
  });

  it('a store that fails without onCacheError told is still a miss, never a rejection', async () => {
    const store = { get: () => Promise.reject(new Error('get down')), set: () => Promise.reject(new Error('set down')) };
    const introspector = new Introspector(
      { endpoint, clientId: 'rs-client', clientAuth: { method: 'client_secret_post', clientSecret: 's' }, cache: { store } },
      {
        issuer: new StandInIssuer([verifierKey]) as unknown as IssuerKeys,
        audiences: [AUD],
        algorithms: ['ES256'],
        clockToleranceSec: 0,
        now: () => NOW * 1000,
      },
    );
    expect(failure(await introspector.introspect('t', 'h'))).toEqual({ ok: true });
  });

  it('stores nothing for an answer whose exp is now or past (within the tolerance, still accepted)', async () => {
    const sets: number[] = [];
    const store = { get: async () => undefined, set: async (_k: string, _v: unknown, expiresAt: number) => void sets.push(expiresAt) };
    const s = setup({ cache: { store } });
    for (const exp of [NOW - 2, NOW, NOW + 1]) {
      answer = json(active({ exp }));
      expect(await introspect(s)).toEqual({ ok: true });
    }
    expect(sets).toEqual([(NOW + 1) * 1000]);
  });

  it('concurrent requests with one token share one call; the next one after it calls again', async () => {
    const s = setup({ cache: false });
    const [t, h] = token();
    const results = await Promise.all([s.introspector.introspect(t, h), s.introspector.introspect(t, h), s.introspector.introspect(t, h)]);
    expect(results.map(failure)).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(seen).toHaveLength(1);
    await s.introspector.introspect(t, h);
    expect(seen).toHaveLength(2);
  });
});

describe('MemoryIntrospectionCache', () => {
  it('gives an entry until its expiry, exclusive, then forgets it', async () => {
    const clock = { now: 1000 };
    const cache = new MemoryIntrospectionCache(10, () => clock.now);
    await cache.set('k', { active: false }, 2000);
    clock.now = 1999;
    expect(await cache.get('k')).toEqual({ active: false });
    clock.now = 2000;
    expect(await cache.get('k')).toBeUndefined();
    clock.now = 1000;
    expect(await cache.get('k')).toBeUndefined();
    expect(await cache.get('never')).toBeUndefined();
  });

  it('holds at most max entries', async () => {
    const cache = new MemoryIntrospectionCache(2, () => 0);
    for (const k of ['a', 'b', 'c']) await cache.set(k, { active: false }, 10);
    expect(await cache.get('a')).toBeUndefined();
    expect(await cache.get('c')).toEqual({ active: false });
  });
});

describe('Introspector: calls in flight (maxConcurrent, maxQueued)', () => {
  /** Holds every answer until `release()`. */
  function held() {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    answer = async () => {
      await gate;
      return json(active())();
    };
    return () => release();
  }

  it('refuses a call beyond maxConcurrent + maxQueued at once with a 503 that says the bound', async () => {
    const release = held();
    const s = setup({ maxConcurrent: 1, maxQueued: 0, cache: false });
    const first = s.introspector.introspect('a', 'ha');
    await new Promise((r) => setTimeout(r, 20));
    expect(await introspect(s)).toEqual({ reason: 'issuer_unavailable', detail: 'introspection: more than 1 (+0 waiting) calls at once' });
    release();
    expect(failure(await first)).toEqual({ ok: true });
    expect(await introspect(s)).toEqual({ ok: true });
  });

  it('a queued call runs when a slot frees, in arrival order', async () => {
    const release = held();
    const s = setup({ maxConcurrent: 1, maxQueued: 2, cache: false });
    const calls = [s.introspector.introspect('a', 'ha'), s.introspector.introspect('b', 'hb'), s.introspector.introspect('c', 'hc')];
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.map((r) => r.form.get('token'))).toEqual(['a']);
    release();
    expect((await Promise.all(calls)).map(failure)).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(seen.map((r) => r.form.get('token'))).toEqual(['a', 'b', 'c']);
  });

  it('a queued call that waits past timeoutMs is a 503, and frees its place in the queue', async () => {
    // One slot, timeoutMs 1 s. a holds the slot until released at 300 ms; b, queued first, gets it
    // then and holds it; c, queued behind b, is still waiting when its 1 s runs out.
    const gates = new Map<string, () => void>();
    answer = async ({ form }) => {
      await new Promise<void>((resolve) => gates.set(form.get('token') as string, resolve));
      return json(active())();
    };
    const s = setup({ maxConcurrent: 1, maxQueued: 2, cache: false, timeoutMs: 1000 });
    const a = s.introspector.introspect('a', 'ha');
    const b = s.introspector.introspect('b', 'hb');
    const c = s.introspector.introspect('c', 'hc');
    await new Promise((r) => setTimeout(r, 300));
    gates.get('a')?.();
    expect(failure(await a)).toEqual({ ok: true });
    expect(failure(await c)).toEqual({ reason: 'issuer_unavailable', detail: 'introspection: more than 1 (+2 waiting) calls at once' });
    // b holds the one slot now: d waits in the queue (c's place, freed), it is not sent.
    const d = s.introspector.introspect('d', 'hd');
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.map((r) => r.form.get('token'))).toEqual(['a', 'b']);
    gates.get('b')?.();
    expect(failure(await b)).toEqual({ ok: true });
    await new Promise((r) => setTimeout(r, 50));
    gates.get('d')?.();
    expect(failure(await d)).toEqual({ ok: true });
    answer = json(active());
    expect(await introspect(s)).toEqual({ ok: true });
    expect(seen.map((r) => r.form.get('token'))).toEqual(['a', 'b', 'd', `opaque-${tokens}`]);
  });
});

describe('Introspector: RFC 9701 signed answers', () => {
  const signed =
    (claims: Record<string, unknown>, header: Record<string, unknown> = {}, type = 'application/token-introspection+jwt') =>
    async () => ({
      type,
      body: await new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', typ: 'token-introspection+jwt', kid: 'as-key', ...header } as { alg: string })
        .sign(signer),
    });
  const fresh = (extra: Record<string, unknown> = {}) => ({
    iss: ISS,
    aud: 'rs-client',
    iat: NOW,
    token_introspection: active(),
    ...extra,
  });
  const signedSetup = () => setup({ signedResponse: true });
  const invalid = (detail: string) => ({ reason: 'token_introspection_invalid', detail });

  it('JIR-01 JIR-02 asks for a signed answer and takes one that verifies, typ in either form and any case', async () => {
    answer = signed(fresh());
    expect(await introspect(signedSetup())).toEqual({ ok: true });
    expect(seen[0]?.headers.accept).toBe('application/token-introspection+jwt');
    answer = signed(
      fresh({ aud: ['x', 'rs-client'] }),
      { typ: 'Application/Token-Introspection+JWT' },
      'application/token-introspection+jwt; charset=utf-8',
    );
    expect(await introspect(signedSetup())).toEqual({ ok: true });
  });

  it('takes a signed answer with white space around it; asks the issuer for the header kid, or for any key when kid is no string', async () => {
    const body = await signed(fresh())();
    answer = () => ({ ...body, body: `\n ${body.body} \r\n` });
    const s = signedSetup();
    expect(await introspect(s)).toEqual({ ok: true });
    answer = signed(fresh(), { kid: 7 });
    expect(await introspect(s)).toEqual({ ok: true });
    expect(s.issuer.asked).toEqual([
      ['ES256', 'as-key'],
      ['ES256', undefined],
    ]);
  });

  it('JWTBCP-09 application/ is taken off typ as a prefix only', async () => {
    answer = signed(fresh(), { typ: 'token-introspection+application/jwt' });
    expect(await introspect(signedSetup())).toEqual(invalid('typ "token-introspection+application/jwt"'));
    answer = signed(fresh(), { typ: { toString: 1 } });
    expect(await introspect(signedSetup())).toEqual(invalid('typ {"toString":1}'));
  });

  it('JIR-04 refuses an answer of another media type, or none', async () => {
    answer = json(active());
    expect(await introspect(signedSetup())).toEqual({ reason: 'token_introspection_unsigned', detail: 'answer of type application/json' });
    answer = () => ({ body: 'x' });
    expect(await introspect(signedSetup())).toEqual({ reason: 'token_introspection_unsigned', detail: 'answer of type none' });
  });

  it('JIR-02 refuses what is not a JWS, or whose header is not JSON', async () => {
    answer = () => ({ type: 'application/token-introspection+jwt', body: 'a.b' });
    expect(await introspect(signedSetup())).toEqual(invalid('signed answer is not a JWS'));
    answer = () => ({ type: 'application/token-introspection+jwt', body: 'bm90IGpzb24.e30.c2ln' });
    expect(await introspect(signedSetup())).toEqual(invalid('signed answer header is not a JSON object'));
  });

  it('JWTBCP-09 refuses another typ, and an algorithm outside the allow-list', async () => {
    answer = signed(fresh(), { typ: 'JWT' });
    expect(await introspect(signedSetup())).toEqual(invalid('typ "JWT"'));
    answer = signed(fresh(), { typ: undefined });
    expect(await introspect(signedSetup())).toEqual(invalid('typ undefined'));
    answer = () => ({
      type: 'application/token-introspection+jwt',
      body: `${Buffer.from('{"alg":"HS256","typ":"token-introspection+jwt"}').toString('base64url')}.e30.c2ln`,
    });
    expect(await introspect(signedSetup())).toEqual(invalid('alg "HS256"'));
  });

  it('JIR-02 the issuer keys decide: unknown key refused, issuer down 503, no key verifies refused', async () => {
    answer = signed(fresh());
    const s = signedSetup();
    s.issuer.lookup = { ok: false, reason: 'token_key_unknown', detail: 'no ES256 key with kid "as-key"' };
    expect(await introspect(s)).toEqual(invalid('no ES256 key with kid "as-key"'));
    s.issuer.lookup = { ok: false, reason: 'issuer_unavailable', detail: 'keys down' };
    expect(await introspect(s)).toEqual({ reason: 'issuer_unavailable', detail: 'keys down' });
    s.issuer.lookup = undefined;
    s.issuer.keys = [otherKey];
    expect(await introspect(s)).toEqual(invalid('signature does not verify with the issuer keys'));
    s.issuer.keys = [otherKey, verifierKey];
    expect(await introspect(s)).toEqual({ ok: true });
  });

  it('JIR-02 refuses another iss, and an aud that is not this client', async () => {
    answer = signed(fresh({ iss: 'https://other.example' }));
    expect(await introspect(signedSetup())).toEqual(invalid('iss "https://other.example"'));
    answer = signed(fresh({ aud: 'someone-else' }));
    expect(await introspect(signedSetup())).toEqual(invalid('aud "someone-else" is not rs-client'));
    answer = signed(fresh({ aud: ['someone-else'] }));
    expect(await introspect(signedSetup())).toEqual(invalid('aud ["someone-else"] is not rs-client'));
  });

  it('JIR-02 iat: a number, at most the tolerance ahead and 60 s + tolerance old', async () => {
    const cases: Array<[unknown, unknown]> = [
      [NOW + 5, { ok: true }],
      [NOW + 6, invalid(`iat ${NOW + 6} is not fresh`)],
      [NOW - 65, { ok: true }],
      [NOW - 66, invalid(`iat ${NOW - 66} is not fresh`)],
      [undefined, invalid('iat undefined is not fresh')],
      [String(NOW), invalid(`iat "${NOW}" is not fresh`)],
    ];
    for (const [iat, expected] of cases) {
      answer = signed(fresh({ iat }));
      expect(await introspect(signedSetup())).toEqual(expected);
    }
  });

  it('JIR-02 JIR-03 the answer is the token_introspection object, checked as a plain one', async () => {
    for (const value of [undefined, null, [active()], 'x']) {
      answer = signed(fresh({ token_introspection: value }));
      expect(await introspect(signedSetup())).toEqual(invalid('no token_introspection object'));
    }
    answer = signed(fresh({ token_introspection: { active: false } }));
    expect(await introspect(signedSetup())).toEqual({ reason: 'token_inactive', detail: 'introspection: not active' });
  });
});

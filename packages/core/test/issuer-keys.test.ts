/**
 * One issuer's verification keys in-process: discovery (RFC 8414 §3, OpenID fallback), the JWK
 * set's fetch, refresh and cool-down, key selection by every member (FAPI 2.0 §5.4.3) and import
 * of public members only. The issuer is a real HTTP server on 127.0.0.1 with a settable clock;
 * test/jwks.test.ts and test/faults.test.ts prove the same through the adapters.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import {
  discoveryUrls,
  FetchError,
  fetchJson,
  IssuerKeys,
  importVerificationKey,
  type JSONWebKeySet,
  keyMatches,
  rsaModulusBits,
} from '../src/tokens/issuer';

type Answer = { status?: number; type?: string; body: string };
let server: Server;
let origin: string;
/** Answers by path; a path without one is 404. */
let routes: Map<string, () => Answer>;
let requests: Array<{ path: string; accept: string | undefined }>;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    const path = req.url ?? '';
    requests.push({ path, accept: req.headers.accept });
    const route = routes.get(path);
    const { status = 200, type = 'application/json', body } = route ? route() : { status: 404, body: 'not found' };
    res.writeHead(status, { 'content-type': type });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));
beforeEach(() => {
  routes = new Map();
  requests = [];
});

const ec = (kid: string, extra: Partial<JWK> = {}): JWK => ({
  ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }) as JWK),
  kid,
  ...extra,
});
const rsa = (bits: number, kid: string): JWK => ({
  ...(generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ format: 'jwk' }) as JWK),
  kid,
});
/** `text` as a regular expression that matches it literally. */
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const serve =
  (body: unknown, status = 200) =>
  () => ({ status, body: JSON.stringify(body) });

describe('discoveryUrls (RFC 8414 §3.1, OpenID Connect Discovery §4)', () => {
  it('puts the well-known segment between host and path; OpenID appends it to the path', () => {
    expect(discoveryUrls('https://as.example.com')).toEqual([
      'https://as.example.com/.well-known/oauth-authorization-server',
      'https://as.example.com/.well-known/openid-configuration',
    ]);
    expect(discoveryUrls('https://as.example.com/')).toEqual(discoveryUrls('https://as.example.com'));
    expect(discoveryUrls('https://as.example.com:8443/tenant/a/')).toEqual([
      'https://as.example.com:8443/.well-known/oauth-authorization-server/tenant/a',
      'https://as.example.com:8443/tenant/a/.well-known/openid-configuration',
    ]);
  });
});

describe('rsaModulusBits', () => {
  it('counts the bits of the modulus from its first non-zero octet', () => {
    const b64 = (...bytes: number[]) => Buffer.from(bytes).toString('base64url');
    expect(rsaModulusBits(b64(0x01))).toBe(1);
    expect(rsaModulusBits(b64(0xff))).toBe(8);
    expect(rsaModulusBits(b64(0x01, 0x00))).toBe(9);
    expect(rsaModulusBits(b64(0x00, 0x00, 0x80, 0x00))).toBe(16);
    expect(rsaModulusBits(b64(0x00, 0x00))).toBe(0);
    expect(rsaModulusBits('')).toBe(0);
    expect(rsaModulusBits(rsa(2048, 'r').n as string)).toBe(2048);
  });
});

describe('keyMatches: every member of the key, not only kid (FAPI 2.0 §5.4.3)', () => {
  const p256 = ec('k1');
  const rsa2048 = rsa(2048, 'r1');

  it('takes a key of the algorithm type and curve, with or without kid asked', () => {
    expect(keyMatches(p256, 'ES256', 'k1')).toBe(true);
    expect(keyMatches(p256, 'ES256', undefined)).toBe(true);
    expect(keyMatches(rsa2048, 'PS256', 'r1')).toBe(true);
    expect(keyMatches(rsa2048, 'RS256', undefined)).toBe(true);
  });

  it('refuses an unknown algorithm, another kid, another key type or curve', () => {
    expect(keyMatches(p256, 'HS256', 'k1')).toBe(false);
    expect(keyMatches(p256, 'none', undefined)).toBe(false);
    expect(keyMatches(p256, 'ES256', 'k2')).toBe(false);
    expect(keyMatches({ ...p256, kid: undefined }, 'ES256', 'k1')).toBe(false);
    expect(keyMatches(p256, 'PS256', 'k1')).toBe(false);
    expect(keyMatches(p256, 'ES384', 'k1')).toBe(false);
    expect(keyMatches(rsa2048, 'ES256', 'r1')).toBe(false);
    expect(keyMatches({ kty: 'OKP', crv: 'X25519', x: 'AA' }, 'EdDSA', undefined)).toBe(false);
    expect(keyMatches({ kty: 'OKP', crv: 'Ed25519', x: 'AA' }, 'EdDSA', undefined)).toBe(true);
    expect(keyMatches({ kty: 'OKP', crv: 'Ed25519', x: 'AA' }, 'Ed25519', undefined)).toBe(true);
  });

  it('refuses a key for another use, without verify among its key_ops, or for another alg', () => {
    expect(keyMatches({ ...p256, use: 'enc' }, 'ES256', 'k1')).toBe(false);
    expect(keyMatches({ ...p256, use: 'sig' }, 'ES256', 'k1')).toBe(true);
    expect(keyMatches({ ...p256, key_ops: ['sign'] }, 'ES256', 'k1')).toBe(false);
    expect(keyMatches({ ...p256, key_ops: 'verify' as unknown as string[] }, 'ES256', 'k1')).toBe(false);
    expect(keyMatches({ ...p256, key_ops: ['verify'] }, 'ES256', 'k1')).toBe(true);
    expect(keyMatches({ ...p256, alg: 'ES384' }, 'ES256', 'k1')).toBe(false);
    expect(keyMatches({ ...p256, alg: 'ES256' }, 'ES256', 'k1')).toBe(true);
  });

  it('FAPI 2.0 §5.4.1 refuses an RSA key under 2048 bits, or without a modulus', () => {
    expect(keyMatches(rsa(1024, 'small'), 'PS256', 'small')).toBe(false);
    expect(keyMatches({ ...rsa2048, n: undefined }, 'PS256', 'r1')).toBe(false);
  });
});

describe('importVerificationKey', () => {
  it('imports only the public members: a JWK set that leaks d gives a verification key', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const leaked = privateKey.export({ format: 'jwk' }) as JWK;
    const key = await importVerificationKey(leaked, 'ES256');
    expect(key.type).toBe('public');
    expect(key.extractable).toBe(false);
  });

  it('imports a key once per JWK object and algorithm', async () => {
    const jwk = ec('k1');
    const first = importVerificationKey(jwk, 'ES256');
    expect(importVerificationKey(jwk, 'ES256')).toBe(first);
    expect(importVerificationKey({ ...jwk }, 'ES256')).not.toBe(first);
    await first;
  });

  it('forgets a failed import, so the next call tries again', async () => {
    const broken = { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' } as JWK;
    const first = importVerificationKey(broken, 'ES256');
    await expect(first).rejects.toThrow();
    const second = importVerificationKey(broken, 'ES256');
    expect(second).not.toBe(first);
    await expect(second).rejects.toThrow();
  });
});

describe('fetchJson', () => {
  it('GETs with the Accept given and returns the parsed document', async () => {
    routes.set('/doc', serve({ a: 1 }));
    expect(await fetchJson(`${origin}/doc`, 2000, 'application/jwk-set+json, application/json', 'jwks_uri')).toEqual({ a: 1 });
    expect(requests).toEqual([{ path: '/doc', accept: 'application/jwk-set+json, application/json' }]);
  });

  it('fails with FetchError on another status or a body that is not JSON', async () => {
    routes.set('/gone', serve({}, 404));
    routes.set('/text', () => ({ body: 'hello' }));
    await expect(fetchJson(`${origin}/gone`, 2000, 'application/json', 'jwks_uri')).rejects.toEqual(
      new FetchError(`GET jwks_uri ${origin}/gone answered 404`),
    );
    const notJson = fetchJson(`${origin}/text`, 2000, 'application/json', 'jwks_uri');
    await expect(notJson).rejects.toBeInstanceOf(FetchError);
    await expect(notJson).rejects.toThrow(`GET jwks_uri ${origin}/text: not JSON`);
  });

  it('reads at most 512 KiB, and says which request it refused: method, document, origin', async () => {
    const LIMIT = 512 * 1024;
    routes.set('/limit', () => ({ body: `"${'a'.repeat(LIMIT - 2)}"` }));
    routes.set('/over', () => ({ body: `"${'a'.repeat(LIMIT - 1)}"` }));
    expect(await fetchJson(`${origin}/limit`, 2000, 'application/json', 'jwks_uri')).toHaveLength(LIMIT - 2);
    await expect(fetchJson(`${origin}/over`, 2000, 'application/json', 'jwks_uri')).rejects.toThrow(
      `GET jwks_uri ${origin}: answer exceeds ${LIMIT} bytes`,
    );
  });
});

describe('IssuerKeys', () => {
  const clock = { now: 1_000_000 };
  beforeEach(() => {
    clock.now = 1_000_000;
  });
  const events: Array<[string | undefined, boolean]> = [];
  beforeEach(() => {
    events.length = 0;
  });

  function keysAt(path: string, options = {}, config: Partial<{ jwks: JSONWebKeySet; jwksUri: string; issuer: string }> = {}) {
    return new IssuerKeys(
      { issuer: origin, jwksUri: `${origin}${path}`, ...config },
      { maxAgeMs: 60_000, cooldownMs: 10_000, timeoutMs: 2000, ...options },
      () => clock.now,
      (failure, kept) => events.push([failure, kept]),
    );
  }

  it('a static key set: nothing fetched, keys chosen by alg and kid, ready at once', async () => {
    const jwks = { keys: [ec('k1'), ec('k2')] };
    const keys = new IssuerKeys({ issuer: 'https://as.example.com', jwks }, {}, () => clock.now);
    await keys.ready();
    const found = await keys.keysFor('ES256', 'k2');
    expect(found.ok && found.keys).toHaveLength(1);
    expect(found.ok && found.generation).toBe(0);
    expect(await keys.keysFor('ES256', undefined)).toMatchObject({ ok: true, keys: [expect.anything(), expect.anything()] });
    expect(await keys.keysFor('ES256', 'k3')).toEqual({
      ok: false,
      reason: 'token_key_unknown',
      detail: 'no ES256 key with kid "k3" at https://as.example.com',
    });
    expect(await keys.keysFor('PS256', undefined)).toEqual({
      ok: false,
      reason: 'token_key_unknown',
      detail: 'no PS256 key at https://as.example.com',
    });
    keys.refreshIfStale(Number.MAX_SAFE_INTEGER);
    expect(requests).toEqual([]);
    expect(keys.fetches).toBe(0);
  });

  it('fetches the set once, asking for a JWK set, and shares it; generation 1', async () => {
    routes.set('/jwks', serve({ keys: [ec('k1')] }));
    const keys = keysAt('/jwks');
    const [a, b] = await Promise.all([keys.keysFor('ES256', 'k1'), keys.keysFor('ES256', 'k1')]);
    expect(a).toMatchObject({ ok: true, generation: 1 });
    expect(b).toMatchObject({ ok: true, generation: 1 });
    await keys.keysFor('ES256', 'k1');
    expect(requests).toEqual([{ path: '/jwks', accept: 'application/jwk-set+json, application/json' }]);
    expect(keys.fetches).toBe(1);
  });

  it('refreshes after maxAgeMs in the background, the old keys serving meanwhile; an unchanged set keeps its generation', async () => {
    let set = { keys: [ec('k1')] };
    routes.set('/jwks', () => ({ body: JSON.stringify(set) }));
    const keys = keysAt('/jwks');
    await keys.keysFor('ES256', 'k1');
    clock.now += 60_000;
    keys.refreshIfStale();
    expect(keys.fetches).toBe(1);
    clock.now += 1;
    expect(await keys.keysFor('ES256', 'k1')).toMatchObject({ ok: true, generation: 1 });
    await keys.refresh();
    expect(requests).toHaveLength(2);
    expect(keys.generation).toBe(1);
    set = { keys: [ec('k2')] };
    clock.now += 60_001;
    keys.refreshIfStale();
    await keys.refresh();
    expect(keys.generation).toBe(2);
    expect(await keys.keysFor('ES256', 'k2')).toMatchObject({ ok: true, generation: 2 });
  });

  it('a stale set is not refetched within cooldownMs of the last attempt', async () => {
    routes.set('/jwks', serve({ keys: [ec('k1')] }));
    const keys = keysAt('/jwks', { maxAgeMs: 1000, cooldownMs: 10_000 });
    await keys.keysFor('ES256', 'k1');
    clock.now += 9_999;
    keys.refreshIfStale();
    expect(keys.fetches).toBe(1);
    clock.now += 1;
    keys.refreshIfStale();
    expect(keys.fetches).toBe(2);
    await keys.refresh();
    expect(requests).toHaveLength(2);
  });

  it('DEC-09 no keys yet and the fetch fails: 503 with the reason and Retry-After; no new fetch within cooldownMs', async () => {
    routes.set('/jwks', serve({ error: 'down' }, 500));
    const keys = keysAt('/jwks');
    expect(await keys.keysFor('ES256', 'k1')).toEqual({
      ok: false,
      reason: 'issuer_unavailable',
      detail: `no keys for ${origin}: GET jwks_uri ${origin}/jwks answered 500`,
      retryAfterMs: 10_000,
    });
    expect(events).toEqual([[`GET jwks_uri ${origin}/jwks answered 500`, false]]);
    clock.now += 9_000;
    expect(await keys.keysFor('ES256', 'k1')).toMatchObject({ reason: 'issuer_unavailable', retryAfterMs: 1_000 });
    await expect(keys.ready()).rejects.toThrow(`issuer ${origin}: GET jwks_uri ${origin}/jwks answered 500`);
    expect(requests).toHaveLength(1);
    routes.set('/jwks', serve({ keys: [ec('k1')] }));
    clock.now += 1_000;
    expect(await keys.keysFor('ES256', 'k1')).toMatchObject({ ok: true });
    expect(events).toEqual([
      [`GET jwks_uri ${origin}/jwks answered 500`, false],
      [undefined, false],
    ]);
  });

  it('a failed refresh keeps the old keys, and says so', async () => {
    routes.set('/jwks', serve({ keys: [ec('k1')] }));
    const keys = keysAt('/jwks');
    await keys.keysFor('ES256', 'k1');
    routes.set('/jwks', () => ({ body: 'not json' }));
    await keys.refresh();
    expect(events).toEqual([[`GET jwks_uri ${origin}/jwks: not JSON`, true]]);
    expect(await keys.keysFor('ES256', 'k1')).toMatchObject({ ok: true, generation: 1 });
    await keys.ready();
  });

  it('an unknown kid fetches again at once (rotation), at most once per cooldownMs', async () => {
    let set = { keys: [ec('k1')] };
    routes.set('/jwks', () => ({ body: JSON.stringify(set) }));
    const keys = keysAt('/jwks');
    await keys.keysFor('ES256', 'k1');
    clock.now += 10_000;
    set = { keys: [ec('k1'), ec('k2')] };
    expect(await keys.keysFor('ES256', 'k2')).toMatchObject({ ok: true, generation: 2 });
    expect(requests).toHaveLength(2);
    expect(await keys.keysFor('ES256', 'k3')).toEqual({
      ok: false,
      reason: 'token_key_unknown',
      detail: `no ES256 key with kid "k3" at ${origin}`,
    });
    expect(requests).toHaveLength(2);
    clock.now += 9_999;
    await keys.keysFor('ES256', 'k3');
    expect(requests).toHaveLength(2);
    clock.now += 1;
    await keys.keysFor('ES256', 'k3');
    expect(requests).toHaveLength(3);
  });

  it('a known kid asked with another alg, or no kid, fetches nothing more (whichever key of the set it names)', async () => {
    routes.set('/jwks', serve({ keys: [ec('k1'), ec('k2')] }));
    const keys = keysAt('/jwks');
    await keys.keysFor('ES256', 'k1');
    clock.now += 20_000;
    expect(await keys.keysFor('PS256', 'k1')).toMatchObject({ ok: false, reason: 'token_key_unknown' });
    expect(await keys.keysFor('ES384', undefined)).toMatchObject({ ok: false, reason: 'token_key_unknown' });
    expect(requests).toHaveLength(1);
  });

  it('a kid the set serves fetches nothing once the cool-down has passed, while the set is fresh', async () => {
    routes.set('/jwks', serve({ keys: [ec('k1')] }));
    const keys = keysAt('/jwks');
    await keys.keysFor('ES256', 'k1');
    clock.now += 59_999;
    expect(await keys.keysFor('ES256', 'k1')).toMatchObject({ ok: true });
    expect(keys.fetches).toBe(1);
  });

  it('a stale set is refreshed by the lookup itself, in the background: the lookup answers with the keys it has', async () => {
    let set = { keys: [ec('k1')] };
    routes.set('/jwks', () => ({ body: JSON.stringify(set) }));
    const keys = keysAt('/jwks');
    await keys.keysFor('ES256', 'k1');
    set = { keys: [ec('k2')] };
    clock.now += 60_001;
    expect(await keys.keysFor('ES256', 'k1')).toMatchObject({ ok: true, generation: 1 });
    expect(keys.fetches).toBe(2);
    await keys.refresh();
    expect(keys.generation).toBe(2);
  });

  it('ready(): fetches a set never fetched, and resolves once it is loaded; one fetch for concurrent callers', async () => {
    routes.set('/jwks', serve({ keys: [ec('k1')] }));
    const keys = keysAt('/jwks');
    await Promise.all([keys.ready(), keys.ready(), keys.keysFor('ES256', 'k1')]);
    expect(requests).toHaveLength(1);
    await keys.ready();
    expect(requests).toHaveLength(1);
  });

  it('ready(): after a failure, fails again without a fetch within cooldownMs, and fetches at cooldownMs', async () => {
    routes.set('/jwks', serve({}, 500));
    const keys = keysAt('/jwks');
    const failure = `issuer ${origin}: GET jwks_uri ${origin}/jwks answered 500`;
    await expect(keys.ready()).rejects.toThrow(failure);
    routes.set('/jwks', serve({ keys: [ec('k1')] }));
    clock.now += 9_999;
    await expect(keys.ready()).rejects.toThrow(failure);
    expect(requests).toHaveLength(1);
    clock.now += 1;
    await keys.ready();
    expect(requests).toHaveLength(2);
  });

  it('DEC-09 the refetch for an unknown kid failing is a 503, not an unknown key', async () => {
    routes.set('/jwks', serve({ keys: [ec('k1')] }));
    const keys = keysAt('/jwks');
    await keys.keysFor('ES256', 'k1');
    routes.set('/jwks', serve({}, 503));
    clock.now += 10_000;
    expect(await keys.keysFor('ES256', 'k2')).toMatchObject({ ok: false, reason: 'issuer_unavailable', retryAfterMs: 10_000 });
  });

  it('refuses a document that is not a JWK set', async () => {
    const good = ec('k1');
    for (const body of [
      {},
      { keys: {} },
      { keys: [{ kid: 'no kty' }] },
      { keys: [null] },
      { keys: [good, 1] },
      { keys: [good, { kty: 1 }] },
      [],
      null,
      'keys',
      1,
    ]) {
      routes.set('/jwks', serve(body));
      const keys = keysAt('/jwks');
      expect(await keys.keysFor('ES256', 'k1')).toMatchObject({
        ok: false,
        reason: 'issuer_unavailable',
        detail: `no keys for ${origin}: ${origin}/jwks is not a JWK set`,
      });
    }
  });

  it('a key that does not import is an unknown key, saying why', async () => {
    routes.set('/jwks', serve({ keys: [{ kty: 'EC', crv: 'P-256', kid: 'bad', x: 'AA', y: 'AA' }] }));
    const result = await keysAt('/jwks').keysFor('ES256', 'bad');
    expect(result).toMatchObject({ ok: false, reason: 'token_key_unknown', detail: expect.stringMatching(/^key import failed: ./) });
  });

  it('discovers jwks_uri from RFC 8414 metadata, fetched once', async () => {
    routes.set('/.well-known/oauth-authorization-server', serve({ issuer: origin, jwks_uri: `${origin}/keys` }));
    routes.set('/keys', serve({ keys: [ec('k1')] }));
    const keys = keysAt('', {}, { jwksUri: undefined });
    expect(await keys.keysFor('ES256', 'k1')).toMatchObject({ ok: true });
    expect(await keys.metadata()).toEqual({ issuer: origin, jwks_uri: `${origin}/keys` });
    expect(requests.map((r) => r.path)).toEqual(['/.well-known/oauth-authorization-server', '/keys']);
    expect(requests[0]?.accept).toBe('application/json');
    expect(keys.fetches).toBe(2);
  });

  it('falls back to OpenID discovery; a document naming another issuer is refused (RFC 8414 §3.3), each reason kept', async () => {
    routes.set('/.well-known/oauth-authorization-server', serve({ issuer: `${origin}/other`, jwks_uri: `${origin}/keys` }));
    routes.set('/.well-known/openid-configuration', serve({ issuer: origin, jwks_uri: `${origin}/keys` }));
    routes.set('/keys', serve({ keys: [ec('k1')] }));
    const keys = keysAt('', {}, { jwksUri: undefined });
    expect(await keys.keysFor('ES256', 'k1')).toMatchObject({ ok: true });

    routes.delete('/.well-known/openid-configuration');
    const none = keysAt('', {}, { jwksUri: undefined });
    await expect(none.metadata()).rejects.toThrow(
      new RegExp(
        `^${literal(`${origin}/.well-known/oauth-authorization-server names issuer "${origin}/other", not ${origin}; `)}` +
          `${literal(`GET issuer metadata ${origin}/.well-known/openid-configuration answered 404`)}$`,
      ),
    );
    // A failure is not kept: the next call asks again.
    routes.set('/.well-known/openid-configuration', serve({ issuer: origin }));
    expect(await none.metadata()).toEqual({ issuer: origin });
    expect(await none.keysFor('ES256', 'k1')).toMatchObject({
      reason: 'issuer_unavailable',
      detail: `no keys for ${origin}: ${origin} metadata has no jwks_uri`,
    });
  });

  it('metadata of null is refused, not a crash', async () => {
    routes.set('/.well-known/oauth-authorization-server', serve(null));
    routes.set('/.well-known/openid-configuration', serve(null));
    await expect(keysAt('', {}, { jwksUri: undefined }).metadata()).rejects.toThrow(`names issuer undefined, not ${origin}`);
  });

  it('defaults: maxAgeMs 10 min, cooldownMs 30 s', async () => {
    routes.set('/jwks', serve({ keys: [ec('k1')] }));
    const keys = new IssuerKeys({ issuer: origin, jwksUri: `${origin}/jwks` }, {}, () => clock.now);
    await keys.keysFor('ES256', 'k1');
    clock.now += 600_000;
    keys.refreshIfStale();
    expect(keys.fetches).toBe(1);
    clock.now += 1;
    keys.refreshIfStale();
    await keys.refresh();
    expect(requests).toHaveLength(2);
    routes.set('/jwks', serve({}, 500));
    const failing = new IssuerKeys({ issuer: origin, jwksUri: `${origin}/jwks` }, {}, () => clock.now);
    expect(await failing.keysFor('ES256', 'k1')).toMatchObject({ retryAfterMs: 30_000 });
  });
});

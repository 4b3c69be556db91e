/**
 * The message-signing keys of each client (signatures/client-keys.ts), in process: where a
 * client's keys come from (registry, resolver), how long they are used, when they are fetched
 * again (a new kid, once per cool-down), what a failed fetch leaves, and requests that arrive
 * while a fetch is on its way. The same class serves FAPI 2.0 Message Signing (SIG-01), UK Open
 * Banking's `x-jws-signature` and Open Finance Brasil's signed bodies (BR-02).
 */
import { generateKeyPairSync } from 'node:crypto';
import { type ClientKeySource, ClientKeys, keysOf } from '../src/signatures/client-keys.js';
import type { SignatureJwk } from '../src/signatures/keys.js';

const jwk = (kid: string): SignatureJwk => ({
  ...(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) as SignatureJwk),
  kid,
});
const K1 = jwk('k1');
const K2 = jwk('k2');
const set = (...keys: SignatureJwk[]): ClientKeySource => ({ jwks: { keys } });

/** A resolver whose answers the test hands out, counting its calls. */
function resolver(answer: (call: number) => ClientKeySource | undefined | Promise<ClientKeySource | undefined>) {
  const calls: string[] = [];
  return {
    calls,
    resolveClient: (clientId: string) => {
      calls.push(clientId);
      return answer(calls.length);
    },
  };
}

/** A promise and the function that settles it. */
function deferred<T>() {
  let settle!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    settle = resolve;
  });
  return { promise, settle };
}

describe('where a client’s keys come from', () => {
  it('SIG-01 the registry’s set: a key by its kid, and no other client’s', async () => {
    const keys = new ClientKeys({ clients: { a: set(K1), b: set(K2) } }, Date.now);
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true, key: { keyid: 'k1', algorithm: 'ed25519' } });
    expect(await keys.key('a', 'k2')).toEqual({ ok: false, unavailable: false, detail: 'keyid "k2" is not a key of client a' });
    expect(await keys.key('b', 'k2')).toMatchObject({ ok: true, key: { keyid: 'k2' } });
  });

  it('SIG-01 a client the registry does not name, or an inherited property name, has no keys (not cached: asked again)', async () => {
    const { calls, resolveClient } = resolver(() => undefined);
    const keys = new ClientKeys({ clients: { a: set(K1) }, resolveClient }, Date.now);
    for (const clientId of ['z', '__proto__', 'constructor', 'toString']) {
      expect(await keys.key(clientId, 'k1')).toEqual({
        ok: false,
        unavailable: false,
        detail: `client ${clientId} has no registered message signing keys`,
      });
    }
    expect(await keys.key('z', 'k1')).toMatchObject({ ok: false, unavailable: false });
    expect(calls).toEqual(['z', '__proto__', 'constructor', 'toString', 'z']);
  });

  it('SIG-01 the resolver’s set, asked once while it is fresh', async () => {
    const { calls, resolveClient } = resolver(async () => set(K1));
    const keys = new ClientKeys({ resolveClient }, Date.now);
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
    expect(calls).toEqual(['a']);
  });

  it('SIG-01 a kid that names two keys of the set is neither of them; a key the profile cannot use is left out', async () => {
    const rsa = { ...(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }) as SignatureJwk), kid: 'k3' };
    const keys = new ClientKeys({ clients: { a: set(K1, { ...K2, kid: 'k1' }, K2, { ...rsa, alg: 'RS256' }) } }, Date.now);
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: false, unavailable: false });
    expect(await keys.key('a', 'k2')).toMatchObject({ ok: true });
    expect(await keys.key('a', 'k3')).toMatchObject({ ok: false, unavailable: false });
  });
});

describe('keysOf: the usable keys of a fetched set', () => {
  it('SIG-01 a document without a keys array is no JWK set; a kid named twice is dropped, not kept empty', () => {
    for (const document of [null, undefined, 'keys', {}, { keys: {} }]) expect(() => keysOf(document)).toThrow(new Error('not a JWK set'));
    const keys = keysOf({ keys: [K1, { ...K2, kid: 'k1' }, K2, { kty: 'oct', kid: 'k4' }] });
    expect([...keys.keys()]).toEqual(['k2']);
    expect(keys.has('k1')).toBe(false);
  });

  it('SIG-01 a client named nowhere, with no resolver: no keys, not unavailable', async () => {
    const keys = new ClientKeys({ clients: { a: set(K1) } }, Date.now);
    expect(await keys.key('b', 'k1')).toEqual({ ok: false, unavailable: false, detail: 'client b has no registered message signing keys' });
  });
});

describe('the options, checked at start', () => {
  it('needs clients or resolveClient, a JWK set or an https URL per client, and no private key', () => {
    expect(() => new ClientKeys({}, Date.now)).toThrow('messageSigning needs clients or resolveClient');
    for (const source of [{}, { jwks: {} }, { jwks: null }, null, 'https://keys.example.com/a.jwks']) {
      expect(() => new ClientKeys({ clients: { a: source as ClientKeySource } }, Date.now)).toThrow(
        new TypeError('fapi-guard: messageSigning.clients["a"] needs jwks ({ keys: [...] }) or jwksUri'),
      );
    }
    const priv = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) as SignatureJwk;
    expect(() => new ClientKeys({ clients: { a: set({ ...priv, kid: 'p' }) } }, Date.now)).toThrow(
      'messageSigning.clients["a"] holds private key material',
    );
    expect(() => new ClientKeys({ clients: { a: { jwksUri: 'http://keys.example.com/a.jwks' } } }, Date.now)).toThrow(
      'messageSigning.clients["a"].jwksUri',
    );
    expect(() => new ClientKeys({ clients: { a: { jwksUri: 'https://keys.example.com/a.jwks' } } }, Date.now)).not.toThrow();
    expect(() => new ClientKeys({ resolveClient: () => undefined }, Date.now)).not.toThrow();
  });
});

describe('when keys are fetched again', () => {
  let now = 0;
  const clock = () => now;
  beforeEach(() => {
    now = 1_000_000;
  });

  it('a new kid: fetched again once the cool-down (default 30 s) has passed since the last fetch, not before', async () => {
    const { calls, resolveClient } = resolver((n) => (n === 1 ? set(K1) : set(K1, K2)));
    const keys = new ClientKeys({ resolveClient }, clock);
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
    now += 29_999;
    expect(await keys.key('a', 'k2')).toMatchObject({ ok: false, unavailable: false });
    expect(calls).toHaveLength(1);
    now += 1;
    expect(await keys.key('a', 'k2')).toMatchObject({ ok: true, key: { keyid: 'k2' } });
    expect(calls).toHaveLength(2);
  });

  it('a known kid: used until cacheMs (default 5 min) has passed since the fetch, then fetched again', async () => {
    const { calls, resolveClient } = resolver(() => set(K1));
    const keys = new ClientKeys({ resolveClient }, clock);
    await keys.key('a', 'k1');
    now += 300_000;
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
    expect(calls).toHaveLength(1);
    now += 1;
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
    expect(calls).toHaveLength(2);
  });

  it('cacheMs and cooldownMs as given', async () => {
    const { calls, resolveClient } = resolver((n) => (n < 3 ? set(K1) : set(K1, K2)));
    const keys = new ClientKeys({ resolveClient, cacheMs: 1_000, cooldownMs: 100 }, clock);
    await keys.key('a', 'k1');
    now += 1_000;
    await keys.key('a', 'k1');
    expect(calls).toHaveLength(1);
    now += 1;
    await keys.key('a', 'k1');
    expect(calls).toHaveLength(2);
    now += 99;
    expect(await keys.key('a', 'k2')).toMatchObject({ ok: false });
    now += 1;
    expect(await keys.key('a', 'k2')).toMatchObject({ ok: true });
    expect(calls).toHaveLength(3);
  });

  it('a stale set is not fetched again within the cool-down of a failed fetch: the keys it had are used', async () => {
    const { calls, resolveClient } = resolver((n) => {
      if (n === 2) throw new Error('registry down');
      return set(K1);
    });
    const keys = new ClientKeys({ resolveClient, cacheMs: 1_000, cooldownMs: 100 }, clock);
    await keys.key('a', 'k1');
    now += 1_001;
    // The fetch fails: the previous keys stay (stale, but the client's).
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
    now += 99;
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
    expect(calls).toHaveLength(2);
    now += 1;
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
    expect(calls).toHaveLength(3);
  });

  it('a client whose keys were never fetched and cannot be: unavailable (503), with why; recovers after the cool-down', async () => {
    const { calls, resolveClient } = resolver((n) => {
      if (n === 1) throw new Error('registry down');
      return set(K1);
    });
    const keys = new ClientKeys({ resolveClient, cooldownMs: 100 }, clock);
    expect(await keys.key('a', 'k1')).toEqual({ ok: false, unavailable: true, detail: 'keys of client a unavailable: registry down' });
    now += 99;
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: false, unavailable: true });
    now += 1;
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
    expect(calls).toHaveLength(2);
  });

  it('a failed fetch for a new kid keeps the set: the known kid is served, the new one is not a key (not unavailable)', async () => {
    const { resolveClient } = resolver((n) => {
      if (n === 2) throw new Error('registry down');
      return set(K1);
    });
    const keys = new ClientKeys({ resolveClient, cooldownMs: 100 }, clock);
    await keys.key('a', 'k1');
    now += 100;
    expect(await keys.key('a', 'k2')).toMatchObject({ ok: false, unavailable: false });
    expect(await keys.key('a', 'k1')).toMatchObject({ ok: true });
  });
});

describe('requests that arrive while a fetch is on its way', () => {
  it('BR-02 SIG-01 the first fetch of a client: every request waits for it, one fetch, none refused', async () => {
    const answer = deferred<ClientKeySource>();
    const { calls, resolveClient } = resolver(() => answer.promise);
    const keys = new ClientKeys({ resolveClient }, Date.now);
    const results = [keys.key('a', 'k1'), keys.key('a', 'k1'), keys.key('a', 'k1')];
    answer.settle(set(K1));
    expect(await Promise.all(results)).toEqual([
      expect.objectContaining({ ok: true }),
      expect.objectContaining({ ok: true }),
      expect.objectContaining({ ok: true }),
    ]);
    expect(calls).toEqual(['a']);
  });

  it('BR-02 SIG-01 the fetch for a new kid: requests for it that arrive meanwhile wait for it', async () => {
    let now = 0;
    const second = deferred<ClientKeySource>();
    const { calls, resolveClient } = resolver((n) => (n === 1 ? set(K1) : second.promise));
    const keys = new ClientKeys({ resolveClient, cooldownMs: 100 }, () => now);
    await keys.key('a', 'k1');
    now = 100;
    const results = [keys.key('a', 'k2'), keys.key('a', 'k2'), keys.key('a', 'k1')];
    second.settle(set(K1, K2));
    expect((await Promise.all(results)).map((r) => r.ok)).toEqual([true, true, true]);
    expect(calls).toHaveLength(2);
  });

  it('SIG-01 an unknown client found unknown by the fetch in flight: every waiting request is refused, not served', async () => {
    const answer = deferred<ClientKeySource | undefined>();
    const { resolveClient } = resolver(() => answer.promise);
    const keys = new ClientKeys({ resolveClient }, Date.now);
    const results = [keys.key('z', 'k1'), keys.key('z', 'k1')];
    answer.settle(undefined);
    expect(await Promise.all(results)).toEqual([
      { ok: false, unavailable: false, detail: 'client z has no registered message signing keys' },
      { ok: false, unavailable: false, detail: 'client z has no registered message signing keys' },
    ]);
  });
});

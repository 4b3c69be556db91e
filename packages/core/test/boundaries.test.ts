/**
 * Every time, size and scope check pinned at its edge, on a fixed clock: the last accepted value
 * and the first refused one (issue 20). Moving a boundary by one (a second, a bit, a character)
 * makes one of these fail. Through `createGuard(...).check()`, the core's public entry point.
 */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Authorized,
  accessTokenHash,
  createGuard,
  DpopVerifier,
  type GuardError,
  type GuardOptions,
  type GuardRequest,
  jwkThumbprint,
  MemoryReplayStore,
  type RoutePolicy,
} from '@fapi-guard/core';
import { DpopClient, MessageSigningClient, MockIssuer } from '@fapi-guard/testing';

const ISSUER = 'https://as.example.com';
const AUDIENCE = 'https://rs.example.com';
const URL_ = `${AUDIENCE}/accounts`;
/** A whole second, so `now - n` and `now + n` are exact. */
const T = 1_900_000_000;

let now = T * 1000;
const clock = () => now;
let as: MockIssuer;
let dpop: DpopClient;

beforeAll(async () => {
  as = await MockIssuer.create({ issuer: ISSUER, audience: AUDIENCE, clock });
  dpop = await DpopClient.create('ES256', { clock });
});
beforeEach(() => {
  now = T * 1000;
});

function guardWith(extra: Partial<GuardOptions> = {}) {
  return createGuard({ issuer: { issuer: ISSUER, jwks: as.jwks }, audience: AUDIENCE, publicUrl: AUDIENCE, clock, ...extra });
}

type Guarded = ReturnType<typeof guardWith>;
const headers = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), [v]]));

/** A DPoP request for a token bound to `dpop`, its proof made now unless `iat` is given. */
async function dpopRequest(token: string, proof: { iat?: number; nonce?: string; jti?: string } = {}): Promise<GuardRequest> {
  const dpopProof = await dpop.proof({ htm: 'GET', htu: URL_, accessToken: token, ...proof });
  return { method: 'GET', url: URL_, headers: headers({ authorization: `DPoP ${token}`, dpop: dpopProof }) };
}

const bound = (claims: Record<string, unknown> = {}) => as.mint({ scope: 'accounts', jkt: dpop.jkt, claims });

async function outcome(guard: Guarded, request: GuardRequest, policy: RoutePolicy = { scopes: ['accounts'] }) {
  const result = await guard.check(request, policy);
  return result.ok ? 'ok' : (result as GuardError).reason;
}

/** A compact JWS signed with node:crypto (jose refuses to sign with RSA keys under 2048 bits). */
function signJws(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = sign('sha256', Buffer.from(input), { key, padding: 6, saltLength: 32 });
  return `${input}.${signature.toString('base64url')}`;
}

function rsaKey(bits: number) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return { privateKey, publicJwk: publicKey.export({ format: 'jwk' }) as Record<string, string> };
}

describe('access token times on a fixed clock (RFC 7519 §4.1.4, RFC 9068 §4)', () => {
  it('FAPI-RS-05 JWTAT-06 exp: accepted until the last millisecond before exp + tolerance, refused at it (cached or not)', async () => {
    const guard = guardWith();
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt, claims: { exp: T + 100 } });
    now = (T + 110) * 1000 - 1;
    expect(await outcome(guard, await dpopRequest(token))).toBe('ok');
    now = (T + 110) * 1000;
    // The verification is cached by now: the time checks still run.
    expect(await outcome(guard, await dpopRequest(token))).toBe('token_expired');
    // Without the cache, the same edge.
    expect(await outcome(guardWith({ tokenCache: false }), await dpopRequest(token))).toBe('token_expired');
  });

  it('FAPI-RS-05 exp with clockToleranceSec 0: "on or after" exp is expired', async () => {
    const token = await bound({ exp: T + 100 });
    now = (T + 100) * 1000 - 1;
    expect(await outcome(guardWith({ clockToleranceSec: 0 }), await dpopRequest(token))).toBe('ok');
    now = (T + 100) * 1000;
    expect(await outcome(guardWith({ clockToleranceSec: 0 }), await dpopRequest(token))).toBe('token_expired');
  });

  it('FAPI-RS-05 FAPI-RS-19 nbf: accepted at now + tolerance, refused a millisecond earlier', async () => {
    const token = await bound({ nbf: T + 10 });
    expect(await outcome(guardWith(), await dpopRequest(token))).toBe('ok');
    now = T * 1000 - 1;
    expect(await outcome(guardWith(), await dpopRequest(token))).toBe('token_not_yet_valid');
  });

  it('FAPI-RS-19 iat in the future: accepted at now + tolerance, refused a millisecond earlier', async () => {
    const token = await bound({ iat: T + 10 });
    expect(await outcome(guardWith(), await dpopRequest(token))).toBe('ok');
    now = T * 1000 - 1;
    expect(await outcome(guardWith(), await dpopRequest(token))).toBe('token_issued_in_future');
  });
});

describe('DPoP proof sizes and claim shapes (RFC 9449 §4.2, §4.3 steps 2–3)', () => {
  /** A proof for `token` of exactly `length` characters, padded in an extra claim and header member. */
  async function proofOfLength(token: string, length: number): Promise<string> {
    const make = (pad: number, headerPad: number) =>
      dpop.proof({ htm: 'GET', htu: URL_, accessToken: token, claims: { pad: 'p'.repeat(pad) }, header: { x: 'h'.repeat(headerPad) } });
    // Each padding character adds 4/3 of a base64url character; no segment ends at a length
    // ≡ 1 (mod 4), so a second pad in the header reaches every total length.
    const estimate = Math.floor(((length - (await make(0, 0)).length) * 3) / 4);
    for (let headerPad = 0; headerPad < 4; headerPad++) {
      for (let pad = estimate - 4; pad <= estimate + 4; pad++) {
        const proof = await make(pad, headerPad);
        if (proof.length === length) return proof;
      }
    }
    throw new Error(`no proof of ${length} characters`);
  }
  const request = (token: string, proof: string): GuardRequest => ({
    method: 'GET',
    url: URL_,
    headers: headers({ authorization: `DPoP ${token}`, dpop: proof }),
  });

  it('DPOP-23 a proof of 8192 characters is read, one of 8193 refused before its signature', async () => {
    const guard = guardWith();
    const token = await bound();
    expect(await outcome(guard, request(token, await proofOfLength(token, 8192)))).toBe('ok');
    const long = await guard.check(request(token, await proofOfLength(token, 8193)), { scopes: ['accounts'] });
    expect(long).toMatchObject({ ok: false, reason: 'dpop_proof_invalid', detail: 'proof of 8193 characters' });
  });

  it('DPOP-05 DPOP-23 jti: empty refused, 256 characters accepted, 257 refused', async () => {
    const guard = guardWith();
    const token = await bound();
    const detail = async (jti: string) => {
      const result = await guard.check(await dpopRequest(token, { jti }), { scopes: ['accounts'] });
      return result.ok ? 'ok' : (result as GuardError).detail;
    };
    expect(await detail('')).toBe('jti missing');
    expect(await detail('j'.repeat(256))).toBe('ok');
    expect(await detail('k'.repeat(257))).toBe('jti of 257 characters');
  });

  it('DPOP-05 each required claim of the wrong type is refused by name', async () => {
    const guard = guardWith();
    const token = await bound();
    const cases: [Record<string, unknown>, string][] = [
      [{ jti: 7 }, 'jti missing'],
      [{ htm: 1 }, 'htm missing'],
      [{ htu: ['x'] }, 'htu missing'],
      [{ iat: '1900000000' }, 'iat missing'],
      [{ iat: null }, 'iat missing'],
      [{ ath: 5 }, 'ath missing'],
    ];
    for (const [claims, detail] of cases) {
      const proof = await dpop.proof({ htm: 'GET', htu: URL_, accessToken: token, claims });
      const result = await guard.check(request(token, proof), { scopes: ['accounts'] });
      expect(result).toMatchObject({ ok: false, reason: 'dpop_proof_invalid', detail });
    }
  });
});

describe('DPoP proof header shapes (RFC 9449 §4.3 steps 4, 5, 7)', () => {
  const check = async (header: Record<string, unknown>) => {
    const token = await bound();
    const proof = await dpop.proof({ htm: 'GET', htu: URL_, accessToken: token, header });
    const request = { method: 'GET', url: URL_, headers: headers({ authorization: `DPoP ${token}`, dpop: proof }) };
    const result = await guardWith().check(request, { scopes: ['accounts'] });
    return result.ok ? 'ok' : (result as GuardError).detail;
  };

  it('DPOP-06 typ is the media type dpop+jwt, compared case-insensitively, application/ optional (RFC 7515 §4.1.9), a string', async () => {
    for (const typ of ['DPoP+JWT', 'application/dpop+jwt', 'Application/DPoP+JWT']) expect(await check({ typ })).toBe('ok');
    for (const typ of [
      'dpop',
      'jwt',
      'at+jwt',
      'application/at+jwt',
      'text/dpop+jwt',
      'application/dpop+jwt; x=1',
      ' dpop+jwt',
      'dpop+jwtx',
    ]) {
      expect([typ, await check({ typ })]).toEqual([typ, expect.stringMatching(/^typ \\"/)]);
    }
    expect(await check({ typ: 7 })).toBe('typ 7');
    expect(await check({ typ: ['dpop+jwt'] })).toMatch(/^typ \[.*dpop\+jwt/);
  });

  it('DPOP-09 jwk must be a JSON object with no private member, each one alone enough to refuse', async () => {
    for (const jwk of [null, [], 'key', 5]) expect(await check({ jwk })).toBe('jwk missing');
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']) {
      expect(await check({ jwk: { ...dpop.publicJwk, [member]: 'AQAB' } })).toBe('jwk holds private key material');
    }
  });
});

describe('DPoP proof window on a fixed clock (RFC 9449 §4.3 step 11, §11.1)', () => {
  it('DPOP-13 iat exactly maxAgeSec old is accepted, one second older is refused', async () => {
    const guard = guardWith();
    const token = await bound();
    expect(await outcome(guard, await dpopRequest(token, { iat: T - 60 }))).toBe('ok');
    expect(await outcome(guard, await dpopRequest(token, { iat: T - 61 }))).toBe('dpop_proof_invalid');
  });

  it('FAPI-RS-19 DPOP-13 iat exactly maxFutureSec ahead is accepted, one second further is refused', async () => {
    const guard = guardWith();
    const token = await bound();
    expect(await outcome(guard, await dpopRequest(token, { iat: T + 10 }))).toBe('ok');
    expect(await outcome(guard, await dpopRequest(token, { iat: T + 11 }))).toBe('dpop_proof_invalid');
    const custom = guardWith({ dpop: { maxAgeSec: 5, maxFutureSec: 2 } });
    expect(await outcome(custom, await dpopRequest(token, { iat: T + 2 }))).toBe('ok');
    expect(await outcome(custom, await dpopRequest(token, { iat: T + 3 }))).toBe('dpop_proof_invalid');
    expect(await outcome(custom, await dpopRequest(token, { iat: T - 5 }))).toBe('ok');
    expect(await outcome(custom, await dpopRequest(token, { iat: T - 6 }))).toBe('dpop_proof_invalid');
  });

  it('DPOP-23 a proof is remembered for its whole acceptance window: replayed at its last fresh second, it is refused', async () => {
    const guard = guardWith();
    const token = await bound();
    // Made maxFutureSec ahead, replayed when it is exactly maxAgeSec old: still fresh, so only the store stops it.
    const request = await dpopRequest(token, { iat: T + 10 });
    expect(await outcome(guard, request)).toBe('ok');
    now = (T + 10 + 60) * 1000;
    expect(await outcome(guard, request)).toBe('dpop_proof_replayed');
  });

  it('DPOP-22 a nonce claim that is not a string is refused, with or without server nonces', async () => {
    const token = await bound();
    const proof = async () => dpop.proof({ htm: 'GET', htu: URL_, accessToken: token, claims: { nonce: 5 } });
    const request = async () => ({ method: 'GET', url: URL_, headers: headers({ authorization: `DPoP ${token}`, dpop: await proof() }) });
    const withNonces = guardWith({ dpop: { nonce: { secret: 's'.repeat(32) } } });
    expect(await withNonces.check(await request(), { scopes: ['accounts'] })).toMatchObject({
      ok: false,
      reason: 'dpop_nonce_required',
      detail: 'nonce unknown or expired',
    });
    // A DpopVerifier without server nonces (the guard always has them) refuses it as malformed.
    const verifier = new DpopVerifier({
      algorithms: ['ES256'],
      maxAgeSec: 60,
      maxFutureSec: 10,
      replayStore: new MemoryReplayStore({ clock }),
      nonces: undefined,
      now: clock,
    });
    const input = { method: 'GET', url: URL_, accessToken: token, requireNonce: false, boundJkt: dpop.jkt };
    expect(await verifier.verify({ ...input, proofs: [await proof()] })).toMatchObject({
      ok: false,
      reason: 'dpop_proof_invalid',
      detail: 'nonce is not a string',
    });
    expect(await verifier.verify({ ...input, proofs: [await dpop.proof({ htm: 'GET', htu: URL_, accessToken: token })] })).toMatchObject({
      ok: true,
    });
  });

  it('DPOP-22 a nonce is fresh for its step, stale (with a new nonce) for the next, refused after', async () => {
    const stepMs = 60_000;
    const start = Math.ceil((T * 1000) / stepMs) * stepMs;
    now = start;
    const guard = guardWith({ dpop: { nonce: { required: true, stepSec: 60, secret: 's'.repeat(32) } } });
    const token = await as.mint({ scope: 'accounts', jkt: dpop.jkt, lifetimeSec: 3600 });
    const challenge = await guard.check(await dpopRequest(token), { scopes: ['accounts'] });
    expect(challenge.ok).toBe(false);
    const nonce = (challenge as GuardError).headers['dpop-nonce'] as string;
    expect((challenge as GuardError).reason).toBe('dpop_nonce_required');
    const at = async (ms: number) => {
      now = ms;
      return guard.check(await dpopRequest(token, { nonce }), { scopes: ['accounts'] });
    };
    const fresh = (await at(start + stepMs - 1)) as Authorized;
    expect(fresh.ok).toBe(true);
    expect(fresh.headers['dpop-nonce']).toBeUndefined();
    const stale = (await at(start + stepMs)) as Authorized;
    expect(stale.ok).toBe(true);
    expect(stale.headers['dpop-nonce']).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(stale.headers['dpop-nonce']).not.toBe(nonce);
    expect((await at(start + 2 * stepMs - 1)).ok).toBe(true);
    expect(await at(start + 2 * stepMs)).toMatchObject({ ok: false, reason: 'dpop_nonce_required' });
  });
});

describe('RSA key sizes on every key path (FAPI 2.0 §5.4.1 #2)', () => {
  // Made in beforeAll: a run filtered to other tests (mutation testing) does not pay for them.
  let weak: ReturnType<typeof rsaKey>;
  let strong: ReturnType<typeof rsaKey>;
  beforeAll(() => {
    weak = rsaKey(2047);
    strong = rsaKey(2048);
  });
  /** The issuer publishing both keys, as kids rsa-2047 and rsa-2048. */
  const bothKeysIssuer = () => ({
    issuer: ISSUER,
    jwks: {
      keys: [
        { ...weak.publicJwk, kid: 'rsa-2047', alg: 'PS256', use: 'sig' },
        { ...strong.publicJwk, kid: 'rsa-2048', alg: 'PS256', use: 'sig' },
      ],
    },
  });

  it('FAPI-RS-13 issuer keys: a token signed by a 2047-bit key is refused, by a 2048-bit key accepted', async () => {
    const guard = guardWith({
      issuer: bothKeysIssuer(),
    });
    const claims = {
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'user',
      client_id: 'client-1',
      iat: T,
      exp: T + 300,
      jti: 'j',
      scope: 'accounts',
      cnf: { jkt: dpop.jkt },
    };
    const token = (kid: string, key: KeyObject) => signJws({ alg: 'PS256', typ: 'at+jwt', kid }, { ...claims, jti: kid }, key);
    expect(await outcome(guard, await dpopRequest(token('rsa-2048', strong.privateKey)))).toBe('ok');
    expect(await outcome(guard, await dpopRequest(token('rsa-2047', weak.privateKey)))).toBe('token_key_unknown');
  });

  it('FAPI-RS-13 DPoP proof keys: a PS256 proof by a 2047-bit key is refused, by a 2048-bit key accepted', async () => {
    const guard = guardWith();
    const proofFor = async (key: ReturnType<typeof rsaKey>) => {
      const thumbprint = jwkThumbprint(key.publicJwk);
      const token = await as.mint({ scope: 'accounts', jkt: thumbprint });
      const proof = signJws(
        { typ: 'dpop+jwt', alg: 'PS256', jwk: key.publicJwk },
        { jti: thumbprint, htm: 'GET', htu: URL_, iat: T, ath: accessTokenHash(token) },
        key.privateKey,
      );
      return { method: 'GET', url: URL_, headers: headers({ authorization: `DPoP ${token}`, dpop: proof }) };
    };
    expect(await outcome(guard, await proofFor(strong))).toBe('ok');
    expect(await outcome(guard, await proofFor(weak))).toBe('dpop_proof_invalid');
  });

  it('FAPI-RS-13 message-signing client keys: a 2047-bit client key never verifies, a 2048-bit one does', async () => {
    const good = MessageSigningClient.generate('rsa-pss-sha512', 'rsa-2048');
    // The testing client refuses to sign with a key under 2048 bits: hand it the 2047-bit key.
    const weakSigner = MessageSigningClient.generate('rsa-pss-sha512', 'rsa-2047');
    Object.assign(weakSigner, { key: { keyid: 'rsa-2047', algorithm: 'rsa-pss-sha512', key: weak.privateKey } });
    const weakPublic = { ...weak.publicJwk, kid: 'rsa-2047' };
    const guard = guardWith({ messageSigning: { clients: { 'client-1': { jwks: { keys: [good.publicJwk, weakPublic] } } } } });
    const signedRequest = async (signer: MessageSigningClient, keyid: string) => {
      const token = await bound();
      const request = await dpopRequest(token);
      const plain = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, v[0] as string]));
      const added = signer.sign({ method: 'GET', url: URL_, headers: plain }, { keyid, created: T });
      return { ...request, headers: headers({ ...plain, ...added }) };
    };
    const policy: RoutePolicy = { scopes: ['accounts'], signedRequest: 'required' };
    expect(await outcome(guard, await signedRequest(good, 'rsa-2048'), policy)).toBe('ok');
    expect(await outcome(guard, await signedRequest(weakSigner, 'rsa-2047'), policy)).toBe('signature_invalid');
  });

  it('FAPI-RS-13 the response-signing key: 2047 bits refused at start-up, 2048 accepted', () => {
    const responseKey = (key: ReturnType<typeof rsaKey>) => ({ ...key.privateKey.export({ format: 'jwk' }), kid: 'rs' }) as never;
    const client = MessageSigningClient.generate('ed25519');
    const options = (key: ReturnType<typeof rsaKey>) => ({
      messageSigning: { clients: { c: { jwks: client.jwks } }, responseKey: responseKey(key) },
    });
    expect(() => guardWith(options(strong))).not.toThrow();
    expect(() => guardWith(options(weak))).toThrow(/2047 bits \(at least 2048\)/);
  });

  it('FAPI-RS-13 JIR-02 introspection signer: an answer signed by a 2047-bit issuer key is refused, by a 2048-bit key accepted', async () => {
    // A real introspection endpoint on 127.0.0.1 whose signed answers (RFC 9701 §5) come from
    // the key whose kid the test sets.
    let kid = 'rsa-2048';
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const key = kid === 'rsa-2048' ? strong.privateKey : weak.privateKey;
        const answer = { active: true, scope: 'accounts', client_id: 'client-1', iss: ISSUER, aud: AUDIENCE, exp: T + 300, iat: T };
        const body = signJws(
          { alg: 'PS256', typ: 'token-introspection+jwt', kid },
          { iss: ISSUER, aud: 'rs-client', iat: T, token_introspection: answer },
          key,
        );
        res.writeHead(200, { 'content-type': 'application/token-introspection+jwt' }).end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const guard = guardWith({
        issuer: bothKeysIssuer(),
        introspection: {
          endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`,
          clientId: 'rs-client',
          clientAuth: { method: 'client_secret_basic', clientSecret: 'rs-client-secret-0123456789' },
          signedResponse: true,
          cache: false,
        },
      });
      const request: GuardRequest = { method: 'GET', url: URL_, headers: headers({ authorization: 'Bearer opaque-token-1' }) };
      const policy: RoutePolicy = { scopes: ['accounts'], allowBearer: true };
      expect(await outcome(guard, request, policy)).toBe('ok');
      kid = 'rsa-2047';
      const refused = await guard.check(request, policy);
      expect(refused.ok).toBe(false);
      // jose would refuse the key when verifying too; the detail shows our own check dropped it first.
      expect(refused as GuardError).toMatchObject({ reason: 'token_introspection_invalid' });
      expect((refused as GuardError).detail).toMatch(/^no PS256 key with kid .*rsa-2047/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('scopes match whole scope-tokens only (RFC 6749 §3.3, RFC 9068 §2.2.3)', () => {
  const route = async (scope: string, policy: RoutePolicy) =>
    outcome(guardWith(), await dpopRequest(await as.mint({ scope, jkt: dpop.jkt })), policy);

  it.each([['accounts:read'], ['xaccounts'], ['accountsx'], ['Accounts'], ['payments\taccounts'], ['accounts\tpayments'], ['"accounts"']])(
    'FAPI-RS-07 scope claim %j does not grant "accounts" (all-of or any-of)',
    async (scope) => {
      expect(await route(scope, { scopes: ['accounts'] })).toBe('scope_insufficient');
      expect(await route(scope, { anyScopes: ['accounts', 'payments:write'] })).toBe('scope_insufficient');
    },
  );

  it('FAPI-RS-07 repeated, leading and trailing spaces still separate scope-tokens', async () => {
    expect(await route('  payments  accounts ', { scopes: ['accounts', 'payments'] })).toBe('ok');
    const granted = await guardWith().check(await dpopRequest(await as.mint({ scope: ' payments  accounts ', jkt: dpop.jkt })), {});
    expect((granted as Authorized).scopes).toEqual(['payments', 'accounts']);
    expect(await route('payments  accounts', { anyScopes: ['accounts'] })).toBe('ok');
    expect(await route('accounts', { scopes: ['accounts', 'payments'] })).toBe('scope_insufficient');
  });
});

describe('message signature created / expires on a fixed clock (RFC 9421 §3.2.1)', () => {
  const client = MessageSigningClient.generate('ed25519', 'client-key');

  async function signed(options: { created?: number; expires?: number }, settings: { maxAgeSec?: number; maxFutureSec?: number } = {}) {
    const guard = guardWith({ messageSigning: { clients: { 'client-1': { jwks: client.jwks } }, ...settings } });
    const request = await dpopRequest(await bound());
    const plain = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, v[0] as string]));
    const added = client.sign({ method: 'GET', url: URL_, headers: plain }, options);
    return outcome(guard, { ...request, headers: headers({ ...plain, ...added }) }, { scopes: ['accounts'], signedRequest: 'required' });
  }

  it('SIG-06 created exactly maxAgeSec old is accepted, one second older refused', async () => {
    expect(await signed({ created: T - 60 })).toBe('ok');
    expect(await signed({ created: T - 61 })).toBe('signature_invalid');
    expect(await signed({ created: T - 30 }, { maxAgeSec: 30 })).toBe('ok');
    expect(await signed({ created: T - 31 }, { maxAgeSec: 30 })).toBe('signature_invalid');
  });

  it('SIG-06 created exactly maxFutureSec ahead is accepted, one second further refused', async () => {
    expect(await signed({ created: T + 5 })).toBe('ok');
    expect(await signed({ created: T + 6 })).toBe('signature_invalid');
    expect(await signed({ created: T + 20 }, { maxFutureSec: 20 })).toBe('ok');
    expect(await signed({ created: T + 21 }, { maxFutureSec: 20 })).toBe('signature_invalid');
  });

  it('HMS-09 expires equal to now is accepted, one second before now refused', async () => {
    expect(await signed({ created: T, expires: T })).toBe('ok');
    expect(await signed({ created: T, expires: T - 1 })).toBe('signature_invalid');
  });
});

describe('numeric options at their limit and one past it (start-up)', () => {
  const nonce = (n: Record<string, unknown>) => ({ dpop: { nonce: { secret: 's'.repeat(32), ...n } } });
  const introspection = (extra: Record<string, unknown>) => ({
    introspection: {
      clientId: 'rs',
      endpoint: 'https://as.example.com/introspect',
      clientAuth: { method: 'client_secret_basic', clientSecret: 'secret' },
      ...extra,
    },
  });
  const signing = (extra: Record<string, unknown>) => ({
    messageSigning: { clients: { c: { jwks: MessageSigningClient.generate('ed25519').jwks } }, ...extra },
  });
  const cases: [string, Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    ['clockToleranceSec max', { clockToleranceSec: 60 }, { clockToleranceSec: 61 }, /clockToleranceSec/],
    ['clockToleranceSec min', { clockToleranceSec: 0 }, { clockToleranceSec: -1 }, /clockToleranceSec/],
    ['dpop.maxAgeSec max', { dpop: { maxAgeSec: 300 } }, { dpop: { maxAgeSec: 301 } }, /maxAgeSec/],
    ['dpop.maxAgeSec min', { dpop: { maxAgeSec: 1 } }, { dpop: { maxAgeSec: 0 } }, /maxAgeSec/],
    ['dpop.maxFutureSec max', { dpop: { maxFutureSec: 60 } }, { dpop: { maxFutureSec: 61 } }, /maxFutureSec/],
    ['dpop.maxFutureSec min', { dpop: { maxFutureSec: 0 } }, { dpop: { maxFutureSec: -1 } }, /maxFutureSec/],
    ['dpop.nonce.stepSec max', nonce({ stepSec: 3600 }), nonce({ stepSec: 3601 }), /stepSec/],
    ['dpop.nonce.stepSec min', nonce({ stepSec: 1 }), nonce({ stepSec: 0 }), /stepSec/],
    ['dpop.nonce.secret length', nonce({ secret: 'x'.repeat(32) }), nonce({ secret: 'x'.repeat(31) }), /32 bytes/],
    ['tokenCache.max min', { tokenCache: { max: 0 } }, { tokenCache: { max: -1 } }, /tokenCache/],
    ['keys.maxAgeMs min', { keys: { maxAgeMs: 0 } }, { keys: { maxAgeMs: -1 } }, /maxAgeMs/],
    ['keys.cooldownMs min', { keys: { cooldownMs: 0 } }, { keys: { cooldownMs: -1 } }, /cooldownMs/],
    ['messageSigning.maxAgeSec max', signing({ maxAgeSec: 300 }), signing({ maxAgeSec: 301 }), /maxAgeSec/],
    ['messageSigning.maxAgeSec min', signing({ maxAgeSec: 1 }), signing({ maxAgeSec: 0 }), /maxAgeSec/],
    ['messageSigning.maxFutureSec max', signing({ maxFutureSec: 60 }), signing({ maxFutureSec: 61 }), /maxFutureSec/],
    ['messageSigning.maxFutureSec min', signing({ maxFutureSec: 0 }), signing({ maxFutureSec: -1 }), /maxFutureSec/],
    ['messageSigning.maxBodyBytes min', signing({ maxBodyBytes: 1 }), signing({ maxBodyBytes: 0 }), /maxBodyBytes/],
    ['introspection.timeoutMs max', introspection({ timeoutMs: 60_000 }), introspection({ timeoutMs: 60_001 }), /timeoutMs/],
    [
      'introspection.cache.maxTtlSec min',
      introspection({ cache: { maxTtlSec: 0 } }),
      introspection({ cache: { maxTtlSec: -1 } }),
      /maxTtlSec/,
    ],
    [
      'introspection.cache.negativeTtlSec min',
      introspection({ cache: { negativeTtlSec: 0 } }),
      introspection({ cache: { negativeTtlSec: -1 } }),
      /negativeTtlSec/,
    ],
  ];

  it.each(cases)('%s: the limit starts, one past it is refused', (_name, limit, past, message) => {
    expect(() => guardWith(limit as Partial<GuardOptions>)).not.toThrow();
    expect(() => guardWith(past as Partial<GuardOptions>)).toThrow(message);
  });

  it('policy maxAuthAgeSec: 0 compiles, -1 is refused', () => {
    expect(() => guardWith().policy({ maxAuthAgeSec: 0 })).not.toThrow();
    expect(() => guardWith().policy({ maxAuthAgeSec: -1 })).toThrow(/maxAuthAgeSec/);
  });
});

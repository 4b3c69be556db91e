/**
 * The JWT access-token verifier in-process (RFC 9068 §4, RFC 8725): every refusal with its reason
 * and detail, the loosenings of `compat`, the verification cache and what invalidates it. The
 * suites over HTTP (test/bearer-jwt, test/jwks) prove the same through the adapters; these reach
 * each branch directly, with a stand-in for the issuer's key set.
 */
import { webcrypto } from 'node:crypto';
import { type CryptoKey, exportJWK, generateKeyPair } from 'jose';
import type { IssuerKeys, KeyLookup } from '../src/tokens/issuer';
import {
  deepFreeze,
  isAccessTokenTyp,
  isJwtFrom,
  JwtAccessTokenVerifier,
  type JwtVerifierSettings,
  type TokenResult,
} from '../src/tokens/jwt';

const ISS = 'https://as.example.com';
const AUD = 'https://rs.example.com';
const NOW = 1_800_000_000;

/** The issuer's key set, as the verifier sees it: lookups counted, generation and answer settable. */
class StandInIssuer {
  generation = 0;
  lookups = 0;
  refreshes = 0;
  answer: KeyLookup | undefined;
  constructor(public keys: CryptoKey[]) {}
  async keysFor(): Promise<KeyLookup> {
    this.lookups++;
    return this.answer ?? { ok: true, keys: this.keys, generation: this.generation };
  }
  refreshIfStale(): void {
    this.refreshes++;
  }
}

let es256: CryptoKey;
let other: CryptoKey;
let signer: CryptoKey;
let ed25519: CryptoKey;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  signer = pair.privateKey;
  es256 = pair.publicKey;
  other = (await generateKeyPair('ES256')).publicKey;
  ed25519 = (await generateKeyPair('Ed25519')).publicKey;
  expect((await exportJWK(es256)).crv).toBe('P-256');
});

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: ISS, sub: 'alice', aud: AUD, exp: NOW + 300, iat: NOW - 10, jti: 'j1', client_id: 'c1', ...extra };
}

/**
 * A JWS over `payload` (an object, or raw JSON text), header `{alg: ES256, typ: at+jwt, kid: k1}`
 * plus `header`, signed with Web Crypto (jose itself refuses to sign some of the headers tried here).
 */
async function jws(payload: Record<string, unknown> | string = claims(), header: Record<string, unknown> = {}): Promise<string> {
  const b64 = (text: string) => Buffer.from(text).toString('base64url');
  const input = `${b64(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: 'k1', ...header }))}.${b64(typeof payload === 'string' ? payload : JSON.stringify(payload))}`;
  const signature = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, signer, Buffer.from(input));
  return `${input}.${Buffer.from(signature).toString('base64url')}`;
}

/** A JWS-shaped string with the given JSON (or raw) header and payload, not signed. */
const unsigned = (header: unknown, payload: unknown) =>
  `${Buffer.from(typeof header === 'string' ? header : JSON.stringify(header)).toString('base64url')}.${Buffer.from(
    typeof payload === 'string' ? payload : JSON.stringify(payload),
  ).toString('base64url')}.c2ln`;

interface Setup {
  verifier: JwtAccessTokenVerifier;
  issuer: StandInIssuer;
  issuers: Map<string, IssuerKeys>;
  clock: { now: number };
}

function setup(settings: Partial<JwtVerifierSettings> = {}, keys?: CryptoKey[]): Setup {
  const issuer = new StandInIssuer(keys ?? [es256]);
  const issuers = new Map<string, IssuerKeys>([[ISS, issuer as unknown as IssuerKeys]]);
  const clock = { now: NOW * 1000 };
  const verifier = new JwtAccessTokenVerifier({
    issuers,
    audiences: [AUD, 'https://rs2.example.com'],
    algorithms: ['ES256', 'PS256'],
    clockToleranceSec: 5,
    now: () => clock.now,
    cacheMax: 100,
    ...settings,
  });
  return { verifier, issuer, issuers, clock };
}

const failure = (result: TokenResult) => (result.ok ? { ok: true } : { reason: result.reason, detail: result.detail });

async function check(token: string, settings: Partial<JwtVerifierSettings> = {}, keys?: CryptoKey[]) {
  return failure(await setup(settings, keys).verifier.verify(token));
}

describe('isJwtFrom: which tokens are checked locally', () => {
  const issuers = new Map([[ISS, {}]]);
  const seg = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

  it('takes a three-part token whose payload names a trusted issuer', () => {
    expect(isJwtFrom(`${seg({})}.${seg({ iss: ISS })}.x`, issuers)).toBe(true);
  });
  it('leaves two or four parts, another issuer, no issuer, and a payload that is not JSON', () => {
    expect(isJwtFrom(`${seg({})}.${seg({ iss: ISS })}`, issuers)).toBe(false);
    expect(isJwtFrom(`${seg({})}.${seg({ iss: ISS })}.x.y`, issuers)).toBe(false);
    expect(isJwtFrom(`${seg({})}.${seg({ iss: 'https://other.example' })}.x`, issuers)).toBe(false);
    expect(isJwtFrom(`${seg({})}.${seg({ sub: 'a' })}.x`, issuers)).toBe(false);
    expect(isJwtFrom(`${seg({})}.bm90IGpzb24.x`, issuers)).toBe(false);
  });
});

describe('isAccessTokenTyp', () => {
  it('JWTAT-01 takes at+jwt and application/at+jwt in any case', () => {
    for (const typ of ['at+jwt', 'AT+JWT', 'application/at+jwt', 'Application/At+Jwt']) expect(isAccessTokenTyp(typ)).toBe(true);
  });
  it('JWTAT-01 refuses any other value, a prefix other than application/, and a non-string', () => {
    // 'at+application/jwt': application/ is removed as a prefix only.
    for (const typ of [
      'jwt',
      'at+jwtx',
      'xapplication/at+jwt',
      'at+application/jwt',
      'text/at+jwt',
      'application/jwt',
      '',
      undefined,
      1,
      ['at+jwt'],
    ]) {
      expect(isAccessTokenTyp(typ)).toBe(false);
    }
  });
});

describe('JwtAccessTokenVerifier: refusals before any key is used', () => {
  it('refuses a token over 16 384 characters before parsing it, and parses one of exactly that length', async () => {
    const { verifier, issuer } = setup();
    expect(failure(await verifier.verify('a'.repeat(16_385)))).toEqual({ reason: 'token_malformed', detail: 'token of 16385 characters' });
    const exact = `e30.e30.${'a'.repeat(16_384 - 8)}`;
    expect(failure(await verifier.verify(exact))).toEqual({ reason: 'token_type', detail: 'typ undefined' });
    expect(issuer.lookups).toBe(0);
  });

  it('refuses a token that is not three segments, saying how many', async () => {
    expect(await check('a.b')).toEqual({ reason: 'token_malformed', detail: '2 segments, a JWS has 3' });
    expect(await check('a.b.c.d')).toEqual({ reason: 'token_malformed', detail: '4 segments, a JWS has 3' });
  });

  it('refuses a header or a payload that is not a JSON object', async () => {
    const detail = { reason: 'token_malformed', detail: 'header or payload is not a JSON object' };
    expect(await check(unsigned('not json', claims()))).toEqual(detail);
    expect(await check(unsigned({ alg: 'ES256', typ: 'at+jwt' }, 'not json'))).toEqual(detail);
    expect(await check(unsigned({ alg: 'ES256', typ: 'at+jwt' }, [1]))).toEqual(detail);
  });

  it('JWTAT-01 JWTBCP-09 refuses typ jwt, a missing typ and another kind, without compat', async () => {
    expect(await check(await jws(claims(), { typ: 'JWT' }))).toEqual({ reason: 'token_type', detail: 'typ "JWT"' });
    expect(await check(await jws(claims(), { typ: undefined }))).toEqual({ reason: 'token_type', detail: 'typ undefined' });
    expect(await check(await jws(claims(), { typ: 'dpop+jwt' }))).toEqual({ reason: 'token_type', detail: 'typ "dpop+jwt"' });
  });

  it('JWTAT-01 accepts application/at+jwt in another case', async () => {
    expect(await check(await jws(claims(), { typ: 'Application/AT+JWT' }))).toEqual({ ok: true });
  });

  it('JWTBCP-01 refuses an algorithm outside the allow-list, and an alg that is not a string', async () => {
    expect(await check(unsigned({ alg: 'HS256', typ: 'at+jwt' }, claims()))).toEqual({
      reason: 'token_algorithm',
      detail: 'alg "HS256" not in ES256 PS256',
    });
    expect(await check(unsigned({ alg: 7, typ: 'at+jwt' }, claims()))).toEqual({
      reason: 'token_algorithm',
      detail: 'alg 7 not in ES256 PS256',
    });
    expect(await check(unsigned({ typ: 'at+jwt' }, claims()))).toEqual({
      reason: 'token_algorithm',
      detail: 'alg undefined not in ES256 PS256',
    });
  });

  it('JWTBCP-02 refuses alg none even with an empty signature', async () => {
    const token = unsigned({ alg: 'none', typ: 'at+jwt' }, claims()).replace(/\.c2ln$/, '.');
    expect(await check(token)).toEqual({ reason: 'token_algorithm', detail: 'alg "none" not in ES256 PS256' });
  });

  it('JWTBCP-08 refuses a kid that is not a string; takes a token without kid', async () => {
    expect(await check(await jws(claims(), { kid: 5 }))).toEqual({ reason: 'token_malformed', detail: 'kid is not a string' });
    expect(await check(await jws(claims(), { kid: undefined }))).toEqual({ ok: true });
  });

  it('JWTAT-03 JWTBCP-06 refuses an issuer that is not trusted, or not a string, before any key lookup', async () => {
    const { verifier, issuer } = setup();
    expect(failure(await verifier.verify(await jws(claims({ iss: 'https://as.example.com/' }))))).toEqual({
      reason: 'token_issuer',
      detail: 'iss "https://as.example.com/" is not a trusted issuer',
    });
    expect(failure(await verifier.verify(await jws(claims({ iss: 1 }))))).toEqual({
      reason: 'token_issuer',
      detail: 'iss 1 is not a trusted issuer',
    });
    expect(issuer.lookups).toBe(0);
  });

  it('JWTBCP-06 hands on the key set failure as it is (unknown key, issuer down)', async () => {
    const { verifier, issuer } = setup();
    issuer.answer = { ok: false, reason: 'issuer_unavailable', detail: 'down', retryAfterMs: 3000 };
    expect(await verifier.verify(await jws())).toEqual({ ok: false, reason: 'issuer_unavailable', detail: 'down', retryAfterMs: 3000 });
  });
});

describe('JwtAccessTokenVerifier: compat loosenings (non-RFC 9068 issuers)', () => {
  it('acceptJwtTyp takes typ JWT in any case, and nothing more', async () => {
    const compat = { compat: { acceptJwtTyp: true } };
    expect(await check(await jws(claims(), { typ: 'JWT' }), compat)).toEqual({ ok: true });
    expect(await check(await jws(claims(), { typ: 'jwt' }), compat)).toEqual({ ok: true });
    expect(await check(await jws(claims(), { typ: 'JWS' }), compat)).toEqual({ reason: 'token_type', detail: 'typ "JWS"' });
    expect(await check(await jws(claims(), { typ: undefined }), compat)).toEqual({ reason: 'token_type', detail: 'typ undefined' });
  });

  it('acceptMissingTyp takes a header without typ, and not typ JWT or null', async () => {
    const compat = { compat: { acceptMissingTyp: true } };
    expect(await check(await jws(claims(), { typ: undefined }), compat)).toEqual({ ok: true });
    expect(await check(await jws(claims(), { typ: 'JWT' }), compat)).toEqual({ reason: 'token_type', detail: 'typ "JWT"' });
    expect(await check(await jws(claims(), { typ: null }), compat)).toEqual({ reason: 'token_type', detail: 'typ null' });
  });

  it('the header of a token without kid has alg and typ only', async () => {
    const { verifier } = setup({ compat: { acceptJwtTyp: true } });
    const result = await verifier.verify(await jws(claims(), { typ: 'JWT', kid: undefined }));
    expect(result.ok && result.token.header).toEqual({ alg: 'ES256', typ: 'JWT' });
    expect(result.ok && Object.keys(result.token.header ?? {})).toEqual(['alg', 'typ']);
  });

  it('JWTBCP-10 a loosened typ does not let an ID token or a logout token through', async () => {
    const compat = { compat: { acceptJwtTyp: true } };
    expect(await check(await jws(claims({ nonce: 'n' }), { typ: 'JWT' }), compat)).toEqual({
      reason: 'token_type',
      detail: 'nonce claim of an ID token',
    });
    expect(await check(await jws(claims({ events: {} }), { typ: 'JWT' }), compat)).toEqual({
      reason: 'token_type',
      detail: 'events claim of a security event (logout) token',
    });
  });

  it('JWTBCP-10 with typ at+jwt the token says its kind itself: an ID-token-like claim does not refuse it', async () => {
    expect(await check(await jws(claims({ nonce: 'n', azp: AUD })))).toEqual({ ok: true });
  });

  it('clientIdClaim fills client_id from the named claim, only when client_id is absent and the claim is a string', async () => {
    const compat = { compat: { clientIdClaim: 'azp' } };
    const { verifier } = setup(compat);
    const filled = await verifier.verify(await jws(claims({ client_id: undefined, azp: 'c-azp' })));
    expect(filled.ok && filled.token.claims.client_id).toBe('c-azp');
    const kept = await verifier.verify(await jws(claims({ client_id: 'c1', azp: 'c-azp', jti: 'j2' })));
    expect(kept.ok && kept.token.claims.client_id).toBe('c1');
    expect(await check(await jws(claims({ client_id: undefined, azp: 7 })), compat)).toEqual({
      reason: 'token_claim_missing',
      detail: 'no client_id claim',
    });
    expect(await check(await jws(claims({ client_id: undefined, azp: 'c-azp' })))).toEqual({
      reason: 'token_claim_missing',
      detail: 'no client_id claim',
    });
  });

  it('JWTAT-09 optionalClaims lets the named claims be absent, and only those', async () => {
    const compat = { compat: { optionalClaims: ['jti', 'iat'] } };
    expect(await check(await jws(claims({ jti: undefined, iat: undefined })), compat)).toEqual({ ok: true });
    expect(await check(await jws(claims({ sub: undefined })), compat)).toEqual({ reason: 'token_claim_missing', detail: 'no sub claim' });
    expect(await check(await jws(claims({ jti: 5 })), compat)).toEqual({ reason: 'token_claim_invalid', detail: 'jti is not a string' });
  });
});

describe('JwtAccessTokenVerifier: the signature', () => {
  it('JWTAT-05 verifies with any of several candidate keys (one kid on several keys)', async () => {
    expect(await check(await jws(), {}, [other, es256])).toEqual({ ok: true });
  });

  it('JWTAT-05 refuses a signature that no key verifies, and a key set without candidates', async () => {
    const detail = { reason: 'token_signature', detail: 'signature does not verify with the issuer keys' };
    expect(await check(await jws(), {}, [other])).toEqual(detail);
    expect(await check(await jws(), {}, [])).toEqual(detail);
  });

  it('JWTBCP-03 a JOSE error other than a bad signature is token_malformed with its code', async () => {
    const token = await jws(claims(), { crit: ['urn:example:ext'], 'urn:example:ext': 1 });
    const result = await check(token);
    expect(result).toEqual({ reason: 'token_malformed', detail: expect.stringMatching(/^ERR_JOSE_NOT_SUPPORTED: /) });
  });

  it('JWTBCP-01 a key of another type is refused as token_signature, never tried past', async () => {
    const result = await check(await jws(), {}, [ed25519, es256]);
    expect(result).toEqual({ reason: 'token_signature', detail: expect.stringMatching(/\S/) });
  });

  it('the verified token: header, claims, hash of the token and source, all frozen to the last member', async () => {
    const token = await jws(claims({ cnf: { jkt: 'abc', nested: [{ x: 1 }] }, aud: [AUD, 'https://x.example'] }));
    const result = await setup().verifier.verify(token);
    if (!result.ok) throw new Error(result.detail);
    expect(result.token.source).toBe('jwt');
    expect(result.token.header).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' });
    expect(result.token.hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(result.token.claims.sub).toBe('alice');
    const cnf = result.token.claims.cnf as { nested: Array<{ x: number }> };
    for (const part of [result.token, result.token.claims, result.token.header, cnf, cnf.nested, cnf.nested[0], result.token.claims.aud]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
  });
});

describe('JwtAccessTokenVerifier: claims (RFC 9068 §2.2, §4)', () => {
  it.each(['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'])('JWTAT-09 refuses a token without %s', async (name) => {
    const token =
      name === 'iss' ? unsigned({ alg: 'ES256', typ: 'at+jwt' }, claims({ iss: undefined })) : await jws(claims({ [name]: undefined }));
    const expected =
      name === 'iss'
        ? { reason: 'token_issuer', detail: 'iss undefined is not a trusted issuer' }
        : { reason: 'token_claim_missing', detail: `no ${name} claim` };
    expect(await check(token)).toEqual(expected);
  });

  it.each(['sub', 'client_id', 'jti'])('refuses a %s that is not a string', async (name) => {
    expect(await check(await jws(claims({ [name]: 42 })))).toEqual({ reason: 'token_claim_invalid', detail: `${name} is not a string` });
  });

  it.each(['exp', 'iat', 'nbf'])('refuses a %s that is not a finite number (a string, or 1e400 read as Infinity)', async (name) => {
    const expected = { reason: 'token_claim_invalid', detail: `${name} is not a number` };
    expect(await check(await jws(claims({ [name]: String(NOW) })))).toEqual(expected);
    const text = JSON.stringify(claims({ [name]: 0 })).replace(`"${name}":0`, `"${name}":1e400`);
    expect(await check(await jws(text))).toEqual(expected);
  });

  it('JWTAT-08 refuses a scope that is not a string; takes none', async () => {
    expect(await check(await jws(claims({ scope: ['accounts'] })))).toEqual({
      reason: 'token_claim_invalid',
      detail: 'scope is not a string',
    });
    expect(await check(await jws(claims({ scope: 'accounts' })))).toEqual({ ok: true });
  });

  it('refuses a cnf that is null, an array or a string; takes an object', async () => {
    const detail = { reason: 'token_claim_invalid', detail: 'cnf is not an object' };
    expect(await check(await jws(claims({ cnf: null })))).toEqual(detail);
    expect(await check(await jws(claims({ cnf: [{ jkt: 'a' }] })))).toEqual(detail);
    expect(await check(await jws(claims({ cnf: 'jkt' })))).toEqual(detail);
    expect(await check(await jws(claims({ cnf: { jkt: 'a' } })))).toEqual({ ok: true });
  });

  it('JWTAT-04 JWTBCP-07 aud: a string or an array that contains one of our identifiers', async () => {
    expect(await check(await jws(claims({ aud: 'https://rs2.example.com' })))).toEqual({ ok: true });
    expect(await check(await jws(claims({ aud: ['https://other.example', AUD] })))).toEqual({ ok: true });
    expect(await check(await jws(claims({ aud: ['https://other.example'] })))).toEqual({
      reason: 'token_audience',
      detail: 'aud ["https://other.example"] does not contain https://rs.example.com or https://rs2.example.com',
    });
    expect(await check(await jws(claims({ aud: [] })))).toEqual({
      reason: 'token_audience',
      detail: 'aud [] does not contain https://rs.example.com or https://rs2.example.com',
    });
  });

  it('JWTAT-04 aud that is not a string or an array of strings is invalid, even with ours in it', async () => {
    const detail = { reason: 'token_claim_invalid', detail: 'aud is not a string or array' };
    expect(await check(await jws(claims({ aud: [AUD, 5] })))).toEqual(detail);
    expect(await check(await jws(claims({ aud: 5 })))).toEqual(detail);
    expect(await check(await jws(claims({ aud: { AUD } })))).toEqual(detail);
  });
});

describe('JwtAccessTokenVerifier: time (RFC 7519 §4.1.4, §4.1.5; RFC 9068 §4 #6) with a 5 s tolerance', () => {
  it('JWTAT-06 takes a token until exp + tolerance, and refuses it from that second on', async () => {
    expect(await check(await jws(claims({ exp: NOW - 4 })))).toEqual({ ok: true });
    expect(await check(await jws(claims({ exp: NOW - 5 })))).toEqual({ reason: 'token_expired', detail: `exp ${NOW - 5} is past` });
  });

  it('refuses nbf past now + tolerance; takes it at the edge', async () => {
    expect(await check(await jws(claims({ nbf: NOW + 5 })))).toEqual({ ok: true });
    expect(await check(await jws(claims({ nbf: NOW + 6 })))).toEqual({
      reason: 'token_not_yet_valid',
      detail: `nbf ${NOW + 6} is in the future`,
    });
  });

  it('refuses iat past now + tolerance; takes it at the edge', async () => {
    expect(await check(await jws(claims({ iat: NOW + 5 })))).toEqual({ ok: true });
    expect(await check(await jws(claims({ iat: NOW + 6 })))).toEqual({
      reason: 'token_issued_in_future',
      detail: `iat ${NOW + 6} is in the future`,
    });
  });

  it('JWTAT-06 a cached token is refused once it expires: time checks run on every request', async () => {
    const { verifier, clock } = setup();
    const token = await jws(claims({ exp: NOW + 60 }));
    expect(failure(await verifier.verify(token))).toEqual({ ok: true });
    clock.now = (NOW + 65) * 1000;
    expect(failure(await verifier.verify(token))).toEqual({ reason: 'token_expired', detail: `exp ${NOW + 60} is past` });
  });
});

describe('JwtAccessTokenVerifier: the verification cache', () => {
  it('answers a repeated token synchronously, without another key lookup, asking the issuer to refresh stale keys', async () => {
    const { verifier, issuer } = setup();
    const token = await jws();
    await verifier.verify(token);
    const again = verifier.verify(token);
    expect(again).not.toBeInstanceOf(Promise);
    expect(failure(again as TokenResult)).toEqual({ ok: true });
    expect(issuer.lookups).toBe(1);
    expect(issuer.refreshes).toBe(1);
  });

  it('verifies again once the key set changed (rotation, a revoked key)', async () => {
    const { verifier, issuer } = setup();
    const token = await jws();
    await verifier.verify(token);
    issuer.generation++;
    issuer.keys = [other];
    expect(failure(await verifier.verify(token))).toEqual({
      reason: 'token_signature',
      detail: 'signature does not verify with the issuer keys',
    });
    expect(issuer.lookups).toBe(2);
  });

  it('an issuer no longer trusted gets no answer from the cache', async () => {
    const { verifier, issuers } = setup();
    const token = await jws();
    await verifier.verify(token);
    issuers.delete(ISS);
    expect(failure(await verifier.verify(token))).toEqual({ reason: 'token_issuer', detail: `iss "${ISS}" is not a trusted issuer` });
  });

  it('keeps no refused token: a token refused for its claims is verified again next time', async () => {
    const { verifier, issuer } = setup();
    const token = await jws(claims({ aud: 'https://other.example' }));
    await verifier.verify(token);
    await verifier.verify(token);
    expect(issuer.lookups).toBe(2);
  });

  it('cacheMax 0 keeps nothing', async () => {
    const { verifier, issuer } = setup({ cacheMax: 0 });
    const token = await jws();
    await verifier.verify(token);
    const again = verifier.verify(token);
    expect(again).toBeInstanceOf(Promise);
    await again;
    expect(issuer.lookups).toBe(2);
  });

  it('keeps a verification until exp + tolerance and no longer (the clock of the cache is real time)', async () => {
    const start = Date.now();
    // exp 3 s after now, tolerance 0: kept until then (margins for a busy machine), then dropped.
    const { verifier } = setup({ now: () => Date.now(), clockToleranceSec: 0 });
    const token = await jws(claims({ exp: (start + 3000) / 1000, iat: start / 1000 - 1 }));
    expect(failure(await verifier.verify(token))).toEqual({ ok: true });
    await new Promise((r) => setTimeout(r, 10));
    expect(verifier.verify(token)).not.toBeInstanceOf(Promise);
    await new Promise((r) => setTimeout(r, Math.max(0, start + 3100 - Date.now())));
    expect(verifier.verify(token)).toBeInstanceOf(Promise);

    const tolerant = setup({ now: () => Date.now(), clockToleranceSec: 60 }).verifier;
    const soon = await jws(claims({ exp: Date.now() / 1000 + 1, iat: Date.now() / 1000 - 1, jti: 'j2' }));
    await tolerant.verify(soon);
    await new Promise((r) => setTimeout(r, 10));
    expect(tolerant.verify(soon)).not.toBeInstanceOf(Promise);
  });
});

describe('deepFreeze', () => {
  it('freezes every object and array reachable, through null members and primitives, and returns the same value', () => {
    const value = { a: { b: [{ c: 1 }, 'x', null] }, n: null, s: 's' };
    expect(deepFreeze(value)).toBe(value);
    for (const part of [value, value.a, value.a.b, value.a.b[0]]) expect(Object.isFrozen(part)).toBe(true);
  });

  it('runs in a loop, not recursion: a claim nested 100 000 deep does not exhaust the stack', () => {
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 100_000; i++) {
      const next = {};
      deep.x = next;
      deep = next;
    }
    deepFreeze(root);
    expect(Object.isFrozen(deep)).toBe(true);
  });
});

/** DPoP proof checks, RFC 7638 thumbprints and server nonces against the published vectors. */
import { accessTokenHash, DpopNonces, DpopVerifier, jwkThumbprint, MemoryReplayStore, NONCE_SYNTAX, normalizeHtu } from '@fapi-guard/core';
import { DpopClient, type ProofOptions } from '@fapi-guard/testing';
import { rsaPublicJwk } from '../../../test/support/rsa';
import { vector } from '../../../test/support/vectors';

const rfc7638 = vector('rfc7638');
const rfc9449 = vector('rfc9449');
const resourceProof = rfc9449.proofs.find((p: { request: { method: string } }) => p.request.method === 'GET');
const vectorToken = rfc9449.ath.access_token as string;

function verifier(nowSec: number, extra: Partial<ConstructorParameters<typeof DpopVerifier>[0]> = {}) {
  return new DpopVerifier({
    algorithms: ['ES256', 'PS256', 'EdDSA'],
    maxAgeSec: 60,
    maxFutureSec: 10,
    replayStore: new MemoryReplayStore({ clock: () => nowSec * 1000 }),
    nonces: undefined,
    now: () => nowSec * 1000,
    ...extra,
  });
}

const vectorRequest = {
  proofs: [resourceProof.jwt],
  method: 'GET',
  url: 'https://resource.example.org/protectedresource',
  accessToken: vectorToken,
  requireNonce: false,
  boundJkt: rfc9449.jkt.value,
};

describe('RFC 7638 thumbprints', () => {
  it('JKT-02 computes the RFC 7638 example thumbprint', () => {
    expect(jwkThumbprint(rfc7638.jwk)).toBe(rfc7638.thumbprint_sha256_b64url);
  });

  it('JKT-01 hashes only the required members (kid, alg, use do not count)', () => {
    const { kid: _kid, alg: _alg, ...bare } = rfc7638.jwk;
    expect(jwkThumbprint(bare)).toBe(rfc7638.thumbprint_sha256_b64url);
    expect(jwkThumbprint({ ...rfc7638.jwk, use: 'sig', key_ops: ['verify'] })).toBe(rfc7638.thumbprint_sha256_b64url);
  });

  it('JKT-03 a private JWK hashes to its public thumbprint', () => {
    expect(jwkThumbprint({ ...rfc9449.dpop_public_jwk, d: 'private-part' })).toBe(rfc9449.jkt.value);
  });

  it('JKT-04 gives the RFC 9449 cnf.jkt (SHA-256) for the DPoP key', () => {
    expect(jwkThumbprint(rfc9449.dpop_public_jwk)).toBe('0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I');
    expect(jwkThumbprint(rfc9449.dpop_public_jwk)).toBe(rfc9449.jwt_access_token_with_cnf.payload.cnf.jkt);
  });

  it('refuses a JWK without its required members', () => {
    expect(() => jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 'a' })).toThrow(/"y"/);
    expect(() => jwkThumbprint({ kty: 'XYZ' })).toThrow(/unsupported kty/);
    // A kty that is not a string never selects a key type, even one that stringifies to "EC".
    expect(() => jwkThumbprint({ ...rfc9449.dpop_public_jwk, kty: ['EC'] })).toThrow(/unsupported kty/);
  });
});

describe('RFC 9449 proof vectors', () => {
  it('DPOP-14 the ath of the vector token is the published value', () => {
    expect(accessTokenHash(vectorToken)).toBe(rfc9449.ath.expected);
    expect(resourceProof.payload.ath).toBe(rfc9449.ath.expected);
  });

  it('DPOP-14 DPOP-15 accepts the RFC resource-request proof at its own time', async () => {
    const result = await verifier(resourceProof.payload.iat + 2).verify(vectorRequest);
    expect(result).toEqual({ ok: true, jkt: rfc9449.jkt.value });
  });

  it('DPOP-14 refuses the vector proof with another access token', async () => {
    const result = await verifier(resourceProof.payload.iat + 2).verify({ ...vectorRequest, accessToken: `${vectorToken}x` });
    expect(result).toMatchObject({ ok: false, reason: 'dpop_proof_invalid', detail: expect.stringContaining('ath') });
  });

  it('DPOP-11 an htu for the same path at another origin is refused with both origins named for the operator', async () => {
    const at = resourceProof.payload.iat + 2;
    const moved = await verifier(at).verify({ ...vectorRequest, url: 'http://10.0.0.7:8080/protectedresource' });
    expect(moved).toEqual({
      ok: false,
      reason: 'dpop_proof_invalid',
      detail: 'htu https://resource.example.org/protectedresource is not http://10.0.0.7:8080/protectedresource',
      htuOrigin: { proof: 'https://resource.example.org', request: 'http://10.0.0.7:8080' },
    });
    // Another path, or a request URL that is no http(s) URL, is a plain mismatch without the hint.
    for (const url of ['https://resource.example.org/other', 'http://10.0.0.7:8080/other', 'urn:x:protectedresource']) {
      const result = await verifier(at).verify({ ...vectorRequest, url });
      expect(result).toMatchObject({ ok: false, reason: 'dpop_proof_invalid' });
      expect(result).not.toHaveProperty('htuOrigin');
    }
  });

  it('DPOP-11 a request path the URL parser would change matches no htu: routers match the path as sent, so it may reach another route', async () => {
    const at = resourceProof.payload.iat + 2;
    const detail = 'the request path is not in normal form (dot segments, \\, #)';
    for (const path of [
      '/x/../protectedresource',
      '/./protectedresource',
      '/x/%2E%2e/protectedresource',
      '/x/.%2e/protectedresource',
      '/x\\..\\protectedresource',
      '/protectedresource/.',
      // A fragment hides a dot segment from the router's view of the path; a backslash is a `/` only to the parser.
      '/protectedresource#x',
      '/protectedresource/..#x',
      '/x\\protectedresource',
      // Characters the parser percent-encodes, or no URI holds (RFC 3986 §2), refused before the parser sees them.
      '/protected{resource}',
      '/protected|resource',
      '/protected^resource',
      '/protectedresourc\u00e9',
      '/protected%zzresource',
      '/protectedresource%',
    ]) {
      const result = await verifier(at).verify({ ...vectorRequest, url: `https://resource.example.org${path}` });
      expect([path, result]).toEqual([path, { ok: false, reason: 'dpop_proof_invalid', detail }]);
    }
    // Dots in the query, or segments that only contain dots among other characters, are no dot segments.
    expect(await verifier(at).verify({ ...vectorRequest, url: 'https://resource.example.org/protectedresource?next=/../x#' })).toEqual({
      ok: true,
      jkt: rfc9449.jkt.value,
    });
    for (const path of ['/.../protectedresource', '/x/..y/protectedresource', '/%2e%2e%2e/protectedresource', '/protectedresource/']) {
      const result = await verifier(at).verify({ ...vectorRequest, url: `https://resource.example.org${path}` });
      expect(result).toMatchObject({ ok: false, detail: expect.stringMatching(/^htu /) });
    }
  });

  it('DPOP-23 the memory of normalised URLs stays bounded whatever URLs requests name', async () => {
    const v = verifier(resourceProof.payload.iat + 2);
    const urls = (v as unknown as { urls: Map<string, unknown> }).urls;
    for (let i = 0; i < 2500; i++) await v.verify({ ...vectorRequest, url: `https://resource.example.org/r/${i}` });
    expect(urls.size).toBeGreaterThan(0);
    expect(urls.size).toBeLessThanOrEqual(1000);
  });

  it('DPOP-23 remembers request URLs without their query, and no URL longer than 2048 characters', async () => {
    const v = verifier(resourceProof.payload.iat + 2);
    const urls = (v as unknown as { urls: Map<string, unknown> }).urls;
    const origin = 'https://resource.example.org';
    expect(await v.verify({ ...vectorRequest, url: `${origin}/protectedresource?page=1` })).toMatchObject({ ok: true });
    // One entry: the proof's htu is this URL, query aside.
    expect([resourceProof.payload.htu, [...urls.keys()]]).toEqual([`${origin}/protectedresource`, [`${origin}/protectedresource`]]);
    // A path of 2048 characters in all is remembered, one of 2049 is not (normalised each time).
    const path = (length: number) => `/${'p'.repeat(length - origin.length - 1)}`;
    for (const length of [2048, 2049]) await v.verify({ ...vectorRequest, url: `${origin}${path(length)}` });
    expect(urls.has(`${origin}${path(2048)}`)).toBe(true);
    expect(urls.has(`${origin}${path(2049)}`)).toBe(false);
    expect(urls.size).toBe(2);
  });

  it('DPOP-15 refuses the vector proof for a token bound to another key', async () => {
    const result = await verifier(resourceProof.payload.iat + 2).verify({ ...vectorRequest, boundJkt: rfc7638.thumbprint_sha256_b64url });
    expect(result).toMatchObject({ ok: false, reason: 'binding_mismatch' });
  });

  it('DPOP-05 refuses the token-request proofs at the resource server (no ath)', async () => {
    for (const proof of rfc9449.proofs.filter((p: { request: { method: string } }) => p.request.method === 'POST')) {
      const result = await verifier(proof.payload.iat + 1).verify({
        ...vectorRequest,
        proofs: [proof.jwt],
        method: 'POST',
        url: proof.request.url,
      });
      expect(result).toMatchObject({ ok: false, reason: 'dpop_proof_invalid', detail: 'ath missing' });
    }
  });

  it('DPOP-13 refuses the vector proof ten minutes later', async () => {
    const result = await verifier(resourceProof.payload.iat + 600).verify(vectorRequest);
    expect(result).toMatchObject({ ok: false, detail: expect.stringContaining('older than') });
  });

  it('DPOP-23 refuses the vector proof the second time', async () => {
    const v = verifier(resourceProof.payload.iat + 2);
    expect((await v.verify(vectorRequest)).ok).toBe(true);
    expect(await v.verify(vectorRequest)).toMatchObject({ ok: false, reason: 'dpop_proof_replayed' });
  });

  it('DPOP-16 fails closed with 503 when the replay store cannot answer', async () => {
    const down = { claim: () => Promise.reject(new Error('ECONNREFUSED')) };
    const result = await verifier(resourceProof.payload.iat + 2, { replayStore: down }).verify(vectorRequest);
    expect(result).toMatchObject({ ok: false, reason: 'store_unavailable' });
  });

  it('JWTBCP-04 refuses a proof key that is not on its curve', async () => {
    const [h, p, s] = resourceProof.jwt.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url').toString());
    header.jwk.y = header.jwk.x; // (x, x) is not a point of P-256
    const forged = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${p}.${s}`;
    const result = await verifier(resourceProof.payload.iat + 2).verify({ ...vectorRequest, proofs: [forged] });
    // Refused when the key is imported, before any signature check could hide the cause.
    expect(result).toMatchObject({ ok: false, reason: 'dpop_proof_invalid', detail: expect.stringMatching(/^jwk: /) });
  });
});

describe('15.7 costly proof keys before the binding', () => {
  const NOW = 1_700_000_000;
  const URL = 'https://rs.example.com/accounts';
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  /** A PS256 proof whose header carries `jwk` and whose signature is garbage, for a token bound to `boundJkt`. */
  const garbageProof = (jwk: Record<string, unknown>, boundJkt = jwkThumbprint(jwk)) => ({
    proofs: [
      `${b64({ typ: 'dpop+jwt', alg: 'PS256', jwk })}.${b64({ jti: 'j', htm: 'GET', htu: URL, iat: NOW, ath: accessTokenHash('tok') })}.${Buffer.alloc(256, 3).toString('base64url')}`,
    ],
    method: 'GET',
    url: URL,
    accessToken: 'tok',
    requireNonce: false,
    boundJkt,
  });
  const rsa = rsaPublicJwk;
  const check = (jwk: Record<string, unknown>, boundJkt?: string) => verifier(NOW).verify(garbageProof(jwk, boundJkt));
  const SIGNATURE = { ok: false, reason: 'dpop_proof_invalid', detail: 'signature does not verify with the header jwk' };

  it('15.7 proof key bounds: a modulus of 8192 bits reaches the signature check, 8193 bits does not', async () => {
    expect(await check(rsa(8192))).toEqual(SIGNATURE);
    expect(await check(rsa(8193))).toEqual({
      ok: false,
      reason: 'dpop_proof_invalid',
      detail: 'jwk: RSA modulus of 8193 bits (at most 8192)',
    });
    expect(await check(rsa(2048))).toEqual(SIGNATURE);
    expect(await check(rsa(2047))).toEqual({ ok: false, reason: 'dpop_proof_invalid', detail: 'jwk does not fit PS256' });
  });

  it('15.7 proof key bounds: odd public exponents from 3 to 2^32 - 1; a 3071-bit one is refused before the signature', async () => {
    for (const e of [3n, 65537n, 2n ** 32n - 1n]) expect(await check(rsa(3072, e))).toEqual(SIGNATURE);
    for (const [e, detail] of [
      [1n, 'jwk: RSA public exponent of 1 bits (odd, 3 to 2^32 - 1)'],
      [65536n, 'jwk: RSA public exponent of 17 bits, even (odd, 3 to 2^32 - 1)'],
      [2n ** 32n + 1n, 'jwk: RSA public exponent of 33 bits (odd, 3 to 2^32 - 1)'],
      [2n ** 3070n + 1n, 'jwk: RSA public exponent of 3071 bits (odd, 3 to 2^32 - 1)'],
    ] as const) {
      expect(await check(rsa(3072, e))).toEqual({ ok: false, reason: 'dpop_proof_invalid', detail });
    }
  });

  it('15.7 binding before signature: a proof with another key than cnf.jkt is refused for the binding, its signature never checked', async () => {
    // The signature is garbage too; the binding answer shows the signature was not looked at.
    const other = jwkThumbprint(rsa(2048, 3n));
    expect(await check(rsa(2048), other)).toEqual({
      ok: false,
      reason: 'binding_mismatch',
      detail: 'proof key thumbprint differs from cnf.jkt',
    });
    const unbound = { ...garbageProof(rsa(2048)), boundJkt: undefined };
    expect(await verifier(NOW).verify(unbound)).toEqual({ ok: false, reason: 'binding_mismatch', detail: 'token has no cnf.jkt' });
    // The stateless proof checks still come first: a bad key is a bad proof, whatever the token.
    expect(await check(rsa(8193), other)).toMatchObject({
      reason: 'dpop_proof_invalid',
      detail: 'jwk: RSA modulus of 8193 bits (at most 8192)',
    });
  });
});

describe('each refusal names what failed (the detail operators see in decision events)', () => {
  const URL = 'https://rs.example.com/accounts';
  let client: DpopClient;
  beforeAll(async () => {
    client = await DpopClient.create('ES256');
  });
  const now = () => Math.floor(Date.now() / 1000);
  const request = (proofs: string[], extra: Record<string, unknown> = {}) => ({
    proofs,
    method: 'GET',
    url: URL,
    accessToken: 'tok',
    requireNonce: false,
    boundJkt: client.jkt,
    ...extra,
  });
  const proof = (options: Partial<ProofOptions> = {}) => client.proof({ htm: 'GET', htu: URL, accessToken: 'tok', ...options });
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const invalid = (detail: string) => ({ ok: false, reason: 'dpop_proof_invalid', detail });

  it('DPOP-02 DPOP-03 DPOP-04 no proof, two proofs, not a compact JWS, a payload or header that is no JSON object', async () => {
    const v = verifier(now());
    const good = await proof();
    const [h, p, sig] = good.split('.') as [string, string, string];
    expect(v.verify(request([]))).toEqual({ ok: false, reason: 'dpop_proof_missing', detail: 'no DPoP header' });
    expect(v.verify(request([good, good]))).toEqual(invalid('2 DPoP headers'));
    expect(v.verify(request(['a.b']))).toEqual(invalid('not a compact JWS'));
    expect(v.verify(request([`${h}.${b64([1])}.${sig}`]))).toEqual(invalid('payload is not a JSON object'));
    expect(v.verify(request([`${b64([1])}.${p}.${sig}`]))).toEqual(invalid('header is not a JSON object'));
    // White space around the field value is no part of it (RFC 9110 §5.5).
    expect(await v.verify(request([` ${good} `]))).toEqual({ ok: true, jkt: client.jkt });
  });

  it('DPOP-05 DPOP-13 an iat that is not a finite number is missing, whatever the later checks would say', async () => {
    const v = verifier(now());
    const [h, p, sig] = (await proof()).split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    // Step 3 comes before the signature: the claims are rewritten as text (1e400 is parsed as Infinity).
    for (const iat of ['"1700000000"', '1e400', 'null']) {
      const text = JSON.stringify({ ...claims, iat: 0 }).replace('"iat":0', `"iat":${iat}`);
      const bad = `${h}.${Buffer.from(text).toString('base64url')}.${sig}`;
      expect([iat, v.verify(request([bad]))]).toEqual([iat, invalid('iat missing')]);
    }
  });

  it('DPOP-07 an algorithm outside the allowed list, and any crit, are named', async () => {
    const v = verifier(now());
    const [, p, sig] = (await proof()).split('.') as [string, string, string];
    const jwk = (await proof()).split('.')[0] as string;
    const header = JSON.parse(Buffer.from(jwk, 'base64url').toString('utf8'));
    expect(v.verify(request([`${b64({ ...header, alg: 'HS256' })}.${p}.${sig}`]))).toEqual(invalid('alg "HS256"'));
    expect(v.verify(request([`${b64({ ...header, crit: ['b64'] })}.${p}.${sig}`]))).toEqual(
      invalid('crit lists extensions this verifier does not understand'),
    );
  });

  it('DPOP-11 an htu or a request URL that is no http(s) URI never matches, not even its like', async () => {
    const v = verifier(now());
    expect(await v.verify(request([await proof({ htu: 'urn:x:accounts' })], { url: 'urn:x:accounts' }))).toMatchObject({
      ok: false,
      detail: 'htu urn:x:accounts is not undefined',
    });
    const result = await v.verify(request([await proof({ htu: 'not a url' })]));
    expect(result).toEqual(invalid(`htu not a url is not ${URL}`));
    // The WHATWG parser reads these as URL itself; RFC 3986 and RFC 9110 §4.2.4 do not.
    for (const htu of ['https://client@rs.example.com/accounts', 'https:rs.example.com/accounts']) {
      expect(await v.verify(request([await proof({ htu })]))).toEqual(invalid(`htu ${htu} is not ${URL}`));
    }
  });

  it('DPOP-12 DPOP-22 a missing and an unknown nonce are told apart; without server nonces a string nonce is let through and another is refused', async () => {
    const nonces = new DpopNonces({ secret: 's'.repeat(32) }, Date.now);
    const withNonces = verifier(now(), { nonces });
    expect(await withNonces.verify(request([await proof()], { requireNonce: true }))).toMatchObject({
      reason: 'dpop_nonce_required',
      detail: 'no nonce',
    });
    expect(await withNonces.verify(request([await proof({ nonce: 'n'.repeat(32) })], { requireNonce: true }))).toMatchObject({
      reason: 'dpop_nonce_required',
      detail: 'nonce unknown or expired',
    });
    const plain = verifier(now());
    expect(await plain.verify(request([await proof({ nonce: 'from-another-server' })]))).toEqual({ ok: true, jkt: client.jkt });
    expect(await plain.verify(request([await proof({ claims: { nonce: 7 } })]))).toEqual(invalid('nonce is not a string'));
  });

  it('DPOP-23 a replay names the jti, cut to 64 characters; an accepted proof carries nothing more than ok and jkt', async () => {
    const v = verifier(now());
    const jti = 'j'.repeat(100);
    const first = await proof({ jti });
    const accepted = await v.verify(request([first]));
    expect(Object.keys(accepted)).toEqual(['ok', 'jkt']);
    expect(await v.verify(request([first]))).toEqual({
      ok: false,
      reason: 'dpop_proof_replayed',
      detail: `jti ${'j'.repeat(64)} already used`,
    });
  });

  it('DPOP-16 a store that throws anything is unavailable (503), and an in-process store answers at once', async () => {
    const throwing = {
      claim: () => Promise.resolve(true),
      claimNow: () => {
        throw undefined;
      },
    };
    const v = verifier(now(), { replayStore: throwing as never });
    expect(v.verify(request([await proof()]))).toEqual({ ok: false, reason: 'store_unavailable', detail: 'replay store: undefined' });
    const sync = verifier(now()).verify(request([await proof()]));
    expect(sync).not.toBeInstanceOf(Promise);
    expect(sync).toEqual({ ok: true, jkt: client.jkt });
  });
});

describe('htu normalisation', () => {
  it('DPOP-11 applies RFC 3986 §6.2.2 and §6.2.3 and drops query and fragment', () => {
    const expected = 'https://rs.example.com/accounts';
    for (const htu of [
      'HTTPS://RS.EXAMPLE.COM:443/accounts',
      'https://rs.example.com/accounts?x=1#f',
      'https://rs.example.com/%61ccounts',
      'https://rs.example.com/./accounts',
    ]) {
      expect(normalizeHtu(htu)).toBe(expected);
    }
    expect(normalizeHtu('https://rs.example.com/a%2fb')).toBe('https://rs.example.com/a%2Fb');
    expect(normalizeHtu('https://rs.example.com:8443/accounts')).not.toBe(expected);
    expect(normalizeHtu('http://rs.example.com/accounts')).not.toBe(expected);
    expect(normalizeHtu('urn:x:y')).toBeUndefined();
  });

  it('DPOP-11 keeps http (loopback development) and refuses other schemes and non-URLs', () => {
    expect(normalizeHtu('HTTP://127.0.0.1:80/accounts')).toBe('http://127.0.0.1/accounts');
    expect(normalizeHtu('http://127.0.0.1:8080/accounts')).toBe('http://127.0.0.1:8080/accounts');
    expect(normalizeHtu('ftp://rs.example.com/accounts')).toBeUndefined();
    expect(normalizeHtu('ws://rs.example.com/accounts')).toBeUndefined();
    expect(normalizeHtu('/accounts')).toBeUndefined();
    expect(normalizeHtu('')).toBeUndefined();
  });

  it('DPOP-11 reads only an RFC 3986 URI with an authority and no userinfo, not what the WHATWG parser repairs', () => {
    expect(normalizeHtu('https://rs.example.com')).toBe('https://rs.example.com/');
    expect(normalizeHtu('https://rs.example.com?x')).toBe('https://rs.example.com/');
    expect(normalizeHtu('https://rs.example.com#f')).toBe('https://rs.example.com/');
    expect(normalizeHtu('https://[::1]:8443/accounts')).toBe('https://[::1]:8443/accounts');
    for (const htu of [
      'https:rs.example.com/accounts',
      'https:/rs.example.com/accounts',
      'https:\\\\rs.example.com/accounts',
      'https://rs.example.com\\accounts',
      'https://client@rs.example.com/accounts',
      'https://:secret@rs.example.com/accounts',
      'https://@rs.example.com/accounts',
      'https://rs.exa\tmple.com/accounts',
      'https://rs.example.com/acc\nounts',
      ' https://rs.example.com/accounts',
      'https://rs.example.com/accounts ',
      'https://rs.example.com/a ccounts',
      'https://rs.example.com/accounts\u0000',
      'https://rs.example.com/accounts\u007f',
      // No host (RFC 9110 §4.2.1), an IRI, characters outside RFC 3986 §2, a `%` that starts no octet.
      'https:///rs.example.com/accounts',
      'https:////rs.example.com/accounts',
      'https://\uff52\uff53.example.com/accounts',
      'https://rs.example.com/acc\u00e9',
      ...['"', '<', '>', '^', '`', '{', '|', '}'].map((c) => `https://rs.example.com/a${c}ccounts`),
      'https://rs.example.com/acc%zzounts',
      'https://rs.example.com/accounts%4',
      'https://rs.example.com/accounts%',
    ]) {
      expect([htu, normalizeHtu(htu)]).toEqual([htu, undefined]);
    }
    // Every character RFC 3986 §2 allows, and percent-encoded octets in either case.
    expect(normalizeHtu("https://rs.example.com/a-._~:@!$&'()*+,;=%41%2f[]?q#f")).toBe("https://rs.example.com/a-._~:@!$&'()*+,;=A%2F[]");
  });

  it('DPOP-11 a host is compared as RFC 3986 §6.2.2 normalises it, never as the WHATWG parser rewrites it (IDNA, IPv4 forms)', () => {
    // Case and percent-encoded unreserved characters (§6.2.2.1, §6.2.2.2), the port (§6.2.3).
    for (const htu of [
      'https://RS.Example.COM/a',
      'https://%72s.example.com/a',
      'https://rs%2Eexample.com/a',
      'https://rs.example.com:0443/a',
    ])
      expect([htu, normalizeHtu(htu)]).toEqual([htu, 'https://rs.example.com/a']);
    expect(normalizeHtu('http://127.0.0.1:8080/a')).toBe('http://127.0.0.1:8080/a');
    expect(normalizeHtu('https://[::1]/a')).toBe('https://[::1]/a');
    expect(normalizeHtu('https://[FE80::1]/a')).toBe('https://[fe80::1]/a');
    // An IPv6 literal is an address: compared in its canonical form (RFC 5952), as the request URL's is.
    expect(normalizeHtu('https://[0:0:0:0:0:0:0:1]:8443/a')).toBe('https://[::1]:8443/a');
    expect(normalizeHtu('https://[::ffff:127.0.0.1]/a')).toBe('https://[::ffff:7f00:1]/a');
    // A host that stops at the port, the path, the query or the fragment.
    for (const htu of ['https://127.1:8443/a', 'https://127.1/a', 'https://127.1?a', 'https://127.1#a'])
      expect([htu, normalizeHtu(htu)]).toEqual([htu, undefined]);
    for (const htu of [
      // Octets that are no unreserved character stay encoded: another reg-name (§3.2.2), which the
      // WHATWG parser would decode and IDNA-map to rs.example.com.
      'https://%EF%BD%92%EF%BD%93.example.com/a',
      'https://rs%E3%80%82example.com/a',
      'https://r%C5%BF.example.com/a',
      'https://rs.example.com%E2%80%8B/a',
      // Only dotted-decimal dec-octets are an IPv4 literal (§3.2.2); the rest are reg-names.
      'http://2130706433/a',
      'http://127.1/a',
      'http://0x7f.0.0.1/a',
      'http://0177.0.0.1/a',
      'http://127.0.0.01/a',
      'http://127.0.0.1./a',
    ])
      expect([htu, normalizeHtu(htu)]).toEqual([htu, undefined]);
  });
});

describe('server nonces', () => {
  const secret = 'a'.repeat(32);

  it('DPOP-22 makes NQCHAR nonces that several instances with one secret agree on', () => {
    let now = 1_700_000_000_000;
    const a = new DpopNonces({ secret, stepSec: 60 }, () => now);
    const b = new DpopNonces({ secret, stepSec: 60 }, () => now);
    expect(a.current()).toMatch(NONCE_SYNTAX);
    expect(b.check(a.current())).toBe('fresh');
    const first = a.current();
    now += 60_000;
    expect(b.check(first)).toBe('stale');
    now += 60_000;
    expect(b.check(first)).toBe('invalid');
  });

  it('DPOP-22 nonces from another secret or of another shape are refused', () => {
    const a = new DpopNonces({ secret }, Date.now);
    const other = new DpopNonces({ secret: 'b'.repeat(32) }, Date.now);
    expect(a.check(other.current())).toBe('invalid');
    expect(a.check('short')).toBe('invalid');
    expect(new DpopNonces({}, Date.now).current()).not.toBe(new DpopNonces({}, Date.now).current());
  });

  it('15.11 multi-byte nonce: 32 characters of more than 32 bytes are invalid, not an exception', () => {
    const nonces = new DpopNonces({ secret }, Date.now);
    for (const nonce of ['é'.repeat(32), '😀'.repeat(16), 'é'.repeat(16), `${nonces.current().slice(0, 31)}é`]) {
      expect(nonces.check(nonce)).toBe('invalid');
    }
    expect(nonces.check(nonces.current())).toBe('fresh');
  });

  it('accepts nonces of a previous secret during rotation', () => {
    const old = new DpopNonces({ secret }, Date.now);
    const rotated = new DpopNonces({ secret: ['c'.repeat(32), secret] }, Date.now);
    expect(rotated.check(old.current())).toBe('stale');
    expect(rotated.check(rotated.current())).toBe('fresh');
  });

  it('refuses a short secret at start-up', () => {
    expect(() => new DpopNonces({ secret: 'short' }, Date.now)).toThrow(/at least 32 bytes/);
  });

  it('DPOP-22 secret bounds: 32 bytes accepted, 31 refused, in any list position; an empty list refused', () => {
    const bytes = (n: number) => new Uint8Array(n).fill(7);
    expect(() => new DpopNonces({ secret: bytes(32) }, Date.now)).not.toThrow();
    expect(() => new DpopNonces({ secret: bytes(31) }, Date.now)).toThrow(/at least 32 bytes/);
    // Counted in UTF-8 bytes: 16 two-byte characters are 32 bytes, 31 ASCII characters are not.
    expect(() => new DpopNonces({ secret: 'é'.repeat(16) }, Date.now)).not.toThrow();
    expect(() => new DpopNonces({ secret: 'a'.repeat(31) }, Date.now)).toThrow(/at least 32 bytes/);
    expect(() => new DpopNonces({ secret: [secret, bytes(31)] }, Date.now)).toThrow(/at least 32 bytes/);
    expect(() => new DpopNonces({ secret: [bytes(31), secret] }, Date.now)).toThrow(/at least 32 bytes/);
    expect(() => new DpopNonces({ secret: [] }, Date.now)).toThrow(/at least 32 bytes/);
  });

  it('DPOP-22 a string secret and its UTF-8 bytes make the same nonces', () => {
    const text = 'ñ'.repeat(40);
    const now = () => 1_700_000_000_000;
    expect(new DpopNonces({ secret: text }, now).current()).toBe(new DpopNonces({ secret: Buffer.from(text, 'utf8') }, now).current());
    expect(new DpopNonces({ secret: text }, now).current()).not.toBe(
      new DpopNonces({ secret: Buffer.from(text, 'latin1') }, now).current(),
    );
  });
});

describe.each(['main', 'threadpool'] as const)('proof signature checked on the %s thread', (verifyOn) => {
  const at = (resourceProof.payload.iat as number) + 2;

  it('DPOP-08 accepts the RFC proof and refuses it with one signature bit flipped', async () => {
    expect(await verifier(at, { verifyOn }).verify(vectorRequest)).toMatchObject({ ok: true, jkt: rfc9449.jkt.value });
    const [h, p, sig] = resourceProof.jwt.split('.');
    const bytes = Buffer.from(sig, 'base64url');
    bytes[5] = (bytes[5] as number) ^ 1;
    const flipped = { ...vectorRequest, proofs: [`${h}.${p}.${bytes.toString('base64url')}`] };
    expect(await verifier(at, { verifyOn }).verify(flipped)).toMatchObject({
      ok: false,
      reason: 'dpop_proof_invalid',
      detail: 'signature does not verify with the header jwk',
    });
  });

  it('DPOP-23 claims the jti only after the signature verified', async () => {
    const store = new MemoryReplayStore({ clock: () => at * 1000 });
    const [h, p, sig] = resourceProof.jwt.split('.');
    const forged = { ...vectorRequest, proofs: [`${h}.${p}.${sig.slice(0, -4)}AAAA`] };
    expect(await verifier(at, { verifyOn, replayStore: store }).verify(forged)).toMatchObject({ ok: false });
    expect(store.size).toBe(0);
    // The genuine proof is then still usable once, and only once.
    expect(await verifier(at, { verifyOn, replayStore: store }).verify(vectorRequest)).toMatchObject({ ok: true });
    expect(await verifier(at, { verifyOn, replayStore: store }).verify(vectorRequest)).toMatchObject({ reason: 'dpop_proof_replayed' });
  });
});

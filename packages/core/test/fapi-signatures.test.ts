/**
 * FAPI 2.0 Message Signing in the core: the derived FAPI vector (request and response), response
 * signing, client keys from a JWKS URL (cache, rotation, outage), and the start-up checks of the
 * messageSigning options and route policies.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ClientKeys,
  createGuard,
  parseSignatures,
  type SignatureJwk,
  type SignedMessage,
  signatureBase,
  signResponse,
  verificationKey,
  verifyMessageSignature,
  verifyRequestSignature,
} from '@fapi-guard/core';
import { rsaPublicJwk } from '../../../test/support/rsa';
import { parseHttpMessage, vector } from '../../../test/support/vectors';

const derived = vector('fapi2-http-signature-derived');
const rfc9421 = vector('rfc9421');
const privateJwk = rfc9421.keys['test-key-ed25519'].jwk as SignatureJwk;
const { d: _d, ...publicJwk } = privateJwk;
const CREATED = 1618884473;

/** The derived request as received, with its body bytes. */
function derivedRequest() {
  const message = parseHttpMessage(derived.request.message) as SignedMessage & { method: string; url: string };
  const body = Buffer.from(derived.request.message.split('\n\n')[1] as string);
  return { message, body };
}

describe('derived FAPI 2.0 vector', () => {
  const keys = new ClientKeys({ clients: { 'client-a': { jwks: { keys: [publicJwk] } } } }, () => CREATED * 1000);
  const input = (now = CREATED) => ({
    ...derivedRequest(),
    clientId: 'client-a',
    tokenHash: 'h',
    mode: 'required' as const,
    keys,
    now,
    maxAgeSec: 60,
    maxFutureSec: 5,
  });

  it('SIG-02 HMS-10 verifies the derived FAPI request at its clock, with the digest over the body', async () => {
    const result = await verifyRequestSignature(input());
    expect(result.ok && result.verified).toMatchObject({
      label: 'sig1',
      keyid: 'test-key-ed25519',
      algorithm: 'ed25519',
      created: CREATED,
    });
    expect(result.ok && result.verified && result.record.base).toBe(derived.request.signature_base);
  });

  it('SIG-06 refuses the same request 61 s later, and SIG-09 with one body byte changed', async () => {
    expect(await verifyRequestSignature(input(CREATED + 61))).toMatchObject({ ok: false, reason: 'signature_invalid' });
    const changed = input();
    changed.body = Buffer.from(changed.body.toString().replace('world', 'World'));
    expect(await verifyRequestSignature(changed)).toMatchObject({
      ok: false,
      reason: 'signature_invalid',
      detail: expect.stringContaining('Content-Digest'),
    });
  });

  it('15.3 signature base cost: all the signatures of a request share one base budget', async () => {
    // A second candidate that covers 75 kB of padding, over the bound: behind it the genuine one is
    // refused (nothing left to build its base with); in front of it, it still passes.
    const pad = 'v'.repeat(15_000);
    const big = `big=("@method" "@target-uri" "authorization" "content-digest" "x-0" "x-1" "x-2" "x-3" "x-4");created=${CREATED};keyid="test-key-ed25519";tag="fapi-2-request"`;
    const withBig = (first: boolean) => {
      const request = input();
      const h = request.message.headers;
      const inputs = [...(h['signature-input'] as string[])];
      const values = [...(h.signature as string[])];
      request.message = {
        ...request.message,
        headers: {
          ...h,
          ...Object.fromEntries([0, 1, 2, 3, 4].map((i) => [`x-${i}`, [pad]])),
          'signature-input': first ? [big, ...inputs] : [...inputs, big],
          signature: first ? ['big=:AAAA:', ...values] : [...values, 'big=:AAAA:'],
        },
      };
      return request;
    };
    expect(await verifyRequestSignature(withBig(false))).toMatchObject({ ok: true, verified: { label: 'sig1' } });
    const refused = await verifyRequestSignature(withBig(true));
    expect(refused).toMatchObject({ ok: false, reason: 'signature_invalid' });
    expect(refused.ok === false && refused.detail).toBe(
      'big: signature base over 65536 characters; sig1: the signature bases of this request are over their bound',
    );
  });

  it('SIG-01 refuses the vector for a client that does not own the key', async () => {
    const other = new ClientKeys(
      { clients: { 'client-a': { jwks: { keys: [] } }, 'client-b': { jwks: { keys: [publicJwk] } } } },
      Date.now,
    );
    expect(await verifyRequestSignature({ ...input(), keys: other })).toMatchObject({ ok: false, reason: 'signature_invalid' });
  });

  it('HMS-08 HMS-14 SIG-10 SIG-11 SIG-12 rebuilds and verifies the derived response, req components from the request', () => {
    const request = derivedRequest().message;
    const response: SignedMessage = { ...parseHttpMessage(derived.response.message), request };
    const signature = parseSignatures(response).get('sig1');
    expect(signatureBase(response, signature?.input as never)).toBe(derived.response.signature_base);
    const result = verifyMessageSignature(response, signature as never, {
      key: () => ({ algorithm: 'ed25519', key: verificationKey(publicJwk).key }),
      now: CREATED + 1,
      maxAgeSec: 60,
      maxFutureSec: 5,
    });
    expect(result.ok).toBe(true);
  });

  it('SIG-10 SIG-11 SIG-12 SIG-13 SIG-14 DEC-05 HMS-15 signs a response to the derived request the FAPI way', async () => {
    const verified = await verifyRequestSignature(input());
    if (!verified.ok || !verified.verified) throw new Error('vector did not verify');
    const { message } = derivedRequest();
    const key = { ...verificationKey(publicJwk), key: (await import('node:crypto')).createPrivateKey({ key: privateJwk, format: 'jwk' }) };
    const body = Buffer.from('{"message": "good dog"}');
    const signed = signResponse(
      { request: message, requestSignature: verified.signature, requestRecord: verified.record, clientId: 'client-a', tokenHash: 'h' },
      { status: 200, headers: { 'content-type': ['application/json'] }, body },
      key,
      CREATED + 1,
    );
    expect(signed.headers['content-digest']).toBe('sha-256=:z0bm/K2/kBiAHdTk/FHlB2NyoHqaTdzCA9k+jeJ0ezA=:');
    expect(signed.headers['signature-input']).toBe(
      'sig1=("@status" "content-type" "content-digest" "@method";req "@target-uri";req "authorization";req "content-digest";req ' +
        '"signature";req;key="sig1" "signature-input";req;key="sig1");created=1618884474;keyid="test-key-ed25519";tag="fapi-2-response"',
    );
    const response: SignedMessage = {
      status: 200,
      headers: { 'content-type': ['application/json'], ...Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k, [v]])) },
      request: message,
    };
    const signature = parseSignatures(response).get('sig1');
    const result = verifyMessageSignature(response, signature as never, {
      key: () => verificationKey(publicJwk),
      now: CREATED + 1,
      maxAgeSec: 60,
      maxFutureSec: 5,
    });
    expect(result).toEqual({ ok: true, base: signed.record.base });
    // Ed25519 is deterministic: the base of the derived vector plus "authorization";req.
    expect(signed.record.base).toContain(`"signature";req;key="sig1": ${derived.request.signature_field.slice(5)}`);
  });
});

describe('client keys from a JWKS URL', () => {
  let server: Server;
  let url: string;
  let served: { keys: SignatureJwk[] } = { keys: [] };
  let up = true;
  let fetches = 0;
  const accepts = new Set<string>();
  const first = { ...(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) as SignatureJwk), kid: 'k1' };
  const second = { ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }) as SignatureJwk), kid: 'k2' };

  beforeAll(async () => {
    server = createServer((req, res) => {
      fetches++;
      accepts.add(String(req.headers.accept));
      if (!up) {
        res.statusCode = 503;
        res.end();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(served));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('fetches once, refetches for a new kid after the cool-down, keeps cached keys through an outage, and recovers', async () => {
    let now = 1_000_000;
    served = { keys: [first] };
    fetches = 0;
    up = true;
    const keys = new ClientKeys({ clients: { c: { jwksUri: url } }, cooldownMs: 30_000, cacheMs: 300_000 }, () => now);
    await Promise.all([1, 2, 3, 4, 5].map(() => keys.key('c', 'k1')));
    expect(fetches).toBe(1);
    expect(await keys.key('c', 'k1')).toMatchObject({ ok: true, key: { keyid: 'k1', algorithm: 'ed25519' } });
    // Rotation: k2 appears; within the cool-down it is not fetched, after it, it is.
    served = { keys: [first, second] };
    expect(await keys.key('c', 'k2')).toMatchObject({ ok: false, unavailable: false });
    now += 30_000;
    expect(await keys.key('c', 'k2')).toMatchObject({ ok: true, key: { algorithm: 'ecdsa-p256-sha256' } });
    expect(fetches).toBe(2);
    // Outage after the cache time: the keys already fetched stay in use.
    up = false;
    now += 300_001;
    expect(await keys.key('c', 'k1')).toMatchObject({ ok: true });
    // A client never fetched while its JWKS is down: unavailable (503), then fine once it is back.
    const fresh = new ClientKeys({ clients: { c: { jwksUri: url } } }, () => now);
    expect(await fresh.key('c', 'k1')).toMatchObject({
      ok: false,
      unavailable: true,
      detail: `keys of client c unavailable: GET jwksUri of client c ${url} answered 503`,
    });
    // A JWK set asked for as one (RFC 7517 §8.5), plain JSON accepted.
    expect([...accepts]).toEqual(['application/jwk-set+json, application/json']);
    up = true;
    now += 30_000;
    expect(await fresh.key('c', 'k1')).toMatchObject({ ok: true });
  });

  it('SIG-01 knows only registered clients; a resolver can name them; unusable keys are ignored', async () => {
    const weak = {
      ...(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }) as SignatureJwk),
      kid: 'weak',
    };
    const keys = new ClientKeys({ resolveClient: (id) => (id === 'known' ? { jwks: { keys: [first, weak] } } : undefined) }, () => 0);
    expect(await keys.key('unknown', 'k1')).toMatchObject({ ok: false, unavailable: false });
    expect(await keys.key('known', 'k1')).toMatchObject({ ok: true });
    expect(await keys.key('known', 'weak')).toMatchObject({ ok: false, unavailable: false });
  });
});

describe('start-up checks', () => {
  const base = { issuer: 'https://as.example.com', audience: 'https://rs.example.com' };
  const rs = { ...(generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) as SignatureJwk), kid: 'rs' };

  it('refuses signature routes without messageSigning, and signResponse without a response key', () => {
    expect(() => createGuard(base).policy({ signedRequest: 'required' })).toThrow(/configure messageSigning/);
    const guard = createGuard({ ...base, messageSigning: { clients: {} } });
    expect(() => guard.policy({ signResponse: true })).toThrow(/responseKey/);
    expect(() => guard.policy({ signedRequest: 'always' as never })).toThrow(/signedRequest must be one of "required", "optional"/);
  });

  it('15.7 client key bounds: RSA message-signing keys of 2048 to 8192 bits with an odd exponent up to 2^32 - 1', async () => {
    const rsa = (kid: string, bits: number, e = 65537n): SignatureJwk => ({ ...rsaPublicJwk(bits, e), kid });
    for (const [jwk, problem] of [
      [rsa('small', 2047), 'RSA modulus of 2047 bits (at least 2048)'],
      [rsa('large', 8193), 'RSA modulus of 8193 bits (at most 8192)'],
      [rsa('huge-e', 3072, 2n ** 3070n + 1n), 'RSA public exponent of 3071 bits (odd, 3 to 2^32 - 1)'],
      [rsa('e-33-bits', 2048, 2n ** 32n + 1n), 'RSA public exponent of 33 bits (odd, 3 to 2^32 - 1)'],
      [rsa('even-e', 2048, 65536n), 'RSA public exponent of 17 bits, even (odd, 3 to 2^32 - 1)'],
    ] as const) {
      expect(() => verificationKey(jwk)).toThrow(`fapi-guard: message signing key has an ${problem}`);
    }
    for (const jwk of [rsa('min', 2048), rsa('max', 8192), rsa('e-32-bits', 2048, 2n ** 32n - 1n), rsa('e-3', 2048, 3n)]) {
      expect(verificationKey(jwk).keyid).toBe(jwk.kid);
    }
    // A client's JWKS: keys out of bounds are left out, so their keyid is unknown.
    const keys = new ClientKeys({ clients: { c: { jwks: { keys: [rsa('huge-e', 3072, 2n ** 3070n + 1n), rsa('ok', 2048)] } } } }, Date.now);
    expect(await keys.key('c', 'huge-e')).toMatchObject({ ok: false, unavailable: false });
    expect(await keys.key('c', 'ok')).toMatchObject({ ok: true });
  });

  it('refuses unsafe key material and settings', () => {
    const { d: _, ...rsPublic } = rs;
    const weak = {
      ...(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'jwk' }) as SignatureJwk),
      kid: 'w',
    };
    const p384 = { ...(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'jwk' }) as SignatureJwk), kid: 'p' };
    const signing = (messageSigning: object) => () => createGuard({ ...base, messageSigning });
    expect(signing({})).toThrow(/clients or resolveClient/);
    expect(signing({ clients: { a: { jwks: { keys: [rs] } } } })).toThrow(/private key material/);
    expect(signing({ clients: { a: { jwksUri: 'http://clients.example.com/jwks' } } })).toThrow(/must use https/);
    expect(signing({ clients: {}, responseKey: rsPublic })).toThrow(/private JWK/);
    expect(signing({ clients: {}, responseKey: weak })).toThrow(/1024 bits/);
    expect(signing({ clients: {}, responseKey: p384 })).toThrow(/not allowed for message signatures/);
    expect(signing({ clients: {}, responseKey: { ...rs, alg: 'ES256' } })).toThrow(/does not fit/);
    expect(signing({ clients: {}, jwksUri: 'https://rs.example.com/jwks' })).toThrow(/needs responseKey/);
    expect(signing({ clients: {}, maxAgeSec: 3600 })).toThrow(/maxAgeSec/);
    expect(signing({ clients: {}, responseKey: rs, jwksUri: 'https://rs.example.com/jwks' })).not.toThrow();
  });
});

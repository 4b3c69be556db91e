/**
 * FAPI 2.0 Message Signing through each adapter over real HTTP: request signatures (RFC 9421,
 * FAPI §5.6.1.2) with digests over the bytes received (RFC 9530), signed responses bound to
 * their requests (§5.6.2.1), and the audit records of both. Every case runs on Express, Koa and
 * Fastify, whose apps keep their own body parsers working behind `rawBody()`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import type { SignedExchangeRecord } from '@fapi-guard/core';
import { DpopClient, MessageSigningClient, MockIssuer, verifySignedResponse } from '@fapi-guard/testing';
import express from 'express';
import { createVerifier, httpbis } from 'http-message-signatures';
import { FRAMEWORKS, type Framework, type StartedApp, startApp } from './support/apps';
import { type RunningApp, startExpressApp } from './support/express-app';
import { type Received, send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const PUBLIC = 'https://rs.example.com';

let as: MockIssuer;
let dpop: DpopClient;
const clientA = MessageSigningClient.generate('ed25519', 'client-a-key');
const clientB = MessageSigningClient.generate('ecdsa-p256-sha256', 'client-b-key');
const attacker = MessageSigningClient.generate('ed25519', 'attacker-key');
const clientC = MessageSigningClient.generate('rsa-pss-sha512', 'client-c-key');
const rsKey = MessageSigningClient.generate('ed25519', 'rs-2026');
const records: SignedExchangeRecord[] = [];
let auditFails = false;
const apps = new Map<Framework, StartedApp>();

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  dpop = await DpopClient.create('ES256');
  for (const framework of FRAMEWORKS) {
    apps.set(
      framework,
      await startApp(framework, {
        issuer: as.issuer,
        audience: AUDIENCE,
        publicUrl: PUBLIC,
        resourceMetadata: true,
        messageSigning: {
          clients: { 'client-a': { jwks: clientA.jwks }, 'client-b': { jwks: clientB.jwks }, 'client-c': { jwks: clientC.jwks } },
          responseKey: rsKey.privateJwk,
          jwksUri: `${PUBLIC}/.well-known/rs-jwks.json`,
          onSignedExchange: (record) => {
            if (auditFails) throw new Error('audit store down');
            records.push(record);
          },
        },
      }),
    );
  }
});
afterAll(async () => {
  for (const app of apps.values()) await app.close();
  await as.stop();
});

interface Call {
  path?: string;
  method?: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/** A DPoP request with a valid proof for the public URL of `path` (not yet signed). */
async function dpopRequest(path = '/signed', body: string | Buffer | undefined = '{"amount":"10.00","currency":"EUR"}', claims = {}) {
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt, claims });
  const url = `${PUBLIC}${path}`;
  const proof = await dpop.proof({ htm: 'POST', htu: url, accessToken: token });
  const headers: Record<string, string> = { authorization: `DPoP ${token}`, dpop: proof };
  if (body !== undefined && body.length > 0) headers['content-type'] = 'application/json';
  return { path, url, method: 'POST', headers, body };
}

async function call(app: StartedApp, request: Call): Promise<Received> {
  const headers = { ...request.headers };
  if (request.body !== undefined) headers['content-length'] = String(Buffer.byteLength(request.body));
  return send(`${app.url}${request.path ?? '/signed'}`, {
    method: request.method ?? 'POST',
    headers,
    body: request.body as string | undefined,
  });
}

const DPOP_ALGS = 'DPoP algs="ES256 PS256 EdDSA"';
const SIGNATURE_REFUSED = `${DPOP_ALGS}, error="invalid_request", error_description="The request signature is invalid"`;

describe.each(FRAMEWORKS)('%s', (framework) => {
  const app = () => apps.get(framework) as StartedApp;

  /** Sends and expects the DEC-02 refusal: 401, DPoP challenge with invalid_request, Accept-Signature. */
  async function refused(request: Call, challenge = SIGNATURE_REFUSED): Promise<Received> {
    const res = await call(app(), request);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(challenge);
    expect(res.headers['accept-signature']).toBeDefined();
    return res;
  }

  it('SIG-02 SIG-10 SIG-11 SIG-12 SIG-13 accepts a FAPI-signed payment and signs the response bound to it', async () => {
    const r = await dpopRequest();
    const headers = { ...r.headers, ...clientA.sign(r) };
    const res = await call(app(), { headers, body: r.body });
    expect(res.status).toBe(201);
    // The application's own JSON parser still read the body.
    expect(res.json).toEqual({ clientId: 'client-a', signature: 'client-a-key', received: { amount: '10.00', currency: 'EUR' } });
    const input = String(res.headers['signature-input']);
    expect(input).toMatch(/^sig1=\("@status" "content-type" "content-digest" "@method";req "@target-uri";req /);
    expect(input).toContain('"signature";req;key="sig1" "signature-input";req;key="sig1")');
    expect(input).toMatch(/;created=\d+;keyid="rs-2026";tag="fapi-2-response"$/);
    expect(res.headers['content-digest']).toMatch(/^sha-256=:[A-Za-z0-9+/]+=*:$/);
    const check = verifySignedResponse({
      request: { ...r, headers },
      response: { status: res.status, headers: res.headers as Record<string, string>, body: res.text },
      jwks: rsKey.jwks,
    });
    expect(check).toMatchObject({ ok: true, keyid: 'rs-2026' });
  });

  it('SIG-12 SIG-14 DEC-05 HMS-14 the response covers every request component and the request signature, with req', async () => {
    const r = await dpopRequest();
    const headers = { ...r.headers, ...clientA.sign(r) };
    const res = await call(app(), { headers, body: r.body });
    const covered = String(res.headers['signature-input']);
    for (const component of ['"@method";req', '"@target-uri";req', '"authorization";req', '"dpop";req', '"content-digest";req']) {
      expect(covered).toContain(component);
    }
    // The covered values are the request's own members (checked by verifying over them).
    const check = verifySignedResponse({
      request: { ...r, headers },
      response: { status: res.status, headers: res.headers as Record<string, string>, body: res.text },
      jwks: rsKey.jwks,
    });
    expect(check.ok && check.base).toContain(`"signature-input";req;key="sig1": ${String(headers['signature-input']).slice(5)}`);
  });

  it('SIG-10 SIG-11 an independent RFC 9421 implementation verifies the signed response', async () => {
    const r = await dpopRequest();
    const headers = { ...r.headers, ...clientA.sign(r) };
    const res = await call(app(), { headers, body: r.body });
    const publicKey = (await import('node:crypto')).createPublicKey({ key: rsKey.publicJwk, format: 'jwk' });
    const verified = await httpbis.verifyMessage(
      {
        keyLookup: async (params) =>
          params.keyid === 'rs-2026' ? { id: 'rs-2026', algs: ['ed25519'], verify: createVerifier(publicKey, 'ed25519') } : null,
        // This library matches component names only (it ignores `;req`): our own check above covers the rest.
        requiredFields: ['@status', 'content-digest', '@method', '@target-uri', 'signature', 'signature-input'],
        requiredParams: ['created', 'keyid', 'tag'],
      },
      { status: res.status, headers: res.headers as Record<string, string> },
      { method: 'POST', url: r.url, headers },
    );
    expect(verified).toBe(true);
  });

  it('SIG-02 accepts a request signed by an independent RFC 9421 implementation', async () => {
    const r = await dpopRequest();
    const digest = clientA.sign(r)['content-digest'] as string;
    const privateKey = (await import('node:crypto')).createPrivateKey({ key: clientA.privateJwk, format: 'jwk' });
    const signed = await httpbis.signMessage(
      {
        key: { id: 'client-a-key', alg: 'ed25519', sign: async (data) => (await import('node:crypto')).sign(null, data, privateKey) },
        name: 'sig1',
        fields: ['@method', '@target-uri', 'authorization', 'dpop', 'content-digest'],
        params: ['created', 'keyid', 'tag'],
        paramValues: { tag: 'fapi-2-request' },
      },
      { method: 'POST', url: r.url, headers: { ...r.headers, 'content-digest': digest } },
    );
    const res = await call(app(), { headers: signed.headers as Record<string, string>, body: r.body });
    expect(res.status).toBe(201);
  });

  it('SIG-03 DEC-02 HMS-13 refuses a request without a signature, telling the client what to sign', async () => {
    const r = await dpopRequest();
    const res = await refused(
      { headers: r.headers, body: r.body },
      `${DPOP_ALGS}, error="invalid_request", error_description="This resource requires a signed request (RFC 9421, tag fapi-2-request)"`,
    );
    expect(res.headers['accept-signature']).toBe(
      'sig1=("@method" "@target-uri" "authorization" "dpop" "content-digest");tag="fapi-2-request"',
    );
    expect(res.json).toEqual({
      error: 'invalid_request',
      error_description: 'This resource requires a signed request (RFC 9421, tag fapi-2-request)',
    });
  });

  it('SIG-03 HMS-12 refuses a signature with one bit flipped', async () => {
    const r = await dpopRequest();
    const signed = clientA.sign(r);
    const bytes = Buffer.from(signed.signature?.slice(6, -1) as string, 'base64');
    bytes[10] = (bytes[10] as number) ^ 1;
    await refused({ headers: { ...r.headers, ...signed, signature: `sig1=:${bytes.toString('base64')}:` }, body: r.body });
  });

  it('SIG-04 HMS-10 refuses a signature tagged otherwise', async () => {
    const r = await dpopRequest();
    await refused(
      { headers: { ...r.headers, ...clientA.sign(r, { tag: 'other' }) }, body: r.body },
      `${DPOP_ALGS}, error="invalid_request", error_description="This resource requires a signed request (RFC 9421, tag fapi-2-request)"`,
    );
  });

  it('SIG-05 refuses a signature that does not cover authorization', async () => {
    const r = await dpopRequest();
    await refused({
      headers: { ...r.headers, ...clientA.sign(r, { components: ['@method', '@target-uri', 'dpop', 'content-digest'] }) },
      body: r.body,
    });
  });

  it('SIG-06 DEC-08 refuses created 61 s ago, in the future, or missing', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const created of [now - 61, now + 30, null]) {
      const r = await dpopRequest();
      await refused({ headers: { ...r.headers, ...clientA.sign(r, { created }) }, body: r.body });
    }
  });

  it('SIG-07 refuses a DPoP request whose signature does not cover dpop', async () => {
    const r = await dpopRequest();
    await refused({
      headers: { ...r.headers, ...clientA.sign(r, { components: ['@method', '@target-uri', 'authorization', 'content-digest'] }) },
      body: r.body,
    });
  });

  it('SIG-08 refuses a body whose content-digest is not covered', async () => {
    const r = await dpopRequest();
    await refused({
      headers: { ...r.headers, ...clientA.sign(r, { components: ['@method', '@target-uri', 'authorization', 'dpop'] }) },
      body: r.body,
    });
  });

  it('SIG-09 refuses a body changed after signing, the headers untouched', async () => {
    const r = await dpopRequest();
    const headers = { ...r.headers, ...clientA.sign(r) };
    await refused({ headers, body: '{"amount":"99.00","currency":"EUR"}' });
  });

  it('SIG-01 refuses a request signed with another client’s registered key', async () => {
    const r = await dpopRequest();
    await refused({ headers: { ...r.headers, ...clientB.sign(r) }, body: r.body });
    // The same signature is good for client B's own token.
    const b = await dpopRequest('/signed', r.body, { client_id: 'client-b' });
    const res = await call(app(), { headers: { ...b.headers, ...clientB.sign(b) }, body: b.body });
    expect(res.status).toBe(201);
  });

  it('HMS-01 refuses a label present in only one of Signature and Signature-Input', async () => {
    const r = await dpopRequest();
    const signed = clientA.sign(r);
    await refused({
      headers: { ...r.headers, ...signed, signature: signed.signature?.replace(/^sig1=/, 'sig2=') as string },
      body: r.body,
    });
  });

  it('HMS-02 picks signatures by policy: a valid one next to an attacker’s passes; the attacker’s alone fails', async () => {
    const r = await dpopRequest();
    const good = clientA.sign(r);
    const evil = attacker.sign(r, { label: 'sig2' });
    const both = {
      'content-digest': good['content-digest'] as string,
      'signature-input': `${evil['signature-input']}, ${good['signature-input']}`,
      signature: `${evil.signature}, ${good.signature}`,
    };
    expect((await call(app(), { headers: { ...r.headers, ...both }, body: r.body })).status).toBe(201);
    const r2 = await dpopRequest();
    await refused({ headers: { ...r2.headers, ...attacker.sign(r2, { keyid: 'client-a-key' }) }, body: r2.body });
  });

  it('HMS-03 refuses an unregistered keyid', async () => {
    const r = await dpopRequest();
    await refused({ headers: { ...r.headers, ...attacker.sign(r) }, body: r.body });
  });

  it('HMS-04 refuses alg="hmac-sha256" keyed with the client’s public key, and an alg that does not fit the key', async () => {
    const r = await dpopRequest();
    const signed = clientA.sign(r, { alg: 'hmac-sha256' });
    await refused({ headers: { ...r.headers, ...signed }, body: r.body });
    const r2 = await dpopRequest();
    await refused({ headers: { ...r2.headers, ...clientA.sign(r2, { alg: 'ecdsa-p256-sha256' }) }, body: r2.body });
  });

  it('HMS-05 refuses a duplicated component, an unknown derived component and an absent field', async () => {
    const required = ['@method', '@target-uri', 'authorization', 'dpop', 'content-digest'];
    // The first, correct, list is the control: a hand-written base is accepted when it is right.
    for (const components of [required, [...required, 'content-digest'], [...required, '@foo'], [...required, 'x-missing']]) {
      const r = await dpopRequest();
      // A signature a correct client cannot make: signed over a base written by hand, with a value
      // for every component; the guard rebuilds the base from the message and refuses.
      const valid = clientA.sign(r);
      const input = `(${components.map((c) => `"${c}"`).join(' ')});created=${Math.floor(Date.now() / 1000)};keyid="client-a-key";tag="fapi-2-request"`;
      const values: Record<string, string> = {
        ...r.headers,
        '@method': 'POST',
        '@target-uri': r.url,
        '@foo': 'x',
        'x-missing': 'v',
        ...valid,
      };
      const rawBase = [...components.map((c) => `"${c}": ${values[c]}`), `"@signature-params": ${input}`].join('\n');
      const headers = { ...r.headers, ...clientA.sign(r, { rawBase: { signatureInput: input, base: rawBase } }) };
      if (components === required) expect((await call(app(), { headers, body: r.body })).status).toBe(201);
      else await refused({ headers, body: r.body });
    }
  });

  it('HMS-11 verifies ed25519, ecdsa-p256-sha256 and rsa-pss-sha512 request signatures', async () => {
    for (const [clientId, signer] of [
      ['client-a', clientA],
      ['client-b', clientB],
      ['client-c', clientC],
    ] as const) {
      const r = await dpopRequest('/signed', undefined, { client_id: clientId });
      const body = '{"amount":"1.00"}';
      const headers = { ...r.headers, 'content-type': 'application/json' };
      const res = await call(app(), { headers: { ...headers, ...signer.sign({ ...r, headers, body }) }, body });
      expect([clientId, res.status]).toEqual([clientId, 201]);
    }
  });

  it('HMS-06 joins a field sent on several lines with ", " in order; the lines swapped do not verify', async () => {
    const r = await dpopRequest();
    const components = ['@method', '@target-uri', 'authorization', 'dpop', 'content-digest', 'x-instruction'];
    const signed = clientA.sign({ ...r, headers: { ...r.headers, 'x-instruction': 'pay, now' } }, { components });
    const lines = (order: string[]) =>
      send(`${app().url}/signed`, {
        method: 'POST',
        headers: { ...r.headers, ...signed, 'x-instruction': order, 'content-length': String(Buffer.byteLength(r.body as string)) },
        body: r.body as string,
      });
    expect((await lines(['pay', 'now'])).status).toBe(201);
    const swapped = await lines(['now', 'pay']);
    expect(swapped.status).toBe(401);
  });

  it('HMS-14 refuses req on a component of a request signature (all else valid)', async () => {
    const r = await dpopRequest();
    const valid = clientA.sign(r);
    // Full FAPI coverage, a good key and a correct signature over this base: only the `req` is wrong.
    const input = `("@method" "@target-uri" "authorization" "dpop" "content-digest" "@method";req);created=${Math.floor(Date.now() / 1000)};keyid="client-a-key";tag="fapi-2-request"`;
    const base = [
      '"@method": POST',
      `"@target-uri": ${r.url}`,
      `"authorization": ${r.headers.authorization}`,
      `"dpop": ${r.headers.dpop}`,
      `"content-digest": ${valid['content-digest']}`,
      '"@method";req: POST',
      `"@signature-params": ${input}`,
    ].join('\n');
    await refused({ headers: { ...r.headers, ...clientA.sign(r, { rawBase: { signatureInput: input, base } }) }, body: r.body });
  });

  it('HMS-07 uses the configured public origin: Host rewritten by a proxy passes, a spoofed X-Forwarded-Host does not', async () => {
    const r = await dpopRequest();
    // The request reaches 127.0.0.1:port (a rewritten Host); it was signed for the public URL.
    const res = await call(app(), { headers: { ...r.headers, ...clientA.sign(r), 'x-forwarded-host': 'evil.example' }, body: r.body });
    expect(res.status).toBe(201);
    const r2 = await dpopRequest();
    const spoofed = clientA.sign({ ...r2, url: 'https://evil.example/signed' });
    await refused({ headers: { ...r2.headers, ...spoofed, 'x-forwarded-host': 'evil.example' }, body: r2.body });
  });

  it('HMS-09 refuses an expired signature', async () => {
    const r = await dpopRequest();
    await refused({ headers: { ...r.headers, ...clientA.sign(r, { expires: Math.floor(Date.now() / 1000) - 1 }) }, body: r.body });
  });

  it('DIG-01 refuses a covered Content-Digest that is not a dictionary of byte sequences', async () => {
    const r = await dpopRequest();
    await refused({ headers: { ...r.headers, ...clientA.sign(r, { contentDigest: 'sha-256=abc' }) }, body: r.body });
  });

  it('DIG-02 refuses a covered digest with only a deprecated algorithm', async () => {
    const r = await dpopRequest();
    const md5 = `md5=:${(await import('node:crypto'))
      .createHash('md5')
      .update(r.body as string)
      .digest('base64')}:`;
    await refused({ headers: { ...r.headers, ...clientA.sign(r, { contentDigest: md5 }) }, body: r.body });
  });

  it('DIG-03 hashes the content as transferred: a gzip body with the digest of the compressed bytes passes, of the plain bytes fails', async () => {
    const plain = Buffer.from('{"amount":"10.00","currency":"EUR"}');
    const zipped = gzipSync(plain);
    const r = await dpopRequest('/signed', zipped);
    const headers = { ...r.headers, 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' };
    const ok = await call(app(), { headers: { ...headers, ...clientA.sign({ ...r, headers }) }, body: zipped });
    expect(ok.status).toBe(201);
    // Express's parser inflates (it reads the stream after the guard; Nest on Express uses it too);
    // the others hand over the bytes.
    const inflates = framework === 'express' || framework === 'nestjs';
    expect(ok.json.received).toEqual({ bytes: inflates ? plain.length : zipped.length });
    const r2 = await dpopRequest('/signed', zipped);
    const headers2 = { ...r2.headers, 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' };
    const overPlain = clientA.sign({ ...r2, headers: headers2, body: plain });
    await refused({ headers: { ...headers2, ...overPlain }, body: zipped });
  });

  it('DIG-04 ignores unknown digest members and refuses a field with none it supports', async () => {
    const r = await dpopRequest();
    const digest = clientA.sign(r)['content-digest'] as string;
    const res = await call(app(), {
      headers: { ...r.headers, ...clientA.sign(r, { contentDigest: `${digest}, foo=:AAAA:` }) },
      body: r.body,
    });
    expect(res.status).toBe(201);
    const r2 = await dpopRequest();
    await refused({ headers: { ...r2.headers, ...clientA.sign(r2, { contentDigest: 'foo=:AAAA:' }) }, body: r2.body });
  });

  it('DEC-07 a request without content octets needs no content-digest', async () => {
    const r = await dpopRequest('/signed', '');
    const headers = { ...r.headers, ...clientA.sign({ ...r, body: undefined }) };
    expect(headers['signature-input']).not.toContain('content-digest');
    const res = await call(app(), { headers, body: '' });
    expect(res.status).toBe(201);
    // No request digest to bind, no response digest missing: the response is still signed and verifies.
    expect(
      verifySignedResponse({
        request: { ...r, headers },
        response: { status: 201, headers: res.headers as Record<string, string>, body: res.text },
        jwks: rsKey.jwks,
      }).ok,
    ).toBe(true);
  });

  it('signedRequest optional: an unsigned request passes, a bad signature does not', async () => {
    const r = await dpopRequest('/optional');
    const unsigned = await call(app(), { path: '/optional', headers: r.headers, body: r.body });
    expect(unsigned.status).toBe(201);
    expect(unsigned.json.signature).toBeNull();
    const r2 = await dpopRequest('/optional');
    const signed = await call(app(), { path: '/optional', headers: { ...r2.headers, ...clientA.sign(r2) }, body: r2.body });
    expect(signed.json.signature).toBe('client-a-key');
    const r3 = await dpopRequest('/optional');
    const res = await call(app(), { path: '/optional', headers: { ...r3.headers, ...clientA.sign(r3) }, body: '{"amount":"1"}' });
    expect(res.status).toBe(401);
  });

  it('SIG-15 publishes the response-verification keys and names them in the metadata', async () => {
    const metadata = await send(`${app().url}/.well-known/oauth-protected-resource`);
    expect(metadata.json.jwks_uri).toBe(`${PUBLIC}/.well-known/rs-jwks.json`);
    expect(metadata.json.resource_signing_alg_values_supported).toEqual(['EdDSA']);
    const jwks = await send(`${app().url}/.well-known/rs-jwks.json`);
    expect(jwks.status).toBe(200);
    expect(jwks.json).toEqual({ keys: [rsKey.publicJwk] });
    expect(JSON.stringify(jwks.json)).not.toContain('"d"');
  });

  it('HMS-08 keeps an audit record of the signed request and of the signed response', async () => {
    records.length = 0;
    const r = await dpopRequest();
    const headers = { ...r.headers, ...clientA.sign(r) };
    const res = await call(app(), { headers, body: r.body });
    expect(res.status).toBe(201);
    const [request, response] = records;
    expect(request).toMatchObject({
      direction: 'request',
      clientId: 'client-a',
      keyid: 'client-a-key',
      algorithm: 'ed25519',
      method: 'POST',
      url: r.url,
      signatureInput: headers['signature-input'],
      signature: headers.signature,
      contentDigest: headers['content-digest'],
    });
    expect(request?.base.split('\n').at(-1)).toBe(`"@signature-params": ${String(headers['signature-input']).slice(5)}`);
    expect(response).toMatchObject({
      direction: 'response',
      status: 201,
      keyid: 'rs-2026',
      signatureInput: res.headers['signature-input'],
      signature: res.headers.signature,
      contentDigest: res.headers['content-digest'],
      request: { label: 'sig1', keyid: 'client-a-key', signature: headers.signature },
    });
  });

  it('refuses with 503 when the audit hook cannot keep the proof of a signed request', async () => {
    auditFails = true;
    try {
      const r = await dpopRequest();
      const res = await call(app(), { headers: { ...r.headers, ...clientA.sign(r) }, body: r.body });
      expect(res.status).toBe(503);
    } finally {
      auditFails = false;
    }
  });
});

describe('Express: where the body bytes come from', () => {
  let running: RunningApp;
  let keysUp = true;
  let keysServer: Server;
  beforeAll(async () => {
    keysServer = createServer((_req, res) => {
      res.statusCode = keysUp ? 200 : 503;
      res.setHeader('content-type', 'application/json');
      res.end(keysUp ? JSON.stringify(clientB.jwks) : '');
    });
    await new Promise<void>((resolve) => keysServer.listen(0, '127.0.0.1', resolve));
    const jwksUri = `http://127.0.0.1:${(keysServer.address() as AddressInfo).port}/jwks`;
    const policy = { scopes: ['payments:write'], signedRequest: 'required' } as const;
    running = await startExpressApp(
      {
        issuer: as.issuer,
        audience: AUDIENCE,
        publicUrl: PUBLIC,
        messageSigning: {
          clients: { 'client-a': { jwks: clientA.jwks }, 'client-b': { jwksUri } },
          maxBodyBytes: 64,
          cooldownMs: 200,
          responseKey: rsKey.privateJwk,
        },
      },
      (app, fapi) => {
        // protect() reads the unread body itself; the route's own parser still gets it afterwards.
        app.post('/late', fapi.protect(policy), express.json(), (req, res) => void res.status(201).json({ received: req.body }));
        // A parser ran first without rawBody(): the bytes are gone, and the guard says so.
        app.post('/early', express.json(), fapi.protect(policy), (_req, res) => void res.status(201).end());
        // Responses that cannot be signed are never sent unsigned.
        const signs = { scopes: ['payments:write'], signResponse: true } as const;
        app.post('/unsignable', fapi.protect(signs), (_req, res) => {
          res.setHeader('content-type', 'application/json; note=caf\u00e9'); // RFC 9421 §2.5: no non-ASCII values
          res.json({ ok: true });
        });
        app.post('/flushed', fapi.protect(signs), (_req, res) => {
          res.flushHeaders();
          res.json({ ok: true });
        });
      },
    );
  });
  afterAll(async () => {
    await running.close();
    await new Promise<void>((resolve) => keysServer.close(() => resolve()));
  });

  const post = (path: string, r: Awaited<ReturnType<typeof dpopRequest>>, headers: Record<string, string>) =>
    send(`${running.url}${path}`, {
      method: 'POST',
      headers: { ...r.headers, ...headers, 'content-length': String(Buffer.byteLength(r.body ?? '')) },
      body: r.body as string,
    });

  it('protect() reads the body itself and leaves it for a parser after it', async () => {
    const r = await dpopRequest('/late');
    const res = await post('/late', r, clientA.sign(r));
    expect(res.status).toBe(201);
    expect(res.json).toEqual({ received: { amount: '10.00', currency: 'EUR' } });
  });

  it('DEC-07 a body that a parser consumed before the guard is never treated as no body: 500, not a pass', async () => {
    const r = await dpopRequest('/early');
    const res = await post('/early', r, clientA.sign(r));
    expect(res.status).toBe(500);
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(running.decisions.at(-1)).toMatchObject({ reason: 'body_unavailable', detail: expect.stringContaining('rawBody()') });
  });

  it('never sends an unsigned answer on a signResponse route: a value it cannot sign gives 500; flushHeaders() does not get around signing', async () => {
    const r = await dpopRequest('/unsignable', undefined);
    const res = await send(`${running.url}/unsignable`, { method: 'POST', headers: r.headers });
    expect(res.status).toBe(500);
    expect(res.headers.signature).toBeUndefined();
    expect(res.text).not.toContain('"ok"');
    // flushHeaders() goes through writeHead, which is held back too: the answer is still signed.
    const f = await dpopRequest('/flushed', undefined);
    const flushed = await send(`${running.url}/flushed`, { method: 'POST', headers: f.headers });
    expect(flushed.status).toBe(200);
    const check = verifySignedResponse({
      request: { ...f, headers: f.headers },
      response: { status: 200, headers: flushed.headers as Record<string, string>, body: flushed.text },
      jwks: rsKey.jwks,
    });
    expect(check.ok).toBe(true);
  });

  it('DIG-04 bounds the body it reads: over maxBodyBytes → 413', async () => {
    const r = await dpopRequest('/late', JSON.stringify({ memo: 'x'.repeat(100) }));
    const res = await post('/late', r, clientA.sign(r));
    expect(res.status).toBe(413);
  });

  it('DEC-09 a client whose JWKS URL is down gives 503, and recovers when it is back', async () => {
    keysUp = false;
    const r = await dpopRequest('/late', undefined, { client_id: 'client-b' });
    const body = '{"a":1}';
    const down = await send(`${running.url}/late`, {
      method: 'POST',
      headers: { ...r.headers, 'content-type': 'application/json', ...clientB.sign({ ...r, body }) },
      body,
    });
    expect(down.status).toBe(503);
    expect(down.json).toEqual({
      error: 'temporarily_unavailable',
      error_description: "The client's signing keys cannot be fetched; try again later",
    });
    keysUp = true;
    // Within the cool-down (200 ms here) the host is not asked again: still 503.
    const r2 = await dpopRequest('/late', undefined, { client_id: 'client-b' });
    const soon = await send(`${running.url}/late`, {
      method: 'POST',
      headers: { ...r2.headers, 'content-type': 'application/json', ...clientB.sign({ ...r2, body }) },
      body,
    });
    expect(soon.status).toBe(503);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const r3 = await dpopRequest('/late', undefined, { client_id: 'client-b' });
    const later = await send(`${running.url}/late`, {
      method: 'POST',
      headers: { ...r3.headers, 'content-type': 'application/json', ...clientB.sign({ ...r3, body }) },
      body,
    });
    expect(later.status).toBe(201);
  });
});

/**
 * Issue 24, "not yet attacked": response signing (FAPI 2.0 Message Signing §5.6.2.1, RFC 9421)
 * on answers without content — HEAD, 204, 304 — and on error answers the framework writes itself,
 * on every adapter; and signed requests whose body is content-coded (gzip) or chunked, where
 * `Content-Digest` must be over the bytes as sent (RFC 9530 §2), not over what a parser decodes.
 */
import { gzipSync } from 'node:zlib';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { DpopClient, MessageSigningClient, MockIssuer, verifySignedResponse } from '@fapi-guard/testing';
import { Hono } from 'hono';
import { compress } from 'hono/compress';
import { FRAMEWORKS, type Framework, type StartedApp, serveHono, startApps } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const signer = MessageSigningClient.generate('ed25519', 'client-a-key');
const rsKey = MessageSigningClient.generate('ecdsa-p256-sha256', 'rs-2026');

let as: MockIssuer;
let dpop: DpopClient;
let apps: Map<Framework, StartedApp>;
beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  dpop = await DpopClient.create('ES256');
  apps = await startApps({
    issuer: as.issuer,
    audience: AUDIENCE,
    publicUrl: AUDIENCE,
    interactionId: false,
    messageSigning: { clients: { 'client-a': { jwks: signer.jwks } }, responseKey: rsKey.privateJwk },
  });
});
afterAll(async () => {
  for (const app of apps.values()) await app.close();
  await as.stop();
});

/** A fresh DPoP-bound token and proof for `method` on `path`. */
async function credentials(method: string, path: string): Promise<Record<string, string>> {
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt });
  return { authorization: `DPoP ${token}`, dpop: await dpop.proof({ htm: method, htu: `${AUDIENCE}${path}`, accessToken: token }) };
}

describe.each(FRAMEWORKS)('III.attack signing on %s', (framework) => {
  const url = () => (apps.get(framework) as StartedApp).url;

  /** Calls `/answer`, checks the answer is signed over what was sent, and returns it. */
  async function signedAnswer(method: 'GET' | 'HEAD', status: number) {
    const path = `/answer?status=${status}`;
    const headers = await credentials(method, path);
    const res = await send(`${url()}${path}`, { method, headers });
    const check = verifySignedResponse({
      request: { method, url: `${AUDIENCE}${path}`, headers },
      response: { status: res.status, headers: res.headers as Record<string, string>, body: res.text },
      jwks: rsKey.jwks,
    });
    return { res, check };
  }

  it.each([204, 304])('III.attack signing SIG-13 a %i answer is signed, with no Content-Digest (it has no content)', async (status) => {
    const { res, check } = await signedAnswer('GET', status);
    expect(res.status).toBe(status);
    expect(res.text).toBe('');
    expect(check).toMatchObject({ ok: true, keyid: 'rs-2026' });
    expect(res.headers['content-digest']).toBeUndefined();
  });

  it('III.attack signing SIG-13 HEAD is signed without a digest of the body it does not send; GET digests that body', async () => {
    const head = await signedAnswer('HEAD', 200);
    expect(head.res.status).toBe(200);
    expect(head.res.text).toBe('');
    expect(head.check).toMatchObject({ ok: true });
    expect(head.res.headers['content-digest']).toBeUndefined();
    const get = await signedAnswer('GET', 200);
    expect(get.res.json).toEqual({ status: 200 });
    expect(get.check).toMatchObject({ ok: true, components: expect.arrayContaining(['"content-digest"']) });
  });

  it('III.attack signing SIG-13 a signed answer tells intermediaries not to re-code it (Cache-Control: no-transform)', async () => {
    for (const status of [200, 204, 404]) {
      expect((await signedAnswer('GET', status)).res.headers['cache-control']).toMatch(/(^|,)\s*no-transform\s*(,|$)/);
    }
  });

  it.each([404, 500])(
    'III.attack signing SIG-10 SIG-13 an error answer (%i, 500 from the framework error handler) is signed, its body digested',
    async (status) => {
      const { res, check } = await signedAnswer('GET', status);
      expect(res.status).toBe(status);
      expect(res.text.length).toBeGreaterThan(0);
      expect(check).toMatchObject({ ok: true, components: expect.arrayContaining(['"content-digest"']) });
    },
  );

  /** A signed POST to `/signed` of `wire` (the bytes sent), with `Content-Digest` over `digested`. */
  async function signedPost(wire: Buffer, digested: Buffer, extra: Record<string, string>, chunks?: Buffer[]) {
    const headers = { ...(await credentials('POST', '/signed')), 'content-type': 'application/json', ...extra };
    const signed = signer.sign({ method: 'POST', url: `${AUDIENCE}/signed`, headers, body: digested });
    return send(`${url()}/signed`, { method: 'POST', headers: { ...headers, ...signed }, body: wire, chunks });
  }

  const json = Buffer.from(JSON.stringify({ amount: '10.00', currency: 'EUR', memo: 'x'.repeat(300) }));
  const gzipped = gzipSync(json);

  it('III.attack signing DIG-03 SIG-09 a gzip body: the digest is over the coded bytes as sent, never the decoded ones', async () => {
    const coding = { 'content-encoding': 'gzip' };
    // Over the decoded JSON (what a parser sees after inflating): refused by the guard (Fastify's
    // parser, which does not inflate, refuses the gzip bytes first: 400).
    const decoded = await signedPost(gzipped, json, coding);
    expect(decoded.status).toBe(framework.endsWith('fastify') ? 400 : 401);
    if (decoded.status === 401) expect(String(decoded.headers['www-authenticate'])).toContain('invalid_request');
    // Over the bytes sent: the guard lets it through (the app's parser decides about gzip).
    const sent = await signedPost(gzipped, gzipped, coding);
    expect(sent.status).not.toBe(401);
    if (sent.status === 201) expect(sent.json).toMatchObject({ signature: 'client-a-key', received: { currency: 'EUR' } });
  });

  it('III.attack signing DIG-03 SIG-09 a chunked body in pieces: the digest is over the content, not the chunk framing', async () => {
    const pieces = [json.subarray(0, 7), json.subarray(7, 200), json.subarray(200)];
    const chunked = { 'transfer-encoding': 'chunked' };
    const ok = await signedPost(json, json, chunked, pieces);
    expect(ok.status).toBe(201);
    expect(ok.json).toMatchObject({ signature: 'client-a-key', received: { currency: 'EUR' } });
    const framing = Buffer.concat(pieces.flatMap((p) => [Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]));
    const overFraming = await signedPost(json, Buffer.concat([framing, Buffer.from('0\r\n\r\n')]), chunked, pieces);
    expect(overFraming.status).toBe(401);
    // One byte more in a chunk than was signed.
    const longer = await signedPost(Buffer.concat([json, Buffer.from(' ')]), json, chunked, [...pieces, Buffer.from(' ')]);
    expect(longer.status).toBe(401);
  });
});

describe('III.attack signing: compression middleware around a signed route', () => {
  it('III.attack signing SIG-13 hono/compress mounted app-wide leaves a signed answer as signed: its Content-Digest matches the bytes sent', async () => {
    const fapi = honoGuard({
      issuer: as.issuer,
      audience: AUDIENCE,
      publicUrl: AUDIENCE,
      messageSigning: { clients: {}, responseKey: rsKey.privateJwk },
    });
    const app = new Hono();
    app.use(compress());
    app.get('/statement', fapi.protect({ scopes: ['payments:write'], signResponse: true }), (c) => c.json({ lines: 'x'.repeat(4096) }));
    // An unsigned route is still compressed: the directive is the signed answer's own.
    app.get('/public', (c) => c.json({ lines: 'x'.repeat(4096) }));
    const served = await serveHono(app);
    try {
      const headers = { ...(await credentials('GET', '/statement')), 'accept-encoding': 'gzip' };
      const res = await send(`${served.url}/statement`, { headers });
      expect(res.status).toBe(200);
      expect(res.headers['content-encoding']).toBeUndefined();
      const check = verifySignedResponse({
        request: { method: 'GET', url: `${AUDIENCE}/statement`, headers },
        response: { status: res.status, headers: res.headers as Record<string, string>, body: res.text },
        jwks: rsKey.jwks,
      });
      expect(check).toMatchObject({ ok: true, components: expect.arrayContaining(['"content-digest"']) });
      const open = await send(`${served.url}/public`, { headers: { 'accept-encoding': 'gzip' } });
      expect(open.headers['content-encoding']).toBe('gzip');
    } finally {
      await served.close();
    }
  });
});

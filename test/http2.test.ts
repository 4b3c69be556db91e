/**
 * HTTP/2: the authority comes from `:authority` when there is no `Host` (RFC 9113 §8.3.1), over
 * TLS with client certificates (h2) and cleartext (h2c), with one and with several `publicUrl`
 * origins, on the adapters whose framework serves HTTP/2: Fastify (`http2: true`) and Koa on
 * Node's http2 compatibility API.
 */
import { connect, createSecureServer, createServer, type Http2Server, type OutgoingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fapiTlsOptions, type GuardOptions } from '@fapi-guard/core';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { createCertificate, DpopClient, MockIssuer, type TestCertificate } from '@fapi-guard/testing';
import Fastify, { type FastifyInstance } from 'fastify';
import Koa from 'koa';

const AUDIENCE = 'https://payments.example';
type H2Framework = 'koa' | 'fastify';

interface H2App {
  port: number;
  close(): Promise<void>;
}

async function startH2(framework: H2Framework, options: GuardOptions, tls: TestCertificate | undefined): Promise<H2App> {
  const secure = tls && fapiTlsOptions({ cert: tls.cert, key: tls.key });
  if (framework === 'fastify') {
    const app = (secure ? Fastify({ http2: true, https: secure }) : Fastify({ http2: true })) as unknown as FastifyInstance;
    await app.register(fastifyPlugin, options);
    app.get('/accounts', { config: { fapi: routePolicy({ scopes: ['accounts'] }) } }, async (request) => ({
      binding: request.auth?.binding,
    }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
  }
  const fapi = koaGuard(options);
  const app = new Koa();
  app.use(fapi.protect({ scopes: ['accounts'] }));
  app.use((ctx) => {
    ctx.body = { binding: ctx.state.auth?.binding };
  });
  const server: Http2Server = secure ? createSecureServer(secure, app.callback()) : createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** One HTTP/2 request; `authority` is the `:authority` the client sends. */
function h2get(
  origin: string,
  headers: OutgoingHttpHeaders,
  tls?: { ca: string; cert?: string; key?: string },
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const session = connect(origin, { ...tls, rejectUnauthorized: tls !== undefined });
    session.on('error', reject);
    const req = session.request({ ':method': 'GET', ':path': '/accounts', ...headers });
    let status = 0;
    let text = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      session.close();
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON
      }
      resolve({ status, body });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.close());
  });
}

let issuer: MockIssuer;
let server: TestCertificate;
let client: TestCertificate;
let dpop: DpopClient;
beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: AUDIENCE });
  server = await createCertificate({ subject: 'CN=localhost', hosts: ['localhost', '127.0.0.1'] });
  client = await createCertificate({ subject: 'CN=tpp-client' });
  dpop = await DpopClient.create('ES256');
});
afterAll(() => issuer.stop());

describe.each(['koa', 'fastify'] as const)('HTTP/2 on %s', (framework) => {
  describe.each([
    ['h2 (TLS, client certificates)', true],
    ['h2c', false],
  ] as const)('%s', (_label, secure) => {
    let single: H2App;
    let multi: H2App;
    const scheme = secure ? 'https' : 'http';
    const ORIGINS = ['https://api.bank.example', 'https://api2.bank.example'];
    beforeAll(async () => {
      const base = { issuer: issuer.issuer, audience: AUDIENCE, mtls: secure };
      single = await startH2(framework, { ...base, publicUrl: ORIGINS[0] }, secure ? server : undefined);
      multi = await startH2(framework, { ...base, publicUrl: ORIGINS }, secure ? server : undefined);
    });
    afterAll(async () => {
      await single?.close();
      await multi?.close();
    });

    const tlsFor = (cert?: TestCertificate) =>
      secure ? { ca: server.cert, ...(cert ? { cert: cert.cert, key: cert.key } : {}) } : undefined;
    const url = (app: H2App) => `${scheme}://127.0.0.1:${app.port}`;
    const dpopHeaders = async (htuOrigin: string, extra: OutgoingHttpHeaders = {}) => {
      const token = await issuer.mint({ scope: 'accounts', jkt: dpop.jkt });
      return {
        authorization: `DPoP ${token}`,
        dpop: await dpop.proof({ htm: 'GET', htu: `${htuOrigin}/accounts`, accessToken: token }),
        ...extra,
      };
    };

    it('DPoP with one publicUrl: htu on it whatever :authority says', async () => {
      expect((await h2get(url(single), await dpopHeaders(ORIGINS[0] as string), tlsFor())).status).toBe(200);
      expect((await h2get(url(single), await dpopHeaders(`${scheme}://127.0.0.1:${single.port}`), tlsFor())).status).toBe(401);
    });

    it('DPoP with several publicUrl origins: :authority (no Host) picks the origin', async () => {
      for (const origin of ORIGINS) {
        const authority = new URL(origin).host;
        const other = ORIGINS.find((o) => o !== origin) as string;
        expect((await h2get(url(multi), await dpopHeaders(origin, { ':authority': authority }), tlsFor())).status).toBe(200);
        expect((await h2get(url(multi), await dpopHeaders(other, { ':authority': authority }), tlsFor())).status).toBe(401);
      }
      // An :authority that is none of the origins.
      expect((await h2get(url(multi), await dpopHeaders(ORIGINS[0] as string, { ':authority': 'evil.example' }), tlsFor())).status).toBe(
        400,
      );
    });

    it('15.6 Host-chosen origin: a Host that disagrees with :authority is 400 (RFC 9113 §8.3.1)', async () => {
      for (const app of [single, multi]) {
        const headers = await dpopHeaders(ORIGINS[0] as string, { ':authority': 'api.bank.example', host: 'api2.bank.example' });
        expect((await h2get(url(app), headers, tlsFor())).status).toBe(400);
      }
      // Agreeing Host and :authority (default port written out) are one authority.
      const same = await dpopHeaders(ORIGINS[1] as string, { ':authority': 'api2.bank.example', host: 'API2.bank.example:443' });
      expect((await h2get(url(multi), same, tlsFor())).status).toBe(secure ? 200 : 400);
    });

    if (secure) {
      it('MTLS-01 a certificate-bound token over h2 with the certificate of the handshake; another certificate fails', async () => {
        const token = await issuer.mint({ scope: 'accounts', x5t: client.x5t });
        const headers = { authorization: `Bearer ${token}`, ':authority': 'api2.bank.example' };
        const ok = await h2get(url(multi), headers, tlsFor(client));
        expect(ok.status).toBe(200);
        expect(ok.body).toMatchObject({ binding: { type: 'mtls', x5t: client.x5t } });
        expect((await h2get(url(multi), headers, tlsFor(await createCertificate()))).status).toBe(401);
      });
    }
  });
});

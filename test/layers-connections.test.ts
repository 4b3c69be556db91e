/**
 * The mark "authenticated by an earlier layer" never outlives its request (issue 25 §1): a
 * keep-alive connection carrying an authenticated request and then one without credentials,
 * and HTTP/2 streams of one session side by side, on layered apps. The second request is
 * refused, as on a fresh connection.
 */
import { Agent, request as httpRequest } from 'node:http';
import { connect, createServer, type Http2Server, type OutgoingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import Fastify, { type FastifyInstance } from 'fastify';
import Koa from 'koa';
import { type LayeredApp, startLayeredApp } from './support/layered-apps';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let client: DpopClient;
const options = (): GuardOptions => ({ issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE });

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

async function credentials(path: string, scope: string): Promise<Record<string, string>> {
  const token = await as.mint({ scope, jkt: client.jkt });
  return { authorization: `DPoP ${token}`, dpop: await client.proof({ htm: 'GET', htu: `${AUDIENCE}${path}`, accessToken: token }) };
}

/** GET over `agent`; `reused` tells whether the request went over an earlier request's socket. */
function get(url: string, agent: Agent, headers: Record<string, string> = {}): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent, headers, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe.each(['express', 'koa', 'fastify', 'hono', 'nestjs', 'nestjs-fastify'] as const)('%s: keep-alive', (framework) => {
  let app: LayeredApp;
  beforeAll(async () => {
    app = await startLayeredApp(framework, options());
  });
  afterAll(() => app.close());

  it('BEARER-03 a request without credentials after an authenticated one on the same connection is refused', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const path = '/api/r/t';
      expect(await get(`${app.url}${path}`, agent, await credentials(path, 'g r t'))).toEqual({ status: 200, reused: false });
      expect(await get(`${app.url}${path}`, agent)).toEqual({ status: 401, reused: true });
      // And one with a token lacking the route's scope: the route's layer still checks it.
      expect(await get(`${app.url}${path}`, agent, await credentials(path, 'g r'))).toEqual({ status: 403, reused: true });
    } finally {
      agent.destroy();
    }
  });
});

/** Two layers on an HTTP/2 (h2c) server: app-wide, then the route's scope. */
async function startH2(framework: 'koa' | 'fastify'): Promise<{ port: number; close(): Promise<void> }> {
  if (framework === 'fastify') {
    const app = Fastify({ http2: true }) as unknown as FastifyInstance;
    await app.register(fastifyPlugin, options());
    app.addHook('preHandler', app.fapi.protect());
    app.get('/accounts', { config: { fapi: routePolicy({ scopes: ['accounts'] }) } }, async () => ({ ok: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
  }
  const fapi = koaGuard(options());
  const app = new Koa();
  app.use(fapi.protect());
  app.use(fapi.requireScopes('accounts'));
  app.use((ctx) => {
    ctx.body = { ok: true };
  });
  const server: Http2Server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe.each(['koa', 'fastify'] as const)('%s: HTTP/2 streams of one session', (framework) => {
  let app: { port: number; close(): Promise<void> };
  beforeAll(async () => {
    app = await startH2(framework);
  });
  afterAll(() => app.close());

  it('BEARER-03 streams side by side: the authenticated one passes, the one without credentials is refused', async () => {
    const session = connect(`http://127.0.0.1:${app.port}`);
    try {
      const stream = (headers: OutgoingHttpHeaders) =>
        new Promise<number>((resolve, reject) => {
          const req = session.request({ ':method': 'GET', ':path': '/accounts', ':authority': 'rs.example.com', ...headers });
          let status = 0;
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('data', () => undefined);
          req.on('end', () => resolve(status));
          req.on('error', reject);
        });
      const valid = await credentials('/accounts', 'accounts');
      expect(await Promise.all([stream(valid), stream({}), stream({})])).toEqual([200, 401, 401]);
      expect(await stream({})).toBe(401);
      expect(await stream(await credentials('/accounts', 'other'))).toBe(403);
    } finally {
      session.close();
    }
  });
});

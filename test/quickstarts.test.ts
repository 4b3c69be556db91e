/**
 * The quickstarts of the documentation site (docs/guides/quickstart.md shows docs/snippets/*-quickstart.ts
 * byte for byte), run as they are: configured by FAPI_ISSUER / FAPI_AUDIENCE, on real HTTP
 * servers, with DPoP-bound tokens from the mock issuer. NestJS and Hono are run by their guide's
 * own test files (docs/snippets/test).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';

const API = 'https://api.bank.example';
let issuer: MockIssuer;
let client: DpopClient;
const servers: { close(): unknown }[] = [];

beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: API });
  process.env.FAPI_ISSUER = issuer.issuer;
  process.env.FAPI_AUDIENCE = API;
  client = await DpopClient.create();
});
afterAll(async () => {
  for (const server of servers) await server.close();
  await issuer.stop();
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({ close: () => new Promise((resolve) => server.close(resolve)) });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const quickstarts: [string, () => Promise<string>][] = [
  ['express', async () => listen((await import('../docs/snippets/express-quickstart.js')).app.listen(0, '127.0.0.1'))],
  [
    'koa',
    async () => {
      const { createServer } = await import('node:http');
      return listen(createServer((await import('../docs/snippets/koa-quickstart.js')).app.callback()));
    },
  ],
  [
    'fastify',
    async () => {
      const app = await (await import('../docs/snippets/fastify-quickstart.js')).buildApp();
      servers.push({ close: () => app.close() });
      return app.listen({ port: 0, host: '127.0.0.1' });
    },
  ],
];

describe('the express quickstart, layered', () => {
  it('DPOP-23 serves /health without a token and checks a token once across the app-wide and the route layer', async () => {
    const url = await listen((await import('../docs/snippets/express-quickstart.js')).app.listen(0, '127.0.0.1'));
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const token = await issuer.mint({ scope: 'accounts', jkt: client.jkt });
    // Two layers, one authentication: the proof is not refused as already used by the second.
    for (let i = 0; i < 3; i++) expect((await client.request(`${url}/accounts`, { accessToken: token, publicUrl: API })).status).toBe(200);
  });
});

describe.each(quickstarts)('the %s quickstart', (_name, start) => {
  let url: string;
  beforeAll(async () => {
    url = await start();
  });

  it('answers 200 to a DPoP-bound token with the scope', async () => {
    const token = await issuer.mint({ scope: 'accounts', jkt: client.jkt });
    const res = await client.request(`${url}/accounts`, { accessToken: token, publicUrl: API });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ client: 'client-1', subject: 'user-1' });
  });

  it('FAPI-RS-07 answers 401 with the DPoP challenge without a token, and 403 without the scope', async () => {
    const res = await fetch(`${url}/accounts`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^DPoP algs="ES256 PS256 EdDSA"/);
    const narrow = await issuer.mint({ scope: 'payments:read', jkt: client.jkt });
    expect((await client.request(`${url}/accounts`, { accessToken: narrow, publicUrl: API })).status).toBe(403);
  });
});

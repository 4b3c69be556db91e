// Testing a NestJS API (docs/snippets/nestjs-quickstart.ts) with Jest: a real HTTP server, tokens
// from the mock issuer, DPoP proofs from the test client. With Vitest, add
// `import { afterAll, beforeAll, expect, it } from 'vitest';` and run it as it is.
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

const API = 'https://api.bank.example'; // FAPI_AUDIENCE: the identifier (and origin) clients use
let issuer: MockIssuer;
let app: INestApplication;
let url: string;
let client: DpopClient;

beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: API });
  process.env.FAPI_ISSUER = issuer.issuer;
  process.env.FAPI_AUDIENCE = API;
  const { AppModule } = await import('../nestjs-quickstart.js'); // reads the variables
  app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  url = await app.getUrl();
  client = await DpopClient.create();
});
afterAll(async () => {
  await app.close();
  await issuer.stop();
});

it('answers 200 to a DPoP-bound token with the scope', async () => {
  const token = await issuer.mint({ scope: 'accounts', jkt: client.jkt });
  const res = await client.request(`${url}/accounts`, { accessToken: token, publicUrl: API });
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ client: 'client-1', subject: 'user-1' });
});

it('answers 401 with the DPoP challenge without a token', async () => {
  const res = await fetch(`${url}/accounts`);
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toMatch(/^DPoP algs="ES256 PS256 EdDSA"/);
});

it('answers 403 insufficient_scope to a token without the scope', async () => {
  const token = await issuer.mint({ scope: 'payments:read', jkt: client.jkt });
  const res = await client.request(`${url}/accounts`, { accessToken: token, publicUrl: API });
  expect(res.status).toBe(403);
  expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
});

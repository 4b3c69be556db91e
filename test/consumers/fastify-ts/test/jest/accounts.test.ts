import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/app';

const api = 'https://api.bank.example'; // audience, and the origin clients address
let issuer: MockIssuer;
let app: FastifyInstance;
beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: api });
  app = await createApp({ issuer: issuer.issuer, audience: api, publicUrl: api });
});
afterAll(() => Promise.all([issuer.stop(), app.close()]));

async function getAccounts(scope: string) {
  const client = await DpopClient.create();
  const token = await issuer.mint({ scope, jkt: client.jkt });
  const proof = await client.proof({ htm: 'GET', htu: `${api}/accounts`, accessToken: token });
  return app.inject({ url: '/accounts', headers: { authorization: `DPoP ${token}`, dpop: proof } });
}

it('serves accounts to a DPoP-bound token with the scope', async () => {
  const res = await getAccounts('accounts');
  expect(res.statusCode).toBe(200);
  expect(res.json()).toEqual({ subject: 'user-1' });
});

it('refuses a token without the scope', async () => {
  const res = await getAccounts('payments');
  expect(res.statusCode).toBe(403);
  expect(res.headers['www-authenticate']).toMatch(/error="insufficient_scope"/);
});

import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import request from 'supertest';
import { createApp } from '../../src/app.js';

const api = 'https://api.bank.example'; // audience, and the origin clients address
let issuer: MockIssuer;
let app: ReturnType<typeof createApp>;
beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: api });
  app = createApp({ issuer: issuer.issuer, audience: api, publicUrl: api });
});
afterAll(() => issuer.stop());

it('serves accounts to a DPoP-bound token', async () => {
  const client = await DpopClient.create();
  const token = await issuer.mint({ scope: 'accounts', jkt: client.jkt });
  const proof = await client.proof({ htm: 'GET', htu: `${api}/accounts`, accessToken: token });
  const res = await request(app).get('/accounts').set('authorization', `DPoP ${token}`).set('dpop', proof);
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ subject: 'user-1' });
});

it('refuses a proof made for another URL', async () => {
  const client = await DpopClient.create();
  const token = await issuer.mint({ scope: 'accounts', jkt: client.jkt });
  const proof = await client.proof({ htm: 'GET', htu: `${api}/accounts`, accessToken: token, fault: 'wrong-htu' });
  const res = await request(app).get('/accounts').set('authorization', `DPoP ${token}`).set('dpop', proof);
  expect(res.status).toBe(401);
  expect(res.headers['www-authenticate']).toMatch(/error="invalid_dpop_proof"/);
});

const { DpopClient, MockIssuer } = require('@fapi-guard/testing');
const request = require('supertest');
const { createApp } = require('../../src/app.js');

const api = 'https://api.bank.example'; // audience, and the origin clients address
/** @type {MockIssuer} */ let issuer;
/** @type {import('node:http').Server} */ let server;
beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: api });
  server = createApp({ issuer: issuer.issuer, audience: api, publicUrl: api }).listen(0, '127.0.0.1');
});
afterAll(() => Promise.all([issuer.stop(), new Promise((done) => server.close(done))]));

it('serves accounts to a DPoP-bound token, once per proof', async () => {
  const client = await DpopClient.create();
  const token = await issuer.mint({ scope: 'accounts', jkt: client.jkt });
  const proof = await client.proof({ htm: 'GET', htu: `${api}/accounts`, accessToken: token });
  const ok = await request(server).get('/accounts').set('authorization', `DPoP ${token}`).set('dpop', proof);
  expect(ok.status).toBe(200);
  expect(ok.body).toEqual({ subject: 'user-1' });

  const replay = await request(server).get('/accounts').set('authorization', `DPoP ${token}`).set('dpop', proof);
  expect(replay.status).toBe(401);
  expect(replay.headers['www-authenticate']).toMatch(/error="invalid_dpop_proof"/);
});

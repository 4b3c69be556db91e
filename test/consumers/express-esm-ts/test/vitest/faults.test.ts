import { DpopClient, MockIssuer, type TokenFault } from '@fapi-guard/testing';
import request from 'supertest';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';

const api = 'https://api.bank.example'; // audience, and the origin clients address
let issuer: MockIssuer;
let app: ReturnType<typeof createApp>;
beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: api });
  app = createApp({ issuer: issuer.issuer, audience: api, publicUrl: api });
});
afterAll(() => issuer.stop());

async function getAccounts(fault?: TokenFault) {
  const client = await DpopClient.create();
  const token = await issuer.mint({ scope: 'accounts', jkt: client.jkt, fault });
  const proof = await client.proof({ htm: 'GET', htu: `${api}/accounts`, accessToken: token });
  return request(app).get('/accounts').set('authorization', `DPoP ${token}`).set('dpop', proof);
}

it('serves accounts to a good token', async () => {
  expect((await getAccounts()).status).toBe(200);
});

// Every defect the mock issuer can put in a token.
const faults: TokenFault[] = ['expired', 'not-yet-valid', 'issued-in-future', 'wrong-typ', 'no-typ', 'dpop-typ', 'wrong-issuer'];
faults.push('wrong-audience', 'unknown-key', 'alg-none', 'bad-signature', 'hs256-public-key', 'weak-rsa-key');

it.each(faults)('refuses a token with fault %s', async (fault) => {
  const res = await getAccounts(fault);
  expect(res.status).toBe(401);
  expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
});

it('answers 503 while the issuer is down and its keys are not cached yet', async () => {
  issuer.setAvailable(false);
  try {
    app = createApp({ issuer: issuer.issuer, audience: api, publicUrl: api }); // nothing cached
    expect((await getAccounts()).status).toBe(503);
  } finally {
    issuer.setAvailable(true);
  }
});

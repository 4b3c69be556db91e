import { DpopClient, MessageSigningClient, MockIssuer, verifySignedResponse } from '@fapi-guard/testing';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../../src/app';

const api = 'https://api.bank.example'; // audience, and the origin clients address
const tpp = MessageSigningClient.generate('ed25519', 'tpp-key-1'); // the client's request-signing key
const apiKey = MessageSigningClient.generate('ed25519', 'api-key-1'); // this API's response-signing key
let issuer: MockIssuer;
let app: FastifyInstance;
let base: string; // where the app listens: 127.0.0.1 and a free port
beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: api, clientId: 'tpp-1' });
  const messageSigning = { clients: { 'tpp-1': { jwks: tpp.jwks } }, responseKey: apiKey.privateJwk };
  app = await createApp({ issuer: issuer.issuer, audience: api, publicUrl: api, messageSigning });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(() => Promise.all([issuer.stop(), app.close()]));

async function signedPayment(signedBody: string) {
  const client = await DpopClient.create();
  const token = await issuer.mint({ scope: 'payments', jkt: client.jkt });
  const url = `${api}/payments`; // what the client addresses, as publicUrl says
  const headers: Record<string, string> = { authorization: `DPoP ${token}`, 'content-type': 'application/json' };
  headers.dpop = await client.proof({ htm: 'POST', htu: url, accessToken: token });
  Object.assign(headers, tpp.sign({ method: 'POST', url, headers, body: signedBody }));
  return { url, headers };
}

it('accepts a signed payment and signs the response bound to it', async () => {
  const body = JSON.stringify({ amount: '10.00' });
  const { url, headers } = await signedPayment(body);
  const res = await fetch(`${base}/payments`, { method: 'POST', headers, body });
  expect(res.status).toBe(201);
  const check = verifySignedResponse({
    request: { method: 'POST', url, headers },
    response: { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() },
    jwks: apiKey.jwks,
  });
  expect(check).toMatchObject({ ok: true, keyid: 'api-key-1' });
});

it('refuses a payment changed after it was signed', async () => {
  const { headers } = await signedPayment(JSON.stringify({ amount: '10.00' }));
  const res = await fetch(`${base}/payments`, { method: 'POST', headers, body: JSON.stringify({ amount: '9999.00' }) });
  expect(res.status).toBe(401);
});

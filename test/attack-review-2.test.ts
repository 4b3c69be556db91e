/**
 * Second outside review, through real HTTP on 127.0.0.1, of the code added since the first one:
 * the Fetch path (Hono), the NestJS adapter, the two-phase guard, the Node body readers and
 * `:authority`. Each test names what it tries.
 */
import { DpopClient, MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import express from 'express';
import { startExpressApp } from './support/express-app';
import { trickle } from './support/http';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let dpop: DpopClient;
const client = MessageSigningClient.generate('ed25519', 'client-a-key');

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  dpop = await DpopClient.create('ES256');
});
afterAll(async () => {
  await as.stop();
});

async function credentials(path: string, method = 'POST'): Promise<{ authorization: string; dpop: string }> {
  const token = await as.mint({ scope: 'payments:write', jkt: dpop.jkt });
  const proof = await dpop.proof({ htm: method, htu: `${AUDIENCE}${path}`, accessToken: token });
  return { authorization: `DPoP ${token}`, dpop: proof };
}

const signingOptions = () => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  publicUrl: AUDIENCE,
  messageSigning: { clients: { 'client-a': { jwks: client.jwks } } },
});

describe('review2: Node body reader', () => {
  it('review2: an empty chunked body on a signedRequest route read by the guard is answered, not held', async () => {
    const running = await startExpressApp(signingOptions(), (app, fapi) => {
      app.post('/optional', fapi.protect({ scopes: ['payments:write'], signedRequest: 'optional' }), express.json(), (req, res) => {
        res.status(201).json({ received: req.body ?? null });
      });
    });
    try {
      const answer = await trickle(
        running.url,
        {
          path: '/optional',
          headers: { ...(await credentials('/optional')), 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
          head: '0\r\n\r\n',
        },
        3000,
      );
      expect(answer.status).toBe(201);
    } finally {
      await running.close();
    }
  });
});

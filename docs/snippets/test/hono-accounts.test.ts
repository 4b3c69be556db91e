// Testing a Hono API (docs/snippets/hono-quickstart.ts) with Jest, without a server: Hono's
// `app.request()` takes the request as clients send it. With Vitest, add
// `import { beforeAll, expect, it } from 'vitest';` and run it as it is.
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import type { Hono } from 'hono';

const API = 'https://api.bank.example'; // FAPI_AUDIENCE: the identifier (and origin) clients use
let issuer: MockIssuer;
let app: Hono;
let client: DpopClient;

beforeAll(async () => {
  issuer = await MockIssuer.start({ audience: API });
  process.env.FAPI_ISSUER = issuer.issuer;
  process.env.FAPI_AUDIENCE = API;
  ({ app } = await import('../hono-quickstart.js')); // reads the variables
  client = await DpopClient.create();
});
afterAll(() => issuer.stop());

/** A request to the API as a client sends it: DPoP scheme and a fresh proof for this URL. */
async function get(path: string, token: string): Promise<Response> {
  const proof = await client.proof({ htm: 'GET', htu: `${API}${path}`, accessToken: token });
  return app.request(`${API}${path}`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
}

it('answers 200 to a DPoP-bound token with the scope', async () => {
  const res = await get('/accounts', await issuer.mint({ scope: 'accounts', jkt: client.jkt }));
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ client: 'client-1', subject: 'user-1' });
});

it('answers 401 invalid_token to an expired token', async () => {
  const res = await get('/accounts', await issuer.mint({ scope: 'accounts', jkt: client.jkt, fault: 'expired' }));
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
});

it('answers 403 insufficient_scope to a token without the scope', async () => {
  const res = await get('/accounts', await issuer.mint({ scope: 'payments:read', jkt: client.jkt }));
  expect(res.status).toBe(403);
});

/**
 * A walkthrough of the example API with a real DPoP client: starts the API and its embedded
 * issuer on free loopback ports, gets DPoP-bound tokens, and makes accepted and refused calls,
 * printing each outcome and challenge. Exits non-zero if any outcome is not the expected one.
 */
import { DpopClient, type ProofFault } from '@fapi-guard/testing';
import { readConfig } from './config.js';
import { regimeDemo } from './regime-demo.js';
import { type RunningExample, startExample } from './server.js';
import { runSteps, type Step } from './steps.js';

async function getToken(api: RunningExample, client: DpopClient, scope: string): Promise<string> {
  const tokenUrl = `${api.issuer}/token`;
  const res = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await client.proof({ htm: 'POST', htu: tokenUrl }) },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }).toString(),
  });
  const body = (await res.json()) as { access_token?: string; token_type?: string };
  if (res.status !== 200 || body.token_type !== 'DPoP' || !body.access_token) throw new Error(`token request failed: ${res.status}`);
  return body.access_token;
}

const AUDIENCE = 'https://payments.example';

async function main(): Promise<void> {
  const { regime } = readConfig({ FAPI_REGIME: process.env.FAPI_REGIME });
  if (regime !== 'fapi2') {
    process.exitCode = (await regimeDemo(regime, AUDIENCE)) === 0 ? 0 : 1;
    return;
  }
  const api = await startExample({ ...readConfig({}), port: 0, publicUrl: undefined, audience: AUDIENCE });
  const client = await DpopClient.create('ES256');
  const url = (path: string) => `${api.url}${path}`;
  // Proofs name the API's public origin (its audience, as no publicUrl is set), not the loopback address called.
  const proofFor = (method: string, path: string, token: string, fault?: ProofFault) =>
    client.proof({ htm: method, htu: `${AUDIENCE}${path}`, accessToken: token, fault, nonce: client.nonces.get(api.url) });
  let failures = 0;
  try {
    console.log('fapi-guard demo: a DPoP client against the example payments API');
    console.log(`API ${api.url} · issuer ${api.issuer} (embedded MockIssuer) · audience ${AUDIENCE}\n`);
    const full = await getToken(api, client, 'accounts payments:read payments:write');
    const readOnly = await getToken(api, client, 'accounts');
    console.log(`Client key thumbprint (cnf.jkt of its tokens): ${client.jkt}\n`);
    let replayed = '';
    let paymentId = '';
    const paymentKey = `"${crypto.randomUUID()}"`;
    const payment = { amount: { amount: '10.00', currency: 'EUR' }, creditorAccount: 'DE89370400440532013000' };
    /** POST /payments with the idempotency key: a retry is answered with the first response. */
    const payOnce = async (body: typeof payment) =>
      fetch(url('/payments'), {
        method: 'POST',
        headers: {
          authorization: `DPoP ${full}`,
          dpop: await proofFor('POST', '/payments', full),
          'content-type': 'application/json',
          'idempotency-key': paymentKey,
        },
        body: JSON.stringify(body),
      });
    const steps: Step[] = [
      {
        title: 'GET /accounts with a DPoP-bound token and a fresh proof',
        expect: 200,
        run: async () => {
          replayed = await proofFor('GET', '/accounts', full);
          return fetch(url('/accounts'), { headers: { authorization: `DPoP ${full}`, dpop: replayed } });
        },
      },
      {
        title: 'The same request again with the same proof (a replay)',
        expect: 401,
        run: () => fetch(url('/accounts'), { headers: { authorization: `DPoP ${full}`, dpop: replayed } }),
      },
      {
        title: 'GET /accounts with a proof made for POST (wrong htm)',
        expect: 401,
        run: async () =>
          fetch(url('/accounts'), {
            headers: { authorization: `DPoP ${full}`, dpop: await proofFor('GET', '/accounts', full, 'wrong-htm') },
          }),
      },
      {
        title: 'GET /accounts with the DPoP-bound token sent as a Bearer token (downgrade)',
        expect: 401,
        run: () => fetch(url('/accounts'), { headers: { authorization: `Bearer ${full}` } }),
      },
      {
        title: 'GET /accounts without credentials',
        expect: 401,
        run: () => fetch(url('/accounts')),
      },
      {
        title: 'POST /payments: this route requires a server nonce, the proof has none',
        expect: 401,
        run: async () => {
          client.nonces.delete(api.url);
          const res = await fetch(url('/payments'), {
            method: 'POST',
            headers: { authorization: `DPoP ${full}`, dpop: await proofFor('POST', '/payments', full), 'content-type': 'application/json' },
            body: JSON.stringify({ amount: { amount: '10.00', currency: 'EUR' }, creditorAccount: 'DE89370400440532013000' }),
          });
          const nonce = res.headers.get('dpop-nonce');
          if (nonce) client.nonces.set(api.url, nonce);
          return res;
        },
      },
      {
        title: `POST /payments again, the proof now carries the nonce, with Idempotency-Key: ${paymentKey}`,
        expect: 201,
        run: async () => {
          const res = await payOnce(payment);
          paymentId = res.headers.get('location')?.split('/').pop() ?? '';
          return res;
        },
      },
      {
        title:
          'The client saw no answer (a timeout) and retries with the same key: the stored answer, the same payment id, no second payment',
        expect: 201,
        run: async () => {
          const res = await payOnce(payment);
          const again = res.headers.get('location')?.split('/').pop();
          // draft-ietf-httpapi-idempotency-key-header §2.6: the first response, not a second payment.
          if (again !== paymentId) throw new Error(`the retry made payment ${again}, not ${paymentId}`);
          return res;
        },
      },
      {
        title: 'The same Idempotency-Key with another amount (a different request)',
        expect: 422,
        run: () => payOnce({ ...payment, amount: { amount: '99.00', currency: 'EUR' } }),
      },
      {
        title: 'GET /payments/:id for the payment just made',
        expect: 200,
        run: async () =>
          fetch(url(`/payments/${paymentId}`), {
            headers: { authorization: `DPoP ${full}`, dpop: await proofFor('GET', `/payments/${paymentId}`, full) },
          }),
      },
      {
        title: 'POST /payments (with the nonce) using a token that only has scope "accounts"',
        expect: 403,
        run: async () =>
          fetch(url('/payments'), {
            method: 'POST',
            headers: {
              authorization: `DPoP ${readOnly}`,
              dpop: await proofFor('POST', '/payments', readOnly),
              'content-type': 'application/json',
            },
            body: JSON.stringify({ amount: { amount: '10.00', currency: 'EUR' }, creditorAccount: 'DE89370400440532013000' }),
          }),
      },
    ];
    failures = await runSteps(steps);
  } finally {
    await api.close();
  }
  process.exitCode = failures === 0 ? 0 : 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

/**
 * Second outside review, through real HTTP on 127.0.0.1, of the code added since the first one:
 * the Fetch path (Hono), the NestJS adapter, the two-phase guard, the Node body readers and
 * `:authority`. Each test names what it tries.
 */

import { connect, createServer, type OutgoingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import express from 'express';
import Koa from 'koa';
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

/** One HTTP/2 request (h2c) with `body` and no content-length: the status and the answer. */
function h2post(origin: string, path: string, headers: OutgoingHttpHeaders, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const session = connect(origin);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': path, ...headers });
    let status = 0;
    let text = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      session.close();
      resolve({ status, text });
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.close());
    req.end(body);
  });
}

describe('review2: HTTP/2 bodies without content-length', () => {
  it('review2: a body sent over h2 without content-length is still covered by the request signature (Koa, DIG-03)', async () => {
    const fapi = koaGuard(signingOptions());
    const app = new Koa();
    app.use(fapi.protect({ scopes: ['payments:write'], signedRequest: 'required' }));
    app.use(async (ctx) => {
      const chunks: Buffer[] = [];
      for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
      ctx.status = 201;
      ctx.body = { received: Buffer.concat(chunks).toString() };
    });
    const server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const headers = { ...(await credentials('/signed')), 'content-type': 'application/json' };
      // Signed as a request without content: no content-digest.
      const signature = client.sign({ method: 'POST', url: `${AUDIENCE}/signed`, headers, body: '' });
      const res = await h2post(origin, '/signed', { ...headers, ...signature }, '{"amount":"1000000.00"}');
      expect(res.status).toBe(401);
      const body = '{"amount":"1.00"}';
      const good = { ...(await credentials('/signed')), 'content-type': 'application/json', 'content-length': String(body.length) };
      const signed = client.sign({ method: 'POST', url: `${AUDIENCE}/signed`, headers: good, body });
      expect((await h2post(origin, '/signed', { ...good, ...signed }, body)).status).toBe(201);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

/**
 * The adapters on the previous majors they declare: Express 4, Koa 2 and Fastify 4 (installed as
 * aliases beside the current ones) answer exactly like Express 5 for the same requests.
 */
import type { AddressInfo } from 'node:net';
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { DpopClient, MockIssuer } from '@fapi-guard/testing';
import express4 from 'express4';
import fastify4 from 'fastify4';
import Koa2 from 'koa2';
import { type StartedApp, startApp } from './support/apps';
import { send } from './support/http';

const AUDIENCE = 'https://rs.example.com';
const POLICY = { scopes: ['accounts'] };
let as: MockIssuer;
let client: DpopClient;
const apps: Record<string, StartedApp> = {};

async function listening(server: import('node:http').Server): Promise<string> {
  await new Promise<void>((r) => server.once('listening', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE });
  client = await DpopClient.create('ES256');
  const options: GuardOptions = { issuer: as.issuer, audience: AUDIENCE, publicUrl: AUDIENCE, interactionId: false };
  apps.express5 = await startApp('express', options);

  const e4 = express4();
  e4.get(
    '/accounts',
    expressGuard(options).protect(POLICY) as never,
    (req: { auth?: { clientId: string } }, res: { json(v: unknown): void }) => res.json({ clientId: req.auth?.clientId }),
  );
  const s4 = e4.listen(0, '127.0.0.1');
  apps.express4 = { framework: 'express', url: await listening(s4), close: () => new Promise((r) => s4.close(() => r())) };

  const k2 = new Koa2();
  const guard = koaGuard(options).protect(POLICY);
  k2.use(guard as never);
  k2.use((ctx: { body: unknown; state: { auth?: { clientId: string } } }) => {
    ctx.body = { clientId: ctx.state.auth?.clientId };
  });
  const sk = k2.listen(0, '127.0.0.1');
  apps.koa2 = { framework: 'koa', url: await listening(sk), close: () => new Promise((r) => sk.close(() => r())) };

  const f4 = fastify4();
  await f4.register(fastifyPlugin as never, options);
  f4.get(
    '/accounts',
    { config: { fapi: POLICY } } as never,
    (async (request: { auth: { clientId: string } | null }) => ({
      clientId: request.auth?.clientId,
    })) as never,
  );
  await f4.listen({ port: 0, host: '127.0.0.1' });
  apps.fastify4 = {
    framework: 'fastify',
    url: `http://127.0.0.1:${(f4.server.address() as AddressInfo).port}`,
    close: () => f4.close(),
  };
});
afterAll(async () => {
  for (const app of Object.values(apps)) await app.close();
  await as.stop();
});

async function answers(headers: () => Promise<Record<string, string>>) {
  const request = await headers();
  const out: Record<string, { status: number; challenge: unknown; error: unknown }> = {};
  for (const [name, app] of Object.entries(apps)) {
    const res = await send(`${app.url}/accounts`, { headers: request });
    out[name] = { status: res.status, challenge: res.headers['www-authenticate'], error: res.json.error };
  }
  return out;
}

describe('Express 4, Koa 2 and Fastify 4', () => {
  it.each([
    ['a valid DPoP request', 200],
    ['no credentials', 401],
    ['a proof for another method', 401],
    ['a token without the scope', 403],
  ] as const)('answer %s like Express 5 (%i)', async (what, status) => {
    const result = await answers(async (): Promise<Record<string, string>> => {
      if (what === 'no credentials') return {};
      const token = await as.mint({ scope: what === 'a token without the scope' ? 'payments' : 'accounts', jkt: client.jkt });
      const proof = await client.proof({
        htm: what === 'a proof for another method' ? 'POST' : 'GET',
        htu: `${AUDIENCE}/accounts`,
        accessToken: token,
      });
      return { authorization: `DPoP ${token}`, dpop: proof };
    });
    const reference = result.express5;
    expect(reference?.status).toBe(status);
    // The replay store of each app is its own, so the same proof is fresh everywhere.
    for (const name of ['express4', 'koa2', 'fastify4']) expect(result[name]).toEqual(reference);
  });
});

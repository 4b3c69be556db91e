/**
 * Response signing on two layers of one guard (FAPI 2.0 Message Signing §5.6.2.1, RFC 9421 §2.4):
 * whichever layer verified the request signature and whichever signs responses, the response is
 * signed once, and its signature covers the request's `signature` and `signature-input` (`;req`).
 * (Found by an attacker's review: with an app-wide signing layer the response was signed for the
 * first layer's authorization, which held no request signature; on Hono it was signed twice.)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Authorized, GuardOptions, RoutePolicy, SignedExchangeRecord } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiAuth, FapiPolicy } from '@fapi-guard/nestjs';
import { DpopClient, MessageSigningClient, MockIssuer, verifySignedResponse } from '@fapi-guard/testing';
import Router from '@koa/router';
import { Controller, Post } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { serveHono } from './support/apps';
import { send } from './support/http';
import { startNestApp } from './support/nest-app';

const AUDIENCE = 'https://rs.example.com';
let as: MockIssuer;
let client: DpopClient;
const signer = MessageSigningClient.generate('ed25519', 'client-key');
const rs = MessageSigningClient.generate('ed25519', 'rs-key');
const records: string[] = [];

beforeAll(async () => {
  as = await MockIssuer.start({ audience: AUDIENCE, clientId: 'client-a' });
  client = await DpopClient.create('ES256');
});
afterAll(() => as.stop());

const options = (): GuardOptions => ({
  issuer: as.issuer,
  audience: AUDIENCE,
  publicUrl: AUDIENCE,
  interactionId: false,
  messageSigning: {
    clients: { 'client-a': { jwks: signer.jwks } },
    responseKey: rs.privateJwk,
    onSignedExchange: (record: SignedExchangeRecord) => void records.push(record.direction),
  },
});

const FRAMEWORKS = ['express', 'koa', 'fastify', 'hono', 'nestjs'] as const;
type Framework = (typeof FRAMEWORKS)[number];

/** POST /pay answering 201 `{ ok: true }` behind `appWide` and `route`. */
async function start(framework: Framework, appWide: RoutePolicy, route: RoutePolicy): Promise<{ url: string; close(): Promise<unknown> }> {
  const listen = async (server: import('node:http').Server) => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise((resolve) => server.close(resolve)),
    };
  };
  if (framework === 'express') {
    const fapi = expressGuard(options());
    const app = express();
    app.use(fapi.rawBody());
    app.use(fapi.protect(appWide));
    app.post('/pay', fapi.protect(route), (_req, res) => void res.status(201).json({ ok: true }));
    return listen(createServer(app));
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options());
    const app = new Koa();
    app.use(fapi.protect(appWide));
    const router = new Router();
    router.post('/pay', fapi.protect(route), (ctx) => {
      ctx.status = 201;
      ctx.body = { ok: true };
    });
    app.use(router.routes());
    return listen(createServer(app.callback()));
  }
  if (framework === 'fastify') {
    const app = Fastify();
    await app.register(fastifyPlugin, options());
    app.post('/pay', { preHandler: [app.fapi.protect(appWide), app.fapi.protect(route)] }, async (_request, reply) =>
      reply.code(201).send({ ok: true }),
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
  }
  if (framework === 'hono') {
    const fapi = honoGuard(options());
    const app = new Hono();
    app.use('*', fapi.protect(appWide));
    app.post('/pay', fapi.protect(route), (c) => c.json({ ok: true }, 201));
    return serveHono(app);
  }
  @Controller()
  class Payments {
    @Post('pay')
    @FapiPolicy(route)
    pay(@FapiAuth() _auth: Authorized) {
      return { ok: true };
    }
  }
  return startNestApp(framework, options(), [Payments], undefined, { settings: { global: appWide } });
}

async function signedPayment(url: string, key?: string) {
  const token = await as.mint({ scope: 'payments:write', jkt: client.jkt });
  const target = `${AUDIENCE}/pay`;
  const body = '{"amount":"10.00"}';
  const headers: Record<string, string> = {
    authorization: `DPoP ${token}`,
    dpop: await client.proof({ htm: 'POST', htu: target, accessToken: token }),
    'content-type': 'application/json',
    ...(key ? { 'idempotency-key': key } : {}),
  };
  Object.assign(headers, signer.sign({ method: 'POST', url: target, headers, body }));
  const res = await send(`${url}/pay`, { method: 'POST', headers, body });
  const check = verifySignedResponse({
    request: { method: 'POST', url: target, headers, body },
    response: { status: res.status, headers: res.headers as Record<string, string>, body: res.text },
    jwks: rs.jwks,
  });
  return { res, check: check.ok ? 'ok' : check.detail };
}

const CASES: [string, RoutePolicy, RoutePolicy][] = [
  [
    'the app-wide layer signs responses, the route verifies the request signature',
    { signResponse: true },
    { scopes: ['payments:write'], signedRequest: 'required', signResponse: true },
  ],
  [
    'the app-wide layer verifies the request signature, the route signs responses',
    { signedRequest: 'required' },
    { scopes: ['payments:write'], signResponse: true },
  ],
];

describe.each(FRAMEWORKS)('%s: request and response signatures on two layers', (framework) => {
  it.each(CASES)('SIG-14 %s: one response signature, covering the request signature', async (_name, appWide, route) => {
    const app = await start(framework, appWide, route);
    try {
      records.length = 0;
      const { res, check } = await signedPayment(app.url);
      expect([res.status, check]).toEqual([201, 'ok']);
      expect(String(res.headers['signature-input']).match(/tag="fapi-2-response"/g)).toHaveLength(1);
      // The audit hook: the request once, the response once.
      expect(records).toEqual(['request', 'response']);
    } finally {
      await app.close();
    }
  });
});

/** The same layouts with the idempotency key held by the app-wide layer, and the route verifying and signing alone. */
const REPLAYS: [string, RoutePolicy, RoutePolicy][] = [
  ...CASES.map(([name, appWide, route]): [string, RoutePolicy, RoutePolicy] => [name, { ...appWide, idempotency: 'required' }, route]),
  [
    'the app-wide layer holds the key, the route verifies and signs',
    { idempotency: 'required' },
    { scopes: ['payments:write'], signedRequest: 'required', signResponse: true },
  ],
];

describe.each(FRAMEWORKS)('%s: a replay with request and response signatures on two layers', (framework) => {
  it.each(REPLAYS)(
    'SIG-14 IDEM-15 %s: the replay is signed once, for the retry, covering its request signature',
    async (_name, appWide, route) => {
      const app = await start(framework, appWide, route);
      try {
        const key = `"s-${Math.random().toString(36).slice(2)}"`;
        const first = await signedPayment(app.url, key);
        expect([first.res.status, first.check]).toEqual([201, 'ok']);
        records.length = 0;
        const retry = await signedPayment(app.url, key);
        expect([retry.res.status, retry.check, retry.res.text]).toEqual([201, 'ok', first.res.text]);
        expect(String(retry.res.headers['signature-input']).match(/tag="fapi-2-response"/g)).toHaveLength(1);
        expect(records).toEqual(['request', 'response']);
      } finally {
        await app.close();
      }
    },
  );
});

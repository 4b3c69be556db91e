/**
 * A payments API with idempotency keys on every adapter (Express, Koa, Fastify, NestJS on Express
 * and on Fastify, Hono), listening on 127.0.0.1. `POST` and `PUT /payments`, and `POST /transfers`,
 * share one handler that counts what it processed in a {@link Ledger}, so a test can see how many
 * times money "moved". The body decides the answer: `{ fail: true }` → 500, `{ big: n }` → a
 * response of n bytes, otherwise 201 with the payment number.
 */
import type { Server } from 'node:http';
import { connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Authorized, GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiAuth, FapiPolicy } from '@fapi-guard/nestjs';
import { DpopClient, type MessageSigningClient, MockIssuer } from '@fapi-guard/testing';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import { Body, Controller, Post, Put, Res } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import type { Framework, StartedApp } from './apps';
import { serveHono } from './apps';
import { send } from './http';
import { startNestApp } from './nest-app';

/** What the handler did, across every request of one app (or of several, when shared). */
export interface Ledger {
  /** Handler runs that began. */
  started: number;
  /** Payments made (handler runs that answered 201). */
  processed: number;
  /** How long each run takes before it answers, so that concurrent retries overlap. */
  delayMs: number;
}

export const newLedger = (delayMs = 150): Ledger => ({ started: 0, processed: 0, delayMs });

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

/** The handler all frameworks share. */
async function handle(ledger: Ledger, auth: Authorized | null | undefined, body: unknown): Promise<Answer> {
  ledger.started++;
  await new Promise((r) => setTimeout(r, ledger.delayMs));
  const input = (typeof body === 'object' && body !== null ? body : {}) as { fail?: boolean; big?: number; amount?: string };
  const json = { 'content-type': 'application/json; charset=utf-8' };
  if (input.fail) return { status: 500, body: JSON.stringify({ error: 'ledger unavailable' }), headers: json };
  ledger.processed++;
  const payment = `pay-${ledger.processed}`;
  const text = JSON.stringify({ payment, amount: input.amount ?? null, client: auth?.clientId ?? null, pad: 'x'.repeat(input.big ?? 0) });
  return { status: 201, body: text, headers: { ...json, location: `/payments/${payment}`, 'x-payment': payment } };
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const closer = (server: Server) => () =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

/** Starts the payments API on `framework` with the guard options and the routes' policy. */
export async function startIdempotentApp(
  framework: Framework,
  options: GuardOptions,
  policy: RoutePolicy,
  ledger: Ledger,
): Promise<StartedApp> {
  if (framework === 'express') {
    const fapi = expressGuard(options);
    const app = express();
    app.disable('x-powered-by');
    app.disable('etag');
    app.use(fapi.rawBody());
    app.use(express.json());
    const route: express.RequestHandler = (req, res, next) => {
      handle(ledger, req.auth, req.body).then((a) => void res.status(a.status).set(a.headers).send(a.body), next);
    };
    app.post('/payments', fapi.protect(policy), route);
    app.put('/payments', fapi.protect(policy), route);
    app.post('/transfers', fapi.protect(policy), route);
    const server = app.listen(0, '127.0.0.1');
    return { framework, url: await listen(server), close: closer(server) };
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options);
    const app = new Koa();
    app.silent = true;
    const router = new Router();
    const route: Koa.Middleware = async (ctx) => {
      const a = await handle(ledger, ctx.state.auth, (ctx.request as { body?: unknown }).body);
      ctx.status = a.status;
      ctx.body = a.body;
      ctx.set(a.headers);
    };
    router.post('/payments', fapi.protect(policy), route);
    router.put('/payments', fapi.protect(policy), route);
    router.post('/transfers', fapi.protect(policy), route);
    app.use(fapi.rawBody());
    app.use(bodyParser({ enableTypes: ['json'] }));
    app.use(router.routes());
    const server = app.listen(0, '127.0.0.1');
    return { framework, url: await listen(server), close: closer(server) };
  }
  if (framework === 'fastify') {
    const app = Fastify();
    await app.register(fastifyPlugin, options);
    const config = { fapi: routePolicy(policy) };
    for (const [method, path] of [
      ['POST', '/payments'],
      ['PUT', '/payments'],
      ['POST', '/transfers'],
    ] as const) {
      app.route({
        method,
        url: path,
        config,
        handler: async (request, reply) => {
          const a = await handle(ledger, request.auth, request.body);
          return reply.code(a.status).headers(a.headers).send(a.body);
        },
      });
    }
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { framework, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
  }
  if (framework === 'hono') {
    const fapi = honoGuard(options);
    const app = new Hono();
    const route = async (c: import('hono').Context) => {
      const body = await c.req.json().catch(() => undefined);
      const a = await handle(ledger, c.get('auth'), body);
      return c.body(a.body, a.status as 201, a.headers);
    };
    app.post('/payments', fapi.protect(policy), route);
    app.put('/payments', fapi.protect(policy), route);
    app.post('/transfers', fapi.protect(policy), route);
    return { framework, ...(await serveHono(app)) };
  }
  const reply = (res: unknown, a: Answer) => {
    const r = res as {
      status?: (n: number) => unknown;
      code?: (n: number) => unknown;
      header: (n: string, v: string) => unknown;
      send: (b: string) => unknown;
    };
    if (r.code) r.code(a.status);
    else r.status?.(a.status);
    for (const [name, value] of Object.entries(a.headers)) r.header(name, value);
    r.send(a.body);
  };
  @Controller()
  class PaymentsController {
    @Post('payments')
    @FapiPolicy(policy)
    async post(@FapiAuth() auth: Authorized, @Body() body: unknown, @Res() res: unknown) {
      reply(res, await handle(ledger, auth, body));
    }
    @Put('payments')
    @FapiPolicy(policy)
    async put(@FapiAuth() auth: Authorized, @Body() body: unknown, @Res() res: unknown) {
      reply(res, await handle(ledger, auth, body));
    }
    @Post('transfers')
    @FapiPolicy(policy)
    async transfers(@FapiAuth() auth: Authorized, @Body() body: unknown, @Res() res: unknown) {
      reply(res, await handle(ledger, auth, body));
    }
  }
  const { url, close } = await startNestApp(framework, options, [PaymentsController], undefined, { rawBody: true });
  return { framework, url, close };
}

/** A client of the API: its DPoP key and a token bound to it, with scope `payments`. */
export interface Party {
  client: DpopClient;
  token: string;
}

export async function party(as: MockIssuer, audience: string, clientId: string): Promise<Party> {
  const client = await DpopClient.create('ES256');
  const token = await as.mint({ scope: 'payments', jkt: client.jkt, audience, claims: { client_id: clientId } });
  return { client, token };
}

/** An issuer, and two users of one client (one TPP): the payer holds `payments:write`, the reader does not. */
export interface TppUsers {
  as: MockIssuer;
  payer: Party;
  reader: Party;
  /** The guard's options for the issuer, with `publicUrl` as audience and public URL. */
  options: GuardOptions;
}

/** {@link TppUsers} for `publicUrl`, started before the tests of the enclosing block and stopped after them. */
export function useTppUsers(publicUrl: string): TppUsers {
  const users = {} as TppUsers;
  beforeAll(async () => {
    users.as = await MockIssuer.start({ audience: publicUrl });
    const mint = async (scope: string, sub: string): Promise<Party> => {
      const client = await DpopClient.create('ES256');
      return {
        client,
        token: await users.as.mint({ scope, jkt: client.jkt, audience: publicUrl, claims: { client_id: 'client-tpp', sub } }),
      };
    };
    [users.payer, users.reader] = await Promise.all([mint('payments:write', 'alice'), mint('accounts:read', 'mallory')]);
    users.options = { issuer: users.as.issuer, audience: publicUrl, publicUrl };
  });
  afterAll(() => users.as?.stop());
  return users;
}

export interface Payment {
  who: Party;
  /** The key header's value; a list is sent as that many header lines. */
  key?: string | string[];
  body?: string;
  method?: string;
  path?: string;
  /** @default 'idempotency-key' */
  header?: string;
  /** More request headers (e.g. `x-fapi-interaction-id`). */
  headers?: Record<string, string>;
  /** Signs the request (FAPI 2.0 Message Signing) with this client's key. */
  signer?: MessageSigningClient;
}

/** One payment request with a fresh DPoP proof (htu without the query, RFC 9449 §4.2). */
export async function sendPayment(url: string, publicUrl: string, p: Payment) {
  const { client, token } = p.who;
  const method = p.method ?? 'POST';
  const path = p.path ?? '/payments';
  const dpop = await client.proof({ htm: method, htu: `${publicUrl}${path.split('?')[0]}`, accessToken: token });
  const headers: Record<string, string | string[]> = { authorization: `DPoP ${token}`, dpop, 'content-type': 'application/json' };
  if (p.key !== undefined) headers[p.header ?? 'idempotency-key'] = p.key;
  Object.assign(headers, p.headers);
  const body = p.body ?? '{"amount":"10.00"}';
  const request = { url: `${publicUrl}${path}`, method, headers: headers as Record<string, string>, body };
  if (p.signer) Object.assign(headers, p.signer.sign(request));
  return { ...(await send(`${url}${path}`, { method, headers, body })), request };
}

/** Header lines a server writes for each connection and message itself (RFC 9110 §6.6.1, RFC 9112 §6). */
const PER_MESSAGE = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length']);

/** The header lines of a response, as sent, without the per-message ones. */
export function ownHeaderLines(raw: string[]): string[] {
  const lines: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2)
    if (!PER_MESSAGE.has((raw[i] as string).toLowerCase())) lines.push(`${raw[i]}: ${raw[i + 1]}`);
  return lines;
}

/**
 * The payments route on Fastify guarded by `app.fapi.protect(policy)` instead of `config.fapi`:
 * as the route's `preHandler` option (`route`), or added with `addHook` (`hook`, refused at start-up).
 */
export async function startFastifyProtectApp(
  options: GuardOptions,
  policy: RoutePolicy,
  ledger: Ledger,
  placement: 'route' | 'hook',
): Promise<StartedApp> {
  const app = Fastify();
  await app.register(fastifyPlugin, options);
  const handler = async (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    const a = await handle(ledger, request.auth, request.body);
    return reply.code(a.status).headers(a.headers).send(a.body);
  };
  if (placement === 'route') app.post('/payments', { preHandler: [app.fapi.protect(policy)] }, handler);
  else {
    app.addHook('preHandler', app.fapi.protect(policy));
    app.post('/payments', handler);
  }
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
  } catch (e) {
    await app.close();
    throw e;
  }
  return { framework: 'fastify', url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

/**
 * One payment over HTTP/2 cleartext (h2c) to `/payments` on 127.0.0.1:`port`, with a fresh DPoP
 * proof for `publicUrl` and `idempotency-key: key`; answered within 10 s or closed.
 */
export async function sendH2Payment(port: number, publicUrl: string, who: Party, key: string, body: string) {
  const dpop = await who.client.proof({ htm: 'POST', htu: `${publicUrl}/payments`, accessToken: who.token });
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({
      ':method': 'POST',
      ':path': '/payments',
      authorization: `DPoP ${who.token}`,
      dpop,
      'content-type': 'application/json',
      'idempotency-key': key,
    });
    let status = 0;
    let text = '';
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      text += c;
    });
    req.on('end', () => {
      session.close();
      resolve({ status, text });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.close());
    req.end(body);
  });
}

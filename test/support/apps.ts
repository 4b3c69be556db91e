/**
 * The same protected API on Express, Koa, Fastify, NestJS (on Express and on Fastify) and Hono
 * (on @hono/node-server), listening on 127.0.0.1, for suites that must see identical behaviour
 * from every adapter.
 */
import type { Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Authorized, GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import formbody from '@fastify/formbody';
import { serve } from '@hono/node-server';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import express from 'express';
import Fastify from 'fastify';
import { type Context, Hono } from 'hono';
import Koa from 'koa';
import { octetStreamAsBuffer, parityControllers, startNestApp } from './nest-app';

export type Framework = 'express' | 'koa' | 'fastify' | 'nestjs' | 'nestjs-fastify' | 'hono';
export const FRAMEWORKS: readonly Framework[] = ['express', 'koa', 'fastify', 'nestjs', 'nestjs-fastify', 'hono'];

export interface StartedApp {
  framework: Framework;
  url: string;
  close(): Promise<void>;
}

/** Routes of every app: what each requires. */
export const ROUTES: Routes = {
  accounts: { scopes: ['accounts'] },
  mixed: { scopes: ['accounts'], allowBearer: true },
  nonce: { scopes: ['accounts'], dpopNonce: true },
  payments: { scopes: ['payments:write'] },
  either: { anyScopes: ['payments:read', 'payments:write'] },
  stepup: { scopes: ['accounts'], acrValues: ['urn:bank:acr:sca', 'urn:bank:acr:mfa'], maxAuthAgeSec: 300 },
  rar: { authorizationDetails: [{ type: 'payment_initiation', actions: ['initiate'] }] },
};

/** The policy of each route path; a suite can mount the same paths with other policies. */
export type Routes = Readonly<Record<'accounts' | 'mixed' | 'nonce' | 'payments' | 'either' | 'stepup' | 'rar', RoutePolicy>>;

/** Routes mounted when the guard has `messageSigning` (FAPI 2.0 Message Signing). */
export const SIGNED_ROUTES = {
  signed: { scopes: ['payments:write'], signedRequest: 'required', signResponse: true },
  optional: { scopes: ['payments:write'], signedRequest: 'optional' },
} as const;

/** What a signed route answers: who called, and the body as the app's own parser read it. */
const receipt = (auth: Authorized | null | undefined, body: unknown) => ({
  clientId: auth?.clientId,
  signature: auth?.signature?.keyid ?? null,
  received: Buffer.isBuffer(body) ? { bytes: body.length } : (body ?? null),
});

const echo = (auth: Authorized | null | undefined) => ({
  clientId: auth?.clientId,
  scopes: auth?.scopes,
  binding: auth?.binding,
  profile: auth?.profile,
  fapiCustomer: auth?.fapiCustomer,
  jwsSignature: auth?.jwsSignature,
  jwtBody: auth?.jwtBody,
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closer(server: Server): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

/** JSON with the media type the Node frameworks send (Hono's `c.json` leaves out the charset). */
const json = (c: Context, value: unknown, status: 200 | 201 = 200) =>
  c.body(JSON.stringify(value), status, { 'content-type': 'application/json; charset=utf-8' });

/** The body as a Hono handler parses it, like the Node apps' parsers (JSON, form, raw bytes). */
async function parsedBody(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  if (type.startsWith('application/octet-stream')) return { bytes: (await c.req.arrayBuffer()).byteLength };
  if (type.startsWith('application/x-www-form-urlencoded')) return c.req.parseBody();
  return type.startsWith('application/json') ? c.req.json() : undefined;
}

/** The Hono app: each route as on the others, served by @hono/node-server. */
async function startHono(options: GuardOptions, routes: Routes): Promise<StartedApp> {
  const fapi = honoGuard(options);
  const app = new Hono();
  app.use(fapi.metadata());
  app.all('/accounts', fapi.protect(routes.accounts), (c) => json(c, echo(c.get('auth'))));
  app.get('/mixed', fapi.protect(routes.mixed), (c) => json(c, echo(c.get('auth'))));
  app.get('/nonce', fapi.protect(routes.nonce), (c) => json(c, echo(c.get('auth'))));
  app.post('/payments', fapi.protect(routes.payments), (c) => json(c, echo(c.get('auth')), 201));
  app.get('/either', fapi.protect(routes.either), (c) => json(c, echo(c.get('auth'))));
  app.get('/stepup', fapi.protect(routes.stepup), (c) => json(c, echo(c.get('auth'))));
  app.get('/rar', fapi.protect(routes.rar), (c) => json(c, echo(c.get('auth'))));
  if (options.messageSigning !== undefined) {
    for (const [name, policy] of Object.entries(SIGNED_ROUTES)) {
      app.post(`/${name}`, fapi.protect(policy), async (c) => {
        const body = await parsedBody(c).catch(() => null);
        return body === null ? c.text('Bad Request', 400) : json(c, receipt(c.get('auth'), body), 201);
      });
    }
  }
  return { framework: 'hono', ...(await serveHono(app)) };
}

/**
 * Serves a Hono app with @hono/node-server on 127.0.0.1 (a free port); with `tls`, over HTTPS
 * asking clients for a certificate (any, unverified: RFC 8705 §6.2).
 */
export async function serveHono(
  app: { fetch: Parameters<typeof serve>[0]['fetch'] },
  tls?: { cert: string; key: string },
): Promise<{ url: string; close(): Promise<void> }> {
  const https = tls ? { createServer: createHttpsServer, serverOptions: { ...tls, requestCert: true, rejectUnauthorized: false } } : {};
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0, ...https }) as Server;
  const url = await listen(server);
  return { url: tls ? url.replace('http:', 'https:') : url, close: closer(server) };
}

export async function startApp(framework: Framework, options: GuardOptions, routes: Routes = ROUTES): Promise<StartedApp> {
  if (framework === 'nestjs' || framework === 'nestjs-fastify') {
    const signing = options.messageSigning !== undefined;
    const controllers = parityControllers(routes, signing ? SIGNED_ROUTES : undefined, echo, receipt);
    const { url, close } = await startNestApp(framework, options, controllers, signing ? octetStreamAsBuffer : undefined);
    return { framework, url, close };
  }
  if (framework === 'hono') return startHono(options, routes);
  if (framework === 'express') {
    const fapi = expressGuard(options);
    const app = express();
    app.disable('x-powered-by');
    app.disable('etag');
    const signing = options.messageSigning !== undefined;
    // The raw bytes are kept before the parsers read them (signature digests are over them).
    if (signing) app.use(fapi.rawBody());
    app.use(express.urlencoded({ extended: false }));
    if (signing) {
      app.use(express.json());
      app.use(express.raw({ type: 'application/octet-stream' }));
      for (const [name, policy] of Object.entries(SIGNED_ROUTES)) {
        app.post(`/${name}`, fapi.protect(policy), (req, res) => void res.status(201).json(receipt(req.auth, req.body)));
      }
    }
    app.all('/accounts', fapi.protect(routes.accounts), (req, res) => void res.json(echo(req.auth)));
    app.get('/mixed', fapi.protect(routes.mixed), (req, res) => void res.json(echo(req.auth)));
    app.get('/nonce', fapi.protect(routes.nonce), (req, res) => void res.json(echo(req.auth)));
    app.post('/payments', fapi.protect(routes.payments), (req, res) => void res.status(201).json(echo(req.auth)));
    app.get('/either', fapi.protect(routes.either), (req, res) => void res.json(echo(req.auth)));
    app.get('/stepup', fapi.protect(routes.stepup), (req, res) => void res.json(echo(req.auth)));
    app.get('/rar', fapi.protect(routes.rar), (req, res) => void res.json(echo(req.auth)));
    app.use(fapi.metadata());
    const server = app.listen(0, '127.0.0.1');
    return { framework, url: await listen(server), close: closer(server) };
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options);
    const app = new Koa();
    // Koa's default error listener prints every error it was not told to expose, including the body
    // parser's 400 for malformed JSON that the fuzz suites send on purpose. A client error is an
    // answer, not a failure; anything else is still printed as Koa would.
    app.on('error', (err: { status?: unknown }) => {
      if (!(typeof err.status === 'number' && err.status >= 400 && err.status < 500)) console.error(err);
    });
    const router = new Router();
    router.all('/accounts', fapi.protect(routes.accounts), (ctx) => {
      ctx.body = echo(ctx.state.auth);
    });
    router.get('/mixed', fapi.protect(routes.mixed), (ctx) => {
      ctx.body = echo(ctx.state.auth);
    });
    router.get('/nonce', fapi.protect(routes.nonce), (ctx) => {
      ctx.body = echo(ctx.state.auth);
    });
    router.post('/payments', fapi.protect(routes.payments), (ctx) => {
      ctx.status = 201;
      ctx.body = echo(ctx.state.auth);
    });
    router.get('/either', fapi.protect(routes.either), (ctx) => {
      ctx.body = echo(ctx.state.auth);
    });
    router.get('/stepup', fapi.protect(routes.stepup), (ctx) => {
      ctx.body = echo(ctx.state.auth);
    });
    router.get('/rar', fapi.protect(routes.rar), (ctx) => {
      ctx.body = echo(ctx.state.auth);
    });
    if (options.messageSigning !== undefined) {
      for (const [name, policy] of Object.entries(SIGNED_ROUTES)) {
        router.post(`/${name}`, fapi.protect(policy), (ctx) => {
          ctx.status = 201;
          // Koa's parser leaves other content types alone: the handler reports how many bytes came.
          ctx.body = receipt(ctx.state.auth, ctx.request.is('application/octet-stream') ? { bytes: ctx.request.length } : ctx.request.body);
        });
      }
      app.use(fapi.rawBody());
    }
    app.use(fapi.metadata());
    app.use(bodyParser({ enableTypes: ['form', 'json'] }));
    app.use(router.routes());
    const server = app.listen(0, '127.0.0.1');
    return { framework, url: await listen(server), close: closer(server) };
  }
  const app = Fastify();
  await app.register(formbody);
  await app.register(fastifyPlugin, options);
  app.all('/accounts', { config: { fapi: routePolicy(routes.accounts) } }, async (request) => echo(request.auth));
  app.get('/mixed', { config: { fapi: routePolicy(routes.mixed) } }, async (request) => echo(request.auth));
  app.get('/nonce', { preHandler: app.fapi.protect(routes.nonce) }, async (request) => echo(request.auth));
  app.post('/payments', { config: { fapi: routePolicy(routes.payments) } }, async (request, reply) =>
    reply.code(201).send(echo(request.auth)),
  );
  app.get('/either', { config: { fapi: routePolicy(routes.either) } }, async (request) => echo(request.auth));
  app.get('/stepup', { config: { fapi: routePolicy(routes.stepup) } }, async (request) => echo(request.auth));
  app.get('/rar', { config: { fapi: routePolicy(routes.rar) } }, async (request) => echo(request.auth));
  if (options.messageSigning !== undefined) {
    app.addContentTypeParser(['application/octet-stream', 'application/jwt'], { parseAs: 'buffer' }, (_request, body, done) =>
      done(null, body),
    );
    for (const [name, policy] of Object.entries(SIGNED_ROUTES)) {
      app.post(`/${name}`, { config: { fapi: routePolicy(policy) } }, async (request, reply) =>
        reply.code(201).send(receipt(request.auth, request.body)),
      );
    }
  }
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  return { framework, url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/** The app on every framework, each with the same guard options. */
export async function startApps(options: GuardOptions): Promise<Map<Framework, StartedApp>> {
  const apps = new Map<Framework, StartedApp>();
  for (const framework of FRAMEWORKS) apps.set(framework, await startApp(framework, options));
  return apps;
}

export async function closeApps(apps: ReadonlyMap<Framework, StartedApp>): Promise<void> {
  for (const app of apps.values()) await app.close();
}

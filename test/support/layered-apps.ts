/**
 * The layered pattern — an app-wide guard, a router's and a route's, in every order — on each
 * adapter, listening on 127.0.0.1 (issue 25 §1). Each layer asks for its own scope, so a test can
 * tell which layer refused: G (app-wide, `/api`), R (a mounted router), T (the route).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Authorized, DecisionEvent, GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiAuth, FapiPolicy, FapiPublic, RequireScopes } from '@fapi-guard/nestjs';
import formbody from '@fastify/formbody';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import { Controller, Get, type Type } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import { type Context, Hono } from 'hono';
import Koa from 'koa';
import { serveHono } from './apps';
import { startNestApp } from './nest-app';

export type LayeredFramework = 'express' | 'koa' | 'fastify' | 'hono' | 'nestjs' | 'nestjs-fastify';
export const LAYERED_FRAMEWORKS: readonly LayeredFramework[] = ['express', 'koa', 'fastify', 'hono', 'nestjs', 'nestjs-fastify'];

/** App-wide: scope `g`; unbound tokens are left to the routes to refuse. */
export const G: RoutePolicy = { scopes: ['g'], allowBearer: true };
export const R: RoutePolicy = { scopes: ['r'] };
export const T: RoutePolicy = { scopes: ['t'] };

/**
 * Each route and the scopes of its layers, in the order they run. On NestJS the app-wide guard
 * always runs before the route's (Nest runs global guards first): no `/api/first` there.
 */
export function layeredRoutes(framework: LayeredFramework): [string, readonly string[]][] {
  const routes = Object.entries(LAYERED_ROUTES);
  return framework.startsWith('nestjs') ? routes.filter(([path]) => path !== '/api/first') : routes;
}

const LAYERED_ROUTES: Readonly<Record<string, readonly string[]>> = {
  '/api/g': ['g'],
  '/api/gt': ['g', 't'],
  '/api/first': ['t', 'g'],
  '/api/r/x': ['g', 'r'],
  '/api/r/t': ['g', 'r', 't'],
  '/open/t': ['t'],
  '/open/r/x': ['r'],
  '/open/r/t': ['r', 't'],
};

/** A bearer-tolerant layer before a strict one; both tolerant; no nonce, then a nonce. */
export const BINDING_ROUTES = { strict: '/mixed/strict', tolerant: '/mixed/tolerant', nonce: '/open/nonce' } as const;
const TOLERANT: RoutePolicy = { allowBearer: true };
const NONCE: RoutePolicy = { dpopNonce: true };

export interface LayeredApp {
  url: string;
  decisions: DecisionEvent[];
  close(): Promise<void>;
}

const echo = (auth: Authorized | null | undefined) => ({ clientId: auth?.clientId, scopes: auth?.scopes, binding: auth?.binding?.type });

async function listen(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function startExpress(options: GuardOptions): Promise<{ url: string; close(): Promise<void> }> {
  const fapi = expressGuard(options);
  const app = express();
  const reply = (req: express.Request, res: express.Response) => void res.json(echo(req.auth));
  // The route's layer ahead of the app-wide one.
  app.use('/api/first', fapi.protect(T));
  app.use('/api', fapi.protect(G));
  app.get('/api/g', reply);
  app.get('/api/gt', fapi.requireScopes('t'), reply);
  app.get('/api/first', reply);
  const routers = [express.Router(), express.Router()];
  for (const router of routers) {
    router.use(fapi.protect(R));
    router.get('/x', reply);
    router.get('/t', fapi.protect(T), reply);
  }
  app.use('/api/r', routers[0] as express.Router);
  app.use('/open/r', routers[1] as express.Router);
  app.get('/open/t', fapi.protect(T), reply);
  app.get(BINDING_ROUTES.strict, fapi.protect(TOLERANT), fapi.protect(), reply);
  app.get(BINDING_ROUTES.tolerant, fapi.protect(TOLERANT), fapi.protect(TOLERANT), reply);
  app.get(BINDING_ROUTES.nonce, fapi.protect(), fapi.protect(NONCE), reply);
  return listen(app.listen(0, '127.0.0.1'));
}

function startKoa(options: GuardOptions): Promise<{ url: string; close(): Promise<void> }> {
  const fapi = koaGuard(options);
  const app = new Koa();
  const reply = (ctx: Koa.Context) => {
    ctx.body = echo(ctx.state.auth);
  };
  const first = fapi.protect(T);
  // The route's layer ahead of the app-wide one.
  app.use((ctx, next) => (ctx.path === '/api/first' ? first(ctx, next) : next()));
  app.use(bodyParser({ enableTypes: ['form', 'json'] }));
  const api = new Router({ prefix: '/api' });
  api.use(fapi.protect(G));
  api.get('/g', reply);
  api.get('/gt', fapi.requireScopes('t'), reply);
  api.get('/first', reply);
  const open = new Router({ prefix: '/open' });
  open.get('/t', fapi.protect(T), reply);
  for (const parent of [api, open]) {
    const router = new Router();
    router.use(fapi.protect(R));
    router.get('/x', reply);
    router.get('/t', fapi.protect(T), reply);
    parent.use('/r', router.routes());
  }
  open.get('/nonce', fapi.protect(), fapi.protect(NONCE), reply);
  const mixed = new Router({ prefix: '/mixed' });
  mixed.get('/strict', fapi.protect(TOLERANT), fapi.protect(), reply);
  mixed.get('/tolerant', fapi.protect(TOLERANT), fapi.protect(TOLERANT), reply);
  for (const router of [api, open, mixed]) app.use(router.routes());
  return listen(app.listen(0, '127.0.0.1'));
}

async function startFastify(options: GuardOptions): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify();
  await app.register(formbody);
  await app.register(fastifyPlugin, options);
  const reply = async (request: { auth: Authorized | null }) => echo(request.auth);
  await app.register(
    async (api) => {
      api.addHook('preHandler', api.fapi.protect(G));
      api.get('/g', reply);
      api.get('/gt', { preHandler: api.fapi.requireScopes('t') }, reply);
      // config.fapi runs in onRequest/preValidation: ahead of the app-wide preHandler.
      api.get('/first', { config: { fapi: routePolicy(T) } }, reply);
      await api.register(
        async (router) => {
          router.addHook('preHandler', router.fapi.protect(R));
          router.get('/x', reply);
          router.get('/t', { preHandler: router.fapi.protect(T) }, reply);
        },
        { prefix: '/r' },
      );
    },
    { prefix: '/api' },
  );
  await app.register(
    async (open) => {
      open.get('/t', { config: { fapi: routePolicy(T) } }, reply);
      open.get('/nonce', { config: { fapi: routePolicy({}) }, preHandler: open.fapi.protect(NONCE) }, reply);
      await open.register(
        async (router) => {
          router.addHook('preHandler', router.fapi.protect(R));
          router.get('/x', reply);
          // Both forms on one route: config.fapi, then the preHandler.
          router.get('/t', { config: { fapi: routePolicy(T) } }, reply);
        },
        { prefix: '/r' },
      );
    },
    { prefix: '/open' },
  );
  app.get(BINDING_ROUTES.strict, { config: { fapi: routePolicy(TOLERANT) }, preHandler: app.fapi.protect() }, reply);
  app.get(BINDING_ROUTES.tolerant, { config: { fapi: routePolicy(TOLERANT) }, preHandler: app.fapi.protect(TOLERANT) }, reply);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

function startHono(options: GuardOptions): Promise<{ url: string; close(): Promise<void> }> {
  const fapi = honoGuard(options);
  const app = new Hono();
  // JSON with the media type the Node frameworks send (Hono's c.json leaves out the charset).
  const reply = (c: Context) => c.body(JSON.stringify(echo(c.get('auth'))), 200, { 'content-type': 'application/json; charset=utf-8' });
  // The route's layer ahead of the app-wide one.
  app.use('/api/first', fapi.protect(T));
  app.use('/api/*', fapi.protect(G));
  app.get('/api/g', reply);
  app.get('/api/gt', fapi.requireScopes('t'), reply);
  app.get('/api/first', reply);
  for (const prefix of ['/api/r', '/open/r']) {
    const sub = new Hono();
    sub.use('*', fapi.protect(R));
    sub.get('/x', reply);
    sub.get('/t', fapi.protect(T), reply);
    app.route(prefix, sub);
  }
  app.get('/open/t', fapi.protect(T), reply);
  app.get(BINDING_ROUTES.strict, fapi.protect(TOLERANT), fapi.protect(), reply);
  app.get(BINDING_ROUTES.tolerant, fapi.protect(TOLERANT), fapi.protect(TOLERANT), reply);
  app.get(BINDING_ROUTES.nonce, fapi.protect(), fapi.protect(NONCE), reply);
  return serveHono(app);
}

/**
 * NestJS: the module's `global` policy is G; controllers carry R (as `anyScopes`, so a handler's
 * `scopes` add to it rather than replace it), handlers T; `@FapiPublic()` leaves G out.
 */
function nestControllers(): Type[] {
  @Controller('api')
  class Api {
    @Get('g')
    g(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('gt')
    @RequireScopes('t')
    gt(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
  }
  @Controller('api/r')
  @FapiPolicy({ anyScopes: ['r'] })
  class ApiRouter {
    @Get('x')
    x(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('t')
    @RequireScopes('t')
    t(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
  }
  @Controller('open')
  class Open {
    @Get('t')
    @FapiPublic()
    @RequireScopes('t')
    t(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('nonce')
    @FapiPolicy(NONCE)
    nonce(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('health')
    @FapiPublic()
    health() {
      return { ok: true };
    }
  }
  @Controller('open/r')
  @FapiPublic()
  @FapiPolicy({ anyScopes: ['r'] })
  class OpenRouter {
    @Get('x')
    x(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('t')
    @RequireScopes('t')
    t(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
  }
  @Controller('mixed')
  class Mixed {
    @Get('strict')
    @FapiPolicy({})
    strict(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
    @Get('tolerant')
    @FapiPolicy(TOLERANT)
    tolerant(@FapiAuth() auth: Authorized) {
      return echo(auth);
    }
  }
  return [Api, ApiRouter, Open, OpenRouter, Mixed];
}

/** The layered app on `framework`, its guard reporting every decision. */
export async function startLayeredApp(framework: LayeredFramework, options: GuardOptions): Promise<LayeredApp> {
  const decisions: DecisionEvent[] = [];
  const withHook = { ...options, onDecision: (event: DecisionEvent) => decisions.push(event) };
  if (framework === 'nestjs' || framework === 'nestjs-fastify') {
    const { url, close } = await startNestApp(framework, withHook, nestControllers(), undefined, { settings: { global: G } });
    return { decisions, url, close };
  }
  const start = { express: startExpress, koa: startKoa, fastify: startFastify, hono: startHono }[framework];
  return { decisions, ...(await start(withHook)) };
}

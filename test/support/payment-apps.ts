/**
 * POST routes behind layers of one guard, on express, koa, fastify and hono, listening on
 * 127.0.0.1: an optional app-wide layer that every request passes first, then each route's own
 * layers (outermost first), then its handler. The attack reviews of the idempotency exchange and
 * of Open Finance Brasil build their apps with it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Authorized, GuardOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import Router from '@koa/router';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { serveHono } from './apps';
import { type Listening, listening } from './http';

export type PaymentFramework = 'express' | 'koa' | 'fastify' | 'hono';
export const PAYMENT_FRAMEWORKS: readonly PaymentFramework[] = ['express', 'koa', 'fastify', 'hono'];

/** A handler's answer: a status, and a text body with its media type. */
export interface Answer {
  status: number;
  type: string;
  body: string;
}

/** A JSON answer, as `res.json` would write it. */
export const jsonAnswer = (status: number, value: unknown): Answer => ({ status, type: 'application/json', body: JSON.stringify(value) });

/** One route: its layers, outermost first, and its handler (given the request's authorization). */
export interface PaymentRoute {
  layers: readonly RoutePolicy[];
  handle(auth: Authorized | undefined): Answer | Promise<Answer>;
}

/**
 * Starts the app: `appWide` (if given) before every route (`app.use`; on fastify the first
 * preHandler of each route), then each route of `routes` (path → layers and handler) on POST.
 * fastify reads `application/jwt` bodies as text, as an Open Finance Brasil API registers it.
 */
export async function startPaymentApp(
  framework: PaymentFramework,
  options: GuardOptions,
  routes: Readonly<Record<string, PaymentRoute>>,
  appWide?: RoutePolicy,
): Promise<Listening> {
  const entries = Object.entries(routes);
  if (framework === 'express') {
    const fapi = expressGuard(options);
    const app = express();
    if (appWide) app.use(fapi.protect(appWide));
    for (const [path, route] of entries) {
      app.post(path, ...route.layers.map((p) => fapi.protect(p)), async (req, res) => {
        const a = await route.handle(req.auth ?? undefined);
        res.status(a.status).type(a.type).send(a.body);
      });
    }
    return listening(createServer(app).listen(0, '127.0.0.1'));
  }
  if (framework === 'koa') {
    const fapi = koaGuard(options);
    const app = new Koa();
    if (appWide) app.use(fapi.protect(appWide));
    const router = new Router();
    for (const [path, route] of entries) {
      router.post(path, ...route.layers.map((p) => fapi.protect(p)), async (ctx) => {
        const a = await route.handle(ctx.state.auth ?? undefined);
        ctx.status = a.status;
        ctx.type = a.type;
        ctx.body = a.body;
      });
    }
    app.use(router.routes());
    return listening(createServer(app.callback()).listen(0, '127.0.0.1'));
  }
  if (framework === 'fastify') {
    const app = Fastify();
    await app.register(fastifyPlugin, options);
    app.addContentTypeParser('application/jwt', { parseAs: 'string' }, (_req, body, done) => done(null, body));
    for (const [path, route] of entries) {
      const preHandler = [...(appWide ? [appWide] : []), ...route.layers].map((p) => app.fapi.protect(p));
      app.post(path, { preHandler }, async (request, reply) => {
        const a = await route.handle(request.auth ?? undefined);
        return reply.code(a.status).type(a.type).send(a.body);
      });
    }
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
  }
  const fapi = honoGuard(options);
  const app = new Hono();
  if (appWide) app.use('*', fapi.protect(appWide));
  for (const [path, route] of entries) {
    // Each layer as the route's own middleware, in order (one Context per request).
    for (const p of route.layers) app.post(path, fapi.protect(p));
    app.post(path, async (c) => {
      const a = await route.handle(c.get('auth') ?? undefined);
      return c.body(a.body, a.status as 201, { 'content-type': a.type });
    });
  }
  return serveHono(app);
}

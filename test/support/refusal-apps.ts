/**
 * Refusals through each framework's own error path (issue 25 §3), listening on 127.0.0.1: the
 * same routes on every adapter, either answered by the adapter in a chosen body format, or
 * handed to an application error handler that writes the team's envelope — and tries to answer
 * 200 and drop the challenge headers, which must not work.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GuardError, GuardOptions, RefusalOptions, RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { FapiRefusalException, fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiPolicy, FapiRefusal } from '@fapi-guard/nestjs';
import Router from '@koa/router';
import { type ArgumentsHost, Catch, Controller, type ExceptionFilter, Get } from '@nestjs/common';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import type { Framework } from './apps';
import { serveHono } from './apps';
import { startNestApp } from './nest-app';

export const REFUSAL_ROUTES: Readonly<Record<'accounts' | 'nonce', RoutePolicy>> = {
  accounts: { scopes: ['accounts'] },
  nonce: { scopes: ['accounts'], dpopNonce: true },
};

/** The headers an error handler tries to drop. */
const CHALLENGE_HEADERS = ['www-authenticate', 'dpop-nonce', 'retry-after'];

/** The refusal an error handler was given, whatever the framework wrapped it in. */
function refusalOf(error: unknown): GuardError | undefined {
  if (error instanceof FapiRefusal) return error.error;
  if (error instanceof FapiRefusalException) return error.refusal;
  const value = error as Partial<GuardError> | null;
  return value && value.ok === false && typeof value.reason === 'string' ? (error as GuardError) : undefined;
}

/** The team's envelope (UK Open Banking style), built from the typed refusal. */
export function envelope(error: unknown): Record<string, unknown> {
  const refusal = refusalOf(error);
  if (!refusal) return { Code: '500', Message: 'not a refusal' };
  return {
    Code: String(refusal.status),
    Message: refusal.description,
    Errors: [{ ErrorCode: refusal.error ?? 'temporarily_unavailable', Reason: refusal.reason }],
  };
}

const ok = { ok: true };

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

function startExpress(options: GuardOptions, refusals: RefusalOptions) {
  const fapi = expressGuard(options, refusals);
  const app = express();
  for (const [name, policy] of Object.entries(REFUSAL_ROUTES)) app.get(`/${name}`, fapi.protect(policy), (_req, res) => void res.json(ok));
  app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    for (const name of CHALLENGE_HEADERS) res.removeHeader(name);
    res.status(200).json(envelope(error));
  });
  return listen(app.listen(0, '127.0.0.1'));
}

function startKoa(options: GuardOptions, refusals: RefusalOptions) {
  const fapi = koaGuard(options, refusals);
  const app = new Koa();
  app.on('error', () => undefined);
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      for (const name of CHALLENGE_HEADERS) ctx.remove(name);
      ctx.status = 200;
      ctx.body = envelope(error);
    }
  });
  const router = new Router();
  for (const [name, policy] of Object.entries(REFUSAL_ROUTES)) {
    router.get(`/${name}`, fapi.protect(policy), (ctx) => {
      ctx.body = ok;
    });
  }
  app.use(router.routes());
  return listen(app.listen(0, '127.0.0.1'));
}

async function startFastify(options: GuardOptions, refusals: RefusalOptions) {
  const app = Fastify();
  await app.register(fastifyPlugin, { ...options, ...refusals });
  app.setErrorHandler((error, _request, reply) => {
    for (const name of CHALLENGE_HEADERS) reply.removeHeader(name);
    reply.code(200).send(envelope(error));
  });
  // One route each way: config.fapi (onRequest) and the preHandler.
  app.get('/accounts', { config: { fapi: routePolicy(REFUSAL_ROUTES.accounts) } }, async () => ok);
  app.get('/nonce', { preHandler: app.fapi.protect(REFUSAL_ROUTES.nonce) }, async () => ok);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

function startHono(options: GuardOptions, refusals: RefusalOptions) {
  const fapi = honoGuard(options, refusals);
  const app = new Hono();
  for (const [name, policy] of Object.entries(REFUSAL_ROUTES)) app.get(`/${name}`, fapi.protect(policy), (c) => c.json(ok));
  app.onError(
    fapi.onError((error, c) => {
      const answer = c.json(envelope(error), 200);
      for (const name of CHALLENGE_HEADERS) answer.headers.delete(name);
      return answer;
    }),
  );
  return serveHono(app);
}

/** An application-wide catch-all filter that writes the envelope with 200 and drops the challenge. */
@Catch()
class EnvelopeFilter implements ExceptionFilter {
  catch(error: unknown, host: ArgumentsHost) {
    const res = host.switchToHttp().getResponse();
    if (typeof res.code === 'function') {
      for (const name of CHALLENGE_HEADERS) res.removeHeader(name);
      res.code(200).send(envelope(error));
    } else {
      for (const name of CHALLENGE_HEADERS) res.removeHeader(name);
      res.status(200).json(envelope(error));
    }
  }
}

async function startNest(platform: 'nestjs' | 'nestjs-fastify', options: GuardOptions, refusals: RefusalOptions) {
  @Controller()
  class Routes {
    @Get('accounts')
    @FapiPolicy(REFUSAL_ROUTES.accounts)
    accounts() {
      return ok;
    }
    @Get('nonce')
    @FapiPolicy(REFUSAL_ROUTES.nonce)
    nonce() {
      return ok;
    }
  }
  const { url, close } = await startNestApp(platform, options, [Routes], (nest) => nest.useGlobalFilters(new EnvelopeFilter()), {
    settings: refusals,
  });
  return { url, close };
}

/** The refusal app on `framework` with the adapter's refusal options. */
export function startRefusalApp(
  framework: Framework,
  options: GuardOptions,
  refusals: RefusalOptions,
): Promise<{ url: string; close(): Promise<void> }> {
  if (framework === 'nestjs' || framework === 'nestjs-fastify') return startNest(framework, options, refusals);
  return { express: startExpress, koa: startKoa, fastify: startFastify, hono: startHono }[framework](options, refusals);
}

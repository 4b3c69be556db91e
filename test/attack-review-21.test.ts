/**
 * Attack review 21: a timeout middleware that answers 504 while the handler of a payment runs on,
 * on the Node adapters (express, koa, fastify, nestjs on Express and on Fastify), with two layers
 * of one guard — an app-wide one without idempotency and the route's `idempotency: 'required'` —
 * and the timeout between them, in front of both, or behind both. (On Hono, the same layout with
 * the timeout between the layers had the outer layer take the 504 for the handler's own server
 * error and free the key of a payment made after it.)
 *
 * What the Node adapters do, in every layout: the 504 goes out through the recorder of the layer
 * that claimed the key (the route's; the app-wide layer without idempotency records nothing), is
 * taken for a server error of the handler, and frees the key; the handler pays after it, and the
 * retry with the same key is processed a second time. That is what docs/packages/core.md
 * ("Idempotency keys", Server errors are not recorded, IDEM-10) says for the Node adapters: "no
 * timeout middleware belongs on a route with a key, in front of the guard or behind it: one that
 * answers 503 or 504 while the handler runs on (Express's `connect-timeout`, `hono/timeout`)
 * gives the guard a server error it cannot tell from the handler's own, and the key is freed under
 * a payment still being made" — only Hono promises more (a timeout in front of the guard is kept
 * as processed, hono.md). express.md, koa.md, fastify.md and nestjs.md say nothing of their own
 * about timeouts. So the "documented limitation" tests below pin the double payment as
 * documented (they would change if the Node adapters ever did what Hono does); they are no
 * finding. Nest's own timeout pattern (an interceptor throwing RequestTimeoutException, 408) is
 * recorded as the answer: never processed twice, but the payment made is replayed as a 408.
 *
 * Finding (failing test; asserts core.md, "Idempotency keys"):
 *
 * 1. Key "in flight" for its lifetime (express, koa, fastify, nestjs on Fastify; the timeout
 *    between the two layers or in front of both) — its 504 goes out before the route's layer
 *    has claimed the key (the guard still waiting on the idempotency store: a Redis store may take
 *    up to its `timeoutMs`, 500 ms by default). The layer then claims the key on a response
 *    already ended: the recorder installed on it never sees an `end`, and its 'close' listener
 *    comes after the 'close' (core/src/idempotency/node.ts recordNodeResponse), so nothing ever
 *    finishes or releases the claim, and exchange.ts renews it every half lease up to the key's
 *    lifetime: every retry gets 409 "still being processed" (24 h by default). Express, Koa and
 *    Nest on Fastify go on to run the handler, which pays for a request already answered 504;
 *    Fastify does not run it (no payment made), and holds the key all the same. core.md
 *    ("Idempotency keys"): 409 "still being processed" is for a request "which is still
 *    running"; a 5xx frees the key (IDEM-10), a processed request's response is recorded or kept
 *    "processed, response not kept" (IDEM-11).
 *    Impact: no double payment, but the client, told 504, can never learn by retrying under its
 *    key whether it paid (Fastify: a payment never made that cannot be retried under its key);
 *    with a short `leaseSec` the renewal shows the claim held past three leases. Nest on Express
 *    held (409 "not kept").
 *    Fix: after the claim, a layer whose response was already sent (res.writableEnded or
 *    headersSent) releases the claim (the 5xx sent frees the key, as always) and does not go on
 *    to the handler; or the recorder settles a claim installed on a response already ended.
 *
 * Fixed (finding 1, a key claimed after the 504 went out was never settled: 409 "still being
 * processed" for the key's lifetime): packages/core/src/idempotency/node.ts startNodeIdempotency
 * settles such a claim at once as processed, its answer not kept.
 */

import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GuardOptions, IdempotencyStore, RoutePolicy } from '@fapi-guard/core';
import { MemoryIdempotencyStore } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { FapiPolicy } from '@fapi-guard/nestjs';
import Router from '@koa/router';
import {
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  GatewayTimeoutException,
  HttpCode,
  type NestInterceptor,
  Post,
  RequestTimeoutException,
  Res,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import express from 'express';
import Fastify, { type FastifyReply, type preHandlerHookHandler } from 'fastify';
import Koa from 'koa';
import { from, mergeMap, type Observable, race, throwError } from 'rxjs';
import { BODY, IN_FLIGHT, key, pause, signal, UNKEPT, useHangUps } from './support/hang-up';
import { listening } from './support/http';
import { sendPayment } from './support/idempotency-apps';
import { type NestPlatform, startNestApp } from './support/nest-app';

const PUBLIC = 'https://api.bank.example';
const { tpp, settledRetry } = useHangUps(PUBLIC);

const ROUTE: RoutePolicy = { scopes: ['payments:write'], idempotency: 'required' };
const APP_WIDE: RoutePolicy = {};

type Layout = 'between' | 'front' | 'behind';
const LAYOUTS: readonly Layout[] = ['between', 'front', 'behind'];

/**
 * One app's payments: the handler counts what it paid. The timeout answers the first request
 * only, once `trigger` has resolved (the handler started, or the store was asked to claim); the
 * handler pays once that answer went out (`timedOut`), then answers if it still can.
 */
function newRun(trigger: 'handler' | 'claim' = 'handler') {
  const run = {
    processed: 0,
    armed: 0,
    timing: false,
    started: signal(),
    claiming: signal(),
    timedOut: signal(),
    done: signal(),
    /** Arms the timeout of this request (the first one only): `answer` sends its 504. */
    arm(answer: () => void): boolean {
      if (run.armed++ > 0) return false;
      run.timing = true;
      (trigger === 'handler' ? run.started : run.claiming).promise.then(async () => {
        answer();
        await pause(20);
        run.timedOut.fire();
      });
      return true;
    },
    /** The handler's work: the first run pays only after the timeout answered. */
    async pay(): Promise<string> {
      if (run.processed === 0 && run.timing) {
        run.started.fire();
        await bounded(run.timedOut.promise, 5_000);
        await pause(50);
      }
      run.processed++;
      run.done.fire();
      return `pay-${run.processed}`;
    },
  };
  return run;
}
type Run = ReturnType<typeof newRun>;

/** The memory store, whose first claim waits until the timeout has answered (a slow store). */
function slowFirstClaim(run: Run): IdempotencyStore {
  const inner = new MemoryIdempotencyStore();
  let claims = 0;
  return {
    async claim(...args) {
      if (claims++ === 0) {
        run.claiming.fire();
        await bounded(run.timedOut.promise, 5_000);
      }
      return inner.claim(...args);
    },
    complete: (...args) => inner.complete(...args),
    release: (...args) => inner.release(...args),
    extend: (...args) => inner.extend(...args),
  };
}

/** `promise`, or nothing after `ms` (the timer cleared either way). */
async function bounded(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

const TIMEOUT_BODY = { error: 'gateway_timeout' };

interface Served {
  url: string;
  close(): Promise<unknown>;
}

async function expressApp(options: GuardOptions, layout: Layout, run: Run, route: RoutePolicy = ROUTE): Promise<Served> {
  const fapi = expressGuard(options);
  const app = express();
  // connect-timeout's way: next() at once, and its own 504 once the time is up.
  const timeout: express.RequestHandler = (_req, res, next) => {
    run.arm(() => {
      if (!res.headersSent) res.status(504).json(TIMEOUT_BODY);
    });
    next();
  };
  if (layout === 'front') app.use(timeout);
  app.use(fapi.protect(APP_WIDE));
  if (layout === 'between') app.use(timeout);
  const behind = layout === 'behind' ? [timeout] : [];
  app.post('/payments', fapi.protect(route), ...behind, async (_req, res) => {
    const payment = await run.pay();
    if (!res.headersSent) res.status(201).json({ payment });
  });
  return listening(app.listen(0, '127.0.0.1'));
}

async function koaApp(options: GuardOptions, layout: Layout, run: Run, route: RoutePolicy = ROUTE): Promise<Served> {
  const fapi = koaGuard(options);
  const app = new Koa();
  app.silent = true;
  // koa-timeout's way: next() raced against the timer, the 504 set on the context.
  const timeout: Koa.Middleware = async (ctx, next) => {
    const fired = signal();
    if (!run.arm(() => fired.fire())) return next();
    const chain = next().then(
      () => 'done',
      () => 'done',
    );
    if ((await Promise.race([chain, fired.promise.then(() => 'timeout')])) === 'timeout') {
      ctx.status = 504;
      ctx.body = TIMEOUT_BODY;
    }
  };
  if (layout === 'front') app.use(timeout);
  app.use(fapi.protect(APP_WIDE));
  if (layout === 'between') app.use(timeout);
  const router = new Router();
  const behind = layout === 'behind' ? [timeout] : [];
  router.post('/payments', fapi.protect(route), ...behind, async (ctx) => {
    const payment = await run.pay();
    ctx.status = 201;
    ctx.body = { payment };
  });
  app.use(router.routes());
  return listening(app.listen(0, '127.0.0.1'));
}

async function fastifyApp(options: GuardOptions, layout: Layout, run: Run, route: RoutePolicy = ROUTE): Promise<Served> {
  const app = Fastify();
  await app.register(fastifyPlugin, options);
  // A timer hook that sends its own 504 reply while the chain goes on.
  const timeout: preHandlerHookHandler = (_request, reply, done) => {
    run.arm(() => {
      if (!reply.sent) void reply.code(504).send(TIMEOUT_BODY);
    });
    done();
  };
  const layers = [app.fapi.protect(APP_WIDE), app.fapi.protect(route)];
  const preHandler =
    layout === 'front' ? [timeout, ...layers] : layout === 'between' ? [layers[0], timeout, layers[1]] : [...layers, timeout];
  app.post('/payments', { preHandler: preHandler as preHandlerHookHandler[] }, async (_request, reply) => {
    const payment = await run.pay();
    if (!reply.sent) return reply.code(201).send({ payment });
    return reply;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

/** Writes the timeout's 504 on Express's `res` or Fastify's `reply`. */
function send504(response: unknown): void {
  const r = response as {
    sent?: boolean;
    headersSent?: boolean;
    code?: (n: number) => FastifyReply;
    status?: (n: number) => express.Response;
  };
  if (r.code) {
    if (!r.sent) void r.code(504).send(TIMEOUT_BODY);
  } else if (!r.headersSent) r.status?.(504).json(TIMEOUT_BODY);
}

/**
 * Nest with the module's `global` policy (the app-wide layer) and the route's `@FapiPolicy`:
 * front — a middleware (Express) or an onRequest hook (Fastify) on the platform; between — a
 * controller guard (Nest runs it after the global guards, before the method's); behind — an
 * interceptor that throws `exception` once the handler has started (Nest's own timeout pattern).
 */
async function nestApp(
  platform: NestPlatform,
  options: GuardOptions,
  layout: Layout,
  run: Run,
  exception: () => Error = () => new GatewayTimeoutException(),
  route: RoutePolicy = ROUTE,
): Promise<Served> {
  class TimeoutGuard implements CanActivate {
    canActivate(context: ExecutionContext): boolean {
      if (layout === 'between') run.arm(() => send504(context.switchToHttp().getResponse()));
      return true;
    }
  }
  class TimeoutInterceptor implements NestInterceptor {
    intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
      if (layout !== 'behind') return next.handle();
      const fired = signal();
      if (!run.arm(() => fired.fire())) return next.handle();
      return race(next.handle(), from(fired.promise).pipe(mergeMap(() => throwError(exception))));
    }
  }
  @Controller('payments')
  @UseGuards(TimeoutGuard)
  class Payments {
    @Post()
    @HttpCode(201)
    @FapiPolicy(route)
    @UseInterceptors(TimeoutInterceptor)
    async pay(@Res({ passthrough: true }) _res: ServerResponse) {
      return { payment: await run.pay() };
    }
  }
  const prepare = (app: import('@nestjs/common').INestApplication) => {
    if (layout !== 'front') return;
    const instance = app.getHttpAdapter().getInstance() as {
      addHook?: (name: 'onRequest', hook: (request: unknown, reply: FastifyReply, done: () => void) => void) => void;
    };
    if (instance.addHook) {
      instance.addHook('onRequest', (_request, reply, done) => {
        run.arm(() => send504(reply));
        done();
      });
    } else {
      app.use((_req: unknown, res: express.Response, next: () => void) => {
        run.arm(() => send504(res));
        next();
      });
    }
  };
  return startNestApp(platform, options, [Payments], prepare, { rawBody: true, settings: { global: APP_WIDE } });
}

type Adapter = 'express' | 'koa' | 'fastify' | NestPlatform;
const ADAPTERS: readonly Adapter[] = ['express', 'koa', 'fastify', 'nestjs', 'nestjs-fastify'];

function start(adapter: Adapter, options: GuardOptions, layout: Layout, run: Run, route: RoutePolicy = ROUTE): Promise<Served> {
  if (adapter === 'express') return expressApp(options, layout, run, route);
  if (adapter === 'koa') return koaApp(options, layout, run, route);
  if (adapter === 'fastify') return fastifyApp(options, layout, run, route);
  return nestApp(adapter, options, layout, run, undefined, route);
}

/** The first payment (answered by the timeout), the handler's payment after it, and the retry with the same key. */
async function timeoutThenRetry(served: Served, run: Run, name: string, tries = 40) {
  const k = key(name);
  const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
  await bounded(run.done.promise, 3_000);
  await pause(100);
  const retry = await settledRetry(served.url, k, {}, tries);
  return { first: first.status, retry: { status: retry.status, text: retry.text }, processed: run.processed };
}

/** The route's key with a 1 s lease: a claim still held after three leases is being renewed (for the key's lifetime, 24 h). */
const SHORT_LEASE: RoutePolicy = { scopes: ['payments:write'], idempotency: { mode: 'required', leaseSec: 1 } };

describe('findings', () => {
  describe('1. a 504 sent before the route layer claimed the key: the key stays in flight for its lifetime', () => {
    const where = { between: 'between the app-wide layer and the route’s', front: 'in front of both layers' } as const;
    const cases = (['between', 'front'] as const).flatMap((layout) => ADAPTERS.map((adapter) => [adapter, where[layout], layout] as const));
    it.each(cases)(
      'IDEM-10 IDEM-12 %s, timeout %s: its 504 goes out while the store is claiming the route’s key: the retry is answered (409 not kept, or processed anew if the handler never ran), never 409 in flight past three leases',
      async (adapter, _where, layout) => {
        const run = newRun('claim');
        const served = await start(adapter, { ...tpp.options, idempotency: { store: slowFirstClaim(run) } }, layout, run, SHORT_LEASE);
        try {
          // Retries for up to ~3 s: three leases of 1 s.
          const { first, retry, processed } = await timeoutThenRetry(served, run, `${adapter}-${layout}-504-before-claim`, 60);
          const inFlight = retry.status === 409 && retry.text.includes(IN_FLIGHT);
          const answered = retry.status === 409 ? retry.text.includes(UNKEPT) : retry.status === 201;
          // Before the fix (express, koa, nestjs-fastify): the handler paid for the request answered
          // 504 (processed 1) and the retry got 409 "still being processed", the claim renewed every
          // half lease up to the key's lifetime; fastify: the same hold. Now a key claimed after the
          // answer went out is settled at once as processed, its answer not kept (node.ts
          // startNodeIdempotency): 409 "not kept". Fastify runs no handler for a reply already sent
          // (processed 0): the client, told to look the payment up, finds none — the safe side.
          expect({ first, processed, inFlight, answered }).toEqual({
            first: 504,
            processed: adapter === 'fastify' ? 0 : 1,
            inFlight: false,
            answered: true,
          });
        } finally {
          await served.close();
        }
      },
      30_000,
    );
  });
});

describe('documented limitation (core.md, Server errors are not recorded): a timeout’s 504 while the handler runs on frees the key', () => {
  for (const layout of LAYOUTS) {
    it.each(ADAPTERS)(
      `IDEM-10 %s, timeout ${layout === 'between' ? 'between the app-wide layer and the route’s' : layout === 'front' ? 'in front of both layers' : 'behind both layers'}: the 504 is taken for the handler’s server error and the key freed; the payment made after it is made again by the retry (as core.md says: no timeout middleware on a key route)`,
      async (adapter) => {
        const run = newRun();
        const served = await start(adapter, tpp.options, layout, run);
        try {
          const { first, retry, processed } = await timeoutThenRetry(served, run, `${adapter}-${layout}-504`);
          expect({ first, retry: retry.status, processed }).toEqual({ first: 504, retry: 201, processed: 2 });
        } finally {
          await served.close();
        }
      },
      30_000,
    );
  }
});

describe('attacks that held', () => {
  it.each(['nestjs', 'nestjs-fastify'] as const)(
    'IDEM-10 IDEM-12 %s: Nest’s own timeout interceptor (RequestTimeoutException, 408) behind both layers: the 408 is recorded as the answer and replayed, the payment made once',
    async (platform) => {
      const run = newRun();
      const served = await nestApp(platform, tpp.options, 'behind', run, () => new RequestTimeoutException());
      try {
        const { first, retry, processed } = await timeoutThenRetry(served, run, `${platform}-408`);
        // Never processed twice; the client is answered 408 again (the payment is to be looked up).
        expect({ first, retry: retry.status, processed }).toEqual({ first: 408, retry: 408, processed: 1 });
      } finally {
        await served.close();
      }
    },
    30_000,
  );

  it.each(ADAPTERS)(
    'IDEM-12 %s: without a timeout, the same two layers: the retry is answered with the stored payment, processed once',
    async (adapter) => {
      const run = newRun();
      run.armed = 1;
      const served = await start(adapter, tpp.options, 'between', run);
      try {
        const k = key(`${adapter}-no-timeout`);
        const first = await sendPayment(served.url, PUBLIC, { who: tpp.payer, key: k, body: BODY });
        const retry = await settledRetry(served.url, k);
        expect({ first: first.status, retry: retry.status, text: retry.text, processed: run.processed }).toEqual({
          first: 201,
          retry: 201,
          text: first.text,
          processed: 1,
        });
      } finally {
        await served.close();
      }
    },
    30_000,
  );
});

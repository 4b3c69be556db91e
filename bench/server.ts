/**
 * One benchmark server, in its own process: `node bench/dist/bench/server.js <scenario>`, with
 * the issuer and keys in the BENCH_CONFIG environment variable (JSON). Prints `READY <port>`.
 * Every scenario serves `GET /accounts` (scope `accounts`) answering `{"ok":true}`; the `-post`
 * scenarios also `POST /payments` (bearer tokens), with idempotency keys in the `-idem` ones.
 */

import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { openSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { type GuardOptions, MemoryIdempotencyStore, type RoutePolicy } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as honoGuard } from '@fapi-guard/hono';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import { RedisIdempotencyStore, RedisReplayStore } from '@fapi-guard/redis';
import fastifyJwt from '@fastify/jwt';
import { serve } from '@hono/node-server';
import express from 'express';
import { expressjwt } from 'express-jwt';
import { auth, requiredScopes } from 'express-oauth2-jwt-bearer';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { jwt } from 'hono/jwt';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { createLogger, logDecisions } from '../examples/payments-api/src/log';
import { startNest } from './nest';
import { parseScenario } from './scenario';

interface BenchConfig {
  issuer: string;
  jwksUri: string;
  audience: string;
  publicUrl: string;
  /** PEM of the ES256 signing key, for peers that take a static key. */
  publicKeyPem: string;
  redisUrl?: string;
}

const scenario = process.argv[2] ?? '';
/** `-layered`: an app-wide `protect()` and the route's `requireScopes('accounts')` (issue 25). */
const layered = scenario.endsWith('-layered');
const config = JSON.parse(process.env.BENCH_CONFIG ?? '{}') as BenchConfig;
const body = { ok: true };

/**
 * The `-verify` and `-verifypool` bare routes: the one thing a DPoP route cannot avoid —
 * verifying the proof's signature (key imported once), on the event loop or on libuv's thread
 * pool — and nothing else. The better of the two is the limit measured instead of computed.
 */
const proofKeys = new Map<string, KeyObject>();
function proofVerifies(proof: unknown): boolean {
  if (typeof proof !== 'string') return false;
  const [h, p, sig] = proof.split('.') as [string, string, string];
  let key = proofKeys.get(h);
  if (!key) {
    key = createPublicKey({ key: JSON.parse(Buffer.from(h, 'base64url').toString()).jwk, format: 'jwk' });
    proofKeys.set(h, key);
  }
  return verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));
}
const verifyOnly = scenario.startsWith('bare-') && (scenario.endsWith('-verify') || scenario.endsWith('-verifypool'));
const inPool = scenario.endsWith('-verifypool');
/** Either way of checking the proof signature, as the scenario says. */
const proofOk = (proof: unknown): boolean | Promise<boolean> => (inPool ? proofVerifiesAsync(proof) : proofVerifies(proof));
/** The same check on libuv's thread pool (crypto.verify with a callback). */
function proofVerifiesAsync(proof: unknown): Promise<boolean> {
  if (typeof proof !== 'string') return Promise.resolve(false);
  const [h, p, sig] = proof.split('.') as [string, string, string];
  let key = proofKeys.get(h);
  if (!key) {
    key = createPublicKey({ key: JSON.parse(Buffer.from(h, 'base64url').toString()).jwk, format: 'jwk' });
    proofKeys.set(h, key);
  }
  const k = key;
  return new Promise((resolve) =>
    verify('sha256', Buffer.from(`${h}.${p}`), { key: k, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'), (e, ok) =>
      resolve(!e && ok),
    ),
  );
}

function guardOptions(): GuardOptions {
  const options: GuardOptions = { issuer: config.issuer, audience: config.audience, publicUrl: config.publicUrl, interactionId: false };
  if (scenario.endsWith('-mtls')) options.mtls = { proxy: { trustedPeers: ['127.0.0.1', '::1'] } };
  if (scenario.endsWith('-log')) {
    // The example's decision log as it is (examples/payments-api/src/log.ts): every decision a
    // JSON line through pino, and pino as the guard's logger. /dev/null, so the measure is the
    // log's cost in this process (serialising, buffering, write calls), not the speed of a
    // terminal or a collector.
    const logger = createLogger(openSync('/dev/null', 'w'));
    options.logger = logger;
    options.onDecision = logDecisions(logger);
  }
  // One bench client sends every key: its share of the memory store is the whole store.
  if (scenario.includes('-idem')) options.idempotency = { store: new MemoryIdempotencyStore({ maxPerClient: 100_000 }) };
  if (scenario.endsWith('-redis') && config.redisUrl) {
    options.dpop = { replayStore: new RedisReplayStore({ client: new Redis(config.redisUrl) }) };
    if (scenario.includes('-idem')) options.idempotency = { store: new RedisIdempotencyStore({ client: new Redis(config.redisUrl) }) };
  }
  // The proof signature on the event loop instead of libuv's thread pool (the default on
  // multi-core machines): less CPU per request (no hand-over), less parallelism.
  if (scenario.endsWith('-dpop-main')) options.dpop = { verifyOn: 'main' };
  return options;
}

function policy(): RoutePolicy {
  // POST /payments with and without idempotency keys: the same route, the same bearer requests.
  if (scenario.includes('-post'))
    return { scopes: ['accounts'], allowBearer: true, ...(scenario.includes('-idem') ? { idempotency: 'required' } : {}) };
  return scenario.endsWith('-bearer') ? { scopes: ['accounts'], allowBearer: true } : { scopes: ['accounts'] };
}

/** The Hono routes, on @hono/node-server (the adapter reads the Node request under the Fetch one). */
async function startHono(kind: string | undefined): Promise<number> {
  const app = new Hono();
  if (kind === 'fapi' && layered) {
    const fapi = honoGuard(guardOptions());
    app.use('*', fapi.protect());
    app.get('/accounts', fapi.requireScopes('accounts'), (c) => c.json(body));
  } else if (kind === 'fapi') app.get('/accounts', honoGuard(guardOptions()).protect(policy()), (c) => c.json(body));
  else if (kind === 'peer') {
    // hono/jwt, what Hono users wire by hand: Bearer JWT with a static ES256 key; issuer, audience, typ checked.
    const key = createPublicKey(config.publicKeyPem).export({ format: 'jwk' });
    const verification = { iss: config.issuer, aud: config.audience, typ: 'at+jwt' };
    app.get('/accounts', jwt({ secret: key as never, alg: 'ES256', verification }), (c) => {
      const scope = String((c.get('jwtPayload') as { scope?: string }).scope ?? '').split(' ');
      return scope.includes('accounts') ? c.json(body) : c.body(null, 403);
    });
  } else {
    // bare-hono-middleware: one pass-through async middleware before the handler, what any
    // guard puts there — Hono then composes the route asynchronously.
    if (scenario === 'bare-hono-middleware') app.use('/accounts', async (_c, next) => void (await next()));
    app.get('/accounts', (c) => c.json(body));
  }
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise((r) => server.once('listening', r));
  return (server.address() as AddressInfo).port;
}

async function start(): Promise<number> {
  const { kind, framework } = parseScenario(scenario);
  if (framework === 'nestjs' || framework === 'nestjs-fastify') {
    const nest = { kind: kind as 'bare' | 'fapi' | 'peer', platform: framework, guard: guardOptions(), policy: policy(), ...config };
    return startNest(nest);
  }
  if (framework === 'hono') return startHono(kind);
  if (framework === 'fastify') {
    const app = Fastify();
    if (kind === 'fapi') {
      await app.register(fastifyPlugin, guardOptions());
      app.get('/accounts', { config: { fapi: routePolicy(policy()) } }, async () => body);
    } else if (kind === 'peer') {
      // @fastify/jwt: Bearer JWT with a static ES256 key, issuer and audience checked.
      await app.register(fastifyJwt, {
        secret: { public: config.publicKeyPem, private: 'unused' },
        verify: { algorithms: ['ES256'], allowedIss: config.issuer, allowedAud: config.audience },
      });
      app.get('/accounts', { onRequest: [async (request) => void (await request.jwtVerify())] }, async (request) => {
        const scope = String((request.user as { scope?: string }).scope ?? '').split(' ');
        if (!scope.includes('accounts')) throw Object.assign(new Error('insufficient_scope'), { statusCode: 403 });
        return body;
      });
    } else if (verifyOnly) {
      app.get('/accounts', async (request, reply) => ((await proofOk(request.headers.dpop)) ? body : reply.code(401).send()));
    } else app.get('/accounts', async () => body);
    await app.listen({ port: 0, host: '127.0.0.1' });
    return (app.server.address() as AddressInfo).port;
  }
  if (framework === 'koa') {
    const app = new Koa();
    if (kind === 'fapi') app.use(koaGuard(guardOptions()).protect(policy()));
    app.use(async (ctx) => {
      if (verifyOnly && !(await proofOk(ctx.get('dpop')))) ctx.status = 401;
      else ctx.body = body;
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    return (server.address() as AddressInfo).port;
  }
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  if (kind === 'fapi' && layered) {
    // The layered pattern: the app-wide guard authenticates, the route's layer checks its scope.
    const fapi = expressGuard(guardOptions());
    app.use(fapi.protect());
    app.get('/accounts', fapi.requireScopes('accounts'), (_req, res) => void res.json(body));
  } else if (kind === 'fapi') {
    // As the README shows it: the guard and the handler on one route.
    const fapi = expressGuard(guardOptions());
    app.get('/accounts', fapi.protect(policy()), (_req, res) => void res.json(body));
    if (scenario.includes('-post'))
      app.post('/payments', fapi.protect(policy()), express.json(), (_req, res) => void res.status(201).json(body));
  }
  if (scenario === 'peer-express-auth0-bearer' || scenario === 'peer-express-auth0-dpop') {
    // express-oauth2-jwt-bearer, Auth0's Express verifier, in Bearer or DPoP-required mode.
    const dpop = scenario.endsWith('dpop') ? { enabled: true, required: true } : { enabled: false };
    app.get(
      '/accounts',
      auth({ issuer: config.issuer, jwksUri: config.jwksUri, audience: config.audience, tokenSigningAlg: 'ES256', dpop }),
    );
    app.get('/accounts', requiredScopes('accounts'));
  }
  if (scenario === 'peer-express-jwt') {
    // express-jwt with a static ES256 key.
    const key = createPublicKey(config.publicKeyPem).export({ type: 'spki', format: 'pem' }).toString();
    app.get('/accounts', expressjwt({ secret: key, algorithms: ['ES256'], audience: config.audience, issuer: config.issuer }));
    app.get('/accounts', (req, res, next) => {
      const scope = String((req as unknown as { auth?: { scope?: string } }).auth?.scope ?? '').split(' ');
      if (scope.includes('accounts')) next();
      else res.status(403).end();
    });
  }
  if (verifyOnly) {
    app.get('/accounts', (req, res, next) => {
      const ok = proofOk(req.headers.dpop);
      if (ok === true) next();
      else if (ok === false) res.status(401).end();
      else ok.then((good) => (good ? next() : void res.status(401).end()), next);
    });
  }
  app.get('/accounts', (_req, res) => void res.json(body));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return (server.address() as AddressInfo).port;
}

// Exit normally on SIGTERM so that --cpu-prof (BENCH_NODE_ARGS) can write its profile.
process.on('SIGTERM', () => process.exit(0));

// The runner asks for this process's CPU time (user + system, all threads: getrusage) before
// and after each load, over the IPC channel, so no request of the load is spent on it.
process.on('message', (message) => {
  if (message === 'cpu') process.send?.({ cpu: process.cpuUsage() });
});

start().then(
  (port) => {
    console.log(`READY ${port}`);
    // For the soak run: memory and open handles once a second.
    if (process.env.BENCH_STATS) {
      setInterval(() => {
        const { rss, heapUsed } = process.memoryUsage();
        console.log(`STATS ${rss} ${process.getActiveResourcesInfo().length} ${heapUsed}`);
      }, 1000).unref();
    }
  },
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);

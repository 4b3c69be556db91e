/**
 * Type tests for the public surface of the adapters, checked by `npm run typecheck`
 * (`tsc -p test/tsconfig.json`). Each `@ts-expect-error` must be an error, or tsc fails.
 * Nothing here runs.
 */
import type { Authorized, Binding, GuardError } from '@fapi-guard/core';
import { createGuard } from '@fapi-guard/core';
import { fapiGuard as expressGuard } from '@fapi-guard/express';
import { fapiGuard as fastifyPlugin, routePolicy } from '@fapi-guard/fastify';
import { fapiGuard as koaGuard } from '@fapi-guard/koa';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';

const options = { issuer: 'https://as.example.com', audience: 'https://rs.example.com' };

// Express: req.auth is Authorized | undefined.
const fapi = expressGuard(options);
express().get('/accounts', fapi.protect({ scopes: ['accounts'] }), (req, res) => {
  const auth: Authorized | undefined = req.auth;
  const binding: Binding | undefined = auth?.binding;
  // @ts-expect-error req.auth may be undefined on unprotected routes
  const subject: string = req.auth.subject;
  res.json({ binding, subject });
});
// @ts-expect-error scopes are strings
fapi.protect({ scopes: [1] });
// @ts-expect-error unknown policy member
fapi.protect({ scope: ['accounts'] });

// Koa: ctx.state.auth is Authorized | undefined.
const koa = koaGuard(options);
new Koa().use(koa.protect({ anyScopes: ['a', 'b'], dpopNonce: true })).use((ctx) => {
  const auth: Authorized | undefined = ctx.state.auth;
  ctx.body = auth?.clientId;
});

// Fastify: request.auth is Authorized | null; route config carries the policy.
const app = Fastify();
void app.register(fastifyPlugin, options);
app.get('/accounts', { config: { fapi: routePolicy({ scopes: ['accounts'], claims: { acr: { equals: 'urn:x' } } }) } }, async (request) => {
  const auth: Authorized | null = request.auth;
  return { client: auth?.clientId };
});
app.get('/payments', { preHandler: app.fapi.protect({ scopes: ['payments:read'] }) }, async (request) => request.auth?.scopes);
// @ts-expect-error allowBearer is a boolean
app.get('/x', { config: { fapi: routePolicy({ allowBearer: 'yes' }) } }, async () => 'x');
// @ts-expect-error a misspelt policy key in route config (15.1: Fastify infers config types, routePolicy() pins them)
app.get('/y', { config: { fapi: routePolicy({ scopez: ['accounts'] }) } }, async () => 'y');
// @ts-expect-error a plain object in route config, where a misspelt key would go unnoticed
app.get('/z', { config: { fapi: { scopez: ['accounts'] } } }, async () => 'z');

// Core: the result is a discriminated union.
async function check(): Promise<void> {
  const guard = createGuard(options);
  const result = await guard.check({ method: 'GET', url: 'https://rs.example.com/', headers: {} });
  if (result.ok) {
    const a: Authorized = result;
    void a;
  } else {
    const e: GuardError = result;
    const status: 400 | 401 | 403 | 409 | 413 | 422 | 500 | 503 = e.status;
    void status;
  }
}
void check;

// Message signing: the route policy members, the verified signature, the raw-body middleware.
const signing = expressGuard({ ...options, messageSigning: { clients: { tpp: { jwksUri: 'https://tpp.example/jwks' } } } });
express()
  .use(signing.rawBody())
  .post('/payments', signing.protect({ scopes: ['payments:write'], signedRequest: 'required', signResponse: true }), (req, res) => {
    const keyid: string | undefined = req.auth?.signature?.keyid;
    res.json({ keyid });
  });
// @ts-expect-error signedRequest is 'required' or 'optional'
signing.protect({ signedRequest: 'always' });
// @ts-expect-error signResponse is a boolean
signing.protect({ signResponse: 'yes' });
new Koa().use(koaGuard(options).rawBody());
// @ts-expect-error messageSigning clients need jwks or jwksUri
createGuard({ ...options, messageSigning: { clients: { tpp: { url: 'https://tpp.example/jwks' } } } });

// Issue 15.1: misspelt keys are compile errors wherever a policy or options literal is written.
// @ts-expect-error unknown policy member next to a known one
fapi.protect({ scopes: ['accounts'], scopez: ['x'] });
// @ts-expect-error scopes are a list, not a space-separated string
fapi.protect({ scopes: 'accounts' });
// @ts-expect-error unknown policy member (Koa)
koa.protect({ anyScope: ['a'] });
// @ts-expect-error unknown policy member (Fastify preHandler)
app.get('/p', { preHandler: app.fapi.protect({ scope: ['accounts'] }) }, async () => 'p');
// @ts-expect-error unknown guard option
createGuard({ ...options, clockTolerance: 5 });
// @ts-expect-error unknown nested option (dpop.nonce)
createGuard({ ...options, dpop: { nonce: { stepSecs: 30 } } });
// @ts-expect-error unknown nested option (mtls.proxy)
createGuard({ ...options, mtls: { proxy: { trustedPeer: ['10.0.0.1'] } } });
const clientAuth = { method: 'tls_client_auth', cert: '', key: '' } as const;
// @ts-expect-error unknown nested option (introspection.cache)
createGuard({ ...options, introspection: { clientId: 'rs', clientAuth, cache: { maxTtl: 5 } } });
// @ts-expect-error unknown Fastify plugin option
void Fastify().register(fastifyPlugin, { ...options, publicURL: 'https://rs.example.com' });

// Issue 25: layers, refusal options, the typed accessor.
express()
  .use(fapi.protect())
  .get('/layered', fapi.requireScopes('accounts', 'payments'), (req, res) => {
    const auth: Authorized = fapi.authorization(req);
    res.json(auth.clientId);
  });
// @ts-expect-error requireScopes needs at least one scope
fapi.requireScopes();
expressGuard(options, { property: 'fapi', errors: 'framework', errorBody: 'problem' });
expressGuard(options, { errorBody: (refusal: GuardError) => ({ Code: String(refusal.status), Reason: refusal.reason }) });
// @ts-expect-error errors is 'respond' or 'framework'
expressGuard(options, { errors: 'next' });
// @ts-expect-error unknown adapter option
koaGuard(options, { property: 'fapi' });
new Koa().use(koaGuard(options, { errors: 'framework' }).requireScopes('accounts'));
void Fastify().register(fastifyPlugin, { ...options, errors: 'framework', errorBody: 'problem' });
app.get('/q', { preHandler: app.fapi.requireScopes('accounts') }, async (request) => request.auth?.scopes);

/** The example payments API on Hono (served by @hono/node-server), with the same routes as the Express one. */
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/hono';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { type Answer, type ApiOptions, ownerOf, PaymentsService, paymentInput, readiness, routePolicies } from './payments.js';

function reply(c: Context, answer: Answer): Response {
  if (answer.location) c.header('location', answer.location);
  return c.json(answer.body, answer.status as ContentfulStatusCode);
}

export function createHonoPaymentsApi(options: ApiOptions & { guard: GuardOptions }): Hono {
  const fapi = fapiGuard(options.guard);
  const policy = routePolicies(options);
  const service = new PaymentsService();
  const app = new Hono();

  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.get('/ready', async (c) => reply(c, await readiness(fapi.guard)));
  app.use(fapi.metadata());
  app.get('/accounts', fapi.protect(policy.accounts), (c) => reply(c, service.listAccounts(ownerOf(c.get('auth')))));
  app.get('/accounts/:id', fapi.protect(policy.accounts), (c) => reply(c, service.getAccount(ownerOf(c.get('auth')), c.req.param('id'))));
  // The guard runs before the body is read: unauthenticated requests cost no parsing.
  app.post('/payments', fapi.protect(policy.createPayment), bodyLimit({ maxSize: 16 * 1024 }), async (c) =>
    reply(c, service.createPayment(ownerOf(c.get('auth')), paymentInput(c.get('auth'), await c.req.json().catch(() => undefined)))),
  );
  app.get('/payments/:id', fapi.protect(policy.readPayment), (c) =>
    reply(c, service.getPayment(ownerOf(c.get('auth')), c.req.param('id'))),
  );
  return app;
}

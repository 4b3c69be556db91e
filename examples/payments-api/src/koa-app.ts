/** The example payments API on Koa, with the same routes as the Express one. */
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/koa';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import { type Answer, type ApiOptions, ownerOf, PaymentsService, paymentInput, readiness, routePolicies } from './payments.js';

function reply(ctx: Context, answer: Answer): void {
  if (answer.location) ctx.set('location', answer.location);
  ctx.status = answer.status;
  ctx.body = answer.body;
}

export function createKoaPaymentsApi(options: ApiOptions & { guard: GuardOptions }): Koa {
  const fapi = fapiGuard(options.guard);
  const policy = routePolicies(options);
  const service = new PaymentsService();
  const router = new Router();
  const subject = (ctx: Context) => ownerOf(ctx.state.auth);
  const json = bodyParser({ enableTypes: ['json'], jsonLimit: '16kb' });

  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/ready', async (ctx) => reply(ctx, await readiness(fapi.guard)));
  router.get('/accounts', fapi.protect(policy.accounts), (ctx) => reply(ctx, service.listAccounts(subject(ctx))));
  router.get('/accounts/:id', fapi.protect(policy.accounts), (ctx) => reply(ctx, service.getAccount(subject(ctx), ctx.params.id ?? '')));
  router.post('/payments', fapi.protect(policy.createPayment), json, (ctx) =>
    reply(ctx, service.createPayment(subject(ctx), paymentInput(ctx.state.auth, (ctx.request as { body?: unknown }).body))),
  );
  router.get('/payments/:id', fapi.protect(policy.readPayment), (ctx) => reply(ctx, service.getPayment(subject(ctx), ctx.params.id ?? '')));
  const app = new Koa();
  app.use(fapi.metadata()).use(router.routes()).use(router.allowedMethods());
  return app;
}

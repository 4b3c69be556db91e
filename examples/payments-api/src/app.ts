/** The example payments API on Express. */
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/express';
import express, { type Express, type Response } from 'express';
import { type Answer, type ApiOptions, ownerOf, PaymentsService, paymentInput, readiness, routePolicies } from './payments.js';

export interface PaymentsApiOptions extends ApiOptions {
  guard: GuardOptions;
}

function reply(res: Response, answer: Answer): void {
  if (answer.location) res.location(answer.location);
  res.status(answer.status).json(answer.body);
}

export function createPaymentsApi(options: PaymentsApiOptions): Express {
  const fapi = fapiGuard(options.guard);
  const policy = routePolicies(options);
  const service = new PaymentsService();
  const app = express();
  app.disable('x-powered-by');
  const subject = (req: express.Request) => ownerOf(req.auth);

  app.get('/health', (_req, res) => void res.json({ status: 'ok' }));
  app.get('/ready', (_req, res) => void readiness(fapi.guard).then((answer) => reply(res, answer)));
  app.use(fapi.metadata());
  app.get('/accounts', fapi.protect(policy.accounts), (req, res) => reply(res, service.listAccounts(subject(req))));
  app.get('/accounts/:id', fapi.protect(policy.accounts), (req, res) =>
    reply(res, service.getAccount(subject(req), String(req.params.id))),
  );
  // The guard runs before the body is parsed: unauthenticated requests cost no parsing.
  app.post('/payments', fapi.protect(policy.createPayment), express.json({ limit: '16kb' }), (req, res) =>
    reply(res, service.createPayment(subject(req), paymentInput(req.auth, req.body))),
  );
  app.get('/payments/:id', fapi.protect(policy.readPayment), (req, res) =>
    reply(res, service.getPayment(subject(req), String(req.params.id))),
  );
  return app;
}

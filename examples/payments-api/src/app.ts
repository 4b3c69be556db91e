/**
 * The example payments API: accounts and payments routes, each protected with the scope it
 * needs. Data lives in memory, per subject of the access token.
 */
import { randomUUID } from 'node:crypto';
import type { GuardOptions } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/express';
import express, { type Express } from 'express';

export interface PaymentsApiOptions {
  guard: GuardOptions;
  /** Accept unbound bearer tokens on every route (outside the FAPI profile). @default false */
  allowBearer?: boolean;
  /** Require a server DPoP nonce on `POST /payments` (RFC 9449 §9). @default true */
  paymentNonce?: boolean;
}

interface Payment {
  id: string;
  status: 'AcceptedSettlementInProcess';
  amount: { amount: string; currency: string };
  creditorAccount: string;
  createdAt: string;
}

const AMOUNT = /^\d{1,13}\.\d{2}$/;
const CURRENCY = /^[A-Z]{3}$/;

export function createPaymentsApi(options: PaymentsApiOptions): Express {
  const fapi = fapiGuard(options.guard);
  const allowBearer = options.allowBearer === true;
  const payments = new Map<string, Payment & { owner: string }>();
  const app = express();
  app.disable('x-powered-by');
  app.set('json spaces', 0);

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  const accountsOf = (subject: string) => [
    { id: 'acc-001', owner: subject, currency: 'EUR', balance: '1520.34', name: 'Current account' },
    { id: 'acc-002', owner: subject, currency: 'EUR', balance: '10250.00', name: 'Savings account' },
  ];

  app.get('/accounts', fapi.protect({ scopes: ['accounts'], allowBearer }), (req, res) => {
    res.json({ data: accountsOf(req.auth?.subject ?? '') });
  });

  app.get('/accounts/:id', fapi.protect({ scopes: ['accounts'], allowBearer }), (req, res) => {
    const account = accountsOf(req.auth?.subject ?? '').find((a) => a.id === req.params.id);
    if (!account) res.status(404).json({ error: 'not_found' });
    else res.json({ data: account });
  });

  app.post(
    '/payments',
    fapi.protect({ scopes: ['payments:write'], allowBearer, dpopNonce: options.paymentNonce !== false }),
    express.json({ limit: '16kb' }),
    (req, res) => {
      const body = req.body as { amount?: { amount?: unknown; currency?: unknown }; creditorAccount?: unknown } | undefined;
      const amount = body?.amount?.amount;
      const currency = body?.amount?.currency;
      const creditor = body?.creditorAccount;
      if (typeof amount !== 'string' || !AMOUNT.test(amount) || typeof currency !== 'string' || !CURRENCY.test(currency)) {
        res.status(400).json({ error: 'invalid_payment', error_description: 'amount must be { amount: "12.34", currency: "EUR" }' });
        return;
      }
      if (typeof creditor !== 'string' || creditor.length === 0 || creditor.length > 64) {
        res.status(400).json({ error: 'invalid_payment', error_description: 'creditorAccount is required' });
        return;
      }
      const payment: Payment = {
        id: randomUUID(),
        status: 'AcceptedSettlementInProcess',
        amount: { amount, currency },
        creditorAccount: creditor,
        createdAt: new Date().toISOString(),
      };
      payments.set(payment.id, { ...payment, owner: req.auth?.subject ?? '' });
      res.status(201).location(`/payments/${payment.id}`).json({ data: payment });
    },
  );

  app.get('/payments/:id', fapi.protect({ scopes: ['payments:read'], allowBearer }), (req, res) => {
    const payment = payments.get(String(req.params.id));
    if (!payment || payment.owner !== req.auth?.subject) {
      res.status(404).json({ error: 'not_found' });
      return;
    }
    const { owner: _owner, ...data } = payment;
    res.json({ data });
  });

  return app;
}

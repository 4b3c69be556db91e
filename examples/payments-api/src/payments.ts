/**
 * The example's domain, shared by the Express, Koa and Fastify versions: accounts, payments
 * in memory (per subject of the access token), and the policy of each route.
 */
import { randomUUID } from 'node:crypto';
import type { Guard, RoutePolicy } from '@fapi-guard/core';

export interface ApiOptions {
  /** Accept unbound bearer tokens on every route (outside the FAPI profile). @default false */
  allowBearer?: boolean;
  /** Require a server DPoP nonce on `POST /payments` (RFC 9449 §9). @default true */
  paymentNonce?: boolean;
  /** FAPI 2.0 Message Signing on `POST /payments`: signed requests, signed responses. @default off */
  signedPayments?: 'required' | 'optional';
  /**
   * Idempotency keys on `POST /payments` (`Idempotency-Key`, draft-ietf-httpapi-idempotency-key-header):
   * a retried payment is answered with the first response and made once. `required` refuses a
   * payment without a key (UK Open Banking and Brazil Open Finance require one); `optional`
   * processes it without the guarantee.
   * @default 'optional'
   */
  idempotency?: 'required' | 'optional';
  /**
   * `uk-ob`: `POST /payments` takes and answers UK Open Banking `x-jws-signature`s; `br-of`: its
   * bodies are Open Finance Brasil signed JWTs, and so are its answers. Both run FAPI 1.0
   * Advanced (certificate-bound tokens, no DPoP nonce).
   * @default 'fapi2'
   */
  regime?: 'fapi2' | 'uk-ob' | 'br-of';
}

/** The policy of each protected route. */
export function routePolicies(options: ApiOptions) {
  const allowBearer = options.allowBearer === true;
  return {
    accounts: { scopes: ['accounts'], allowBearer },
    createPayment: {
      scopes: ['payments:write'],
      allowBearer,
      // RFC 9449 §9 nonces are DPoP's; the FAPI 1.0 regimes bind tokens to certificates.
      dpopNonce: options.paymentNonce !== false && (options.regime ?? 'fapi2') === 'fapi2',
      idempotency: options.idempotency ?? 'optional',
      ...(options.signedPayments ? { signedRequest: options.signedPayments, signResponse: true } : {}),
      // OB Read/Write API "Message Signing"; Open Finance Brasil "Assinatura de payloads".
      ...(options.regime === 'uk-ob' ? { jwsSignature: { request: 'required' as const, response: true } } : {}),
      ...(options.regime === 'br-of' ? { jwtBody: { request: 'required' as const, response: true } } : {}),
    },
    readPayment: { scopes: ['payments:read'], allowBearer },
  } satisfies Record<string, RoutePolicy>;
}

/** A handler's answer, written by each framework in its own way. */
export interface Answer {
  status: number;
  body: unknown;
  location?: string;
}

/**
 * `GET /ready`: 200 once the guard can verify tokens (every issuer's keys loaded), else 503 with
 * the reason, for a load balancer or an orchestrator's readiness probe. The reason names issuer
 * URLs and network errors: fine for a probe, keep it off a public listener if that matters.
 */
export async function readiness(guard: Guard): Promise<Answer> {
  try {
    await guard.ready();
    return { status: 200, body: { status: 'ready' } };
  } catch (e) {
    return { status: 503, body: { status: 'not ready', reason: (e as Error).message } };
  }
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

function accountsOf(subject: string) {
  return [
    { id: 'acc-001', owner: subject, currency: 'EUR', balance: '1520.34', name: 'Current account' },
    { id: 'acc-002', owner: subject, currency: 'EUR', balance: '10250.00', name: 'Savings account' },
  ];
}

export class PaymentsService {
  private readonly payments = new Map<string, Payment & { owner: string }>();

  listAccounts(subject: string): Answer {
    return { status: 200, body: { data: accountsOf(subject) } };
  }

  getAccount(subject: string, id: string): Answer {
    const account = accountsOf(subject).find((a) => a.id === id);
    return account ? { status: 200, body: { data: account } } : { status: 404, body: { error: 'not_found' } };
  }

  createPayment(subject: string, input: unknown): Answer {
    const body = input as { amount?: { amount?: unknown; currency?: unknown }; creditorAccount?: unknown } | undefined;
    const amount = body?.amount?.amount;
    const currency = body?.amount?.currency;
    const creditor = body?.creditorAccount;
    if (typeof amount !== 'string' || !AMOUNT.test(amount) || typeof currency !== 'string' || !CURRENCY.test(currency)) {
      return { status: 400, body: { error: 'invalid_payment', error_description: 'amount must be { amount: "12.34", currency: "EUR" }' } };
    }
    if (typeof creditor !== 'string' || creditor.length === 0 || creditor.length > 64) {
      return { status: 400, body: { error: 'invalid_payment', error_description: 'creditorAccount is required' } };
    }
    const payment: Payment = {
      id: randomUUID(),
      status: 'AcceptedSettlementInProcess',
      amount: { amount, currency },
      creditorAccount: creditor,
      createdAt: new Date().toISOString(),
    };
    this.payments.set(payment.id, { ...payment, owner: subject });
    return { status: 201, body: { data: payment }, location: `/payments/${payment.id}` };
  }

  getPayment(subject: string, id: string): Answer {
    const payment = this.payments.get(id);
    if (!payment || payment.owner !== subject) return { status: 404, body: { error: 'not_found' } };
    const { owner: _owner, ...data } = payment;
    return { status: 200, body: { data } };
  }
}

/** The payment a request asks for: the verified `data` claim of a signed JWT body (Open Finance Brasil), else the parsed JSON body. */
export function paymentInput(auth: { jwtBody?: { data: unknown } | undefined } | null | undefined, body: unknown): unknown {
  return auth?.jwtBody ? auth.jwtBody.data : body;
}

/** Whose data a request sees: the token's subject, or its client for client-credentials tokens without `sub`. */
export function ownerOf(auth: { subject: string | undefined; clientId: string } | null | undefined): string {
  return auth?.subject ?? auth?.clientId ?? '';
}

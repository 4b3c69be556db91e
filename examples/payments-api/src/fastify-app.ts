/** The example payments API on Fastify, with the same routes as the Express one. */
import type { ServerOptions } from 'node:https';
import type { Authorized, GuardOptions } from '@fapi-guard/core';
import { fapiGuard, routePolicy } from '@fapi-guard/fastify';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { type Answer, type ApiOptions, ownerOf, PaymentsService, paymentInput, readiness, routePolicies } from './payments.js';

function reply(res: FastifyReply, answer: Answer): FastifyReply {
  if (answer.location) res.header('location', answer.location);
  return res.code(answer.status).send(answer.body);
}

export async function createFastifyPaymentsApi(
  options: ApiOptions & { guard: GuardOptions },
  /** Serve HTTPS with these `https.createServer` options. */
  https?: ServerOptions,
): Promise<FastifyInstance> {
  const policy = routePolicies(options);
  const service = new PaymentsService();
  const app = (https ? Fastify({ bodyLimit: 16 * 1024, https }) : Fastify({ bodyLimit: 16 * 1024 })) as unknown as FastifyInstance;
  await app.register(fapiGuard, options.guard);
  // Open Finance Brasil bodies (signed JWTs): the guard verifies the bytes, the handler takes the verified `data` claim.
  app.addContentTypeParser('application/jwt', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  const subject = (request: { auth: Authorized | null }) => ownerOf(request.auth);

  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/ready', async (_req, res) => reply(res, await readiness(app.fapi.guard)));
  app.get('/accounts', { config: { fapi: routePolicy(policy.accounts) } }, async (req, res) =>
    reply(res, service.listAccounts(subject(req))),
  );
  app.get<{ Params: { id: string } }>('/accounts/:id', { config: { fapi: routePolicy(policy.accounts) } }, async (req, res) =>
    reply(res, service.getAccount(subject(req), req.params.id)),
  );
  app.post('/payments', { config: { fapi: routePolicy(policy.createPayment) } }, async (req, res) =>
    reply(res, service.createPayment(subject(req), paymentInput(req.auth, req.body))),
  );
  app.get<{ Params: { id: string } }>('/payments/:id', { config: { fapi: routePolicy(policy.readPayment) } }, async (req, res) =>
    reply(res, service.getPayment(subject(req), req.params.id)),
  );
  return app;
}

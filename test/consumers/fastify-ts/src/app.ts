import { type FapiGuardPluginOptions, fapiGuard, routePolicy } from '@fapi-guard/fastify';
import Fastify, { type FastifyInstance } from 'fastify';

export async function createApp(options: FapiGuardPluginOptions): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(fapiGuard, options);
  app.get('/accounts', { config: { fapi: routePolicy({ scopes: ['accounts'] }) } }, async (request) => ({
    subject: request.auth!.subject,
  }));
  // Payments need FAPI 2.0 Message Signing: the clients' keys and this API's response key.
  if ('messageSigning' in options) {
    const fapi = { scopes: ['payments'], signedRequest: 'required', signResponse: true } as const;
    app.post('/payments', { config: { fapi: routePolicy(fapi) } }, async (request, reply) =>
      reply.code(201).send({ accepted: request.body }),
    );
  }
  return app;
}

import { guardOptionsFromEnv } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/fastify';
import Fastify from 'fastify';

export async function buildApp() {
  const app = Fastify();
  // FAPI_ISSUER: your authorization server; FAPI_AUDIENCE: this API's identifier (token `aud`).
  await app.register(fapiGuard, guardOptionsFromEnv());
  app.get('/accounts', { preHandler: app.fapi.protect({ scopes: ['accounts'] }) }, async (request) => ({
    client: request.auth?.clientId,
    subject: request.auth?.subject,
  }));
  return app;
}
// (await buildApp()).listen({ port: 3000 });

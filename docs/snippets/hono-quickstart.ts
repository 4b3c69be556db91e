import { guardOptionsFromEnv } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/hono';
import { Hono } from 'hono';

// FAPI_ISSUER: your authorization server; FAPI_AUDIENCE: this API's identifier (token `aud`).
const fapi = fapiGuard(guardOptionsFromEnv());

export const app = new Hono();
app.use(fapi.metadata());
app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (c) => {
  const auth = c.get('auth');
  return c.json({ client: auth.clientId, subject: auth.subject });
});
// import { serve } from '@hono/node-server'; serve({ fetch: app.fetch, port: 3000 });

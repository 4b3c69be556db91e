/**
 * Type tests for @fapi-guard/hono, checked by `npm run typecheck` (`tsc -p test/tsconfig.json`).
 * Each `@ts-expect-error` must be an error, or tsc fails. Nothing here runs.
 */
import type { Authorized, Binding, RequestConnection } from '@fapi-guard/core';
import { type FapiEnv, type FapiGuardHono, type FapiVariables, fapiGuard } from '@fapi-guard/hono';
import { Hono } from 'hono';

const options = { issuer: 'https://as.example.com', audience: 'https://rs.example.com' };
const fapi: FapiGuardHono = fapiGuard(options);
const app = new Hono();

// After protect(): c.get('auth') and c.var.auth are Authorized, not undefined.
app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (c) => {
  const auth: Authorized = c.get('auth');
  const binding: Binding = c.var.auth.binding;
  return c.json({ client: auth.clientId, binding });
});

// Elsewhere (ContextVariableMap augmentation): Authorized | undefined.
app.get('/public', (c) => {
  const auth: Authorized | undefined = c.get('auth');
  // @ts-expect-error auth may be undefined on routes without protect()
  const subject: string | undefined = c.get('auth').subject;
  return c.json({ client: auth?.clientId, subject });
});

// An app typed with the variables from the start.
const typed = new Hono<FapiEnv>();
typed.use(fapi.protect({ anyScopes: ['a', 'b'], dpopNonce: true }));
typed.get('/x', (c) => c.text(c.get('auth').clientId));
const variables: FapiVariables = { auth: {} as Authorized };
void variables;

// Message signing route policy members; the metadata middleware.
app.use(fapi.metadata());
app.post('/payments', fapi.protect({ scopes: ['payments:write'], signedRequest: 'required', signResponse: true }), (c) =>
  c.json({ keyid: c.get('auth').signature?.keyid }),
);
// @ts-expect-error signedRequest is 'required' or 'optional'
fapi.protect({ signedRequest: 'always' });
// @ts-expect-error unknown policy member
fapi.protect({ scope: ['accounts'] });

// The connection option: what a runtime other than Node knows of the peer.
fapiGuard(options, { connection: (c): RequestConnection => ({ remoteAddress: c.req.header('cf-connecting-ip'), encrypted: true }) });
// @ts-expect-error connection returns a RequestConnection
fapiGuard(options, { connection: () => 'peer' });
// @ts-expect-error unknown adapter option
fapiGuard(options, { conection: () => ({}) });

// Issue 25: layers and refusals through onError.
const layered = fapiGuard(options, { errors: 'framework', errorBody: 'problem' });
app.use('/api/*', layered.protect());
app.get('/api/accounts', layered.requireScopes('accounts'), (c) => c.text(c.get('auth').clientId));
app.onError(layered.onError((error, c) => c.json({ message: error.message }, 500)));
// @ts-expect-error errors is 'respond' or 'framework'
fapiGuard(options, { errors: 'throw' });

import { guardOptionsFromEnv } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/express';
import express from 'express';

// FAPI_ISSUER: your authorization server; FAPI_AUDIENCE: this API's identifier (token `aud`).
const fapi = fapiGuard(guardOptionsFromEnv());

export const app = express();
app.use(fapi.metadata()); // RFC 9728 document, with FAPI_RESOURCE_METADATA=true (off by default)
app.get('/health', (_req, res) => {
  res.json({ ok: true }); // public: mounted before the app-wide guard
});
app.use(fapi.protect()); // every route below: a sender-constrained token, checked once
app.get('/accounts', fapi.requireScopes('accounts'), (req, res) => {
  res.json({ client: req.auth?.clientId, subject: req.auth?.subject });
});
// app.listen(3000);

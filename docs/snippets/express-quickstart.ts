import { guardOptionsFromEnv } from '@fapi-guard/core';
import { fapiGuard } from '@fapi-guard/express';
import express from 'express';

// FAPI_ISSUER: your authorization server; FAPI_AUDIENCE: this API's identifier (token `aud`).
const fapi = fapiGuard(guardOptionsFromEnv());

export const app = express();
app.use(fapi.metadata()); // RFC 9728: clients discover what this API needs
app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (req, res) => {
  res.json({ client: req.auth?.clientId, subject: req.auth?.subject });
});
// app.listen(3000);

import { fapiGuard } from '@fapi-guard/express';
import express from 'express';

export function createApp(options: Parameters<typeof fapiGuard>[0]): express.Express {
  const fapi = fapiGuard(options);
  const app = express();
  app.get('/accounts', fapi.protect({ scopes: ['accounts'] }), (req, res) => {
    res.json({ subject: req.auth!.subject });
  });
  return app;
}
